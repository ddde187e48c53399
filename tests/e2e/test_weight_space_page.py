"""A person asks for the weight space of two checkpoints from a checkpoint's page and opens it
in a real browser: both paths (loss and accuracy) are drawn with the naive and the matched
curve, the barriers, L2 and the function check are shown with their definitions, and every
layer's spectra (log scale) and cosines are drawn, its alignment beside what unrelated weights
score before and after the same matching."""

from __future__ import annotations

import io
import re

import pytest
from playwright.sync_api import expect

from tests.conftest import digits_npz_bytes, run_with_dependencies, torchscript_mlp_bytes
from tests.e2e.conftest import ARTIFACTS, sign_in
from webapp.catalog.ingest import ingest_checkpoint, ingest_dataset
from webapp.runs.models import Run

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def expect_layer_cells(page, test_id: str, title: str, text: str, layers: int = 3) -> None:
    """One cell ``test_id`` per layer, each defined on hover (``title`` matches) and showing a
    number as ``text`` matches."""
    cells = page.get_by_test_id(test_id)
    expect(cells).to_have_count(layers)
    for i in range(layers):
        expect(cells.nth(i)).to_have_attribute("title", re.compile(title))
        expect(cells.nth(i)).to_have_text(re.compile(text))


def test_ask_for_and_open_a_weight_space(
    transactional_db, live_server, owner, workspace, browser_page
):
    dataset, _ = ingest_dataset(
        workspace, owner, io.BytesIO(digits_npz_bytes(200)), "d.npz", "digits-200"
    )
    a, _ = ingest_checkpoint(
        workspace, owner, io.BytesIO(torchscript_mlp_bytes(0)), "mlp0.pt", "mlp-seed0"
    )
    b, _ = ingest_checkpoint(
        workspace, owner, io.BytesIO(torchscript_mlp_bytes(1)), "mlp1.pt", "mlp-seed1"
    )

    page = browser_page
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/checkpoints/{a.pk}/")
    page.get_by_test_id("weight-space-link").click()
    expect(page.locator("select[name=checkpoint_a]")).to_have_value(str(a.pk))
    page.locator("select[name=checkpoint_b]").select_option(str(b.pk))
    page.locator("select[name=dataset]").select_option(str(dataset.pk))
    page.get_by_role("button", name="Match the weights and walk the path").click()
    page.wait_for_url("**/weight-spaces/*/")
    run = Run.objects.get(kind=Run.Kind.WEIGHTS)
    assert run_with_dependencies(run).state == Run.State.SUCCEEDED

    page.goto(f"{live_server.url}/weight-spaces/{run.pk}/")
    for key in ("path:loss", "path:accuracy"):
        chart = page.locator(f'[data-chart="{key}"]')
        expect(chart).to_have_attribute("data-drawn", "true")
        expect(chart.locator(".scatterlayer .trace")).to_have_count(3)  # naive, matched, chance
        expect(chart).to_contain_text("λ")
        # The y axis's title lies whole inside the chart (its left margin once clipped it).
        title, box = chart.locator(".ytitle").bounding_box(), chart.bounding_box()
        assert title is not None and box is not None
        assert title["x"] >= box["x"] and title["y"] >= box["y"], (key, title, box)
        assert title["y"] + title["height"] <= box["y"] + box["height"], (key, title, box)
    expect(page.get_by_test_id("function-check")).to_contain_text("Passed")
    expect(page.get_by_test_id("barriers")).to_contain_text("loss barrier")
    expect(page.get_by_test_id("barriers")).to_contain_text("largest rise of the loss")
    # each layer's alignment beside what unrelated weights of its shape score, defined on hover
    expect(page.get_by_test_id("alignment")).to_contain_text("unrelated weights")
    expect_layer_cells(page, "alignment-chance", r"m\(out\) m\(in\) / 2", r"^0\.0\d+$")
    # and after matching beside what the same matching gives unrelated weights, with its interval
    expect(page.get_by_test_id("alignment")).to_contain_text("unrelated weights, matched")
    expect_layer_cells(
        page, "alignment-matched-chance", r"^mean of 8 pairs", r"^0\.\d+ \[0\.\d+, 0\.\d+\]$"
    )
    for layer in ("block1.0", "block2.0", "head"):
        spectrum = page.locator(f'[data-chart="spectrum:{layer}"]')
        expect(spectrum).to_have_attribute("data-drawn", "true")
        expect(page.locator(f'[data-chart="cosines:{layer}"]')).to_have_attribute(
            "data-drawn", "true"
        )
    page.screenshot(path=str(ARTIFACTS / "weight-space.png"), full_page=True)

    page.goto(f"{live_server.url}/w/{workspace.slug}/")
    expect(page.locator("#weight-spaces + ul")).to_contain_text("mlp-seed0 ↔ mlp-seed1")
