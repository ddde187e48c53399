"""Stitching Hugging Face text encoders at their token sequences (analysis/stitching.py): the
states are the real tokens transformers computes, B's own states put back reproduce B exactly,
a cell agrees with scikit-learn's least squares over the training tokens, and models that read
other tokens are refused in one sentence. Tiny random-weight BERTs built here (no downloads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.linear_model import LinearRegression
from transformers import BertConfig, BertForSequenceClassification, BertModel, BertTokenizerFast

from analysis.errors import InputError
from analysis.models.hf import HuggingFaceEncoder, load_directory
from analysis.stitching import (
    fit_linear_map,
    token_states,
    token_stitched_states,
    token_stitching_matrix,
)
from tests.formats import SENTENCES, SPECIAL, WORDS, tiny_bert_dir

LAYERS = ["hidden.0", "hidden.1", "hidden.2"]


def tiny_classifier_dir(directory: Path, seed: int) -> Path:
    """A 2-block BERT sequence classifier (2 classes) with random weights, as tiny_bert_dir's
    encoder but with its head: config.json declares BertForSequenceClassification."""
    tiny_bert_dir(directory, seed=seed)  # the vocabulary and tokenizer files
    torch.manual_seed(seed)
    config = BertConfig.from_pretrained(directory)
    config.num_labels = 2
    BertForSequenceClassification(config).eval().save_pretrained(directory, safe_serialization=True)
    return directory


@pytest.fixture(scope="module")
def directories(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bert")
    return {
        "a": tiny_bert_dir(root / "a", seed=0),
        "b": tiny_bert_dir(root / "b", seed=1),
        # B's weights with the vocabulary in another order: the words read as other token ids
        "other": tiny_bert_dir(root / "other", seed=1, words=WORDS[::-1]),
        "classifier": tiny_classifier_dir(root / "classifier", seed=2),
    }


@pytest.fixture(scope="module")
def encoders(directories) -> dict[str, HuggingFaceEncoder]:
    loaded = {name: load_directory(path) for name, path in directories.items()}
    assert all(isinstance(model, HuggingFaceEncoder) for model in loaded.values())
    ids = loaded["a"].tokenizer("the cat sat")["input_ids"]
    assert ids[1:-1] == [len(SPECIAL) + WORDS.index(w) for w in ("the", "cat", "sat")]
    return loaded  # type: ignore[return-value]


@pytest.fixture(scope="module")
def texts() -> tuple[np.ndarray, np.ndarray]:
    """120 texts of 2 to 9 words drawn from one of the 8 sentences; the label is which half of
    the sentences it was drawn from."""
    rng = np.random.default_rng(0)
    words = [s.split() for s in SENTENCES]
    group = rng.integers(0, 8, 120)
    drawn = [" ".join(rng.choice(words[g], size=rng.integers(2, 10))) for g in group]
    return np.array(drawn), (group >= 4).astype(np.int64)


def test_token_states_are_each_texts_real_tokens(directories, encoders, texts):
    """Batched and padded by the library, or one text at a time by transformers itself: the
    same rows, one per real token."""
    x, _ = texts
    states = token_states(encoders["b"], x[:30], LAYERS, torch.device("cpu"))
    model = BertModel.from_pretrained(directories["b"]).eval()
    tokenizer = BertTokenizerFast.from_pretrained(directories["b"])
    for i in (0, 7, 29):
        with torch.no_grad():
            alone = model(**tokenizer(str(x[i]), return_tensors="pt"), output_hidden_states=True)
        for k, layer in enumerate(LAYERS):
            expected = alone.hidden_states[k][0].numpy()
            rows = states.of(layer, np.array([i]))
            assert rows.shape == expected.shape == (len(x[i].split()) + 2, 32)
            np.testing.assert_allclose(rows, expected, rtol=0, atol=1e-5)


def test_b_s_own_states_put_back_reproduce_b_exactly(encoders, texts):
    x, _ = texts
    b = encoders["b"]
    held = x[::4]
    states = token_states(b, held, LAYERS, torch.device("cpu"))
    for layer in LAYERS:
        stitched = token_stitched_states(b, layer, held, states.of(layer, np.arange(len(held))))
        assert np.array_equal(stitched.rows["hidden.2"], states.rows["hidden.2"]), layer


@pytest.fixture(scope="module")
def cross(encoders, texts):
    x, y = texts
    return token_stitching_matrix(encoders["a"], encoders["b"], x, y, seed=2, device="cpu")


def test_a_cell_by_hand_with_scikit_learn(encoders, texts, cross):
    """A's hidden.1 → B's hidden.2: scikit-learn's least squares over the real tokens of the
    training texts, applied to every real token of the held-out ones, B run on from there and
    read by a least-squares readout of B's own mean-pooled last state."""
    x, y = texts
    result = cross
    train, test = np.flatnonzero(~result.test), np.flatnonzero(result.test)
    a = token_states(encoders["a"], x, ["hidden.1"], torch.device("cpu"))
    b = token_states(encoders["b"], x, ["hidden.1", "hidden.2"], torch.device("cpu"))
    rows_a, rows_b = a.of("hidden.1", train), b.of("hidden.2", train)
    assert len(rows_a) == sum(len(t.split()) + 2 for t in x[train])
    reference = LinearRegression().fit(rows_a.astype(np.float64), rows_b.astype(np.float64))
    fitted = fit_linear_map(rows_a, rows_b)
    np.testing.assert_allclose(fitted.weight, reference.coef_.T, rtol=0, atol=1e-8)
    np.testing.assert_allclose(fitted.bias, reference.intercept_, rtol=0, atol=1e-8)

    mapped = reference.predict(a.of("hidden.1", test).astype(np.float64))
    stitched = token_stitched_states(encoders["b"], "hidden.2", x[test], mapped, device="cpu")
    readout = fit_linear_map(b.pooled("hidden.2")[train], np.eye(2)[y[train]])
    scores = readout.apply(stitched.pooled("hidden.2"))
    i, j = result.layers_a.index("hidden.1"), result.layers_b.index("hidden.2")
    fitted_matrix = result.matrices["fitted"]
    assert fitted_matrix.accuracy[i][j] == np.mean(scores.argmax(1) == y[test])
    target = b.of("hidden.2", test).astype(np.float64)
    sst = np.sum((target - b.of("hidden.2", train).mean(0, dtype=np.float64)) ** 2)
    r2 = 1 - np.sum((mapped - target) ** 2) / sst
    assert fitted_matrix.r2[i][j] == pytest.approx(r2, abs=1e-8)
    assert "one map for every token, fitted over the" in fitted_matrix.estimator
    assert result.warnings[0].startswith("B is a bare encoder: its accuracy (alone and stitched)")


def test_the_matrix_shape_and_the_zero_shot_cells(cross):
    result = cross
    assert result.layers_a == result.layers_b == LAYERS
    assert result.dims_a == result.dims_b == [32, 32, 32]
    assert (result.n_train, result.n_test) == (96, 24)
    relative = result.matrices["relative"]
    assert all(v is None for row in relative.accuracy for v in row)
    assert relative.refused[0][0] == (
        "the zero-shot variant stitches per-sample vectors only: relative representations of "
        "tokens are not defined"
    )


def test_self_stitching_reproduces_b_s_accuracy_exactly(encoders, texts):
    x, y = texts
    b = encoders["b"]
    result = token_stitching_matrix(b, b, x, y, methods=["fitted"], device="cpu")
    fitted = result.matrices["fitted"]
    for i in range(3):
        assert fitted.accuracy[i][i] == result.accuracy_b
        assert fitted.r2[i][i] == pytest.approx(1.0, abs=1e-6)
    assert result.accuracy_a == result.accuracy_b  # the same model, the same readout


def test_a_b_with_a_classification_head_is_read_by_its_logits(directories, encoders, texts):
    """B a sequence classifier: B alone's accuracy is the argmax of the logits transformers
    gives text by text, its own layers stitched into themselves keep it exactly, and the
    warning says the head reads the classes."""
    x, y = texts
    classifier = encoders["classifier"]
    assert classifier.classifier is not None and encoders["b"].classifier is None
    result = token_stitching_matrix(
        encoders["a"], classifier, x, y, ["hidden.1"], methods=["fitted"], device="cpu"
    )
    model = BertForSequenceClassification.from_pretrained(directories["classifier"]).eval()
    tokenizer = BertTokenizerFast.from_pretrained(directories["classifier"])
    test = np.flatnonzero(result.test)
    with torch.no_grad():
        logits = np.stack(
            [model(**tokenizer(str(x[i]), return_tensors="pt")).logits[0].numpy() for i in test]
        )
    assert result.accuracy_b == np.mean(logits.argmax(1) == y[test])
    assert result.n_classes == 2
    assert result.warnings[0].startswith("B's own classification head scores the classes")
    itself = token_stitching_matrix(
        classifier, classifier, x, y, methods=["fitted"], seed=1, device="cpu"
    )
    fitted = itself.matrices["fitted"]
    assert [fitted.accuracy[i][i] for i in range(3)] == [itself.accuracy_b] * 3
    assert itself.accuracy_a == itself.accuracy_b
    assert any("reads only the first token of its hidden.2" in w for w in itself.warnings)
    earlier = token_stitching_matrix(
        encoders["a"], classifier, x, y, ["hidden.1"], ["hidden.1"], methods=["fitted"]
    )
    assert not any("reads only the first token" in w for w in earlier.warnings)
    assert itself.warnings[0].endswith("; A alone by its own head")


def refusal(call) -> str:
    with pytest.raises(InputError) as err:
        call()
    message = str(err.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_refusals(encoders, texts):
    x, y = texts
    a, b = encoders["a"], encoders["other"]
    assert refusal(lambda: token_stitching_matrix(a, b, x, y, device="cpu")) == (
        "A and B read text 0 as different tokens, so no token of A's has a partner in B: "
        "token-level stitching needs both models to read the same token ids"
    )
    b = encoders["b"]
    assert "is not a hidden state; token stitching maps hidden states: hidden.0" in refusal(
        lambda: token_stitching_matrix(a, b, x, y, ["embeds"], device="cpu")
    )
    assert "token stitching reads texts" in refusal(
        lambda: token_stitching_matrix(a, b, np.zeros((120, 3)), y, device="cpu")
    )
    assert "one integer label ≥ 0 per text (120)" in refusal(
        lambda: token_stitching_matrix(a, b, x, y - 1, device="cpu")
    )
