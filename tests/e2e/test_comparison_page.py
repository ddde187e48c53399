"""A person in a real browser: sign in, ask for a comparison, watch the page fill itself in,
open a cell and fit a map between its two layers."""

from __future__ import annotations

import io

import pytest
from playwright.sync_api import expect

from tests.conftest import digits_npz_bytes, torchscript_mlp_bytes
from tests.e2e.conftest import ARTIFACTS, sign_in
from webapp.catalog.ingest import ingest_checkpoint, ingest_dataset
from webapp.runs.models import Run

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_comparison_page_updates_itself_and_shows_the_heatmap(
    worker, live_server, owner, workspace, browser_page
):
    dataset, _ = ingest_dataset(
        workspace, owner, io.BytesIO(digits_npz_bytes(200)), "d.npz", "digits-200"
    )
    for seed in (0, 1):
        ingest_checkpoint(
            workspace,
            owner,
            io.BytesIO(torchscript_mlp_bytes(seed)),
            f"mlp{seed}.pt",
            f"mlp-seed{seed}",
        )
    page = browser_page
    sign_in(page, live_server)

    page.click("summary:has-text('New comparison')")  # the form opens on demand
    form = page.locator("form[action$='/comparisons/new/']")
    form.locator("select[name=checkpoint_a]").select_option(label="mlp-seed0")
    form.locator("select[name=checkpoint_b]").select_option(label="mlp-seed1")
    form.locator("select[name=dataset]").select_option(label=dataset.name)
    page.click("text=Compare every layer pair")
    expect(page.locator("h1")).to_contain_text("mlp-seed0")

    # No reload: htmx polling swaps the finished result in, drawn as SVG without plotly.js.
    heatmap = page.locator(".heatmap")
    expect(heatmap).to_have_attribute("data-drawn", "true", timeout=90_000)
    cells = heatmap.locator("svg .cell")
    expect(cells).to_have_count(16)
    layers = ["flatten", "block1", "block2", "head"]
    expect(heatmap.locator(".ytick text")).to_have_text(layers)  # seed 0's layers, top down
    expect(heatmap.locator(".xtick text")).to_have_text(layers)  # seed 1's, left to right
    expect(heatmap.locator(".xtitle")).to_have_text("mlp-seed1")
    expect(heatmap.locator(".ytitle")).to_have_text("mlp-seed0")
    bar = heatmap.locator(".colorbar")
    for words in ("Linear CKA", "higher = more similar", "scale 0 to 1"):
        expect(bar).to_contain_text(words)
    assert page.evaluate("typeof window.Plotly") == "undefined"
    assert not page.locator("script[src*=plotly]").count()
    tip = heatmap.locator(".heatmap-tip")
    heatmap.locator('.cell[data-row="0"][data-col="0"]').hover()
    expect(tip).to_be_visible()
    expect(tip).to_contain_text("flatten × flatten")
    expect(tip).to_contain_text("baseline")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "comparison.png"), full_page=True)
    expect(page.locator("table.scores tbody tr")).to_have_count(16)

    # A focused cell says what it holds and Enter opens its pair's page (keyboard use).
    cell = heatmap.locator('.cell[data-row="2"][data-col="3"]')
    cell.focus()
    expect(tip).to_contain_text("block2 × head")
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text("block2 × head")

    # Back shows the whole page again, heatmap drawn, not the result part its last poll
    # fetched under the same URL (the answers vary on HX-Request).
    page.go_back()
    expect(page.locator(".topbar")).to_be_visible()
    expect(page.locator(".heatmap svg .cell")).to_have_count(16)

    # A click opens the samples behind a cell: block1 of one seed against block1 of the other.
    cell = page.locator('.heatmap .cell[data-row="1"][data-col="1"]')
    cell.hover()
    expect(page.locator(".heatmap-tip")).to_contain_text("block1 × block1")
    cell.click()
    expect(page.locator("h1")).to_have_text("block1 × block1")
    expect(page.locator("text=Least agreeing samples")).to_be_visible()
    page.wait_for_load_state("networkidle")
    thumbnails = page.locator(".sample-grid img")
    assert thumbnails.count() == 24
    assert all(thumbnails.nth(i).evaluate("img => img.naturalWidth") == 8 for i in range(24))
    page.screenshot(path=str(ARTIFACTS / "pair.png"), full_page=True)

    # Fit a ridge map between the two layers; the real worker fits it and the section polls
    # itself up to date: held-out R² beside the shuffled-pairs one, the worst-aligned samples.
    ridge = page.locator("#alignments tbody tr", has_text="Ridge linear map")
    ridge.locator("button", has_text="Fit").click()
    expect(page.locator("text=Held-out samples that align worst")).to_be_visible(timeout=90_000)
    r2, shuffled = (float(ridge.locator("td").nth(i).inner_text()) for i in (1, 2))
    assert -1.0 < shuffled < r2 <= 1.0
    assert page.locator("#alignments .sample-grid img").count() == 12
    page.wait_for_function(
        "() => [...document.querySelectorAll('#alignments .sample-grid img')]"
        ".every(img => img.complete && img.naturalWidth === 8)"
    )
    page.screenshot(path=str(ARTIFACTS / "alignment.png"), full_page=True)


def test_the_comparison_form_offers_the_layers_of_each_chosen_checkpoint(
    live_server, owner, workspace, browser_page
):
    """Choosing a checkpoint offers its layers to tick (the rest of the form as filled in);
    the run asked for compares the ticked ones, and its page says which."""
    dataset, _ = ingest_dataset(
        workspace, owner, io.BytesIO(digits_npz_bytes(60)), "d.npz", "digits-60"
    )
    a, b = (
        ingest_checkpoint(
            workspace,
            owner,
            io.BytesIO(torchscript_mlp_bytes(seed)),
            f"mlp{seed}.pt",
            f"mlp-seed{seed}",
        )[0]
        for seed in (0, 1)
    )
    page = browser_page
    sign_in(page, live_server)
    page.click("summary:has-text('New comparison')")
    form = page.locator("form[action$='/comparisons/new/']")
    layers_a = form.locator("input[name=layers_a]")
    layers_b = form.locator("input[name=layers_b]")
    expect(layers_a).to_have_count(0)
    expect(form).to_contain_text("choose checkpoint A to pick among its layers")
    form.locator("select[name=dataset]").select_option(label=dataset.name)
    form.locator("select[name=measure]").select_option("cka/rbf")
    form.locator("select[name=checkpoint_a]").select_option(label="mlp-seed0")
    expect(layers_a).to_have_count(len(a.layers))
    form.locator("input[name=layers_a][value=block1]").check()
    form.locator("select[name=checkpoint_b]").select_option(label="mlp-seed1")
    expect(layers_b).to_have_count(len(b.layers))
    expect(form.locator("input[name=layers_a][value=block1]")).to_be_checked()  # kept
    form.locator("input[name=layers_b][value=block2]").check()
    form.locator("input[name=layers_b][value=head]").check()
    # the fields filled in before are as they were: only the layers were drawn again
    expect(form.locator("select[name=dataset]")).to_have_value(str(dataset.pk))
    expect(form.locator("select[name=measure]")).to_have_value("cka/rbf")
    ARTIFACTS.mkdir(exist_ok=True)
    form.screenshot(path=str(ARTIFACTS / "comparison_form_layers.png"))
    page.click("text=Compare every layer pair")
    expect(page.locator("h1")).to_contain_text("mlp-seed0")
    expect(page.locator("body")).to_contain_text(
        "Layers compared: of A, block1; of B, block2, head."
    )
    run = Run.objects.get(kind=Run.Kind.COMPARE)
    assert (run.params["layers_a"], run.params["layers_b"]) == (["block1"], ["block2", "head"])
    assert run.params["measure"] == "cka/rbf"
