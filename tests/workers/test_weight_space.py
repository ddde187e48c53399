"""The weight-space run kind: the runner's numbers are the library's on the same weights, the
paths' ends reproduce each model's own loss, and checkpoints whose weights no permutation spec
reads are refused at request time with one sentence."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from torch import nn

from analysis.errors import InputError
from analysis.weights.connectivity import classifier_evaluator, evaluate_classifier, linear_path
from analysis.weights.matching import l2_distance, weight_matching
from analysis.weights.specs import apply_permutation, spec_for
from analysis.weights.spectra import layer_spectra
from analysis.weights.unrelated import DRAWS, matched_chance
from tests.conftest import checkpoint_from, run_with_dependencies, torchscript_mlp_bytes
from webapp.runs.models import Report, Run
from webapp.runs.weight_space import request_weight_space, weight_space_view

pytestmark = pytest.mark.django_db


def loaded(content: bytes) -> torch.jit.ScriptModule:
    return torch.jit.load(io.BytesIO(content)).eval()


def state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_the_run_reports_the_library_s_numbers_on_the_same_weights(
    owner, workspace, digits, ckpt_a, ckpt_b
):
    run, created = request_weight_space(owner, ckpt_a, ckpt_b, digits)
    assert created and run.params == {"spec": "mlp", "seed": 0}
    assert request_weight_space(owner, ckpt_a, ckpt_b, digits)[0] == run  # the same request
    run = run_with_dependencies(run)
    assert run.state == Run.State.SUCCEEDED, run.error
    result = Report.objects.get(run=run).result

    arrays = digits.load_arrays()
    x, y = torch.as_tensor(arrays.x), torch.as_tensor(arrays.y)
    model_a, model_b = loaded(torchscript_mlp_bytes(0)), loaded(torchscript_mlp_bytes(1))
    state_a, state_b = state(model_a), state(model_b)
    spec = spec_for("mlp", state_a)
    permuted = apply_permutation(spec, weight_matching(spec, state_a, state_b, seed=0), state_b)
    evaluate = classifier_evaluator("mlp", x, y)
    naive, matched = (
        linear_path(state_a, state_b, evaluate),
        linear_path(state_a, permuted, evaluate),
    )

    assert result["l2"] == {
        "before": l2_distance(state_a, state_b),
        "after": l2_distance(state_a, permuted),
    }
    assert result["naive"]["loss"] == naive.loss.tolist()
    assert result["matched"]["accuracy"] == matched.accuracy.tolist()
    assert result["naive"]["loss_barrier"] == naive.loss_barrier
    assert result["matched"]["accuracy_barrier"] == matched.accuracy_barrier
    for layer, before, after in zip(
        result["layers"],
        layer_spectra(state_a, state_b),
        layer_spectra(state_a, permuted),
        strict=True,
    ):
        assert layer["layer"] == before.name
        assert layer["singular_a"] == before.singular_a.tolist()
        assert layer["alignment_before"] == before.alignment
        assert layer["alignment_after"] == after.alignment
        assert layer["shape"] == list(state_a[f"{before.name}.weight"].shape)
        assert layer["alignment_chance"] == before.chance == after.chance
    # what the same matching gives unrelated weights: the library's draws, seeded by the run's
    unrelated = matched_chance(
        state_a,
        state_b,
        lambda a, b: apply_permutation(spec, weight_matching(spec, a, b, seed=0), b),
        seed=0,
    ).after_matching()
    assert result["unrelated"] == {"draws": DRAWS, "seed": 0}
    for layer in result["layers"]:
        stored = layer["alignment_matched_chance"]
        assert stored == pytest.approx(unrelated[layer["layer"]], rel=1e-9)
        assert stored["low"] < stored["mean"] < stored["high"]

    # λ = 0 and 1 reproduce each model's own loss, as the TorchScript model computes it
    own_a, own_b = evaluate_classifier(model_a, x, y), evaluate_classifier(model_b, x, y)
    assert result["naive"]["loss"][0] == pytest.approx(own_a[0], abs=1e-12)
    assert result["naive"]["loss"][-1] == pytest.approx(own_b[0], abs=1e-12)
    assert result["matched"]["loss"][-1] == pytest.approx(own_b[0], abs=1e-6)
    assert result["function_check"]["passed"]

    view = weight_space_view(run)
    assert view["checkpoint_b"]["name"] == ckpt_b.name and view["result"] == result
    assert view["code_version"] == run.code_version


def test_formats_that_expose_no_weights_are_refused_at_request_time(
    owner, workspace, digits, ckpt_a, ckpt_b
):
    ckpt_b.format = "onnx"
    ckpt_b.save()
    with pytest.raises(
        InputError, match=r"mlp-seed1 is stored as ONNX, .*, and weight space reads"
    ):
        request_weight_space(owner, ckpt_a, ckpt_b, digits)
    ckpt_b.format, ckpt_b.layer_tree = "torchscript", [{"name": "body", "type": "Linear"}]
    ckpt_b.save()
    with pytest.raises(InputError, match="follow no built-in architecture's naming"):
        request_weight_space(owner, ckpt_a, ckpt_b, digits)
    with pytest.raises(InputError, match="two different checkpoints"):
        request_weight_space(owner, ckpt_a, ckpt_a, digits)
    assert not Run.objects.filter(kind=Run.Kind.WEIGHTS).exists()


def test_two_architectures_are_refused(owner, workspace, digits, ckpt_a):
    torch.manual_seed(0)
    from analysis.models.architectures import small_cnn

    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(small_cnn(1, [4, 8], 10)), buffer)
    cnn = checkpoint_from(workspace, owner, buffer.getvalue(), "cnn")
    with pytest.raises(InputError, match=r"not of one architecture \(mlp and small-cnn\)"):
        request_weight_space(owner, ckpt_a, cnn, digits)
    wide = checkpoint_from(workspace, owner, torchscript_mlp_bytes(2, hidden=(64, 16)), "wide")
    with pytest.raises(InputError, match="mlp networks of different widths or depths"):
        request_weight_space(owner, ckpt_a, wide, digits)


def test_a_model_that_only_borrows_the_names_fails_the_function_check(
    owner, workspace, digits, ckpt_a
):
    class Borrowed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.flatten = nn.Flatten()
            self.block1 = nn.Sequential(nn.Linear(64, 32), nn.ReLU())
            self.block2 = nn.Sequential(nn.Linear(32, 16), nn.ReLU())
            self.head = nn.Linear(16, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.block1(self.flatten(x))
            return self.head(self.block2(h * torch.arange(32.0)))  # units are not exchangeable

    torch.manual_seed(5)
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(Borrowed()), buffer)
    borrowed = checkpoint_from(workspace, owner, buffer.getvalue(), "borrowed")
    run = run_with_dependencies(request_weight_space(owner, ckpt_a, borrowed, digits)[0])
    assert run.state == Run.State.FAILED
    assert "does not compute the same function" in run.error
    assert not Report.objects.filter(run=run).exists()


def test_a_dataset_without_labels_is_refused(owner, workspace, ckpt_a, ckpt_b):
    from webapp.catalog.ingest import ingest_dataset

    buffer = io.BytesIO()
    np.savez(
        buffer, x=np.zeros((12, 1, 8, 8), np.float32), ids=np.array([str(i) for i in range(12)])
    )
    unlabelled, _ = ingest_dataset(workspace, owner, io.BytesIO(buffer.getvalue()), "u.npz", "u")
    with pytest.raises(InputError, match="has no class labels"):
        request_weight_space(owner, ckpt_a, ckpt_b, unlabelled)


def test_the_runner_runs_its_entry_point_in_a_model_host():
    from webapp.runs.kinds import KINDS

    spec = KINDS[Run.Kind.WEIGHTS]
    assert spec.hosted and spec.queue == "gpu" and spec.entry == "analysis.host.tasks:weights"


def test_two_transformers_uploaded_as_safetensors(client, owner, workspace, digits):
    """The built-in transformer's weights read from .safetensors: B is A's copy with every
    declared permutation applied at random, so matching brings it back onto A (distance 0), the
    matched path is flat and B permuted computes B's function; the page names the heads."""
    from safetensors.torch import save as save_safetensors

    from analysis.models.architectures import TransformerConfig, transformer
    from webapp.catalog.ingest import ingest_checkpoint

    torch.manual_seed(0)
    state_a = state(transformer(TransformerConfig(8, 8, 16, 2, 4, 24, 2, 10)))
    spec = spec_for("transformer", state_a)
    rng = np.random.default_rng(0)
    sigma = spec.random(rng)
    state_b = apply_permutation(spec, sigma, state_a)
    a, b = (
        ingest_checkpoint(
            workspace,
            owner,
            io.BytesIO(save_safetensors({k: v.contiguous() for k, v in s.items()})),
            f"{name}.safetensors",
            name,
            architecture="transformer",
        )[0]
        for name, s in (("tf-a", state_a), ("tf-b", state_b))
    )
    run, _ = request_weight_space(owner, a, b, digits)
    assert run.params["spec"] == "transformer"
    run = run_with_dependencies(run)
    assert run.state == Run.State.SUCCEEDED, run.error
    result = Report.objects.get(run=run).result
    assert result["function_check"]["passed"]
    assert result["l2"]["before"] > 0 and result["l2"]["after"] == 0.0
    assert result["matched"]["loss_barrier"] == pytest.approx(0.0, abs=1e-6)
    assert result["units"] == {name: spec.size(name) for name in spec.perm_to_axes}
    client.force_login(owner)
    html = client.get(f"/weight-spaces/{run.pk}/").content.decode()
    assert "block2.heads</span> 2 heads" in html and "block1.attn.q" in html
    assert "block1.qk</span> 4 query/key coordinates in each of 2 heads" in html
    assert "each head's coordinates have a permutation of their own" in html
    assert "residual</span> 16 units" in html


def test_two_bert_encoders_from_hugging_face_directories(client, owner, workspace, tmp_path):
    """B is A's BERT with every declared permutation applied at random, saved as
    save_pretrained writes it: the run matches it back onto A (distance 0), its function
    check compares hidden states up to the residual permutation, and there are no paths (an
    encoder has no class scores); the page says so, on a text dataset without labels."""
    from transformers import BertModel

    from analysis.weights.bert import encoder_spec
    from tests.formats import texts_jsonl, tiny_bert_dir, zip_dir
    from webapp.catalog.ingest import ingest_checkpoint, ingest_dataset

    directory_a = tiny_bert_dir(tmp_path / "a")
    model = BertModel.from_pretrained(directory_a)
    original = state(model)
    viewed = encoder_spec(original, model.config.num_attention_heads, "bert")
    rng = np.random.default_rng(0)
    sigma = viewed.spec.random(rng)
    model.load_state_dict(viewed.apply(sigma, original))
    directory_b = tiny_bert_dir(tmp_path / "b")  # the tokenizer files, then B's weights
    model.save_pretrained(directory_b, safe_serialization=True)
    a, b = (
        ingest_checkpoint(workspace, owner, io.BytesIO(zip_dir(d)), f"{name}.zip", name)[0]
        for name, d in (("bert-a", directory_a), ("bert-b", directory_b))
    )
    texts, _ = ingest_dataset(workspace, owner, io.BytesIO(texts_jsonl(12)), "t.jsonl", "Texts")
    run, _ = request_weight_space(owner, a, b, texts)
    assert run.params["spec"] == "bert"
    run = run_with_dependencies(run)
    assert run.state == Run.State.SUCCEEDED, run.error
    result = Report.objects.get(run=run).result
    assert result["function_check"]["passed"] and result["n"] == 12
    assert result["l2"]["before"] > 0 and result["l2"]["after"] == 0.0
    assert result["naive"] is None and result["models"] is None
    assert result["units"]["residual"] == 32 and result["units"]["layer1.heads"] == 2
    # matched back exactly: every layer aligned, far above what matching gives unrelated weights
    assert result["unrelated"] == {"draws": DRAWS, "seed": 0}
    for layer in result["layers"]:
        assert layer["alignment_after"] == pytest.approx(1.0, abs=1e-9)
        assert layer["alignment_matched_chance"]["high"] < 0.5, layer["layer"]
    client.force_login(owner)
    html = client.get(f"/weight-spaces/{run.pk}/").content.decode()
    assert 'data-testid="no-paths"' in html and "has no class scores" in html
    assert 'data-chart="path:loss"' not in html
    assert "encoder.layer.0.attention.self.query" in html  # its spectra


@pytest.mark.parametrize("family", ["roberta", "distilbert"])
def test_two_roberta_or_distilbert_encoders(owner, workspace, tmp_path, family):
    """As for BERT: recognised by their blocks' types, B (A permuted at random) matched back
    onto A (distance 0) and computing B's function (DistilBERT with a BERT tokenizer, as its
    checkpoints ship one)."""
    from transformers import AutoModel

    from analysis.weights.bert import encoder_spec
    from tests.formats import texts_jsonl, tiny_hf_dir, zip_dir
    from webapp.catalog.ingest import ingest_checkpoint, ingest_dataset

    directory_a = tiny_hf_dir(tmp_path / "a", family)
    model = AutoModel.from_pretrained(directory_a)
    original = state(model)
    viewed = encoder_spec(original, model.config.num_attention_heads, family)
    model.load_state_dict(viewed.apply(viewed.spec.random(np.random.default_rng(1)), original))
    directory_b = tiny_hf_dir(tmp_path / "b", family)  # the tokenizer files, then B's weights
    model.save_pretrained(directory_b, safe_serialization=True)
    a, b = (
        ingest_checkpoint(workspace, owner, io.BytesIO(zip_dir(d)), f"{name}.zip", name)[0]
        for name, d in ((f"{family}-a", directory_a), (f"{family}-b", directory_b))
    )
    texts, _ = ingest_dataset(workspace, owner, io.BytesIO(texts_jsonl(12)), "t.jsonl", "Texts")
    run, _ = request_weight_space(owner, a, b, texts)
    assert run.params["spec"] == family
    run = run_with_dependencies(run)
    assert run.state == Run.State.SUCCEEDED, run.error
    result = Report.objects.get(run=run).result
    assert result["function_check"]["passed"] and result["n"] == 12
    assert result["l2"]["before"] > 0 and result["l2"]["after"] == 0.0
    assert result["units"]["residual"] == 32 and result["units"]["layer1.qk"] == 16
