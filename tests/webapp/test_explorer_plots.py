"""The covariance spectrum's plot has axes: ticks on component ranks and on powers of ten."""

from __future__ import annotations

import numpy as np

from webapp.runs.explorer import spectrum_figure


def test_the_spectrum_is_drawn_on_log_axes_with_ticks():
    values = 10.0 ** -np.linspace(0, 3, 32)  # 1 … 10⁻³ over 32 components
    f = spectrum_figure(values)
    assert f is not None
    assert [t["label"] for t in f["x_ticks"]] == ["1", "10", "20", "30"]
    assert [t["label"] for t in f["y_ticks"]] == ["10⁻³", "10⁻²", "10⁻¹", "10⁰"]
    points = np.array([p.split(",") for p in f["points"].split()], dtype=float)
    assert len(points) == 32
    # The first component sits on the top tick at the left axis, the last on the bottom one.
    top, bottom = f["y_ticks"][-1]["at"], f["y_ticks"][0]["at"]
    assert points[0].tolist() == [f["left"], top] and points[-1].tolist() == [f["right"], bottom]
    assert f["x_ticks"][0]["at"] == f["left"]
    assert np.all(np.diff(points[:, 1]) > 0)  # falling eigenvalues go down


def test_non_positive_eigenvalues_are_left_out_and_too_few_draw_nothing():
    f = spectrum_figure(np.array([4.0, 2.0, 0.0, -1e-9, 1.0]))
    assert f is not None and len(f["points"].split()) == 3
    assert [t["label"] for t in f["y_ticks"]] == ["10⁰", "10¹"]
    assert spectrum_figure(np.array([1.0, 0.0])) is None
