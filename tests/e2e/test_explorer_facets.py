"""Several values of one facet at once in a real browser: bars toggle values in the plots'
filter, the plot draws only those samples, a box selects only among them, and "all" shows
every value again."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ARTIFACTS, sign_in
from tests.e2e.test_explorer import _digits_projection, _drag
from webapp.runs.models import Selection

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_two_label_bars_show_and_select_only_those_samples(
    transactional_db, live_server, owner, workspace, browser_page
):
    run = _digits_projection(owner, workspace)
    labels = run.dataset.column("y")
    page = browser_page
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/projections/{run.pk}/")
    scatter = page.locator(".scatter[data-drawn=true]")
    expect(scatter).to_have_attribute("data-points", "300", timeout=30_000)
    expect(page.locator(".explorer[data-ready=true]")).to_have_count(1, timeout=30_000)
    facet = page.locator(".facet[data-key=label]")
    bars = facet.locator(".facet-bar")
    expect(bars).to_have_count(10)
    expect(facet.locator(".facet-reset")).to_be_disabled()

    def pressed():
        return [b.get_attribute("aria-pressed") == "true" for b in bars.all()]

    # Label 1, then label 2 as well: both drawn, nothing else.
    bars.nth(1).click()
    expect(scatter).to_have_attribute("data-shown", str(int((labels == 1).sum())))
    bars.nth(2).click()
    shown = int(((labels == 1) | (labels == 2)).sum())
    expect(scatter).to_have_attribute("data-shown", str(shown))
    assert page.evaluate("document.querySelector('.scatter').scatter.getFilter()") == [1, 2]
    assert pressed() == [j in (1, 2) for j in range(10)]
    for j in (1, 2):
        expect(page.locator(f".scatter-legend-item[data-label='{j}']")).to_have_attribute(
            "aria-pressed", "true"
        )
    expect(page.locator(".explorer-facets .facet-shown")).to_have_text(
        f"{shown} of 300 samples shown"
    )
    assert "filter=1%2C2" in page.url

    # A box around the whole plot selects only the samples of those two labels.
    page.click(".scatter-toolbar button[data-mode=box]")
    box = scatter.bounding_box()
    x0, y0 = box["x"] + 0.01 * box["width"], box["y"] + 0.99 * box["height"]
    x1, y1 = box["x"] + 0.99 * box["width"], box["y"] + 0.01 * box["height"]
    _drag(page, [(x0, y0), (x1, y0), (x1, y1)])
    expect(page.locator("#selection-panel[data-selection] h2")).to_contain_text(f"{shown} samples")
    selection = Selection.objects.get()
    assert selection.count == shown
    assert set(labels[selection.indices.load_array()].tolist()) == {1, 2}
    expect(scatter).to_have_attribute("data-highlighted", str(shown))
    chosen = [int(b.get_attribute("data-chosen") or 0) for b in bars.all()]
    assert chosen == [int((labels == j).sum()) if j in (1, 2) else 0 for j in range(10)]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "explorer-facets-two-values.png"), full_page=True)

    # A second click takes a value away; "all" shows every value again.
    bars.nth(1).click()
    expect(scatter).to_have_attribute("data-shown", str(int((labels == 2).sum())))
    assert pressed() == [j == 2 for j in range(10)]
    facet.locator(".facet-reset").click()
    expect(scatter).to_have_attribute("data-shown", "300")
    assert page.evaluate("document.querySelector('.scatter').scatter.getFilter()") == []
    assert not any(pressed())
    expect(facet.locator(".facet-reset")).to_be_disabled()
    expect(page.locator(".explorer-facets .facet-shown")).to_have_text("")
    assert "filter=" not in page.url
