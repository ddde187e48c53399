"""A person opens a compatibility run in a real browser: an update a hair away from the old model
reads "not distinguishable" (not "Compatible: yes"), with its interval and the chance levels,
and the heatmap's colour bar names what it shows (retrieval, not similarity) and its span."""

from __future__ import annotations

import io

import pytest
from django.template.defaultfilters import floatformat
from playwright.sync_api import expect

from tests.conftest import (
    digits_npz_bytes,
    nudged_mlp_bytes,
    run_with_dependencies,
    torchscript_mlp_bytes,
)
from tests.e2e.conftest import ARTIFACTS, sign_in
from webapp.catalog.ingest import ingest_checkpoint, ingest_dataset
from webapp.runs.models import Run
from webapp.runs.submit import request_compatibility

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_an_indistinguishable_update_says_so(
    transactional_db, live_server, owner, workspace, browser_page
):
    dataset, _ = ingest_dataset(
        workspace, owner, io.BytesIO(digits_npz_bytes(200)), "d.npz", "digits-200"
    )
    old, _ = ingest_checkpoint(
        workspace, owner, io.BytesIO(torchscript_mlp_bytes(0)), "old.pt", "mlp-old"
    )
    new, _ = ingest_checkpoint(
        workspace, owner, io.BytesIO(nudged_mlp_bytes(0, 1e-3)), "new.pt", "mlp-new"
    )
    run, _ = request_compatibility(owner, [old, new], dataset, "block2", criterion="mean_ap")
    run = run_with_dependencies(run)
    assert run.state == Run.State.SUCCEEDED, run.error
    result = run.compatibility.result
    assert result["verdict"] == {"1,0": "not distinguishable"}

    page = browser_page
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/compatibility/{run.pk}/")
    verdict = page.locator("table.compatibility-pairs td.verdict")
    expect(verdict).to_have_text("not distinguishable")
    low, high = result["difference_ci"]["1,0"]
    expect(page.locator("table.compatibility-pairs")).to_contain_text(
        f"{floatformat(low, 4)} – {floatformat(high, 4)}"
    )
    expect(page.locator(".chance")).to_contain_text(f"mAP {result['chance']['mean_ap']:.3f}")
    heatmap = page.locator(".heatmap")
    expect(heatmap).to_have_attribute("data-drawn", "true")
    bar = heatmap.locator(".colorbar")
    expect(bar).to_contain_text("higher = better retrieval")
    expect(bar).to_contain_text("scale 0 to 1")
    expect(bar).not_to_contain_text("similar")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "compatibility.png"), full_page=True)
