"""Weight space of the built-in transformer (analysis/models/architectures.transformer and
analysis/weights/specs.transformer_spec): its forward pass against torch's own encoder layer,
the declared permutations keep its function, weight matching undoes a known permutation, the
linear path's ends are the two models, and the whole weight-space report."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch
from torch import nn

from analysis.errors import InputError
from analysis.models.architectures import TransformerConfig, build_from_state_dict, transformer
from analysis.weights.connectivity import classifier_evaluator, evaluate_classifier, linear_path
from analysis.weights.formats import MATCHABLE, WEIGHT_FORMATS, declared_architecture
from analysis.weights.matching import l2_distance, weight_matching
from analysis.weights.space import weight_space
from analysis.weights.specs import SPECS, apply_permutation, spec_for, transformer_spec

SEEDS = [0, 1, 2]
CONFIG = TransformerConfig(
    n_tokens=4, token_features=6, width=16, n_heads=4, head_width=4, mlp_width=24, n_blocks=2,
    n_classes=3,
)  # fmt: skip


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def state_of(seed: int, config: TransformerConfig = CONFIG) -> dict[str, torch.Tensor]:
    """Random weights, LayerNorms and biases included (a fresh LayerNorm's ones and zeros
    would hide a wrongly permuted LayerNorm)."""
    torch.manual_seed(seed)
    model = transformer(config)
    with torch.no_grad():
        for name, value in model.named_parameters():
            if value.ndim == 1 or name.endswith("bias"):
                value.copy_(torch.randn_like(value) * 0.5 + (1.0 if "ln" in name else 0.0))
    return {name: value.detach().clone() for name, value in model.state_dict().items()}


def outputs(state: dict[str, torch.Tensor], x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return build_from_state_dict("transformer", state)(x).double().numpy()


def test_a_block_computes_what_torchs_pre_ln_encoder_layer_computes():
    """An independent implementation: nn.TransformerEncoderLayer (norm_first, GELU, no dropout)
    given the same weights (q, k, v stacked head by head into in_proj)."""
    state = state_of(0)
    model = build_from_state_dict("transformer", state)
    d, h, k = CONFIG.width, CONFIG.n_heads, CONFIG.head_width
    reference = nn.TransformerEncoderLayer(
        d, h, CONFIG.mlp_width, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
    ).eval()
    p = "block1."
    with torch.no_grad():
        qkv = [state[f"{p}attn.{x}.weight"].reshape(d, h * k).T for x in "qkv"]
        reference.self_attn.in_proj_weight.copy_(torch.cat(qkv))
        reference.self_attn.in_proj_bias.copy_(
            torch.cat([state[f"{p}attn.{x}.bias"].reshape(-1) for x in "qkv"])
        )
        reference.self_attn.out_proj.weight.copy_(state[f"{p}attn.o.weight"].reshape(d, h * k))
        reference.self_attn.out_proj.bias.copy_(state[f"{p}attn.o.bias"])
        for ours, theirs in (("ln1", "norm1"), ("ln2", "norm2")):
            getattr(reference, theirs).weight.copy_(state[f"{p}{ours}.weight"])
            getattr(reference, theirs).bias.copy_(state[f"{p}{ours}.bias"])
        reference.linear1.weight.copy_(state[f"{p}mlp.0.weight"])
        reference.linear1.bias.copy_(state[f"{p}mlp.0.bias"])
        reference.linear2.weight.copy_(state[f"{p}mlp.2.weight"])
        reference.linear2.bias.copy_(state[f"{p}mlp.2.bias"])
        tokens = torch.randn(5, CONFIG.n_tokens, d)
        np.testing.assert_allclose(
            model.block1(tokens).numpy(), reference(tokens).numpy(), atol=1e-5
        )


def test_the_spec_shares_the_residual_stream_and_names_every_axis_it_should():
    state = state_of(0)
    spec = spec_for("transformer", state)
    assert "transformer" in MATCHABLE and set(SPECS) == set(MATCHABLE)
    assert list(spec.perm_to_axes)[:5] == [
        "residual",
        "block1.heads",
        "block1.qk",
        "block1.v",
        "block1.mlp",
    ]
    assert spec.size("residual") == 16 and spec.size("block2.heads") == 4
    assert spec.size("block1.qk") == 4 and spec.size("block2.mlp") == 24
    assert spec.axes_to_perm["block1.attn.q.weight"] == ("residual", "block1.heads", "block1.qk")
    assert spec.axes_to_perm["block2.attn.o.weight"] == ("residual", "block2.heads", "block2.v")
    assert spec.axes_to_perm["block2.ln1.weight"] == ("residual",)
    assert spec.axes_to_perm["embed.pos"] == (None, "residual")
    assert spec.axes_to_perm["embed.proj.weight"] == ("residual", None)
    assert spec.axes_to_perm["head.weight"] == (None, "residual")
    assert set(state) - set(spec.axes_to_perm) == {"head.bias"}  # the only unpermuted one


def test_foreign_weights_are_refused():
    state = state_of(0)
    state["block1.attn.extra"] = torch.zeros(2)
    with pytest.raises(InputError, match="parameters of architecture 'transformer'"):
        transformer_spec(state)
    with pytest.raises(InputError, match="architecture 'transformer'"):
        transformer_spec({"head.weight": torch.zeros(3, 16)})


@pytest.mark.parametrize("seed", SEEDS)
def test_a_permuted_transformer_computes_the_same_function(seed):
    rng = np.random.default_rng(seed)
    state = state_of(seed)
    spec = transformer_spec(state)
    perms = spec.random(rng)
    permuted = apply_permutation(spec, perms, state)
    x = torch.randn(20, CONFIG.n_tokens * CONFIG.token_features)
    assert l2_distance(state, permuted) > 1.0  # the weights moved …
    np.testing.assert_allclose(outputs(permuted, x), outputs(state, x), atol=1e-6)  # … not f
    assert len({tuple(row) for row in perms["block1.qk"]}) > 1  # each head its own
    # the queries' coordinates of one head permuted without its keys' are no symmetry
    wrong = dict(permuted)
    wrong["block1.attn.q.weight"] = wrong["block1.attn.q.weight"].clone()
    wrong["block1.attn.q.weight"][:, 0] = wrong["block1.attn.q.weight"][:, 0, [1, 0, 2, 3]]
    assert np.abs(outputs(wrong, x) - outputs(state, x)).max() > 1e-3


@pytest.mark.parametrize("seed", SEEDS)
def test_matching_a_permuted_copy_recovers_the_permutation_exactly(seed):
    rng = np.random.default_rng(seed)
    a = state_of(seed)
    spec = transformer_spec(a)
    sigma = spec.random(rng)
    b = apply_permutation(spec, sigma, a)
    perms = weight_matching(spec, a, b, seed=seed)
    for name in perms:
        np.testing.assert_array_equal(perms[name], spec.inverse(sigma)[name], err_msg=name)
    assert l2_distance(a, b) > 0
    assert l2_distance(a, apply_permutation(spec, perms, b)) == 0.0


def test_each_heads_coordinates_have_a_permutation_of_their_own():
    """q/k and v coordinates are permuted per head (one row per head, shared by q and k of that
    head): one head's permuted alone keeps the function and matching undoes it; the same
    permutation across the concatenation of the heads' coordinates mixes heads and does not
    keep the function."""
    a = state_of(5)
    spec = transformer_spec(a)
    assert spec.groups["block1.qk"] == "block1.heads" and spec.groups["block2.v"] == "block2.heads"
    assert spec.shape("block1.qk") == (4, 4) and spec.shape("block1.heads") == (4,)
    sigma = spec.identity()
    sigma["block1.qk"][0] = [1, 0, 3, 2]  # head 0's queries and keys only
    sigma["block2.v"][2] = [3, 2, 1, 0]  # head 2's values and its output columns only
    b = apply_permutation(spec, sigma, a)
    x = torch.randn(20, CONFIG.n_tokens * CONFIG.token_features)
    assert l2_distance(a, b) > 1.0
    np.testing.assert_allclose(outputs(b, x), outputs(a, x), atol=1e-6)
    perms = weight_matching(spec, a, b)
    for name in perms:
        np.testing.assert_array_equal(perms[name], spec.inverse(sigma)[name], err_msg=name)
    assert l2_distance(a, apply_permutation(spec, perms, b)) == 0.0
    # the concatenation: coordinate 0 of heads 0 and 1 swapped in q and k mixes the heads
    mixed = dict(a)
    for x_ in "qk":
        w = a[f"block1.attn.{x_}.weight"].clone()
        w[:, [0, 1], 0] = w[:, [1, 0], 0]
        mixed[f"block1.attn.{x_}.weight"] = w
    assert np.abs(outputs(mixed, x) - outputs(a, x)).max() > 1e-3
    with pytest.raises(InputError, match="not a permutation of 4 units per unit of 'block1.heads'"):
        apply_permutation(spec, {**sigma, "block1.qk": np.arange(4)}, a)


def test_the_heads_step_is_exact_over_heads_and_their_coordinates_together():
    """Given the residual and MLP permutations, one step over a block's heads reaches the
    smallest distance of a brute-force search over the heads' order and each head's q/k and v
    coordinates (2 heads of 3: 2 × 6² × 6² = 2,592 candidates)."""
    import itertools

    from analysis.weights.matching import _step

    config = TransformerConfig(2, 3, 5, 2, 3, 4, 1, 2)
    a, b = state_of(6, config), state_of(7, config)
    spec = transformer_spec(a)
    tensors = [{k: v.to(torch.float64) for k, v in s.items()} for s in (a, b)]
    perms = spec.identity()
    _step(spec, perms, *tensors, "block1.heads")
    found = l2_distance(a, apply_permutation(spec, perms, b))
    rows = [np.array(p) for p in itertools.permutations(range(3))]
    best = min(
        l2_distance(
            a,
            apply_permutation(
                spec,
                {
                    **spec.identity(),
                    "block1.heads": np.array(heads),
                    "block1.qk": np.stack(qk),
                    "block1.v": np.stack(v),
                },
                b,
            ),
        )
        for heads in itertools.permutations(range(2))
        for qk in itertools.product(rows, repeat=2)
        for v in itertools.product(rows, repeat=2)
    )
    assert found == pytest.approx(best, rel=1e-12) and found < l2_distance(a, b)


def test_matching_two_networks_never_increases_the_distance():
    a, b = state_of(0), state_of(1)
    spec = transformer_spec(a)
    after = l2_distance(a, apply_permutation(spec, weight_matching(spec, a, b), b))
    assert after < l2_distance(a, b)


@pytest.mark.parametrize("seed", SEEDS[:2])
def test_path_endpoints_reproduce_each_models_own_loss_exactly(seed):
    a, b = state_of(seed), state_of(seed + 10)
    spec = transformer_spec(a)
    matched = apply_permutation(spec, weight_matching(spec, a, b), b)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((30, 24)).astype(np.float32)
    y = rng.integers(0, 3, 30)
    evaluate = classifier_evaluator("transformer", x, y)
    for other in (b, matched):
        curve = linear_path(a, other, evaluate)
        assert (curve.loss[0], curve.accuracy[0]) == evaluate_classifier(
            build_from_state_dict("transformer", a), x, y
        )
        assert (curve.loss[-1], curve.accuracy[-1]) == evaluate(other)
    # B permuted is B: the matched path ends at B's own loss too
    own_b = evaluate_classifier(build_from_state_dict("transformer", b), x, y)
    assert linear_path(a, matched, evaluate).loss[-1] == pytest.approx(own_b[0], abs=1e-6)


def test_the_weight_space_report_of_a_permuted_copy():
    """A's copy permuted as B: the function check passes, the distance after matching is 0,
    the matched path is flat (no barrier) and every attention weight has its spectra."""
    a = state_of(3)
    spec = transformer_spec(a)
    rng = np.random.default_rng(3)
    b = apply_permutation(spec, spec.random(rng), a)
    x = rng.standard_normal((40, 24)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    models = [build_from_state_dict("transformer", s) for s in (a, b)]
    report = weight_space(*models, "transformer", x, y)
    assert report["function_check"]["passed"]
    assert report["l2"]["before"] > 0 and report["l2"]["after"] == 0.0
    assert report["matched"]["loss_barrier"] == pytest.approx(0.0, abs=1e-6)
    shares = np.bincount(y) / len(y)
    assert report["chance"]["accuracy"] == shares.max()
    assert report["chance"]["loss"] == pytest.approx(scipy.stats.entropy(shares), rel=1e-12)
    assert report["units"]["residual"] == 16 and report["units"]["block1.heads"] == 4
    layers = {layer["layer"]: layer for layer in report["layers"]}
    assert {"block1.attn.q", "block1.attn.o", "block2.mlp.0", "head"} <= set(layers)
    assert layers["block1.attn.q"]["alignment_after"] == pytest.approx(1.0)


def test_a_transformer_is_read_from_safetensors_only():
    assert declared_architecture("safetensors", "transformer", []) == "transformer"
    tree = [{"name": n, "type": "Sequential"} for n in ("embed", "block1", "norm", "pool", "head")]
    assert declared_architecture("torchscript", "", tree) is None
    assert "transformer" in WEIGHT_FORMATS


def test_a_hugging_face_encoder_is_recognised_by_its_blocks():
    """BERT, RoBERTa and DistilBERT by the type of their hidden states' blocks in the layer
    tree; any other encoder (or a mixture) is not read."""
    tree = [{"name": "hidden.0", "type": "embeddings"}]
    tree += [{"name": f"hidden.{k}", "type": "BertLayer"} for k in (1, 2)]
    with_head = [*tree, {"name": "sentence_embedding", "type": "pooling (mean)"}]
    assert declared_architecture("huggingface", "", tree) == "bert"
    assert declared_architecture("huggingface", "", with_head) == "bert"
    other = [*tree[:2], {"name": "hidden.2", "type": "RobertaLayer"}]
    assert declared_architecture("huggingface", "", other) is None
    assert declared_architecture("huggingface", "", tree[:1]) is None
    for block, family in (
        ("RobertaLayer", "roberta"),
        ("TransformerBlock", "distilbert"),
        ("XLMRobertaLayer", None),
        ("GPT2Block", None),
    ):
        blocks = [{"name": f"hidden.{k}", "type": block} for k in (1, 2)]
        assert declared_architecture("huggingface", "", [tree[0], *blocks]) == family
    assert "Hugging Face directories of BERT, RoBERTa or DistilBERT encoders" in WEIGHT_FORMATS


def test_a_safetensors_state_dict_loads_as_the_transformer_it_holds(tmp_path):
    """Every field of the config comes back from the shapes alone; weights of another shape
    are refused in one sentence."""
    from safetensors.torch import save_file

    from analysis.models.checkpoints import load_checkpoint

    config = TransformerConfig(8, 8, 24, 3, 5, 40, 3, 10)
    state = state_of(4, config)
    path = tmp_path / "weights.safetensors"
    save_file(state, str(path))
    loaded = load_checkpoint(path, "safetensors", "transformer")
    assert TransformerConfig.from_state(loaded.state_dict()) == config
    x = torch.randn(7, 64)
    np.testing.assert_array_equal(loaded(x).detach().numpy(), outputs(state, x))
    state["block2.attn.v.weight"] = torch.zeros(24, 3, 6)
    save_file(state, str(path))
    with pytest.raises(InputError, match="weights do not fit architecture 'transformer'"):
        load_checkpoint(path, "safetensors", "transformer")
