"""The permutation structure of a BERT-style encoder (analysis/weights/bert.py) on Hugging
Face's own BertModel: permuted weights compute the same hidden states up to the residual
permutation and the same pooler output, and weight matching undoes a known permutation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from analysis.errors import InputError
from analysis.weights.bert import bert_spec, check_bert_function
from analysis.weights.matching import l2_distance

transformers = pytest.importorskip("transformers")


def bert(seed: int, n_heads: int = 4) -> transformers.BertModel:
    """A 2-layer BERT with random weights, LayerNorms and biases included (a fresh LayerNorm's
    ones and zeros would hide a wrongly permuted one). Weights are drawn with standard
    deviation 0.3, not BERT's 0.02: beside biases and LayerNorms of standard deviation 0.5,
    weights of 0.02 leave the heads' assignment so little signal that coordinate descent from
    the identity can stop at a local optimum (with BERT's own fresh LayerNorms it recovered
    10 of 10 seeds at 0.02, 0.1 and 0.3)."""
    torch.manual_seed(seed)
    config = transformers.BertConfig(
        vocab_size=40,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=n_heads,
        intermediate_size=48,
        max_position_embeddings=16,
        initializer_range=0.3,
        attn_implementation="eager",
    )
    model = transformers.BertModel(config).eval()
    with torch.no_grad():
        for name, value in model.named_parameters():
            if value.ndim == 1:
                value.copy_(torch.randn_like(value) * 0.5 + (1.0 if "LayerNorm" in name else 0.0))
    return model


def state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def inputs(seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 40, (3, 9), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0  # a padded sequence
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": (ids % 2)}


def random_perms(viewed, rng):
    return {p: rng.permutation(viewed.spec.size(p)) for p in viewed.spec.perm_to_axes}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_permuted_bert_computes_the_same_function(seed):
    model = bert(seed)
    original = state(model)
    viewed = bert_spec(original, n_heads=4)
    assert viewed.spec.size("residual") == 32 and viewed.spec.size("layer1.heads") == 4
    assert viewed.spec.size("layer0.qk") == 8 and viewed.spec.size("layer1.mlp") == 48
    perms = random_perms(viewed, np.random.default_rng(seed))
    permuted = viewed.apply(perms, original)
    assert {k: tuple(v.shape) for k, v in permuted.items()} == viewed.shapes
    other = bert(seed + 50)
    other.load_state_dict(permuted)
    assert l2_distance(original, permuted) > 1.0
    assert check_bert_function(model, other, perms["residual"], inputs(seed)) < 1e-5
    # per-head coordinates permuted differently in each head are no symmetry
    wrong = dict(permuted)
    query = "encoder.layer.0.attention.self.query.weight"
    wrong[query] = permuted[query].clone()
    wrong[query][:2] = permuted[query][[1, 0]]  # rows 0 and 1 of head 0 only
    other.load_state_dict(wrong)
    assert check_bert_function(model, other, perms["residual"], inputs(seed)) > 1e-3


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matching_a_permuted_copy_recovers_the_permutation_exactly(seed):
    a = state(bert(seed))
    viewed = bert_spec(a, n_heads=4)
    sigma = random_perms(viewed, np.random.default_rng(seed))
    b = viewed.apply(sigma, a)
    perms = viewed.match(a, b, seed=seed)
    for name in perms:
        np.testing.assert_array_equal(perms[name], np.argsort(sigma[name]), err_msg=name)
    assert l2_distance(a, b) > 0 and l2_distance(a, viewed.apply(perms, b)) == 0.0


def test_two_berts_come_closer_and_foreign_weights_are_refused():
    a, b = state(bert(0)), state(bert(1))
    viewed = bert_spec(a, n_heads=4)
    assert l2_distance(a, viewed.apply(viewed.match(a, b), b)) < l2_distance(a, b)
    with pytest.raises(InputError, match="5 heads do not divide the attention width 32"):
        bert_spec(a, n_heads=5)
    with pytest.raises(InputError, match="does not: extra"):
        bert_spec({**a, "extra": torch.zeros(2)}, n_heads=4)
    with pytest.raises(InputError, match="not a BERT encoder's"):
        bert_spec({"head.weight": torch.zeros(2, 2)}, n_heads=4)
