"""A person in a real browser: from a cell of a comparison, ask for the unit matching of its two
layers; the page fills itself in with the share-above-t and sparse-prediction curves (in-sample
and held-out) and the
best- and worst-matched pairs with their samples' thumbnails."""

from __future__ import annotations

import io

import pytest
from playwright.sync_api import expect

from tests.conftest import digits_npz_bytes, run_with_dependencies, torchscript_mlp_bytes
from tests.e2e.conftest import ARTIFACTS, sign_in
from webapp.catalog.ingest import ingest_checkpoint, ingest_dataset
from webapp.runs.models import Run
from webapp.runs.submit import request_comparison

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_unit_matching_from_a_comparison_cell(
    transactional_db, live_server, owner, workspace, browser_page
):
    dataset, _ = ingest_dataset(
        workspace, owner, io.BytesIO(digits_npz_bytes(200)), "d.npz", "digits-200"
    )
    a, b = (
        ingest_checkpoint(
            workspace, owner, io.BytesIO(torchscript_mlp_bytes(seed)), f"{seed}.pt", f"mlp{seed}"
        )[0]
        for seed in (0, 1)
    )
    comparison, _ = request_comparison(owner, a, b, dataset, ["block2"], ["block2"])
    comparison = run_with_dependencies(comparison)
    assert comparison.state == Run.State.SUCCEEDED, comparison.error

    page = browser_page
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/comparisons/{comparison.pk}/pairs/0/0/")
    page.click("[data-testid=unit-matching-pair]")
    expect(page.locator("h1")).to_contain_text("Unit matching")
    expect(page.locator("#result")).to_contain_text("this page updates by itself")

    run = run_with_dependencies(Run.objects.get(kind=Run.Kind.UNITS))  # the worker
    assert run.state == Run.State.SUCCEEDED, run.error
    # No reload: htmx polling swaps the finished result in, and the curves are drawn.
    share = page.locator("[data-units-chart=share]")
    expect(share).to_have_attribute("data-drawn", "true", timeout=30_000)
    expect(share.locator(".scatterlayer .trace")).to_have_count(3)
    sparse = page.locator("[data-units-chart=sparse]")
    expect(sparse).to_have_attribute("data-drawn", "true")
    # the in-sample curve, the held-out curve and the mean's
    expect(sparse.locator(".scatterlayer .trace")).to_have_count(3)
    expect(sparse.locator(".legend")).to_contain_text("held-out")
    expect(page.locator("[data-testid=heldout-definition]")).to_contain_text("held out")

    best = page.locator("[data-testid=best-pairs]")
    expect(best.locator("tbody tr")).to_have_count(5)
    thumbnails = best.locator("tbody tr").first.locator(".sample-grid img")
    expect(thumbnails).to_have_count(18)  # 9 samples for A's unit, 9 for B's
    loaded = thumbnails.first.evaluate("img => img.complete && img.naturalWidth > 0")
    assert loaded
    expect(page.locator("[data-testid=worst-pairs] tbody tr")).to_have_count(5)
    expect(page.locator("body")).to_contain_text("layers wider than 256 units are refused")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "unit-matching.png"), full_page=True)

    # The workspace page lists it, and the cell now links to it.
    page.goto(f"{live_server.url}/w/{workspace.slug}/")
    expect(page.locator("#unit-matchings + ul")).to_contain_text("mlp0 block2 ↔ mlp1 block2")
    page.goto(f"{live_server.url}/comparisons/{comparison.pk}/pairs/0/0/")
    expect(page.locator(f"a[href='/unit-matchings/{run.pk}/']")).to_be_visible()
