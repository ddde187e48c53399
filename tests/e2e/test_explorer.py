"""A person in a real browser projects a layer and explores it: the WebGL scatter draws every
sample from the binary endpoints, hovering a point shows that sample, and clicking it lists its
nearest neighbours in the original space."""

from __future__ import annotations

import io

import pytest
from playwright.sync_api import expect

from tests.conftest import digits_npz_bytes, torchscript_mlp_bytes
from tests.e2e.conftest import ARTIFACTS, sign_in
from webapp.catalog.ingest import ingest_checkpoint, ingest_dataset

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_project_a_layer_and_hover_a_sample(worker, live_server, owner, workspace, browser_page):
    dataset, _ = ingest_dataset(
        workspace, owner, io.BytesIO(digits_npz_bytes(300)), "d.npz", "digits-300"
    )
    checkpoint, _ = ingest_checkpoint(
        workspace, owner, io.BytesIO(torchscript_mlp_bytes(0)), "mlp.pt", "mlp-seed0"
    )
    page = browser_page
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/checkpoints/{checkpoint.pk}/")
    form = page.locator("form[action$='/project/']")
    form.locator("select[name=dataset]").select_option(label=dataset.name)
    form.locator("select[name=layer]").select_option("block1")
    form.locator("select[name=method]").select_option("pca")
    form.locator("button[type=submit]").click()
    expect(page.locator("h1")).to_contain_text("block1")

    # The finished projection swaps in by itself and the scatter draws all 300 points.
    scatter = page.locator(".scatter[data-drawn=true]")
    expect(scatter).to_have_attribute("data-points", "300", timeout=90_000)
    expect(page.locator(".scatter-legend")).to_contain_text("9")

    box = scatter.bounding_box()
    hovered = None
    for fy in (0.5, 0.4, 0.6, 0.3, 0.7):
        for fx in [i / 20 for i in range(2, 19)]:
            page.mouse.move(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy)
            hovered = scatter.get_attribute("data-hovered")
            if hovered is not None:
                break
        if hovered is not None:
            break
    assert hovered is not None, "no point under any probed position"
    tip = page.locator(".scatter-tip")
    expect(tip).to_be_visible()
    thumbnail = tip.locator("img")
    expect(thumbnail).to_have_attribute("src", f"/datasets/{dataset.pk}/samples/{hovered}.png")
    page.wait_for_function(
        "img => img.complete && img.naturalWidth === 8", arg=thumbnail.element_handle()
    )

    # A click opens the sample's nearest neighbours in the original space below the plot.
    page.mouse.down()
    page.mouse.up()
    expect(scatter).to_have_attribute("data-selected", hovered)
    panel = page.locator("#point-panel")
    expect(panel.locator("h2")).to_contain_text(f"digit-{int(hovered):04d}")
    expect(panel).to_contain_text("of its 10")
    expect(panel.locator(".sample-grid figure")).to_have_count(11)  # the sample + 10
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "explorer.png"), full_page=True)
