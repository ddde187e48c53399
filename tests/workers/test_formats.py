"""Issue 7 end to end (in-process worker): Hugging Face, ONNX and precomputed checkpoints and
text datasets uploaded through the API (checked by the worker: ``checked``), extracted,
compared, projected and probed."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from django.core.files.storage import default_storage

from analysis.models.base import OUTPUT
from analysis.models.extraction import extract_activations
from analysis.models.hf import load_huggingface
from analysis.probes.transforms import get_transform
from tests.conftest import checked, digits_npz_bytes, run_with_dependencies
from tests.formats import onnx_bytes, small_cnn, texts_jsonl, tiny_bert_dir, tiny_hf_dir, zip_dir
from webapp.catalog.models import ActivationSet, Blob, Checkpoint, Dataset, Upload
from webapp.pages.forms import ExtractionForm
from webapp.runs import drilldown
from webapp.runs.models import ProbeResult, Run
from webapp.runs.submit import (
    request_comparison,
    request_extraction,
    request_probe,
    request_projection,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _lab(workspace):
    """Every upload goes to the owner's workspace "lab"."""
    return workspace


def upload(api, path: str, filename: str, content: bytes, **fields):
    file = io.BytesIO(content)
    file.name = filename
    return api.post(path, {"workspace": "lab", "file": file, **fields})


def made(api, response) -> dict:
    """The dataset or checkpoint an upload made, once the worker checked it."""
    state = checked(api, response)
    assert state["state"] == "done", state
    return state["result"]


def uploaded(api, path: str, filename: str, content: bytes, **fields) -> dict:
    return made(api, upload(api, path, filename, content, **fields))


def extracted_twice(owner, checkpoint, dataset, layers, content, tmp_path):
    """``hidden.2`` (cls pooling) of an extraction run of ``layers`` by the worker, and the same
    layer extracted here from the model archive ``content`` loaded in-process: (stored, direct)."""
    run, _ = request_extraction(owner, checkpoint, dataset, layers, "cls")
    run = run_with_dependencies(run)
    assert run.state == Run.State.SUCCEEDED, run.error
    (tmp_path / "model.zip").write_bytes(content)
    model = load_huggingface(tmp_path / "model.zip", "model.zip", 100, 10**9)
    direct = extract_activations(model, dataset.load_arrays().x, ["hidden.2"], "cls", device="cpu")
    stored = ActivationSet.objects.get(checkpoint=checkpoint, layer="hidden.2", pooling="cls")
    return stored, direct["hidden.2"]


@pytest.fixture
def texts(api):
    body = uploaded(api, "/api/v1/datasets/", "texts.jsonl", texts_jsonl(40), name="Texts")
    return Dataset.objects.get(pk=body["id"])


@pytest.fixture(scope="module")
def bert_zip(tmp_path_factory):
    return zip_dir(tiny_bert_dir(tmp_path_factory.mktemp("bert"), sentence_transformers=True))


def test_a_hugging_face_directory_on_a_text_dataset(api, client, owner, texts, bert_zip, tmp_path):
    assert (
        texts.modality == "text" and texts.n_samples == 40 and texts.metadata_columns == ["words"]
    )
    body = uploaded(api, "/api/v1/checkpoints/", "bert.zip", bert_zip, name="Tiny BERT")
    assert body["format"] == "huggingface" and body["layers"][-1] == "sentence_embedding"
    checkpoint = Checkpoint.objects.get(pk=body["id"])

    layers = ["hidden.2", "sentence_embedding"]
    stored, direct = extracted_twice(owner, checkpoint, texts, layers, bert_zip, tmp_path)
    np.testing.assert_allclose(stored.load(), direct, atol=1e-5)

    # Layer by layer against itself at another pooling.
    compare, _ = request_comparison(
        owner,
        checkpoint,
        checkpoint,
        texts,
        ["hidden.1", "hidden.2"],
        ["hidden.2"],
        "mean",
        n_permutations=2,
        n_bootstrap=0,
    )
    compare = run_with_dependencies(compare)
    assert compare.state == Run.State.SUCCEEDED, compare.error
    values = {(s.layer_a, s.layer_b): s.value for s in compare.scores.all()}
    assert values[("hidden.2", "hidden.2")] == pytest.approx(1.0)

    # Text probes: the run succeeds; the page shows each moved sample before and after.
    probe, _ = request_probe(owner, checkpoint, texts, ["hidden.2"], "mean")
    assert [k for k, _ in probe.params["families"]][0] == "text/char-noise"
    probe = run_with_dependencies(probe)
    assert probe.state == Run.State.SUCCEEDED, probe.error
    row = ProbeResult.objects.get(run=probe, family="text/word-dropout")
    invariance = row.result["invariance"][0]
    assert row.result["magnitudes"][0] == 0 and invariance[0] == pytest.approx(1.0)
    assert invariance[-1] < 1 and row.result["consistency"] == [None] * len(invariance)
    client.force_login(owner)
    page = client.get(f"/probes/{probe.pk}/").content.decode()
    assert "word dropout" in page and "Model output unchanged" not in page  # no top class
    moved = client.get(
        f"/probes/{probe.pk}/moved/", {"family": "text/word-dropout", "layer": 0, "t": 2}
    ).content.decode()
    assert moved.count('class="sample-text"') == moved.count('class="sample-text transformed"') > 0
    # Each as the probe showed it to the model: kept by the run, the same seeded transform.
    shown = drilldown.moved(probe, row, 0, 2)
    again = get_transform("text/word-dropout")(
        [s["text"] for s in shown],
        row.result["magnitudes"][2],
        seed=probe.params["seed"],
        indices=[s["index"] for s in shown],
    )
    assert [s["transformed"] for s in shown] == again

    # Projection of text: hover text endpoint, sample panel shows the text.
    projection, _ = request_projection(owner, checkpoint, texts, "hidden.2", "mean", "pca")
    projection = run_with_dependencies(projection)
    assert projection.state == Run.State.SUCCEEDED, projection.error
    page = client.get(f"/projections/{projection.pk}/").content.decode()
    assert 'data-texts="true"' in page
    assert client.get(f"/datasets/{texts.pk}/samples/0.txt").content.decode() == "the cat sat"
    point = client.get(f"/projections/{projection.pk}/points/0/").content.decode()
    assert "the cat sat" in point


def test_models_and_datasets_of_the_wrong_kind_are_refused_at_request(api, texts, bert_zip):
    bert = uploaded(api, "/api/v1/checkpoints/", "bert.zip", bert_zip)["id"]
    digits = uploaded(api, "/api/v1/datasets/", "digits.npz", digits_npz_bytes(40))["id"]
    response = api.post(
        "/api/v1/extractions/", {"checkpoint": bert, "dataset": digits}, format="json"
    )
    assert response.status_code == 400 and "reads text" in response.json()["detail"]


def test_a_hugging_face_vit_directory_on_an_image_dataset(api, owner, texts, tmp_path):
    """A zipped tiny ViT: checked in a model host at upload (its layers read images), run by
    the worker on the digits through its own image processor (grey repeated to RGB, resized),
    refused at request for a text dataset."""
    content = zip_dir(tiny_hf_dir(tmp_path / "vit", "vit"))
    body = uploaded(api, "/api/v1/checkpoints/", "vit.zip", content, name="Tiny ViT")
    assert body["format"] == "huggingface"
    assert body["layers"] == ["hidden.0", "hidden.1", "hidden.2"]
    assert [node["reads"] for node in body["layer_tree"]] == [["image"]] * 3
    digits = Dataset.objects.get(
        pk=uploaded(api, "/api/v1/datasets/", "digits.npz", digits_npz_bytes(30))["id"]
    )
    checkpoint = Checkpoint.objects.get(pk=body["id"])
    layers = ["hidden.1", "hidden.2"]
    stored, direct = extracted_twice(owner, checkpoint, digits, layers, content, tmp_path)
    assert stored.n == 30 and stored.d == 32
    np.testing.assert_allclose(stored.load(), direct, atol=1e-6)
    # The checkpoint page offers the poolings a vision transformer takes (its layer tree says).
    offered = ExtractionForm(checkpoint, dataset=digits).fields["pooling"].choices
    assert [name for name, _ in offered] == ["mean", "cls", "tokens"]

    response = api.post(
        "/api/v1/extractions/", {"checkpoint": checkpoint.pk, "dataset": texts.pk}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["detail"] == "Tiny ViT reads images; Texts holds text"


def test_an_onnx_model_through_the_api(api, owner):
    torch_model = small_cnn()
    content = onnx_bytes(torch_model, torch.rand(4, 1, 8, 8), dynamic_batch=False)
    body = uploaded(api, "/api/v1/checkpoints/", "cnn.onnx", content)
    assert body["format"] == "onnx"
    assert body["parameter_count"] == sum(p.numel() for p in torch_model.parameters())
    dataset = Dataset.objects.get(
        pk=uploaded(api, "/api/v1/datasets/", "digits.npz", digits_npz_bytes(30))["id"]
    )
    checkpoint = Checkpoint.objects.get(pk=body["id"])
    run, _ = request_extraction(owner, checkpoint, dataset, ["/1/Relu_output_0", OUTPUT])
    run = run_with_dependencies(run)
    assert run.state == Run.State.SUCCEEDED, run.error
    x = torch.from_numpy(dataset.load_arrays().x)
    with torch.no_grad():
        want = torch_model[1](torch_model[0](x)).mean((2, 3)).numpy()
    stored = ActivationSet.objects.get(checkpoint=checkpoint, layer="/1/Relu_output_0")
    np.testing.assert_allclose(stored.load(), want, atol=1e-5)


def test_precomputed_activations_work_like_extracted_ones(api, owner, ckpt_a):
    dataset = Dataset.objects.get(
        pk=uploaded(api, "/api/v1/datasets/", "digits.npz", digits_npz_bytes(60))["id"]
    )
    ids = dataset.column("ids")
    rng = np.random.default_rng(0)
    acts = {"emb": rng.standard_normal((60, 16)).astype(np.float32)}
    order = rng.permutation(60)
    buffer = io.BytesIO()
    np.savez(buffer, emb=acts["emb"][order], ids=ids[order])
    response = upload(
        api,
        "/api/v1/checkpoints/",
        "acts.npz",
        buffer.getvalue(),
        name="Elsewhere",
        dataset=dataset.pk,
    )
    assert response.status_code == 202, response.content
    # Precomputed activations are checked by a cpu worker: they hold no model.
    assert Upload.objects.get(pk=response.json()["id"]).queue == "cpu"
    body = made(api, response)
    assert body["format"] == "precomputed" and body["layers"] == ["emb"]
    assert body["dataset"] == dataset.pk and body["parameter_count"] == 0
    precomputed = Checkpoint.objects.get(pk=body["id"])

    compare, _ = request_comparison(
        owner,
        precomputed,
        ckpt_a,
        dataset,
        ["emb"],
        ["block1"],
        "mean",
        n_permutations=2,
        n_bootstrap=0,
    )
    compare = run_with_dependencies(compare)
    assert compare.state == Run.State.SUCCEEDED, compare.error
    stored = ActivationSet.objects.get(checkpoint=precomputed, layer="emb")
    np.testing.assert_array_equal(stored.load(), acts["emb"])  # rows back in dataset order

    projection, _ = request_projection(owner, precomputed, dataset, "emb", "mean", "pca")
    assert run_with_dependencies(projection).state == Run.State.SUCCEEDED

    with pytest.raises(Exception, match="precomputed activations have no model"):
        request_probe(owner, precomputed, dataset, ["emb"])


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (59, "do not match the dataset's"),
        (None, "the file has 59 rows and the dataset 60 samples"),
    ],
)
def test_precomputed_rows_that_do_not_match_are_refused_without_trace(api, rows, message):
    dataset = uploaded(api, "/api/v1/datasets/", "digits.npz", digits_npz_bytes(60))["id"]
    blobs = Blob.objects.count()
    acts = np.zeros((59, 4), np.float32)
    buffer = io.BytesIO()
    if rows is None:
        np.save(buffer, acts)
        filename = "acts.npy"
    else:
        np.savez(buffer, emb=acts, ids=np.array([f"digit-{i:04d}" for i in range(rows)]))
        filename = "acts.npz"
    response = upload(api, "/api/v1/checkpoints/", filename, buffer.getvalue(), dataset=dataset)
    refused = checked(api, response)
    assert refused["state"] == "failed" and message in refused["error"]
    assert refused["result"] is None
    assert Checkpoint.objects.count() == 0 and Blob.objects.count() == blobs
    assert not default_storage.exists(f"uploads/{refused['id']}")  # no chunk kept

    response = upload(api, "/api/v1/checkpoints/", filename, buffer.getvalue())
    assert response.status_code == 400
    assert "choose the dataset they belong to" in response.json()["detail"]
    response = upload(api, "/api/v1/checkpoints/", filename, buffer.getvalue(), dataset=999999)
    assert response.status_code == 400 and "no dataset 999999" in response.json()["detail"]
