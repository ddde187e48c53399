"""A person asks for model stitching from the workspace page and opens it in a real browser:
both A-layer × B-layer accuracy matrices (fitted and zero-shot) are drawn as heatmaps over
[0, 1] with every layer of A and B and chance and B alone marked on their colour bars, a cell's
hover names its estimator, held-out R² and where it lies from chance and B alone, and B alone,
A alone and chance are stated beside them with the definitions."""

from __future__ import annotations

import io

import pytest
from playwright.sync_api import expect

from tests.conftest import digits_npz_bytes, run_with_dependencies, torchscript_mlp_bytes
from tests.e2e.conftest import ARTIFACTS, sign_in
from webapp.catalog.ingest import ingest_checkpoint, ingest_dataset
from webapp.runs.models import Run

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

LAYERS = ["flatten", "block1", "block2", "head"]


def test_ask_for_and_open_a_stitching(
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
    page.get_by_test_id("new-stitching-link").click()
    page.locator("select[name=checkpoint_a]").select_option(str(a.pk))
    page.locator("select[name=checkpoint_b]").select_option(str(b.pk))
    page.locator("select[name=dataset]").select_option(str(dataset.pk))
    page.get_by_role("button", name="Stitch A into B").click()
    page.wait_for_url("**/stitchings/*/")
    run = Run.objects.get(kind=Run.Kind.STITCH)
    assert run_with_dependencies(run).state == Run.State.SUCCEEDED

    page.goto(f"{live_server.url}/stitchings/{run.pk}/")
    for key, method in (("stitching-1", "fitted"), ("stitching-2", "relative")):
        heatmap = page.locator(f'[data-heatmap="{key}"]')
        expect(heatmap).to_have_attribute("data-drawn", "true")
        expect(heatmap.locator("svg .cell")).to_have_count(16)  # every layer pair, drawn
        expect(heatmap.locator(".xtick text")).to_have_text(LAYERS)  # B's layers
        expect(heatmap.locator(".ytick text")).to_have_text(LAYERS)  # A's, top down
        expect(heatmap.locator(".colorbar")).to_contain_text("accuracy")
        expect(heatmap.locator(".colorbar")).to_contain_text("higher = better")
        expect(heatmap.locator(".colorbar")).to_contain_text("scale 0 to 1")
        marks = heatmap.locator(".colorbar .mark text")  # where chance and B alone sit
        expect(marks).to_have_count(2)
        expect(marks.nth(0)).to_contain_text("chance")
        expect(marks.nth(1)).to_contain_text("B alone")
        expect(page.get_by_test_id(f"matrix-{method}")).to_contain_text(method)

    fitted = page.locator('[data-heatmap="stitching-1"]')
    fitted.locator('.cell[data-row="1"][data-col="1"]').hover()
    hover = fitted.locator(".heatmap-tip")
    expect(hover).to_contain_text("block1 × block1")
    expect(hover).to_contain_text("least squares")
    expect(hover).to_contain_text("R²")
    expect(hover).to_contain_text("chance (")
    expect(hover).to_contain_text("B alone (")

    references = page.get_by_test_id("references")
    for words in ("B alone", "A alone", "chance", "largest class share"):
        expect(references).to_contain_text(words)
    expect(page.get_by_test_id("zero-shot")).to_contain_text("chance")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "stitching.png"), full_page=True)

    page.goto(f"{live_server.url}/w/{workspace.slug}/")
    expect(page.locator("#stitchings + ul")).to_contain_text("mlp-seed0 → mlp-seed1")


def test_a_cnn_stitching_shows_its_conv_cells_and_why_others_are_empty(
    transactional_db, live_server, owner, workspace, browser_page
):
    """Two small CNNs, every default layer: the conv maps on one grid are stitched by a 1×1
    convolution; a pair that cannot be stitched is an empty cell whose hover says why."""
    from tests.workers.test_stitching import small_cnn_bytes
    from webapp.runs.stitching import request_stitching

    dataset, _ = ingest_dataset(
        workspace, owner, io.BytesIO(digits_npz_bytes(200)), "d.npz", "digits-200"
    )
    a, _ = ingest_checkpoint(workspace, owner, io.BytesIO(small_cnn_bytes(0)), "c0.pt", "cnn-0")
    b, _ = ingest_checkpoint(workspace, owner, io.BytesIO(small_cnn_bytes(1)), "c1.pt", "cnn-1")
    run = run_with_dependencies(request_stitching(owner, a, b, dataset)[0])
    assert run.state == Run.State.SUCCEEDED, run.error

    page = browser_page
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/stitchings/{run.pk}/")
    fitted = page.locator('[data-heatmap="stitching-1"]')
    expect(fitted).to_have_attribute("data-drawn", "true")
    expect(fitted.locator(".xtick text")).to_have_text(["conv1", "conv2", "pool", "head"])
    fitted.locator('.cell[data-row="0"][data-col="0"]').hover()
    tip = fitted.locator(".heatmap-tip")
    expect(tip).to_contain_text("conv1 × conv1")
    expect(tip).to_contain_text("1×1 convolution")
    fitted.locator('.cell[data-row="0"][data-col="1"]').hover()
    expect(tip).to_contain_text("no value for this pair")
    expect(tip).to_contain_text("not stitched: A's conv1 outputs maps of 4 channels over 8 × 8")
    expect(tip).to_contain_text("maps are not resized")
    expect(fitted.locator(".colorbar")).to_contain_text("no value")
    expect(page.locator("body")).to_contain_text("An empty cell is a pair not stitched")
    expect(page.locator("body")).to_contain_text("conv1 (4 × 8 × 8 map)")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "stitching-cnn.png"), full_page=True)
