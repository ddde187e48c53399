"""A person walks RepLens's token-level features in a real browser (issue 19 part 2), with a
real worker: uploads two tiny random-weight BERTs and texts, a tiny ViT and digits through the
workspace page; on a checkpoint page reads the size of pooling ``tokens`` before anything runs,
then extracts; compares the two BERTs per position and pooled on the fly, and opens each
comparison and a pair; probes the ViT at pooling ``tokens``; projects a token-level set. Each
page is saved to test-artifacts/token-*.png. The numbers asserted are computed here: the rows
the estimate counts from the tokenizer, linear CKA from the stored rows with NumPy."""

from __future__ import annotations

import json

import numpy as np
import pytest
from django.template.defaultfilters import filesizeformat
from playwright.sync_api import Page, expect

from tests.conftest import digits_npz_bytes
from tests.e2e.conftest import ARTIFACTS, sign_in
from tests.formats import texts_jsonl, tiny_bert_dir, tiny_hf_dir, zip_dir
from webapp.catalog.models import ActivationSet, Checkpoint, Dataset
from webapp.runs.models import Run

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

WAIT = 120_000  # ms: a model host starts, then the worker runs (2 shared cores)
D = 32  # the tiny BERT's width
ROW_BYTES = 4 * D + 17  # d float32 values, sample and position (int64), special (bool)


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"token-{name}.png"), full_page=True)


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """‖YᵀX‖²_F / (‖XᵀX‖_F ‖YᵀY‖_F) on centred float64 copies."""
    x = np.asarray(x, np.float64) - np.mean(x, axis=0)
    y = np.asarray(y, np.float64) - np.mean(y, axis=0)
    return float(np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


def rows_of(checkpoint: Checkpoint, layer: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A stored token-level set's rows, each row's sample and whether mean leaves it out."""
    stored = ActivationSet.objects.get(checkpoint=checkpoint, layer=layer, pooling="tokens")
    found = stored.positions.load_arrays()
    return stored.load(), found["sample"], found["special"]


def each_mean(values: np.ndarray, sample: np.ndarray, special: np.ndarray) -> np.ndarray:
    """Each sample's mean over the rows mean counts, one sample at a time."""
    return np.array([values[(sample == i) & ~special].mean(0) for i in range(sample.max() + 1)])


def cell(page: Page, a: str, b: str) -> list[str]:
    """The cells of the scores table's row for layers ``a`` × ``b``."""
    for row in page.locator("table.scores tbody tr").all():
        cells = [c.strip() for c in row.locator("td").all_inner_texts()]
        if cells[:2] == [a, b]:
            return cells
    raise AssertionError(f"no row {a} × {b}")


def upload(page: Page, live_server, kind: str, filename: str, content: bytes, name: str) -> None:
    """Upload a file through the workspace page's form, as a person does."""
    page.goto(f"{live_server.url}/w/lab/")
    page.click(f"summary:has-text('Upload a {kind}')")
    form = page.locator(f"form[data-resumable-upload={kind}]")
    form.locator("input[type=file]").set_input_files(
        {"name": filename, "mimeType": "application/octet-stream", "buffer": content}
    )
    form.locator("input[name=name]").fill(name)
    form.locator("button[type=submit]").click()
    expect(page.locator("#uploads")).to_contain_text(filename, timeout=60_000)


def compare(page: Page, live_server, positions: str) -> None:
    """Compare the two BERTs on the texts at pooling tokens, read as ``positions`` says, from
    the workspace page's form; wait for the heatmap, and load the page afresh (its head and
    provenance are drawn when the page loads)."""
    page.goto(f"{live_server.url}/w/lab/")
    page.click("summary:has-text('New comparison')")
    form = page.locator("form[action$='/comparisons/new/']")
    form.locator("select[name=checkpoint_a]").select_option(label="bert-seed0")
    form.locator("select[name=checkpoint_b]").select_option(label="bert-seed1")
    form.locator("select[name=dataset]").select_option(label="texts")
    form.locator("select[name=pooling]").select_option("tokens")
    form.locator("select[name=positions]").select_option(positions)
    page.click("text=Compare every layer pair")
    heatmap = page.locator(".heatmap")
    expect(heatmap).to_have_attribute("data-drawn", "true", timeout=WAIT)
    page.reload()
    expect(heatmap).to_have_attribute("data-drawn", "true")
    expect(page.locator("table.scores tbody tr")).to_have_count(9)
    shot(page, f"comparison-{positions}")


def test_token_level_features_in_a_browser(
    worker, live_server, owner, workspace, browser_page, tmp_path
):
    page = browser_page
    sign_in(page, live_server)
    texts_file = texts_jsonl(40)
    upload(page, live_server, "dataset", "texts.jsonl", texts_file, "texts")
    upload(page, live_server, "dataset", "digits.npz", digits_npz_bytes(30), "digits")
    for seed in (0, 1):
        content = zip_dir(tiny_bert_dir(tmp_path / f"bert{seed}", seed=seed))
        upload(page, live_server, "checkpoint", f"bert{seed}.zip", content, f"bert-seed{seed}")
    content = zip_dir(tiny_hf_dir(tmp_path / "vit", "vit"))
    upload(page, live_server, "checkpoint", "vit.zip", content, "tiny-vit")
    expect(page.locator("#uploads .badge.succeeded")).to_have_count(5, timeout=WAIT)
    # The lists beneath follow without a reload: every checkpoint the check made is there.
    names = page.locator("#checkpoints-list tbody tr td:first-child")
    expect(names).to_have_count(3)
    assert sorted(names.all_inner_texts()) == ["bert-seed0", "bert-seed1", "tiny-vit"]
    # So do the New comparison form's menus (the ViT turned ready after the page loaded).
    form = page.locator("form[action$='/comparisons/new/']")
    for side in ("a", "b"):
        menu = form.locator(f"select[name=checkpoint_{side}] option", has_text="tiny-vit")
        expect(menu).to_have_count(1)
    expect(form.locator("select[name=dataset] option", has_text="digits")).to_have_count(1)
    shot(page, "uploads")

    # The checkpoint page tells the size of pooling tokens before anything runs: exact, as
    # the texts' tokens were counted with the model's tokenizer ([CLS] and [SEP] included).
    from transformers import BertTokenizerFast

    tokenizer = BertTokenizerFast.from_pretrained(tmp_path / "bert0")
    lines = [json.loads(line)["text"] for line in texts_file.decode().splitlines()]
    rows = sum(len(ids) for ids in tokenizer(lines)["input_ids"])
    layer_size = filesizeformat(rows * ROW_BYTES).replace("\xa0", " ")
    total_size = filesizeformat(3 * rows * ROW_BYTES).replace("\xa0", " ")
    bert0, bert1 = (Checkpoint.objects.get(name=f"bert-seed{seed}") for seed in (0, 1))
    texts = Dataset.objects.get(name="texts")
    page.goto(f"{live_server.url}/checkpoints/{bert0.pk}/")
    page.locator("#id_choose_dataset").select_option(str(texts.pk))
    storage = page.locator("#token-storage")
    expect(storage.locator("summary")).to_contain_text(
        f"Size of pooling tokens (every position a row) on texts for the default layers: "
        f"exactly {total_size}"
    )
    storage.locator("summary").click()
    expect(storage).to_contain_text("rows × (4 d + 17) bytes")
    table = storage.locator("tbody tr")
    expect(table).to_have_count(3)
    for k in range(3):
        expect(table.nth(k).locator("td")).to_have_text(
            [f"hidden.{k}", str(rows), str(D), layer_size, "exact"]
        )
    expect(storage).not_to_contain_text("× at most")  # exact: no bound to explain
    assert not Run.objects.exists()  # asking for the size ran nothing
    shot(page, "checkpoint-storage")

    extract = page.locator(f"form[action$='/checkpoints/{bert0.pk}/extract/']")
    extract.locator("select[name=pooling]").select_option("tokens")
    extract.locator("button[type=submit]").click()
    expect(page.locator(".badge", has_text="succeeded")).to_be_visible(timeout=WAIT)
    page.goto(f"{live_server.url}/checkpoints/{bert0.pk}/?dataset={texts.pk}")
    stored = page.locator("table tr", has_text="tokens").filter(has_text="hidden.1")
    expect(stored).to_contain_text(f"(a row per position: {rows} positions of 40 samples)")
    assert all(s.n == rows for s in ActivationSet.objects.filter(pooling="tokens"))

    # Per position: every row a sample of the measure, no interval, and the page says so.
    compare(page, live_server, "per-position")
    expect(page.locator("main")).to_contain_text("pooling tokens, positions per-position")
    provenance = page.locator("p", has_text="Provenance:")
    expect(provenance).to_contain_text(f"per position: each of the {rows} rows")
    expect(provenance).to_contain_text("no bootstrap interval")
    expect(provenance).to_contain_text("the baseline shuffles rows as if they were independent")
    a, sample_a, special_a = rows_of(bert0, "hidden.1")
    b, sample_b, special_b = rows_of(bert1, "hidden.1")
    np.testing.assert_array_equal(sample_a, sample_b)
    found = cell(page, "hidden.1", "hidden.1")
    assert found[3] == "—" and found[5] == str(rows)  # no interval; n = the rows
    assert float(found[2]) == pytest.approx(linear_cka(a, b), abs=6e-5)

    page.locator('.heatmap .cell[data-row="1"][data-col="1"]').click()
    expect(page.locator("h1")).to_have_text("hidden.1 × hidden.1")
    facts = page.locator("dl.facts")
    expect(facts.locator("dt", has_text="Positions")).to_be_visible()
    expect(facts).to_contain_text(f"per position: each of the {rows} rows")
    page.wait_for_load_state("networkidle")
    shot(page, "pair-per-position")

    # Pooled on the fly: each text's mean, one vector per sample, with a bootstrap interval.
    compare(page, live_server, "mean")
    expect(page.locator("main")).to_contain_text("pooling tokens, positions mean")
    provenance = page.locator("p", has_text="Provenance:")
    expect(provenance).to_contain_text("pooled on the fly by mean: the mean of each sample's rows")
    found = cell(page, "hidden.1", "hidden.1")
    assert found[3] != "—" and found[5] == "40"
    expected = linear_cka(each_mean(a, sample_a, special_a), each_mean(b, sample_b, special_b))
    assert float(found[2]) == pytest.approx(expected, abs=6e-5)
    page.locator('.heatmap .cell[data-row="1"][data-col="1"]').click()
    expect(page.locator("h1")).to_have_text("hidden.1 × hidden.1")
    expect(page.locator("dl.facts")).to_contain_text("pooled on the fly by mean")
    page.wait_for_load_state("networkidle")
    shot(page, "pair-mean")

    # A probe of the ViT at pooling tokens, per position: brightness keeps every patch in
    # place and is read per position; rotation moves them, so each digit's mean is read.
    vit = Checkpoint.objects.get(name="tiny-vit")
    digits = Dataset.objects.get(name="digits")
    page.goto(f"{live_server.url}/checkpoints/{vit.pk}/?dataset={digits.pk}")
    page.click("summary:has-text('New probe')")
    form = page.locator(f"form[action$='/checkpoints/{vit.pk}/probe/']")
    form.locator("input[name=probe-layers][value='hidden.1']").check()
    form.locator("select[name=probe-pooling]").select_option("tokens")
    form.locator("select[name=probe-positions]").select_option("per-position")
    for family in ("image/brightness", "image/rotation"):
        form.locator(f"input[name=probe-families][value='{family}']").check()
    form.locator("button[type=submit]").click()
    families = page.locator(".probe-family")
    expect(families).to_have_count(2, timeout=WAIT)
    page.reload()
    expect(page.locator("main")).to_contain_text("pooling tokens · positions per-position")
    brightness = families.filter(has_text="image/brightness").locator(".probe-positions")
    expect(brightness).to_have_attribute("data-positions", "per-position")
    expect(brightness).to_contain_text("Positions read: per position: position p of g x")
    rotation = families.filter(has_text="image/rotation").locator(".probe-positions")
    expect(rotation).to_have_attribute("data-positions", "mean")
    expect(rotation).to_contain_text(
        "Positions read: per position was asked, but rotation moves or changes positions"
    )
    for plot in page.locator(".probe-heatmap").all():
        expect(plot).to_have_attribute("data-drawn", "true")
    page.wait_for_load_state("networkidle")
    shot(page, "probe")

    # A projection of the BERT's token-level set, each text's mean.
    page.goto(f"{live_server.url}/checkpoints/{bert0.pk}/?dataset={texts.pk}")
    page.click("summary:has-text('New projection')")
    form = page.locator(f"form[action$='/checkpoints/{bert0.pk}/project/']")
    form.locator("select[name=layer]").select_option("hidden.1")
    form.locator("select[name=pooling]").select_option("tokens")
    form.locator("select[name=positions]").select_option("mean")
    form.locator("select[name=method]").select_option("pca")
    form.locator("button[type=submit]").click()
    expect(page.locator(".badge", has_text="succeeded")).to_be_visible(timeout=WAIT)
    page.reload()
    expect(page.locator("main")).to_contain_text(
        "pooling tokens (pooled on the fly by mean: the mean of each sample's rows"
    )
    page.wait_for_load_state("networkidle")
    shot(page, "projection")
