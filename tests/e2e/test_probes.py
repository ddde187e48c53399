"""A person opens a probe run in a real browser: the layer × magnitude heatmaps and the curves
over depth draw, the heatmap follows the statistic chosen, and the samples a transform moves
most show before and after it."""

from __future__ import annotations

import io

import pytest
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
    families = {"image/rotation": [0, 90, 180], "image/noise": [0, 0.1]}
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
    for text in ("block1", "head", "180 degrees", "invariance"):
        expect(rotation.locator(".probe-heatmap")).to_contain_text(text)
    rotation.locator("select[name=measure]").select_option("equivariance_r2")
    expect(rotation.locator(".probe-heatmap")).to_contain_text("learned-map R²")

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
