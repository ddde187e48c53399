"""A person opens a probe run in a real browser: the layer × magnitude heatmaps and the curves
over depth draw, the heatmap follows the statistic chosen (its definition beside it), negative
invariance is drawn in colours of its own (not those of 0), and the samples a transform moves
most show before and after it."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect

from tests.conftest import digits_npz_bytes, run_with_dependencies, torchscript_mlp_bytes
from tests.e2e.conftest import ARTIFACTS, sign_in
from webapp.catalog.ingest import ingest_checkpoint, ingest_dataset
from webapp.runs.models import Run
from webapp.runs.submit import request_probe

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_open_a_probe_run(transactional_db, live_server, owner, workspace, browser_page):
    dataset, _ = ingest_dataset(
        workspace, owner, io.BytesIO(digits_npz_bytes(200)), "d.npz", "digits-200"
    )
    checkpoint, _ = ingest_checkpoint(
        workspace, owner, io.BytesIO(torchscript_mlp_bytes(0)), "mlp.pt", "mlp-seed0"
    )
    families = {"image/rotation": [0, 90, 180], "image/noise": [0, 0.1, 3.0]}
    run, _ = request_probe(owner, checkpoint, dataset, ["block1", "head"], families=families)
    assert run_with_dependencies(run).state == Run.State.SUCCEEDED

    page = browser_page
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/probes/{run.pk}/")
    sections = page.locator(".probe-family")
    expect(sections).to_have_count(2)
    rotation = sections.first
    expect(rotation.locator(".probe-heatmap")).to_have_attribute("data-drawn", "true")
    expect(rotation.locator(".probe-curves")).to_have_attribute("data-drawn", "true")
    for text in ("block1", "head", "180", "t (degrees)", "invariance"):
        expect(rotation.locator(".probe-heatmap")).to_contain_text(text)
    rotation.locator("select[name=measure]").select_option("equivariance_r2")
    expect(rotation.locator(".probe-heatmap")).to_contain_text("learned-map R²")
    expect(rotation.locator(".measure-definition")).to_contain_text("ridge map M fitted")

    # The samples rotation moves most: each shown before and after (180°: upside down).
    moved = rotation.locator(".moved figure")
    expect(moved).to_have_count(12)
    after = moved.first.locator("img").nth(1)
    expect(after).to_have_attribute(
        "src",
        f"/probes/{run.pk}/samples/{moved.first.get_attribute('data-index')}.png?family=image/rotation&t=180.0",
    )
    page.wait_for_function(
        "img => img.complete && img.naturalWidth === 8", arg=after.element_handle()
    )
    rotation.locator("select[name=t]").select_option(label="90.0 degrees")
    expect(rotation.locator(".moved p")).to_contain_text("image/rotation 90.0")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "probes.png"), full_page=True)


def cell_rgb(plot, shot: np.ndarray, row: int, col: int, rows: int, cols: int) -> np.ndarray:
    """Mean colour of a patch in the upper-left part of heatmap cell (row, col), away from any
    value written at its centre; rows run down from the top (reversed y axis)."""
    box = plot.evaluate(
        "el => { const xa = el._fullLayout.xaxis, ya = el._fullLayout.yaxis;"
        " return [xa._offset, xa._length, ya._offset, ya._length]; }"
    )
    x0, width, y0, height = box
    x = int(x0 + (col + 0.2) * width / cols)
    y = int(y0 + (row + 0.2) * height / rows)
    return shot[y - 2 : y + 3, x - 2 : x + 3].reshape(-1, 3).mean(0)


def test_negative_invariance_is_drawn_apart_from_zero(
    transactional_db, live_server, owner, workspace, browser_page
):
    """Noise of σ = 3 moves an untrained MLP's activations further than swapping samples:
    invariance far below 0. Those cells are blue (and the darkest where clipped at −1, with
    their values written), t = 0 (invariance 1) red; none has the white of 0."""
    dataset, _ = ingest_dataset(
        workspace, owner, io.BytesIO(digits_npz_bytes(120)), "d.npz", "digits-120"
    )
    checkpoint, _ = ingest_checkpoint(
        workspace, owner, io.BytesIO(torchscript_mlp_bytes(0)), "mlp.pt", "mlp-seed0"
    )
    families = {"image/noise": [0, 0.05, 3.0]}
    run, _ = request_probe(owner, checkpoint, dataset, ["block1", "head"], families=families)
    assert run_with_dependencies(run).state == Run.State.SUCCEEDED

    page = browser_page
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/probes/{run.pk}/")
    summary = json.loads(page.locator("#probe-data").text_content())
    invariance = np.array(summary["families"][0]["invariance"], dtype=float)
    assert (invariance[:, 2] < 0).all() and (invariance[:, 0] == 1).all()
    plot = page.locator(".probe-heatmap").first
    expect(plot).to_have_attribute("data-drawn", "true")
    clipped = int((invariance < -1).sum())
    bar = plot.locator(".colorbar")
    expect(bar).to_contain_text("scale −1 to 1")
    expect(bar).to_contain_text("white = 0")
    if clipped:
        expect(bar).to_contain_text(f"{clipped} below −1 drawn as −1")
        expect(bar).to_contain_text("≤ −1")
    page.wait_for_timeout(300)  # let the last frame settle before reading pixels
    shot = np.asarray(Image.open(io.BytesIO(plot.screenshot())).convert("RGB"), dtype=float)
    white = np.array([247.0, 247.0, 247.0])  # the colour of 0
    rows, cols = invariance.shape
    for i in range(rows):
        one = cell_rgb(plot, shot, i, 0, rows, cols)
        assert one[0] > one[2] + 60, f"invariance 1 is red, got {one}"
        negative = cell_rgb(plot, shot, i, 2, rows, cols)
        assert negative[2] > negative[0] + 60, (
            f"invariance {invariance[i, 2]} is blue, got {negative}"
        )
        assert np.abs(negative - white).max() > 80
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "probes-negative-invariance.png"), full_page=True)
