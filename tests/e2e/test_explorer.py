"""A person in a real browser projects a layer and explores it: the WebGL scatter draws every
sample from the binary endpoints, hovering a point shows that sample, and clicking it lists its
nearest neighbours in the original space."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import expect

from tests.conftest import digits_npz_bytes, run_with_dependencies, torchscript_mlp_bytes
from tests.e2e.conftest import ARTIFACTS, sign_in
from webapp.catalog.ingest import ingest_checkpoint, ingest_dataset
from webapp.runs.models import Run, Selection
from webapp.runs.submit import request_projection

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
    page.goto(f"{live_server.url}/checkpoints/{checkpoint.pk}/?dataset={dataset.pk}")
    page.click("summary:has-text('New projection')")  # the form opens on demand
    form = page.locator("form[action$='/project/']")
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


def _drag(page, points, shift: bool = False) -> None:
    """Press at the first point, move through the others, release at the last."""
    if shift:
        page.keyboard.down("Shift")
    page.mouse.move(*points[0])
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(x, y, steps=4)
    page.mouse.up()
    if shift:
        page.keyboard.up("Shift")


def _hover_some_point(page, scatter) -> str:
    box = scatter.bounding_box()
    for fy in (0.5, 0.4, 0.6, 0.3, 0.7):
        for fx in [i / 20 for i in range(2, 19)]:
            page.mouse.move(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy)
            hovered = scatter.get_attribute("data-hovered")
            if hovered is not None:
                return hovered
    raise AssertionError("no point under any probed position")


def test_lasso_a_region_export_it_and_follow_it_side_by_side(
    transactional_db, live_server, owner, workspace, browser_page
):
    dataset, _ = ingest_dataset(
        workspace, owner, io.BytesIO(digits_npz_bytes(300)), "d.npz", "digits-300"
    )
    checkpoint, _ = ingest_checkpoint(
        workspace, owner, io.BytesIO(torchscript_mlp_bytes(0)), "mlp.pt", "mlp-seed0"
    )
    a, b = (
        run_with_dependencies(request_projection(owner, checkpoint, dataset, layer)[0])
        for layer in ("block1", "block2")
    )
    assert a.state == b.state == Run.State.SUCCEEDED
    page = browser_page
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/projections/{a.pk}/")
    scatter = page.locator(".scatter[data-drawn=true]")
    expect(scatter).to_have_attribute("data-points", "300", timeout=30_000)
    explorer = page.locator(".explorer[data-ready=true]")
    expect(explorer).to_have_count(1)

    # Colour by a per-sample score: the colour scale replaces the label legend, the URL keeps it.
    page.select_option("select[name=colour]", "kept")
    expect(explorer).to_have_attribute("data-colouring", "kept")
    assert "colour=kept" in page.url

    # A box drawn on the plot is resolved on the server; the panel and the plot agree on it.
    page.click(".scatter-toolbar button[data-mode=box]")
    box = scatter.bounding_box()
    x0, y0 = box["x"] + 0.15 * box["width"], box["y"] + 0.15 * box["height"]
    x1, y1 = box["x"] + 0.6 * box["width"], box["y"] + 0.85 * box["height"]
    _drag(page, [(x0, y0), (x1, y0), (x1, y1)])
    panel = page.locator("#selection-panel[data-selection]")
    expect(panel).to_be_visible()
    selection = Selection.objects.get()
    assert 0 < selection.count < 300
    expect(panel.locator("h2")).to_contain_text(f"{selection.count} samples")
    expect(scatter).to_have_attribute("data-highlighted", str(selection.count))
    assert f"sel={selection.pk}" in page.url

    # Named, tagged and exported: the CSV holds exactly the selected samples.
    panel.locator("input[name=name]").fill("left block")
    panel.locator("input[name=tags]").fill("review, digits")
    panel.locator("button[type=submit]").click()
    expect(page.locator("#selection-panel h2")).to_contain_text("left block")
    with page.expect_download() as download:
        page.locator("#selection-panel a", has_text="Export CSV").click()
    rows = list(csv.DictReader(open(download.value.path(), newline="")))
    assert [int(r["index"]) for r in rows] == selection.indices.load_array().tolist()
    assert {"id", "label", "x", "y"} <= set(rows[0])
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "explorer-lasso.png"), full_page=True)

    # The address is the view: opened afresh, it shows the same colouring and selection.
    page.goto(page.url)
    expect(page.locator(".scatter[data-drawn=true]")).to_have_attribute(
        "data-highlighted", str(selection.count), timeout=30_000
    )
    expect(page.locator("select[name=colour]")).to_have_value("kept")
    expect(page.locator("#selection-panel h2")).to_contain_text("left block")

    # Side by side with block2: a lasso on the left selects the same samples on both sides.
    page.click("details.compare-with summary")
    page.click(f"a[href='/projections/{a.pk}/vs/{b.pk}/']")
    left, right = page.locator("#scatter-a"), page.locator("#scatter-b")
    expect(left).to_have_attribute("data-drawn", "true", timeout=30_000)
    expect(right).to_have_attribute("data-drawn", "true")
    expect(page.locator(".explorer[data-ready=true]")).to_have_attribute(
        "data-colouring", "agreement"
    )
    box = left.bounding_box()
    cx, cy, r = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, box["width"] / 3
    _drag(
        page, [(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r)], shift=True
    )
    expect(page.locator("#selection-panel[data-selection]")).to_be_visible()
    lassoed = Selection.objects.latest("pk")
    assert lassoed.pk != selection.pk and lassoed.projection_id == a.pk and lassoed.count > 0
    expect(left).to_have_attribute("data-highlighted", str(lassoed.count))
    expect(right).to_have_attribute("data-highlighted", str(lassoed.count))

    # Hover is linked: the point under the cursor on the left is ringed on the right.
    hovered = _hover_some_point(page, left)
    expect(right).to_have_attribute("data-linked-hover", hovered)

    # The samples whose neighbourhoods changed most: one click finds it on both sides.
    first = page.locator("#changed figure[data-index]").first
    index = first.get_attribute("data-index")
    first.click()
    sample_id = f"digit-{int(index):04d}"
    expect(page.locator("#point-panel-a h2")).to_contain_text(sample_id)
    expect(page.locator("#point-panel-b h2")).to_contain_text(sample_id)
    page.mouse.move(0, 0)  # off the plots, so the user's hover does not hide the linked ring
    expect(left).to_have_attribute("data-linked-hover", index)

    # A smaller k recomputes the agreement and the list.
    page.eval_on_selector(
        "input[name=k]", "el => { el.value = 5; el.dispatchEvent(new Event('change')); }"
    )
    expect(page.locator("#changed h2")).to_contain_text("k = 5")
    assert "k=5" in page.url
    page.screenshot(path=str(ARTIFACTS / "explorer-side-by-side.png"), full_page=True)


def test_hovering_a_text_sample_shows_its_text(
    transactional_db, live_server, owner, workspace, browser_page, tmp_path
):
    """A text dataset projected through a Hugging Face encoder: the tooltip and the point
    panel show the sample's text instead of a thumbnail."""
    from tests.formats import texts_jsonl, tiny_bert_dir, zip_dir

    dataset, _ = ingest_dataset(workspace, owner, io.BytesIO(texts_jsonl(40)), "t.jsonl", "texts")
    checkpoint, _ = ingest_checkpoint(
        workspace, owner, io.BytesIO(zip_dir(tiny_bert_dir(tmp_path / "bert"))), "b.zip", "bert"
    )
    run = run_with_dependencies(request_projection(owner, checkpoint, dataset, "hidden.2")[0])
    assert run.state == Run.State.SUCCEEDED, run.error
    texts = dataset.load_arrays().x
    page = browser_page
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/projections/{run.pk}/")
    scatter = page.locator(".scatter[data-drawn=true]")
    expect(scatter).to_have_attribute("data-points", "40", timeout=30_000)
    # Find point 7 on the screen (the ring the widget's hover(7) puts on it), then hover there.
    page.evaluate("document.querySelector('.scatter').scatter.hover(7)")
    ring = page.locator(".scatter-ring").bounding_box()
    page.evaluate("document.querySelector('.scatter').scatter.hover(-1)")
    page.mouse.move(ring["x"] + ring["width"] / 2, ring["y"] + ring["height"] / 2)
    expect(scatter).to_have_attribute("data-hovered", re.compile(r"^\d+$"))
    hovered = scatter.get_attribute("data-hovered")
    tip = page.locator(".scatter-tip")
    expect(tip.locator("q.scatter-text")).to_have_text(str(texts[int(hovered)]))
    expect(tip.locator("img")).to_have_count(0)
    page.mouse.down()
    page.mouse.up()
    panel = page.locator("#point-panel")
    expect(panel.locator("q.sample-text").first).to_have_text(str(texts[int(hovered)]))


def _digits_projection(owner, workspace, layer: str = "block1") -> Run:
    dataset, _ = ingest_dataset(
        workspace, owner, io.BytesIO(digits_npz_bytes(300)), "d.npz", "digits-300"
    )
    checkpoint, _ = ingest_checkpoint(
        workspace, owner, io.BytesIO(torchscript_mlp_bytes(0)), "mlp.pt", "mlp-seed0"
    )
    run = run_with_dependencies(request_projection(owner, checkpoint, dataset, layer)[0])
    assert run.state == Run.State.SUCCEEDED, run.error
    return run


def test_a_box_selects_only_the_points_the_legend_filter_shows(
    transactional_db, live_server, owner, workspace, browser_page
):
    run = _digits_projection(owner, workspace)
    labels = run.dataset.column("y")
    page = browser_page
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/projections/{run.pk}/")
    scatter = page.locator(".scatter[data-drawn=true]")
    expect(scatter).to_have_attribute("data-points", "300", timeout=30_000)
    expect(page.locator(".explorer[data-ready=true]")).to_have_count(1)

    # Labels 1 and 2 picked out in the legend; a box around the whole plot selects only them.
    page.click(".scatter-legend-item[data-label='1']")
    page.click(".scatter-legend-item[data-label='2']")
    page.click(".scatter-toolbar button[data-mode=box]")
    box = scatter.bounding_box()
    x0, y0 = box["x"] + 0.01 * box["width"], box["y"] + 0.99 * box["height"]
    x1, y1 = box["x"] + 0.99 * box["width"], box["y"] + 0.01 * box["height"]
    _drag(page, [(x0, y0), (x1, y0), (x1, y1)])
    panel = page.locator("#selection-panel[data-selection]")
    expect(panel).to_be_visible()
    selection = Selection.objects.get()
    shown = int(((labels == 1) | (labels == 2)).sum())
    assert selection.count == shown
    assert set(labels[selection.indices.load_array()].tolist()) == {1, 2}
    expect(panel.locator("h2")).to_contain_text(f"{shown} samples")
    expect(panel.locator("h2")).to_contain_text("only among the points the legend's filter shows")
    expect(scatter).to_have_attribute("data-highlighted", str(shown))

    # Without the filter the same box takes every sample.
    page.click(".scatter-legend-all")
    _drag(page, [(x0, y0), (x1, y0), (x1, y1)])
    expect(page.locator("#selection-panel h2")).to_contain_text("300 samples")
    expect(page.locator("#selection-panel h2")).not_to_contain_text("filter")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "explorer-filtered-box.png"), full_page=True)


def test_search_highlights_a_sample_and_zooms_to_it(
    transactional_db, live_server, owner, workspace, browser_page
):
    run = _digits_projection(owner, workspace)
    page = browser_page
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/projections/{run.pk}/")
    scatter = page.locator(".scatter[data-drawn=true]")
    expect(scatter).to_have_attribute("data-points", "300", timeout=30_000)
    explorer = page.locator(".explorer[data-ready=true]")
    expect(explorer).to_have_count(1)

    # One sample by its id: it alone is in focus, the plot zooms in, the page says what matched.
    page.fill(".explorer-search input[name=q]", "DIGIT-0042")
    page.press(".explorer-search input[name=q]", "Enter")
    expect(explorer).to_have_attribute("data-hits", "1")
    expect(scatter).to_have_attribute("data-highlighted", "1")
    expect(page.locator(".explorer-search output")).to_have_text(
        "1 of 300 samples contains “DIGIT-0042” in their id, label, text or metadata"
        " (highlighted; the plot zooms to them)."
    )
    assert "q=DIGIT-0042" in page.url
    view = page.evaluate("document.querySelector('.scatter').scatter.getView()")
    assert view["zoom"] > 5
    # The hit is drawn in its label's colour at the canvas centre; the rest are grey.
    page.evaluate("document.querySelector('.scatter').scatter.hover(42)")
    ring = page.locator(".scatter-ring").bounding_box()
    canvas = page.locator(".scatter-canvas").bounding_box()
    assert (
        abs(ring["x"] + ring["width"] / 2 - (canvas["x"] + canvas["width"] / 2))
        < 0.2 * canvas["width"]
    )
    page.evaluate("document.querySelector('.scatter').scatter.hover(-1)")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "explorer-search.png"), full_page=True)

    # No match says so; an empty search clears the highlight.
    page.fill(".explorer-search input[name=q]", "no such sample")
    page.press(".explorer-search input[name=q]", "Enter")
    expect(explorer).to_have_attribute("data-hits", "0")
    expect(page.locator(".explorer-search output")).to_contain_text("No sample's id")
    page.fill(".explorer-search input[name=q]", "")
    page.press(".explorer-search input[name=q]", "Enter")
    expect(scatter).not_to_have_attribute("data-highlighted", re.compile("."))


def test_colour_scales_say_their_range_and_what_they_clip(
    transactional_db, live_server, owner, workspace, browser_page
):
    run = _digits_projection(owner, workspace)
    kept = run.projection.kept.load_array().astype(np.float64)
    page = browser_page
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/projections/{run.pk}/?colour=kept")
    expect(page.locator(".explorer[data-ready=true]")).to_have_attribute("data-colouring", "kept")
    legend = page.locator(".scatter-legend")
    scale = legend.locator(".scatter-scale")

    # A share starts on all it can take, 0 to 1: nothing is clipped.
    expect(page.locator("select[name=scale]")).to_have_value("fixed")
    expect(scale).to_have_text("0 to 1: fixed range (all the statistic can take); not clipped")
    # The legend has its own room beside the plot: it covers no point.
    canvas, room = page.locator(".scatter-canvas").bounding_box(), legend.bounding_box()
    assert canvas["x"] + canvas["width"] <= room["x"]

    # The 2–98% quantiles: the values beyond them are counted and the ends marked.
    page.select_option("select[name=scale]", "quantiles")
    lo, hi = np.quantile(kept, [0.02, 0.98])
    below, above = int((kept < lo).sum()), int((kept > hi).sum())
    expect(scale).to_contain_text(f"{lo:.4g} to {hi:.4g}: 2–98% quantiles; ")
    if below + above:
        expect(scale).to_contain_text(f"clipped: {below} value")
        expect(scale).to_contain_text(f"{above} value")
    assert "scale=quantiles" in page.url

    # A fixed range typed in: the legend says it, and what it clips.
    page.select_option("select[name=scale]", "fixed")
    expect(scale).to_contain_text("0 to 1: fixed range")
    page.fill("input[name=scale-from]", "0.5")
    page.fill("input[name=scale-to]", "0.9")
    page.press("input[name=scale-to]", "Enter")
    below, above = int((kept < 0.5).sum()), int((kept > 0.9).sum())
    expect(scale).to_have_text(
        f"0.5 to 0.9: fixed range; clipped: {below} values below, {above} values above,"
        " drawn in the end colours"
    )
    expect(legend.locator(".scatter-bar-ends span").first).to_have_text("≤ 0.5")
    assert "range=0.5%7E0.9" in page.url
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "explorer-colour-scale.png"), full_page=True)

    # The address keeps the scale.
    page.goto(page.url)
    expect(page.locator(".explorer[data-ready=true]")).to_have_attribute("data-colouring", "kept")
    expect(scale).to_contain_text("0.5 to 0.9: fixed range")


def test_vector_samples_wrap_between_numbers_never_inside_one(db, browser_page):
    """The sample grid of a dataset without images shows each sample's first values: each number
    stays whole on one line, however narrow the grid's column."""
    from django.template.loader import render_to_string

    from webapp.catalog.models import Dataset

    dataset = Dataset(modality="vector", thumbnails=None)
    row = "-0.000123, 1.23e+04, -5.67e-05, 0.000891, -12.3, 4.56e+06, …"
    samples = [{"index": i, "id": f"r{i}", "label": "", "row": row} for i in range(6)]
    grid = render_to_string("pages/_sample_grid.html", {"samples": samples, "dataset": dataset})
    css = (Path(__file__).resolve().parents[2] / "static" / "css" / "app.css").read_text()
    page = browser_page
    page.set_viewport_size({"width": 420, "height": 600})
    page.set_content(f"<style>{css}</style><main>{grid}</main>")
    lines = page.evaluate(
        """() => Array.from(document.querySelectorAll("code.row-values")).map((code) => {
             const text = code.firstChild, words = [];
             for (const m of text.textContent.matchAll(/[^,\\s]+/g)) {
               const range = document.createRange();
               range.setStart(text, m.index);
               range.setEnd(text, m.index + m[0].length);
               words.push([m[0], new Set(Array.from(range.getClientRects(), (r) => r.top)).size]);
             }
             return words;
           })"""
    )
    assert len(lines) == 6
    assert all(count == 1 for words in lines for _, count in words), lines
    assert [w for w, _ in lines[0]] == row.replace(",", "").split()


def test_a_pca_projection_has_axes_whose_ticks_match_the_points(
    transactional_db, live_server, owner, workspace, browser_page
):
    run = _digits_projection(owner, workspace)
    coords = run.projection.coordinates.load_array()
    share = run.projection.explained_variance
    page = browser_page
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/projections/{run.pk}/")
    expect(page.locator(".scatter[data-drawn=true]")).to_have_attribute("data-points", "300")
    titles = page.locator(".scatter-axes .scatter-axis-title")
    expect(titles).to_have_text(
        [
            f"PC 1 · {100 * share[0]:.1f}% of the variance",
            f"PC 2 · {100 * share[1]:.1f}% of the variance",
        ]
    )

    def ticks():
        return page.evaluate(
            """() => ["x", "y"].map((axis) => Array.from(
                 document.querySelectorAll(`.scatter-axes text.scatter-tick.${axis}`),
                 (t) => [Number(t.textContent), Number(t.getAttribute(axis))]))"""
        )

    def check(i):
        """Point i's ring sits where the ticks put its coordinates (within 1.5 px)."""
        page.evaluate(f"document.querySelector('.scatter').scatter.hover({i})")
        ring = page.locator(".scatter-ring").bounding_box()
        origin = page.locator(".scatter-axes").bounding_box()
        for k, (axis, centre) in enumerate(
            (
                ("x", ring["x"] + ring["width"] / 2 - origin["x"]),
                ("y", ring["y"] + ring["height"] / 2 - origin["y"]),
            )
        ):
            values, at = np.array(ticks()[k]).T
            assert len(values) >= 3, axis
            slope, offset = np.polyfit(values, at, 1)
            assert abs(slope * coords[i, k] + offset - centre) < 1.5, axis

    extreme = int(np.argmax(coords[:, 0]))
    check(extreme)
    # Zoomed in on the point: the ticks follow.
    page.evaluate(f"document.querySelector('.scatter').scatter.frame([{extreme}])")
    page.wait_for_function("document.querySelector('.scatter').scatter.getView().zoom > 5")
    page.evaluate("new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")
    check(extreme)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "explorer-pca-axes.png"), full_page=True)


def test_two_pictures_of_one_layer_open_coloured_by_their_agreement(
    transactional_db, live_server, owner, workspace, browser_page
):
    pca = _digits_projection(owner, workspace)
    tsne, _ = request_projection(
        owner, pca.checkpoint, pca.dataset, "block1", method="tsne", perplexity=10.0
    )
    tsne = run_with_dependencies(tsne)
    assert tsne.state == Run.State.SUCCEEDED, tsne.error
    page = browser_page
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/projections/{pca.pk}/vs/{tsne.pk}/")
    explorer = page.locator(".explorer[data-ready=true]")
    expect(explorer).to_have_attribute("data-colouring", "picture", timeout=30_000)
    expect(page.locator("select[name=colour] option")).not_to_contain_text(
        ["neighbourhood agreement"]
    )
    expect(page.locator("select[name=colour]")).to_have_value("picture")
    expect(page.locator("[data-testid=same-space]")).to_contain_text(
        "coloured by the agreement of the two pictures"
    )
    for side in ("#scatter-a", "#scatter-b"):
        legend = page.locator(f"{side} .scatter-legend")
        expect(legend.locator(".scatter-legend-title")).to_have_text(
            "agreement of the two pictures (2-D neighbours)"
        )
        expect(legend.locator(".scatter-scale")).to_contain_text(
            "0 to 1: fixed range (all the statistic can take)"
        )
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "explorer-same-space.png"), full_page=True)


def test_facets_count_the_samples_per_label_follow_a_search_and_filter(
    transactional_db, live_server, owner, workspace, browser_page
):
    run = _digits_projection(owner, workspace)
    labels = run.dataset.column("y")
    page = browser_page
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/projections/{run.pk}/")
    expect(page.locator(".explorer[data-ready=true]")).to_have_count(1, timeout=30_000)
    bars = page.locator(".facet[data-key=label] .facet-bar")
    expect(bars).to_have_count(10)

    def counts(attribute):
        return [int(b.get_attribute(attribute) or 0) for b in bars.all()]

    assert counts("data-count") == np.bincount(labels, minlength=10).tolist()

    # A search: the bars say how many of each label it found (digit-0040 … digit-0049).
    page.fill(".explorer-search input[name=q]", "digit-004")
    page.press(".explorer-search input[name=q]", "Enter")
    expect(page.locator(".explorer")).to_have_attribute("data-hits", "10")
    assert counts("data-chosen") == np.bincount(labels[40:50], minlength=10).tolist()
    tallest = bars.nth(int(np.argmax(np.bincount(labels, minlength=10))))
    assert tallest.locator(".facet-all").bounding_box()["height"] == pytest.approx(56, abs=1)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "explorer-facets.png"), full_page=True)

    # A click on label 3's bar shows only label 3 (the legend's filter, kept in the URL).
    bars.nth(3).click()
    expect(page.locator(".scatter-legend-item[data-label='3']")).to_have_attribute(
        "aria-pressed", "true"
    )
    assert page.evaluate("document.querySelector('.scatter').scatter.getFilter()") == [3]
    assert "filter=3" in page.url
