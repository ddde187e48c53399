"""The weight-space page of two built-in transformers (.safetensors) and of two Hugging Face
BERT encoders, opened in a real browser: the paths (transformers only) and every layer's
spectra are drawn, the L2 distances shown are the stored report's, the heads' coordinates are
said to be permuted per head, and a pair of two architectures is refused on the form in one
sentence."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from playwright.sync_api import expect

from tests.conftest import digits_npz_bytes, run_with_dependencies
from tests.e2e.conftest import ARTIFACTS, sign_in
from webapp.catalog.ingest import ingest_checkpoint, ingest_dataset
from webapp.runs.models import Report, Run

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def transformer_bytes(seed: int) -> bytes:
    """A built-in transformer over the digits' 8 rows (width 16, 2 heads of 4, 2 blocks)."""
    from safetensors.torch import save

    from analysis.models.architectures import TransformerConfig, transformer

    torch.manual_seed(seed)
    model = transformer(TransformerConfig(8, 8, 16, 2, 4, 24, 2, 10))
    return save({k: v.detach().contiguous() for k, v in model.state_dict().items()})


def ask(page, live_server, a, b, dataset) -> None:
    page.goto(f"{live_server.url}/checkpoints/{a.pk}/")
    page.get_by_test_id("weight-space-link").click()
    expect(page.locator("select[name=checkpoint_a]")).to_have_value(str(a.pk))
    page.locator("select[name=checkpoint_b]").select_option(str(b.pk))
    page.locator("select[name=dataset]").select_option(str(dataset.pk))
    page.get_by_role("button", name="Match the weights and walk the path").click()


def shown_l2(page) -> tuple[float, float]:
    row = page.get_by_test_id("barriers").locator("tr", has_text="L2 distance to A")
    cells = row.locator("td").all_inner_texts()
    return float(cells[0]), float(cells[1])


def check_spectra(page, layers: list[str]) -> None:
    for layer in layers:
        for chart in (f"spectrum:{layer}", f"cosines:{layer}"):
            drawn = page.locator(f'[data-chart="{chart}"]')
            expect(drawn).to_have_attribute("data-drawn", "true")
            expect(drawn.locator(".scatterlayer .trace")).to_have_count(2)


def test_two_transformers_and_two_berts_in_a_browser(
    transactional_db, live_server, owner, workspace, browser_page, tmp_path
):
    from tests.formats import texts_jsonl, tiny_bert_dir, zip_dir

    digits, _ = ingest_dataset(
        workspace, owner, io.BytesIO(digits_npz_bytes(120)), "d.npz", "digits-120"
    )
    texts, _ = ingest_dataset(workspace, owner, io.BytesIO(texts_jsonl(16)), "t.jsonl", "Texts")
    tf_a, tf_b = (
        ingest_checkpoint(
            workspace,
            owner,
            io.BytesIO(transformer_bytes(seed)),
            f"tf{seed}.safetensors",
            f"transformer-seed{seed}",
            architecture="transformer",
        )[0]
        for seed in (0, 1)
    )
    bert_a, bert_b = (
        ingest_checkpoint(
            workspace,
            owner,
            io.BytesIO(zip_dir(tiny_bert_dir(tmp_path / str(seed), seed=seed))),
            f"bert{seed}.zip",
            f"bert-seed{seed}",
        )[0]
        for seed in (0, 1)
    )

    page = browser_page
    sign_in(page, live_server)

    # two architectures: refused on the form, in one sentence
    ask(page, live_server, tf_a, bert_b, digits)
    expect(page.locator(".errorlist, .error").first).to_contain_text(
        "transformer-seed0 and bert-seed1 are not of one architecture"
    )
    assert not Run.objects.filter(kind=Run.Kind.WEIGHTS).exists()

    # two built-in transformers: both paths, the spectra of every weight matrix
    ask(page, live_server, tf_a, tf_b, digits)
    page.wait_for_url("**/weight-spaces/*/")
    run = Run.objects.get(kind=Run.Kind.WEIGHTS, checkpoint=tf_a)
    assert run_with_dependencies(run).state == Run.State.SUCCEEDED, run.error
    stored = Report.objects.get(run=run).result
    page.goto(f"{live_server.url}/weight-spaces/{run.pk}/")
    for key in ("path:loss", "path:accuracy"):
        chart = page.locator(f'[data-chart="{key}"]')
        expect(chart).to_have_attribute("data-drawn", "true")
        expect(chart.locator(".scatterlayer .trace")).to_have_count(3)  # naive, matched, chance
    expect(page.get_by_test_id("function-check")).to_contain_text("Passed")
    before, after = shown_l2(page)
    assert before == pytest.approx(stored["l2"]["before"], abs=5e-5)
    assert after == pytest.approx(stored["l2"]["after"], abs=5e-5) and after < before
    barriers = page.get_by_test_id("barriers")
    expect(barriers).to_contain_text(f"{stored['matched']['loss_barrier']:.4f}")
    check_spectra(page, [layer["layer"] for layer in stored["layers"]])
    assert {"block1.attn.q", "block2.attn.o", "head"} <= {
        layer["layer"] for layer in stored["layers"]
    }
    provenance = page.get_by_test_id("provenance")
    expect(provenance).to_contain_text(
        "of residual 16 units, block1.heads 2 heads, block1.qk 4 query/key coordinates in each "
        "of 2 heads, block1.v 4 value coordinates in each of 2 heads, block1.mlp 24 units, "
        "block2.heads"
    )
    page.screenshot(path=str(ARTIFACTS / "weight-space-transformer.png"), full_page=True)

    # two BERT encoders: no paths (no class scores), L2 and the spectra
    ask(page, live_server, bert_a, bert_b, texts)
    page.wait_for_url("**/weight-spaces/*/")
    run = Run.objects.get(kind=Run.Kind.WEIGHTS, checkpoint=bert_a)
    assert run_with_dependencies(run).state == Run.State.SUCCEEDED, run.error
    stored = Report.objects.get(run=run).result
    page.goto(f"{live_server.url}/weight-spaces/{run.pk}/")
    expect(page.get_by_test_id("no-paths")).to_contain_text("No linear paths")
    expect(page.locator('[data-chart^="path:"]')).to_have_count(0)
    expect(page.get_by_test_id("function-check")).to_contain_text("Passed")
    before, after = shown_l2(page)
    assert before == pytest.approx(stored["l2"]["before"], abs=5e-5)
    assert after == pytest.approx(stored["l2"]["after"], abs=5e-5) and after < before
    layers = [layer["layer"] for layer in stored["layers"]]
    assert "encoder.layer.1.attention.self.query" in layers
    check_spectra(page, layers)
    assert np.isfinite([stored["l2"]["before"], stored["l2"]["after"]]).all()
    page.screenshot(path=str(ARTIFACTS / "weight-space-bert.png"), full_page=True)
