"""A person opens the nested-embedding curves of the demo's pair in a real browser: every
statistic drawn against the prefix dimension (log₂ ticks at 8, 16, 32, 64, y over [0, 1]), one
line per checkpoint and the chance level dashed."""

from __future__ import annotations

import io

import numpy as np
import pytest
from playwright.sync_api import expect
from sklearn.datasets import load_digits

from demo.nested import HELD_OUT, LAYER, MATRYOSHKA, PLAIN, train_nested_pair
from tests.conftest import run_with_dependencies
from tests.e2e.conftest import ARTIFACTS, sign_in
from tests.webapp.builders import npz_bytes
from webapp.catalog.ingest import ingest_checkpoint, ingest_dataset
from webapp.runs.models import Run
from webapp.runs.submit import request_nested

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_the_nested_page_draws_the_curves_with_chance(
    transactional_db, live_server, owner, workspace, browser_page, tmp_path
):
    digits = load_digits()
    held_out = npz_bytes(
        x=(digits.images[-HELD_OUT:] / 16).astype(np.float32)[:, None],
        y=digits.target[-HELD_OUT:],
    )
    dataset, _ = ingest_dataset(workspace, owner, io.BytesIO(held_out), "h.npz", "held-out")
    pair = []
    for model in train_nested_pair(tmp_path):
        with open(model.path, "rb") as f:
            pair.append(ingest_checkpoint(workspace, owner, f, model.path.name, model.name)[0])
    run = run_with_dependencies(request_nested(owner, pair, dataset, LAYER)[0])
    assert run.state == Run.State.SUCCEEDED, run.error

    page = browser_page
    sign_in(page, live_server)
    page.locator("#nested").scroll_into_view_if_needed()
    page.click(f'a[href="/nested/{run.pk}/"]')  # listed on the workspace page
    charts = page.locator(".line-chart")
    expect(charts).to_have_count(5)
    for key in ("mean_ap", "top1", "top5", "probe_accuracy", "cka"):
        expect(page.locator(f'[data-chart="{key}"]')).to_have_attribute("data-drawn", "true")
    top1 = page.locator('[data-chart="top1"]')
    legend = top1.locator(".legendtext")
    expect(legend).to_have_count(3)
    expect(legend.nth(0)).to_have_text(MATRYOSHKA)
    expect(legend.nth(1)).to_have_text(PLAIN)
    expect(legend.nth(2)).to_contain_text("chance (")
    # three traces drawn, the last (chance) dashed
    lines = top1.locator(".scatterlayer .trace path.js-line")
    expect(lines).to_have_count(3)
    assert "stroke-dasharray" in (lines.nth(2).get_attribute("style") or "")
    assert "stroke-dasharray" not in (lines.nth(0).get_attribute("style") or "")
    assert top1.locator(".xtick text").all_text_contents() == ["8", "16", "32", "64"]
    ticks = top1.locator(".ytick text").all_text_contents()
    assert ticks[0] == "0" and ticks[-1] == "1", ticks
    cka = page.locator('[data-chart="cka"]')
    expect(cka.locator(".legendtext")).to_have_count(2)  # CKA has no chance level
    expect(page.get_by_test_id("nested-provenance")).to_contain_text(
        f"n = {HELD_OUT} samples · retrieval leave-one-out"
    )
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "nested.png"), full_page=True)
