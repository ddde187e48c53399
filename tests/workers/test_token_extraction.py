"""Token- and patch-level extraction end to end (issue 19 item 2; in-process worker, real
Postgres, model hosts): its size told before the run (exact for a ViT's patch grid, an upper
bound for texts), the run storing every position with each row's sample and position, the
API serving both files, and comparisons reading the sets per position or pooled on the fly."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest

from analysis.measures.positions import pooled
from analysis.models.extraction import extract_tokens
from analysis.models.hf import load_huggingface
from tests.conftest import checked, digits_npz_bytes, run_with_dependencies
from tests.formats import texts_jsonl, tiny_bert_dir, tiny_hf_dir, zip_dir
from webapp.catalog.models import ActivationSet, Checkpoint, Dataset, Fit
from webapp.runs.models import Run
from webapp.runs.submit import request_comparison

pytestmark = pytest.mark.django_db

PATCHES = (16 // 4) ** 2  # the tiny ViT: 16 × 16 pictures, 4 × 4 patches


@pytest.fixture(autouse=True)
def _lab(workspace):
    return workspace


def uploaded(api, path: str, filename: str, content: bytes, **fields) -> dict:
    file = io.BytesIO(content)
    file.name = filename
    state = checked(api, api.post(path, {"workspace": "lab", "file": file, **fields}))
    assert state["state"] == "done", state
    return state["result"]


def stored_rows(
    api, activation: ActivationSet
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The set's values, samples, positions and special rows, as the API serves them."""
    values = api.get(f"/api/v1/activations/{activation.pk}/values/")
    positions = api.get(f"/api/v1/activations/{activation.pk}/positions/")
    assert values.status_code == positions.status_code == 200
    with np.load(io.BytesIO(b"".join(positions.streaming_content))) as found:
        sample, position, special = found["sample"], found["position"], found["special"]
    return np.load(io.BytesIO(b"".join(values.streaming_content))), sample, position, special


def test_a_vit_stores_every_patch_and_its_size_is_exact_before_the_run(
    api, client, owner, tmp_path
):
    digits = uploaded(api, "/api/v1/datasets/", "digits.npz", digits_npz_bytes(30))
    content = zip_dir(tiny_hf_dir(tmp_path / "vit", "vit"))
    vit = uploaded(api, "/api/v1/checkpoints/", "vit.zip", content, name="Tiny ViT")
    request = {"checkpoint": vit["id"], "dataset": digits["id"], "pooling": "tokens"}

    # Before the run: the fit check ran one picture through the model, so the size is exact.
    assert Fit.objects.get(checkpoint=vit["id"]).shapes["layers"]["hidden.1"] == {
        "positions": 1 + PATCHES,
        "d": 32,
        "positional": True,
    }
    answer = api.post("/api/v1/extractions/storage/", request, format="json")
    assert answer.status_code == 200, answer.content
    estimate = answer.json()
    rows = 30 * (1 + PATCHES)
    assert estimate["estimate"] == "exact" and estimate["max_tokens"] is None
    assert [layer["layer"] for layer in estimate["layers"]] == ["hidden.0", "hidden.1", "hidden.2"]
    assert {layer["rows"] for layer in estimate["layers"]} == {rows}
    assert estimate["bytes"] == 3 * rows * (4 * 32 + 17)
    assert not Run.objects.exists()  # asking for the size runs nothing

    client.force_login(owner)
    page = client.get(f"/checkpoints/{vit['id']}/?dataset={digits['id']}").content.decode()
    assert "Size of pooling <code>tokens</code>" in page and "exact" in page
    # the summary says how the size is known, and in which units
    words = " ".join(page.split())
    assert f"on {digits['name']} for the default layers: exactly " in words
    assert "1 MB = 1,048,576 bytes" in words

    response = api.post("/api/v1/extractions/", {**request, "layers": ["hidden.1"]}, format="json")
    assert response.status_code == 201, response.content
    run = run_with_dependencies(Run.objects.get(pk=response.json()["id"]))
    assert run.state == Run.State.SUCCEEDED, run.error
    stored = ActivationSet.objects.get(checkpoint=vit["id"], layer="hidden.1", pooling="tokens")
    values, sample, position, special = stored_rows(api, stored)
    assert (stored.n, stored.d) == values.shape == (rows, 32)
    stored_bytes = values.nbytes + sample.nbytes + position.nbytes + special.nbytes
    assert stored_bytes == estimate["layers"][1]["bytes"]
    page = client.get(f"/checkpoints/{vit['id']}/").content.decode()
    assert f"(a row per position: {rows} positions of 30 samples)" in page

    # The same rows as the model run here: the class token at position 0, then the patches.
    (tmp_path / "vit.zip").write_bytes(content)
    model = load_huggingface(tmp_path / "vit.zip", "vit.zip", 100, 10**9)
    x = Dataset.objects.get(pk=digits["id"]).load_arrays().x
    direct = extract_tokens(model, x, ["hidden.1"], device="cpu")["hidden.1"]
    np.testing.assert_array_equal(sample, np.repeat(np.arange(30), 1 + PATCHES))
    np.testing.assert_array_equal(position, np.tile(np.arange(1 + PATCHES), 30))
    np.testing.assert_allclose(values, direct.values, rtol=0, atol=1e-6)

    # The class token is marked special: left out of the mean pooled on the fly, which so
    # equals the mean extraction (the patches' mean).
    np.testing.assert_array_equal(special, position == 0)
    mean_request = {**request, "layers": ["hidden.1"], "pooling": "mean"}
    response = api.post("/api/v1/extractions/", mean_request, format="json")
    run = run_with_dependencies(Run.objects.get(pk=response.json()["id"]))
    assert run.state == Run.State.SUCCEEDED, run.error
    want = ActivationSet.objects.get(checkpoint=vit["id"], layer="hidden.1", pooling="mean").load()
    got = pooled(values, sample, 30, "mean", special)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6 * np.abs(want).max())


def storage_text(client, checkpoint: int, dataset: int) -> str:
    """The checkpoint page's size of pooling ``tokens`` on ``dataset``, as read."""
    page = client.get(f"/checkpoints/{checkpoint}/?dataset={dataset}").content.decode()
    part = page[page.index('id="token-storage"') :]
    return " ".join(re.sub(r"<[^>]+>", " ", part[: part.index("</details>")]).split())


def test_texts_sizes_count_their_tokens_and_only_real_tokens_are_stored(
    api, client, owner, tmp_path
):
    from transformers import AutoTokenizer

    texts = uploaded(api, "/api/v1/datasets/", "texts.jsonl", texts_jsonl(40), name="Texts")
    directory = tiny_bert_dir(tmp_path / "bert", sentence_transformers=True)
    bert = uploaded(api, "/api/v1/checkpoints/", "bert.zip", zip_dir(directory), name="BERT")
    layers = ["hidden.2", "sentence_embedding"]
    request = {"checkpoint": bert["id"], "dataset": texts["id"], "layers": layers}
    x = [str(t) for t in Dataset.objects.get(pk=texts["id"]).load_arrays().x]
    # The tokens transformers reads each text as (sentence_bert_config.json's max_seq_length).
    tokenizer = AutoTokenizer.from_pretrained(directory)
    tokens = [len(ids) for ids in tokenizer(x, truncation=True, max_length=32)["input_ids"]]

    # The fit check counted every text's tokens: the size is exact before the run.
    estimate = api.post("/api/v1/extractions/storage/", request, format="json").json()
    hidden, sentence = estimate["layers"]
    assert hidden == {
        "layer": "hidden.2",
        "rows": sum(tokens),
        "d": 32,
        "bytes": sum(tokens) * (4 * 32 + 17),
        "estimate": "exact",
    }
    # The sentence embedding is one vector per text: one row each, exactly.
    assert sentence["estimate"] == "exact" and sentence["rows"] == 40
    assert estimate["estimate"] == "exact" and estimate["max_tokens"] == 32
    # The page says the size is of the default layers, and names no token limit: it is exact.
    client.force_login(owner)
    shown = storage_text(client, bert["id"], texts["id"])
    assert "on Texts for the default layers: exactly" in shown, shown
    assert "at most 32" not in shown

    # Without the counts (a dataset of more texts than are counted): an upper bound.
    fit = Fit.objects.get(checkpoint=bert["id"], dataset=texts["id"])
    fit.shapes.pop("tokens")
    fit.save()
    bound = api.post("/api/v1/extractions/storage/", request, format="json").json()
    assert bound["layers"][0]["rows"] == 40 * 32 and bound["layers"][0]["estimate"] == "bound"
    assert bound["estimate"] == "bound" and bound["layers"][1] == sentence
    # Now a bound: the page says at most, and the bound layer's rows are 40 texts × 32 tokens.
    shown = storage_text(client, bert["id"], texts["id"])
    assert "for the default layers: at most" in shown, shown
    assert "bound: 40 texts × at most 32 tokens" in shown, shown

    response = api.post("/api/v1/extractions/", {**request, "pooling": "tokens"}, format="json")
    run = run_with_dependencies(Run.objects.get(pk=response.json()["id"]))
    assert run.state == Run.State.SUCCEEDED, run.error
    stored = ActivationSet.objects.get(checkpoint=bert["id"], layer="hidden.2", pooling="tokens")
    values, sample, position, special = stored_rows(api, stored)
    assert len(values) == sum(tokens) < 40 * 32  # real tokens only, as counted before the run
    assert values.nbytes + sample.nbytes + position.nbytes + special.nbytes == hidden["bytes"]
    assert not special.any()  # a text's mean counts every real token
    np.testing.assert_array_equal(np.bincount(sample), tokens)

    # Asked per position beside a layer of one row per text: pooled, naming that layer.
    model = Checkpoint.objects.get(pk=bert["id"])
    both, _ = request_comparison(
        owner,
        model,
        model,
        Dataset.objects.get(pk=texts["id"]),
        layers,
        layers,
        "tokens",
        positions="per-position",
        n_permutations=2,
        n_bootstrap=0,
    )
    assert run_with_dependencies(both).state == Run.State.SUCCEEDED, both.error
    # each pair as its two sets allow: the token layer against itself per position, the pairs
    # with the sentence embedding pooled, naming it
    notes = {(s.layer_a, s.layer_b): s.parameters["positions"] for s in both.scores.all()}
    assert notes["hidden.2", "hidden.2"].startswith(f"per position: each of the {sum(tokens)} rows")
    for pair in (("hidden.2", "sentence_embedding"), ("sentence_embedding", "hidden.2")):
        assert notes[pair].startswith(
            "per position was asked, but sentence_embedding holds one row per sample; pooled on "
            "the fly by mean"
        )
    assert notes["sentence_embedding", "sentence_embedding"].endswith("compared as it is")
    assert all((position[sample == i] == np.arange(t)).all() for i, t in enumerate(tokens))

    one_per_text = ActivationSet.objects.get(checkpoint=bert["id"], layer="sentence_embedding")
    _, sample, position, _ = stored_rows(api, one_per_text)
    np.testing.assert_array_equal(sample, np.arange(40))
    assert not position.any()

    # A set of one vector per sample serves no positions.
    response = api.post("/api/v1/extractions/", {**request, "layers": ["hidden.2"]}, format="json")
    run = run_with_dependencies(Run.objects.get(pk=response.json()["id"]))
    assert run.state == Run.State.SUCCEEDED, run.error
    pooled = ActivationSet.objects.get(checkpoint=bert["id"], layer="hidden.2", pooling="mean")
    missing = api.get(f"/api/v1/activations/{pooled.pk}/positions/")
    assert missing.status_code == 404
    assert missing.json()["detail"].endswith("holds one row per sample: it has no positions")


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA in its feature-space form (Kornblith et al. 2019, eq. 5), in float64."""
    x = x.astype(np.float64) - x.mean(0)
    y = y.astype(np.float64) - y.mean(0)
    cross = np.linalg.norm(y.T @ x) ** 2
    return float(cross / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


def test_token_level_sets_are_compared_per_position_or_pooled_on_the_fly(api, owner, tmp_path):
    """Two BERTs of one vocabulary read the same tokens: per position, linear CKA takes each
    token as a sample; pooled on the fly, the mean of each text's rows is the ``mean``
    extraction, so the scores are those of a comparison at pooling ``mean``."""
    texts = Dataset.objects.get(
        pk=uploaded(api, "/api/v1/datasets/", "texts.jsonl", texts_jsonl(40))["id"]
    )
    a, b = (
        Checkpoint.objects.get(
            pk=uploaded(
                api,
                "/api/v1/checkpoints/",
                f"bert{seed}.zip",
                zip_dir(tiny_bert_dir(tmp_path / f"bert{seed}", seed=seed)),
                name=f"BERT {seed}",
            )["id"]
        )
        for seed in (0, 1)
    )
    layers = ["hidden.1", "hidden.2"]

    def compared(pooling: str, **options) -> Run:
        run, _ = request_comparison(
            owner, a, b, texts, layers, layers, pooling, n_permutations=2, **options
        )
        run = run_with_dependencies(run)
        assert run.state == Run.State.SUCCEEDED, run.error
        return run

    def stored(checkpoint: Checkpoint, layer: str, pooling: str) -> ActivationSet:
        return ActivationSet.objects.get(checkpoint=checkpoint, layer=layer, pooling=pooling)

    per_position = compared("tokens", positions="per-position", n_bootstrap=3)
    for score in per_position.scores.all():
        x = stored(a, score.layer_a, "tokens").load()
        y = stored(b, score.layer_b, "tokens").load()
        assert score.n == len(x) == len(y) > 40  # every token a sample
        assert score.value == pytest.approx(linear_cka(x, y), rel=1e-9)
        assert score.ci_low is None  # no interval: a text's tokens are not independent
        assert score.parameters["positions"].startswith(f"per position: each of the {len(x)}")
        assert "shuffles rows as if they were independent" in score.parameters["positions"]
    provenance = api.get(f"/api/v1/comparisons/{per_position.pk}/").json()["provenance"]
    assert provenance["positions"].startswith("per position") and provenance["n_bootstrap"] == 0

    # Pooled on the fly: the mean of a text's stored rows is the mean extraction, to 1e-6.
    on_the_fly = compared("tokens", positions="mean", n_bootstrap=0)
    extracted = compared("mean", n_bootstrap=0)
    for layer in layers:
        rows = stored(a, layer, "tokens")
        with rows.positions.open() as f, np.load(f) as found:
            mean = pooled(rows.load(), found["sample"], 40, "mean")
        want = stored(a, layer, "mean").load()
        np.testing.assert_allclose(mean, want, rtol=0, atol=1e-6 * np.abs(want).max())
    values = {(s.layer_a, s.layer_b): s for s in extracted.scores.all()}
    for score in on_the_fly.scores.all():
        assert score.n == 40
        assert score.value == pytest.approx(values[(score.layer_a, score.layer_b)].value, abs=1e-6)
        assert score.parameters["positions"].startswith("pooled on the fly by mean")

    # A measure that compares samples only: asked per position, pooled, and it says why.
    debiased = compared(
        "tokens", positions="per-position", measure="cka/linear-debiased", n_bootstrap=0
    )
    note = debiased.scores.first().parameters["positions"]
    assert (
        note.startswith("per position was asked, but Debiased") and "compares samples only" in note
    )


def pooling_options(client, checkpoint: int, dataset: int) -> list[str]:
    """The poolings the checkpoint page's extraction form offers on ``dataset``."""
    page = client.get(f"/checkpoints/{checkpoint}/?dataset={dataset}").content.decode()
    form = page[page.index('name="pooling"') :]
    return re.findall(r'<option value="([^"]+)"', form[: form.index("</select>")])


def test_tokens_are_offered_wherever_the_api_takes_them(api, client, owner, tmp_path):
    """A Hugging Face checkpoint described before pooling ``tokens`` existed (its layer tree's
    poolings do not name it): the page offers it, as the API takes it and the run stores its
    rows; precomputed activations, one vector per sample, are offered it by neither."""
    digits = uploaded(api, "/api/v1/datasets/", "digits.npz", digits_npz_bytes(30))
    content = zip_dir(tiny_hf_dir(tmp_path / "vit", "vit"))
    vit = Checkpoint.objects.get(
        pk=uploaded(api, "/api/v1/checkpoints/", "vit.zip", content, name="Tiny ViT")["id"]
    )
    for node in vit.layer_tree:  # as described before: cls and mean only
        node["poolings"] = ["cls", "mean"]
    vit.save()
    client.force_login(owner)
    assert pooling_options(client, vit.pk, digits["id"]) == ["mean", "cls", "tokens"]
    request = {"checkpoint": vit.pk, "dataset": digits["id"], "layers": ["hidden.1"]}
    response = api.post("/api/v1/extractions/", {**request, "pooling": "tokens"}, format="json")
    assert response.status_code == 201, response.content
    run = run_with_dependencies(Run.objects.get(pk=response.json()["id"]))
    assert run.state == Run.State.SUCCEEDED, run.error
    assert ActivationSet.objects.get(checkpoint=vit, pooling="tokens").n == 30 * (1 + PATCHES)

    buffer = io.BytesIO()
    ids = Dataset.objects.get(pk=digits["id"]).column("ids")
    np.savez(buffer, emb=np.ones((30, 4), dtype=np.float32), ids=ids)
    precomputed = uploaded(
        api, "/api/v1/checkpoints/", "acts.npz", buffer.getvalue(), dataset=digits["id"]
    )
    assert "tokens" not in pooling_options(client, precomputed["id"], digits["id"])
    request = {"checkpoint": precomputed["id"], "dataset": digits["id"], "pooling": "tokens"}
    refused = api.post("/api/v1/extractions/", request, format="json")
    assert refused.status_code == 400
    assert "precomputed activations, one vector per sample" in refused.json()["detail"]
