"""The permutation structure of Hugging Face text encoders (analysis/weights/bert.py) on
transformers' own BertModel, RobertaModel and DistilBertModel: permuted weights compute the
same hidden states up to the residual permutation and the same pooler output, and weight
matching undoes a known permutation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from analysis.errors import InputError
from analysis.weights.bert import LAYOUTS, check_encoder_function, encoder_spec
from analysis.weights.matching import l2_distance

transformers = pytest.importorskip("transformers")

FAMILIES = ["bert", "roberta", "distilbert"]


def encoder(family: str, seed: int, n_heads: int = 4) -> torch.nn.Module:
    """A 2-layer encoder of ``family`` with random weights, LayerNorms and biases included (a
    fresh LayerNorm's ones and zeros would hide a wrongly permuted one). Weights are drawn
    with standard deviation 0.3, not BERT's 0.02: beside biases and LayerNorms of standard
    deviation 0.5, weights of 0.02 leave the heads' assignment so little signal that
    coordinate descent from the identity can stop at a local optimum (with BERT's own fresh
    LayerNorms it recovered 10 of 10 seeds at 0.02, 0.1 and 0.3)."""
    torch.manual_seed(seed)
    shared = {"vocab_size": 40, "max_position_embeddings": 16, "initializer_range": 0.3}
    if family == "distilbert":
        config = transformers.DistilBertConfig(
            dim=32, n_layers=2, n_heads=n_heads, hidden_dim=48, **shared
        )
        model = transformers.DistilBertModel(config)
    else:
        kind = {"bert": transformers.BertConfig, "roberta": transformers.RobertaConfig}[family]
        config = kind(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=n_heads,
            intermediate_size=48,
            **shared,
        )
        model = {"bert": transformers.BertModel, "roberta": transformers.RobertaModel}[family](
            config
        )
    model.set_attn_implementation("eager")
    model.eval()
    with torch.no_grad():
        for name, value in model.named_parameters():
            if value.ndim == 1:
                norm = "norm" in name.lower() and name.endswith("weight")
                value.copy_(torch.randn_like(value) * 0.5 + (1.0 if norm else 0.0))
    return model


def state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def inputs(family: str, seed: int) -> dict[str, torch.Tensor]:
    """Three sequences of 9 tokens, one padded; RoBERTa's padding id is 1 (its position ids
    start after it), so no other token is 1; DistilBERT takes no token types."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(2, 40, (3, 9), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0  # a padded sequence
    ids[1, 6:] = 1
    batch = {"input_ids": ids, "attention_mask": mask}
    return batch if family == "distilbert" else {**batch, "token_type_ids": ids % 2}


def hidden_scale(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> float:
    """The largest |hidden state|: differences are relative to it (1e-5 relative)."""
    with torch.no_grad():
        hidden = model(**batch, output_hidden_states=True).hidden_states
    return max(1.0, max(float(h.abs().max()) for h in hidden))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_permuted_encoder_computes_the_same_function(family, seed):
    model = encoder(family, seed)
    original = state(model)
    viewed = encoder_spec(original, 4, family)
    assert viewed.spec.size("residual") == 32 and viewed.spec.size("layer1.heads") == 4
    assert viewed.spec.size("layer0.qk") == 8 and viewed.spec.size("layer1.mlp") == 48
    perms = viewed.spec.random(np.random.default_rng(seed))
    assert perms["layer0.qk"].shape == (4, 8) and len({tuple(r) for r in perms["layer0.v"]}) > 1
    permuted = viewed.apply(perms, original)
    assert {k: tuple(v.shape) for k, v in permuted.items()} == viewed.shapes
    other = encoder(family, seed + 50)
    other.load_state_dict(permuted)
    assert l2_distance(original, permuted) > 1.0
    batch = inputs(family, seed)
    scale = hidden_scale(model, batch)
    assert check_encoder_function(model, other, perms["residual"], batch) < 1e-5 * scale
    # the queries' coordinates of one head permuted without its keys' are no symmetry
    wrong = dict(permuted)
    layout = LAYOUTS[family]
    query = f"{layout.block.format(i=0)}{layout.qkv[0]}.weight"
    wrong[query] = permuted[query].clone()
    wrong[query][:2] = permuted[query][[1, 0]]  # rows 0 and 1 of head 0 only
    other.load_state_dict(wrong)
    assert check_encoder_function(model, other, perms["residual"], batch) > 1e-3


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matching_a_permuted_copy_recovers_the_permutation_exactly(family, seed):
    a = state(encoder(family, seed))
    viewed = encoder_spec(a, 4, family)
    sigma = viewed.spec.random(np.random.default_rng(seed))
    b = viewed.apply(sigma, a)
    perms = viewed.match(a, b, seed=seed)
    for name in perms:
        np.testing.assert_array_equal(perms[name], viewed.spec.inverse(sigma)[name], err_msg=name)
    assert l2_distance(a, b) > 0 and l2_distance(a, viewed.apply(perms, b)) == 0.0


@pytest.mark.parametrize("family", FAMILIES)
def test_one_heads_coordinates_permuted_alone_keep_the_function_and_are_recovered(family):
    """Per head: head 1's queries and keys by one permutation, head 3's values (with the
    output projection's columns) by another, every other head as it is. The same swap of
    coordinates across two heads (the concatenation's order) changes the function."""
    model = encoder(family, 7)
    a = state(model)
    viewed = encoder_spec(a, 4, family)
    sigma = viewed.spec.identity()
    sigma["layer1.qk"][1] = [7, 6, 5, 4, 3, 2, 1, 0]
    sigma["layer0.v"][3] = [1, 0, 2, 3, 4, 5, 7, 6]
    b = viewed.apply(sigma, a)
    other = encoder(family, 8)
    other.load_state_dict(b)
    batch = inputs(family, 7)
    residual = sigma["residual"]
    assert l2_distance(a, b) > 0.5
    assert check_encoder_function(model, other, residual, batch) < 1e-5 * hidden_scale(model, batch)
    perms = viewed.match(a, b)
    for name in perms:
        np.testing.assert_array_equal(perms[name], viewed.spec.inverse(sigma)[name], err_msg=name)
    assert l2_distance(a, viewed.apply(perms, b)) == 0.0
    layout = LAYOUTS[family]
    mixed = dict(a)
    for projection in layout.qkv[:2]:
        name = f"{layout.block.format(i=1)}{projection}.weight"
        mixed[name] = a[name][[8, *range(1, 8), 0, *range(9, 32)]]  # heads 0 and 1 swap one
    other.load_state_dict(mixed)
    assert check_encoder_function(model, other, residual, batch) > 1e-3


@pytest.mark.parametrize("family", FAMILIES)
def test_two_encoders_come_closer_and_foreign_weights_are_refused(family):
    a, b = state(encoder(family, 0)), state(encoder(family, 1))
    viewed = encoder_spec(a, 4, family)
    assert l2_distance(a, viewed.apply(viewed.match(a, b), b)) < l2_distance(a, b)
    name = LAYOUTS[family].name
    with pytest.raises(InputError, match="5 heads do not divide the attention width 32"):
        encoder_spec(a, 5, family)
    with pytest.raises(InputError, match=f"a {name} encoder does not: extra"):
        encoder_spec({**a, "extra": torch.zeros(2)}, 4, family)
    with pytest.raises(InputError, match=f"not a {name} encoder's"):
        encoder_spec({"head.weight": torch.zeros(2, 2)}, 4, family)


def test_the_families_differ_in_names_only_and_others_are_refused():
    """A BERT's weights are not a DistilBERT's, and another family is refused in one sentence
    naming those that are read."""
    bert = state(encoder("bert", 0))
    assert encoder_spec(bert, 4, "roberta").spec == encoder_spec(bert, 4, "bert").spec
    with pytest.raises(InputError, match="not a DistilBERT encoder's"):
        encoder_spec(bert, 4, "distilbert")
    distil = state(encoder("distilbert", 0))
    assert "transformer.layer.1.ffn.lin2.weight" in encoder_spec(distil, 4, "distilbert").shapes
    with pytest.raises(
        InputError,
        match="no permutation structure is declared for 'xlm-roberta' encoders; weight "
        "matching reads only BERT, RoBERTa or DistilBERT encoders",
    ):
        encoder_spec(bert, 4, "xlm-roberta")
