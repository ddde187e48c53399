"""A person opens a series' dynamics in a real browser: the similarity to the final step is drawn
over the measure's whole range, the accuracies with their chance level dashed, the logged loss
beside them, and one step × step heatmap per layer."""

from __future__ import annotations

import io

import pytest
from playwright.sync_api import expect

from tests.conftest import digits_npz_bytes, nudged_mlp_bytes, run_with_dependencies
from tests.e2e.conftest import ARTIFACTS, sign_in
from webapp.catalog.ingest import ingest_checkpoint, ingest_dataset
from webapp.runs.models import Run
from webapp.runs.submit import request_dynamics

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_the_dynamics_page_draws_every_view(
    transactional_db, live_server, owner, workspace, browser_page
):
    dataset, _ = ingest_dataset(
        workspace, owner, io.BytesIO(digits_npz_bytes(200)), "d.npz", "digits-200"
    )
    for step in range(4):
        ingest_checkpoint(
            workspace,
            owner,
            io.BytesIO(nudged_mlp_bytes(0, 0.1 * step)),
            f"s{step}.pt",
            f"mlp-step{step}",
            seed_group="run-1",
            step=step * 50,
            metrics={"loss": 2.0 - 0.4 * step},
        )
    run, _ = request_dynamics(owner, workspace, "run-1", dataset, ["block1", "head"])
    run = run_with_dependencies(run)
    assert run.state == Run.State.SUCCEEDED, run.error

    page = browser_page
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/w/{workspace.slug}/series/?group=run-1")
    expect(page.locator('[data-chart="metric:loss"]')).to_have_attribute("data-drawn", "true")
    page.goto(f"{live_server.url}/dynamics/{run.pk}/")
    to_final = page.locator('[data-chart="to_final"]')
    expect(to_final).to_have_attribute("data-drawn", "true")
    expect(to_final.locator(".legendtext")).to_have_text(["block1", "head"])
    # the y-axis spans the measure's whole range, 0 to 1, whatever the values
    ticks = to_final.locator(".ytick text").all_text_contents()
    assert ticks[0] == "0" and ticks[-1] == "1", ticks
    probe = page.locator('[data-chart="linear_probe_accuracy"]')
    expect(probe).to_have_attribute("data-drawn", "true")
    expect(probe.locator(".legendtext").last).to_contain_text("chance (")
    expect(page.locator('[data-chart="metric:loss"]')).to_have_attribute("data-drawn", "true")
    heatmaps = page.locator(".heatmap")
    expect(heatmaps).to_have_count(2)
    expect(heatmaps.first).to_have_attribute("data-drawn", "true")
    expect(heatmaps.first.locator(".xtick text").first).to_have_text("step 0")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dynamics.png"), full_page=True)
