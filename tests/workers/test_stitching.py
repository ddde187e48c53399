"""The model-stitching run kind: the runner's matrices are the library's on the same models,
stitching a model's layer into itself reproduces the model's accuracy, a TorchScript B that
only borrows a built-in architecture's names fails, and what cannot work is refused at request
time with one sentence."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from torch import nn

from analysis.errors import InputError
from analysis.models.architectures import build_from_state_dict, small_cnn
from analysis.models.hf import load_huggingface
from analysis.stitching import stitching_matrix, token_stitching_matrix
from tests.conftest import (
    checkpoint_from,
    digits_npz_bytes,
    run_with_dependencies,
    torchscript_mlp_bytes,
)
from tests.formats import WORDS, texts_jsonl, tiny_bert_dir, zip_dir
from tests.workers.test_formats import uploaded
from webapp.catalog.ingest import ingest_dataset
from webapp.catalog.models import Checkpoint, Dataset
from webapp.runs.models import Report, Run
from webapp.runs.stitching import request_stitching, stitching_view, zero_shot_failures

pytestmark = pytest.mark.django_db


def loaded(checkpoint: Checkpoint) -> torch.jit.ScriptModule:
    with checkpoint.blob.local_path() as path:
        return torch.jit.load(str(path)).eval()


def eager(checkpoint: Checkpoint) -> nn.Module:
    """B as the stitching host runs it: the built-in MLP holding the TorchScript's weights."""
    return build_from_state_dict("mlp", dict(loaded(checkpoint).state_dict()))


def close(found: object, expected: object) -> bool:
    """Equal JSON documents, numbers to 1e-9 (the host may sum in another order)."""
    if isinstance(expected, dict):
        return (
            isinstance(found, dict)
            and found.keys() == expected.keys()
            and all(close(found[k], v) for k, v in expected.items())
        )
    if isinstance(expected, list):
        return (
            isinstance(found, list)
            and len(found) == len(expected)
            and all(close(f, e) for f, e in zip(found, expected, strict=True))
        )
    if isinstance(expected, float) and isinstance(found, float):
        return math.isclose(found, expected, rel_tol=1e-9, abs_tol=1e-9)
    return found == expected


def test_the_run_reports_the_library_s_matrices_on_the_same_models(
    owner, workspace, digits, ckpt_a, ckpt_b
):
    run, created = request_stitching(owner, ckpt_a, ckpt_b, digits, test_fraction=0.3, seed=4)
    assert created and run.params == {
        "layers_a": [],
        "layers_b": [],
        "architecture_b": "mlp",
        "test_fraction": 0.3,
        "seed": 4,
        "map": "affine",
        "ridge": 0.0,
        "n_anchors": 0,
    }
    assert request_stitching(owner, ckpt_a, ckpt_b, digits, test_fraction=0.3, seed=4)[0] == run
    run = run_with_dependencies(run)
    assert run.state == Run.State.SUCCEEDED, run.error
    result = Report.objects.get(run=run).result

    arrays = digits.load_arrays()
    expected = stitching_matrix(
        loaded(ckpt_a), eager(ckpt_b), arrays.x, arrays.y, test_fraction=0.3, seed=4
    ).to_json()
    assert close(result, expected)
    assert result["layers_a"] == result["layers_b"] == ["flatten", "block1", "block2", "head"]
    assert set(result["matrices"]) == {"fitted", "relative"}

    view = stitching_view(run)
    assert view["result"] == result and view["code_version"] == run.code_version
    assert view["checkpoint_b"]["name"] == ckpt_b.name and view["architecture_b"] == "mlp"


def test_named_layers_a_linear_map_a_ridge_and_anchors_reach_the_library(
    owner, workspace, digits, ckpt_a, ckpt_b
):
    asked = {"map": "linear", "ridge": 0.01, "n_anchors": 20}
    run = request_stitching(owner, ckpt_a, ckpt_b, digits, ["block2"], ["block1", "head"], **asked)[
        0
    ]
    run = run_with_dependencies(run)
    assert run.state == Run.State.SUCCEEDED, run.error
    arrays = digits.load_arrays()
    expected = stitching_matrix(
        loaded(ckpt_a),
        eager(ckpt_b),
        arrays.x,
        arrays.y,
        ["block2"],
        ["block1", "head"],
        affine=False,
        ridge=0.01,
        n_anchors=20,
    ).to_json()
    assert close(Report.objects.get(run=run).result, expected)
    assert "linear least squares with ridge" in expected["matrices"]["fitted"]["estimator"]


def test_stitching_a_layer_of_a_model_into_itself_reproduces_its_accuracy(owner, workspace):
    digits, _ = ingest_dataset(
        workspace, owner, io.BytesIO(digits_npz_bytes(300)), "d.npz", "digits-300"
    )
    model = checkpoint_from(workspace, owner, torchscript_mlp_bytes(3), "mlp-3")
    layers = ["block1", "block2", "head"]
    run = run_with_dependencies(request_stitching(owner, model, model, digits, layers, layers)[0])
    assert run.state == Run.State.SUCCEEDED, run.error
    result = Report.objects.get(run=run).result

    arrays = digits.load_arrays()
    test = result["test_rows"]
    with torch.no_grad():
        scores = loaded(model)(torch.as_tensor(arrays.x[test])).numpy()
    own = float(np.mean(scores.argmax(axis=1) == arrays.y[test]))
    assert result["accuracy_b"] == result["accuracy_a"] == own
    fitted = result["matrices"]["fitted"]
    for i in range(len(layers)):
        assert fitted["accuracy"][i][i] == own  # the identity map, fitted
        assert fitted["r2"][i][i] == pytest.approx(1.0, abs=1e-6)


def small_cnn_bytes(seed: int) -> bytes:
    """An untrained built-in small CNN (conv1 4 × 8 × 8, conv2 8 × 4 × 4 on the 8×8 digits) as
    TorchScript."""
    torch.manual_seed(seed)
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(small_cnn(1, [4, 8], 10)), buffer)
    return buffer.getvalue()


def test_the_run_stitches_feature_maps_of_the_small_cnn_as_the_library_does(
    owner, workspace, digits
):
    """Two small CNNs, every default layer: the runner's matrices are the library's on the same
    models (B rebuilt as the eager small-cnn), the conv maps on one grid are stitched by a 1×1
    convolution, the other pairs with a map are empty with their reason, and a conv map
    stitched into itself keeps B's accuracy exactly."""
    a = checkpoint_from(workspace, owner, small_cnn_bytes(0), "cnn-seed0")
    b = checkpoint_from(workspace, owner, small_cnn_bytes(1), "cnn-seed1")
    run, _ = request_stitching(owner, a, b, digits, seed=1)
    assert run.params["architecture_b"] == "small-cnn"
    run = run_with_dependencies(run)
    assert run.state == Run.State.SUCCEEDED, run.error
    result = Report.objects.get(run=run).result

    arrays = digits.load_arrays()
    model_b = build_from_state_dict("small-cnn", dict(loaded(b).state_dict()))
    expected = stitching_matrix(loaded(a), model_b, arrays.x, arrays.y, seed=1).to_json()
    assert close(result, expected)
    assert result["layers_a"] == result["layers_b"] == ["conv1", "conv2", "pool", "head"]
    assert result["shapes_b"] == [[4, 8, 8], [8, 4, 4], [8], [10]]
    fitted = result["matrices"]["fitted"]
    assert fitted["accuracy"][0][0] is not None and fitted["accuracy"][1][1] is not None
    assert fitted["accuracy"][0][1] is None
    assert "a 1×1 convolution needs the same grid in both" in fitted["refused"][0][1]
    assert result["matrices"]["relative"]["accuracy"][0][0] is None

    itself = run_with_dependencies(
        request_stitching(owner, b, b, digits, ["conv1", "conv2"], ["conv1", "conv2"])[0]
    )
    assert itself.state == Run.State.SUCCEEDED, itself.error
    found = Report.objects.get(run=itself).result
    own = found["accuracy_b"]
    assert [found["matrices"]["fitted"]["accuracy"][i][i] for i in range(2)] == [own, own]


def test_the_run_stitches_two_hugging_face_text_encoders_at_their_tokens(
    api, owner, workspace, tmp_path
):
    """Two zipped tiny BERTs reading one vocabulary, on labelled texts: the runner gives the
    library's token stitching of the same directories; a BERT whose vocabulary reads the texts
    as other token ids fails in the host with the library's sentence; a B that is a text
    encoder with an A that is not is refused at request."""
    archives = {
        name: zip_dir(tiny_bert_dir(tmp_path / name, seed=seed, words=words))
        for name, seed, words in (("a", 0, WORDS), ("b", 1, WORDS), ("other", 1, WORDS[::-1]))
    }
    a, b, other = (
        Checkpoint.objects.get(
            pk=uploaded(api, "/api/v1/checkpoints/", f"{name}.zip", content, name=f"bert-{name}")[
                "id"
            ]
        )
        for name, content in archives.items()
    )
    texts = Dataset.objects.get(
        pk=uploaded(api, "/api/v1/datasets/", "texts.jsonl", texts_jsonl(60), name="Texts")["id"]
    )
    run, _ = request_stitching(owner, a, b, texts, ["hidden.1", "hidden.2"], seed=1)
    assert run.params["architecture_b"] == ""
    run = run_with_dependencies(run)
    assert run.state == Run.State.SUCCEEDED, run.error
    result = Report.objects.get(run=run).result

    loaded = {}
    for name in ("a", "b"):
        (tmp_path / f"{name}.zip").write_bytes(archives[name])
        loaded[name] = load_huggingface(tmp_path / f"{name}.zip", f"{name}.zip", 100, 10**9)
    arrays = texts.load_arrays()
    expected = token_stitching_matrix(
        loaded["a"], loaded["b"], arrays.x, arrays.y, ["hidden.1", "hidden.2"], seed=1
    ).to_json()
    assert close(result, expected)
    assert result["layers_b"] == ["hidden.0", "hidden.1", "hidden.2"]
    assert result["warnings"][0].startswith("B is a bare encoder")

    failed = run_with_dependencies(request_stitching(owner, a, other, texts)[0])
    assert failed.state == Run.State.FAILED
    assert "A and B read text 0 as different tokens" in failed.error

    mlp = checkpoint_from(workspace, owner, torchscript_mlp_bytes(0), "mlp")
    with pytest.raises(InputError, match="cannot be model A: bert-b is a Hugging Face text"):
        request_stitching(owner, mlp, b, texts)


def test_a_torchscript_b_that_only_borrows_the_names_fails(owner, workspace, digits, ckpt_a):
    class Borrowed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.flatten = nn.Flatten()
            self.block1 = nn.Sequential(nn.Linear(64, 32), nn.ReLU())
            self.block2 = nn.Sequential(nn.Linear(32, 16), nn.ReLU())
            self.head = nn.Linear(16, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.block1(self.flatten(x))
            return self.head(self.block2(h * 2.0))  # not what the built-in MLP computes

    torch.manual_seed(5)
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(Borrowed()), buffer)
    borrowed = checkpoint_from(workspace, owner, buffer.getvalue(), "borrowed")
    run = run_with_dependencies(request_stitching(owner, ckpt_a, borrowed, digits)[0])
    assert run.state == Run.State.FAILED
    assert "does not compute B's outputs" in run.error
    assert "cannot be rebuilt as an eager module" in run.error
    assert not Report.objects.filter(run=run).exists()


REFUSED_B = "stitching replaces one layer's output inside B, so B must be an eager torch module"


@pytest.mark.parametrize(
    ("fmt", "tree", "why"),
    [
        ("onnx", None, "it is an ONNX model, whose layers take no hooks"),
        (
            "huggingface",
            None,
            "it is a Hugging Face directory of another kind than a BERT, RoBERTa or DistilBERT "
            "text encoder",
        ),
        ("precomputed", None, "it is precomputed activations, with no model to run"),
        ("torchscript", [{"name": "body", "type": "Linear"}], "follow no built-in architecture"),
    ],
)
def test_a_b_that_cannot_run_as_an_eager_module_is_refused_in_one_sentence(
    owner, workspace, digits, ckpt_a, ckpt_b, fmt, tree, why
):
    ckpt_b.format = fmt
    if tree is not None:
        ckpt_b.layer_tree = tree
    ckpt_b.save()
    with pytest.raises(InputError) as refused:
        request_stitching(owner, ckpt_a, ckpt_b, digits)
    message = str(refused.value)
    assert message.startswith(f"{ckpt_b.name} cannot be model B: ")
    assert why in message and REFUSED_B in message
    assert ".safetensors state dict of a built-in architecture (mlp, small-cnn, " in message
    assert ". " not in message and message.endswith(
        "text encoder (BERT, RoBERTa or DistilBERT) stitched at its tokens"
    )  # one sentence
    assert not Run.objects.filter(kind=Run.Kind.STITCH).exists()


def test_other_requests_that_cannot_work_are_refused(owner, workspace, digits, ckpt_a, ckpt_b):
    Checkpoint.objects.filter(pk=ckpt_b.pk).update(format="precomputed")
    ckpt_b.refresh_from_db()
    with pytest.raises(InputError, match="cannot be model A: it is precomputed activations"):
        request_stitching(owner, ckpt_b, ckpt_a, digits)
    with pytest.raises(InputError, match="has no layer 'block9'; its layers: flatten, block1"):
        request_stitching(owner, ckpt_a, ckpt_a, digits, ["block9"])
    with pytest.raises(InputError, match="a layer of model B is named twice"):
        request_stitching(owner, ckpt_a, ckpt_a, digits, None, ["head", "head"])
    with pytest.raises(InputError, match="into 59 to train and 1 to test; stitching needs"):
        request_stitching(owner, ckpt_a, ckpt_a, digits, test_fraction=0.01)
    with pytest.raises(InputError, match="among the 48 training samples; choose fewer than 48"):
        request_stitching(owner, ckpt_a, ckpt_a, digits, n_anchors=48)
    with pytest.raises(InputError, match="map must be one of: affine, linear"):
        request_stitching(owner, ckpt_a, ckpt_a, digits, map="procrustes")

    buffer = io.BytesIO()
    np.savez(
        buffer, x=np.zeros((12, 1, 8, 8), np.float32), ids=np.array([str(i) for i in range(12)])
    )
    unlabelled, _ = ingest_dataset(workspace, owner, io.BytesIO(buffer.getvalue()), "u.npz", "u")
    with pytest.raises(InputError, match="u has no class labels; stitching is scored by accuracy"):
        request_stitching(owner, ckpt_a, ckpt_a, unlabelled)
    assert not Run.objects.filter(kind=Run.Kind.STITCH).exists()


def test_the_zero_shot_sentence_says_where_it_fails():
    result = {
        "layers_a": ["block1", "block2"],
        "layers_b": ["block1", "block2", "head"],
        "chance": 0.1,
        "accuracy_b": 0.9,  # half of B's margin above chance: 0.5
        "matrices": {"relative": {"accuracy": [[0.2, 0.8, 0.3], [0.4, 0.7, 0.6]]}},
    }
    assert zero_shot_failures(result) == (
        "On these models the zero-shot variant fails at 3 of 6 pairs of layers (less than half "
        "of B's accuracy above chance kept): into B's block1 from every layer of A; and A's "
        "block1 → B's head."
    )
    result["matrices"]["relative"]["accuracy"] = [[0.5, 0.8, 0.6], [0.6, 0.7, 0.6]]
    assert "keeps at least half of B's accuracy above chance at every pair" in (
        zero_shot_failures(result)
    )
    assert zero_shot_failures({**result, "matrices": {"fitted": {}}}) == ""
    assert "B alone does no better than chance" in zero_shot_failures({**result, "chance": 0.9})
    wide = {
        **result,
        "layers_a": ["a0", "a1", "a2"],
        "layers_b": ["b0", "b1", "b2", "b3"],
        "matrices": {
            "relative": {
                "accuracy": [[0.2, 0.2, 0.9, 0.9], [0.9, 0.9, 0.2, 0.2], [0.2, 0.2, 0.2, 0.9]]
            }
        },
    }
    said = zero_shot_failures(wide)
    assert said.startswith("On these models the zero-shot variant fails at 7 of 12 pairs")
    assert said.endswith("A's a2 → B's b0, A's a2 → B's b1 and 1 more pair.")

    # feature maps: the zero-shot cells from or into them are empty and not counted
    maps = {
        **result,
        "layers_a": ["conv1", "pool", "head"],
        "layers_b": ["conv1", "pool", "head"],
        "matrices": {
            "relative": {
                "accuracy": [[None, None, None], [None, 0.2, 0.8], [None, 0.3, 0.9]],
            }
        },
    }
    assert zero_shot_failures(maps) == (
        "On these models the zero-shot variant fails at 2 of 4 pairs of layers it stitched "
        "(less than half of B's accuracy above chance kept): into B's pool from every layer of "
        "A it stitched."
    )
    only_maps = {**maps, "matrices": {"relative": {"accuracy": [[None] * 3] * 3}}}
    assert zero_shot_failures(only_maps) == (
        "The zero-shot variant stitches per-sample vectors only, and no pair here has both."
    )


def test_the_runner_runs_its_entry_point_in_a_model_host():
    from webapp.runs.kinds import KINDS

    spec = KINDS[Run.Kind.STITCH]
    assert spec.hosted and spec.queue == "gpu" and spec.batch
    assert spec.entry == "analysis.host.tasks:stitch" and spec.page == "stitching"
    assert math.isclose(spec.parameter("test_fraction").default, 0.2)
