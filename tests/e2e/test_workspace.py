"""A person finds their way around a workspace in a real browser: the overview in one screen's
order (uploads, datasets, checkpoints, results), forms opened on demand, the runs table
filtered without a reload, a run renamed, a checkpoint deleted with what used it, and a new
workspace made."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.conftest import run_with_dependencies
from tests.e2e.conftest import ARTIFACTS, sign_in
from webapp.catalog.models import Checkpoint, Workspace
from webapp.runs.models import Run
from webapp.runs.submit import request_comparison, request_projection

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_workspace_overview_rename_delete_and_a_new_workspace(
    transactional_db, live_server, owner, workspace, digits, ckpt_a, ckpt_b, browser_page
):
    comparison, _ = request_comparison(owner, ckpt_a, ckpt_b, digits, n_permutations=2)
    comparison = run_with_dependencies(comparison)
    projection = run_with_dependencies(request_projection(owner, ckpt_b, digits, "block1")[0])
    assert comparison.state == projection.state == Run.State.SUCCEEDED
    page = browser_page
    sign_in(page, live_server)

    # The overview: what is here first, results as lists, no form open.
    order = page.evaluate(
        "['datasets', 'checkpoints', 'comparisons', 'projections', 'runs-card']"
        ".map(id => document.getElementById(id).getBoundingClientRect().top)"
    )
    assert order == sorted(order)
    expect(page.locator("#projections + ul")).to_contain_text("pca of mlp-seed1 · block1")
    comparison_form = page.locator("form[action$='/comparisons/new/']")
    expect(comparison_form).to_be_hidden()
    height = page.evaluate("document.documentElement.scrollHeight")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "workspace.png"), full_page=True)
    assert height < 2600, height
    page.click("summary:has-text('New comparison')")
    expect(comparison_form).to_be_visible()
    # its poolings said in words are long options: the page stays as wide as the window
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    # The runs table, filtered by kind: swapped in place (htmx), the page stays.
    runs = page.locator("#runs table.runs tbody tr")
    expect(runs).to_have_count(Run.objects.count())
    page.fill("#runs input[name=q]", "seed0")  # found as it is typed
    expect(runs).to_have_count(Run.objects.filter(checkpoint=ckpt_a).count())
    page.fill("#runs input[name=q]", "")
    page.select_option("#runs select[name=kind]", "project")
    expect(runs).to_have_count(1)
    expect(runs.first).to_contain_text("Project to 2-D")
    row = runs.first
    row.locator("summary").click()
    row.locator("input[name=name]").fill("first look")
    row.locator("button:has-text('Rename')").click()
    expect(page.locator("#runs")).to_contain_text("first look")
    projection.refresh_from_db()
    assert projection.name == "first look"

    # Deleting a checkpoint says what goes with it, then takes it all.
    page.goto(f"{live_server.url}/checkpoints/{ckpt_a.pk}/")
    page.click("text=Delete…")
    expect(page.locator("h1")).to_have_text("Delete “mlp-seed0”?")
    expect(page.locator("table.runs")).to_contain_text("mlp-seed0 vs mlp-seed1")
    page.click("button.danger")
    expect(page.locator(".flash")).to_contain_text("Deleted “mlp-seed0” and")
    expect(page.locator("#comparisons")).to_contain_text("No comparisons yet.")
    assert not Checkpoint.objects.filter(pk=ckpt_a.pk).exists()
    assert not Run.objects.filter(pk=comparison.pk).exists()
    assert Run.objects.filter(pk=projection.pk).exists()  # of the other checkpoint

    # A new workspace, made from the list of workspaces.
    page.goto(f"{live_server.url}/?all=1")
    page.click("summary:has-text('New workspace')")
    page.fill("form[action$='/workspaces/new/'] input[name=name]", "Vision team")
    page.click("text=Make the workspace")
    expect(page.locator("h1")).to_have_text("Vision team")
    made = Workspace.objects.get(name="Vision team")
    assert made.memberships.get().user == owner
