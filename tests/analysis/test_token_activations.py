"""Token- and patch-level activations (issue 19 item 2): the ``tokens`` pooling keeps every
position of a layer as a row with its sample and position. Checked against transformers itself
on tiny random-weight models built from configs (no downloads): each row equals the model's
hidden state at that real token (each text run alone, so without any padding), a vision
transformer's class token is position 0 and its patches follow, a convolutional map's position
is ``h · W + w``; and the mean of a sample's rows is the ``mean`` extraction (a vision
transformer's class and distillation tokens, marked special, left out of both).

Tolerance: 1e-6 times the layer's largest |value| (float32; the two sides pad differently)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch

from analysis.errors import InputError
from analysis.measures.positions import POOLED_REDUCTIONS, pooled
from analysis.models.base import positions_of
from analysis.models.checkpoints import load_checkpoint
from analysis.models.extraction import extract_activations, extract_tokens
from tests.formats import SENTENCES, small_cnn, tiny_bert_dir, tiny_hf_dir, tiny_images, zip_dir

LIMITS = (1000, 10**9)
TEXTS = [*SENTENCES, "cat", "the values of the dog in the park are sorted", "a mat"]


def close(got: np.ndarray, want: np.ndarray) -> None:
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6 * max(1.0, np.abs(want).max()))


def load(tmp_path, directory):
    path = tmp_path / f"{directory.name}.zip"
    path.write_bytes(zip_dir(directory))
    return load_checkpoint(path, "huggingface", filename=path.name, limits=LIMITS)


def alone(directory, texts):
    """Each text's hidden states (``T × d`` per layer) from transformers, run alone."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModel.from_pretrained(directory).eval()
    out = []
    with torch.no_grad():
        for text in texts:
            tokens = tokenizer([text], return_tensors="pt")
            tokens.pop("token_type_ids", None)
            out.append([h[0].numpy() for h in model(**tokens, output_hidden_states=True)[-1]])
    return out


def expected_rows(per_sample: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows, sample and position of ``T_i × d`` states, sample by sample."""
    sample = np.concatenate([np.full(len(s), i) for i, s in enumerate(per_sample)])
    position = np.concatenate([np.arange(len(s)) for s in per_sample])
    return np.concatenate(per_sample), sample, position


@pytest.mark.parametrize(("kind", "batch_size"), [("bert", 4), ("llama", 3), ("gpt2", 5)])
def test_text_rows_are_the_hidden_states_at_the_real_tokens(tmp_path, kind, batch_size):
    """BERT pads on the right, the Llama tokenizer on the left, GPT-2 pads with its end
    token: no padding token is ever a row, and positions count a text's real tokens."""
    if kind == "bert":
        directory = tiny_bert_dir(tmp_path / kind)
    else:
        directory = tiny_hf_dir(tmp_path / kind, kind)
    model = load(tmp_path, directory)
    per_text = alone(directory, TEXTS)
    names = [f"hidden.{k}" for k in range(len(per_text[0]))]
    x = np.array(TEXTS)
    got = extract_tokens(model, x, names, batch_size=batch_size, device="cpu")
    pooled_here = {
        pooling: extract_activations(model, x, names, pooling, batch_size=batch_size, device="cpu")
        for pooling in ("mean", "last")
    }
    for k, name in enumerate(names):
        rows, sample, position = expected_rows([s[k] for s in per_text])
        assert got[name].positional
        np.testing.assert_array_equal(got[name].sample, sample)
        np.testing.assert_array_equal(got[name].position, position)
        assert not got[name].special.any()  # a text's mean counts every real token
        close(got[name].values, rows)
        assert got[name].values.dtype == np.float32
        # Pooled on the fly from the rows: the ``mean`` and ``last`` extractions.
        for pooling in ("mean", "last"):
            close(
                pooled(got[name].values, got[name].sample, len(x), pooling),
                pooled_here[pooling][name],
            )


@pytest.mark.parametrize(("kind", "vit"), [("vit", True), ("convnext", False)])
def test_image_rows_are_every_token_or_map_position(tmp_path, kind, vit):
    from PIL import Image
    from transformers import AutoImageProcessor, AutoModel

    directory = tiny_hf_dir(tmp_path / kind, kind)
    model = load(tmp_path, directory)
    pictures = tiny_images(5)
    x = (pictures.transpose(0, 3, 1, 2) / 255).astype(np.float32)
    processor = AutoImageProcessor.from_pretrained(directory, use_fast=False)
    reference = AutoModel.from_pretrained(directory).eval()
    pixels = processor(images=[Image.fromarray(p) for p in pictures], return_tensors="pt")
    with torch.no_grad():
        hidden = reference(**pixels, output_hidden_states=True).hidden_states
    names = [f"hidden.{k}" for k in range(len(hidden))]
    got = extract_tokens(model, x, names, batch_size=2, device="cpu")
    for k, states in enumerate(hidden):
        # A ViT's n × T × d: the class token is position 0, the patches 1 … T - 1; a conv
        # map's n × C × H × W: position h · W + w, each row the C channels there.
        per_sample = states.numpy() if vit else states.flatten(2).transpose(1, 2).numpy()
        rows, sample, position = expected_rows(list(per_sample))
        close(got[names[k]].values, rows)
        np.testing.assert_array_equal(got[names[k]].sample, sample)
        np.testing.assert_array_equal(got[names[k]].position, position)
    if vit:
        first = got["hidden.1"]
        close(first.values[first.position == 0], hidden[1][:, 0].numpy())


@pytest.mark.parametrize(("kind", "prefix"), [("vit", 1), ("deit", 2), ("clip-vision", 1)])
def test_a_vision_transformers_mean_is_the_same_stored_or_pooled_on_the_fly(tmp_path, kind, prefix):
    """The ``mean`` extraction averages the patches (no class token, no DeiT distillation
    token): those rows are marked special, the mean pooled on the fly skips them, so the two
    agree; ``first`` is the class token, the ``cls`` extraction. Checked against transformers'
    own states: the patches' mean after the ``prefix`` tokens."""
    from PIL import Image
    from transformers import AutoImageProcessor, AutoModel

    directory = tiny_hf_dir(tmp_path / kind, kind)
    model = load(tmp_path, directory)
    pictures = tiny_images(5)
    x = (pictures.transpose(0, 3, 1, 2) / 255).astype(np.float32)
    names = ["hidden.0", "hidden.2"]
    got = extract_tokens(model, x, names, batch_size=2, device="cpu")
    means = extract_activations(model, x, names, "mean", batch_size=2, device="cpu")
    cls = extract_activations(model, x, names, "cls", batch_size=2, device="cpu")
    processor = AutoImageProcessor.from_pretrained(directory, use_fast=False)
    reference = AutoModel.from_pretrained(directory).eval()
    pixels = processor(images=[Image.fromarray(p) for p in pictures], return_tensors="pt")
    with torch.no_grad():
        hidden = reference(**pixels, output_hidden_states=True).hidden_states
    for name in names:
        rows = got[name]
        np.testing.assert_array_equal(rows.special, rows.position < prefix)
        on_the_fly = pooled(rows.values, rows.sample, len(x), "mean", rows.special)
        close(on_the_fly, means[name])
        close(on_the_fly, hidden[int(name[7:])][:, prefix:].mean(1).numpy())
        close(pooled(rows.values, rows.sample, len(x), "first", rows.special), cls[name])
        # A set stored before rows were marked (no ``special``) averages every row.
        everything = pooled(rows.values, rows.sample, len(x), "mean")
        close(everything, hidden[int(name[7:])].mean(1).numpy())


def test_torch_modules_keep_conv_positions_and_one_row_per_sample_of_flat_outputs():
    model = small_cnn()
    x = np.random.default_rng(0).standard_normal((7, 1, 5, 5)).astype(np.float32)
    got = extract_tokens(model, x, ["0", "4"], batch_size=3, device="cpu")
    with torch.no_grad():
        conv = model[0](torch.from_numpy(x))  # 7 × 4 × 5 × 5
    close(got["0"].values, conv.flatten(2).transpose(1, 2).reshape(-1, 4).numpy())
    np.testing.assert_array_equal(got["0"].position, np.tile(np.arange(25), 7))
    np.testing.assert_array_equal(got["0"].sample, np.repeat(np.arange(7), 25))
    assert got["0"].positional and not got["4"].positional
    np.testing.assert_array_equal(got["4"].sample, np.arange(7))
    np.testing.assert_array_equal(got["4"].position, np.zeros(7))
    with pytest.raises(InputError, match="extract_tokens stores them"):
        extract_activations(model, x, ["0"], "tokens", device="cpu")


def test_token_rows_peak_at_about_their_own_size():
    """Each batch's values are spilled to a file and read back into one array: the peak
    allocation (numpy's, as tracemalloc sees it; the model's torch tensors are one batch)
    stays within 1.3 times the rows returned, where holding every batch and then copying them
    in order peaked at twice. 25,600 rows of 256 float32 (26 MB), in batches of 5 samples."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 256, 1))
    x = np.random.default_rng(0).standard_normal((100, 1, 16, 16)).astype(np.float32)
    tracemalloc.start()
    try:
        got = extract_tokens(model, x, ["0"], batch_size=5, device="cpu")["0"]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    size = sum(a.nbytes for a in (got.values, got.sample, got.position, got.special))
    assert got.values.shape == (100 * 256, 256)
    assert peak < 1.3 * size, f"peak {peak / 2**20:.1f} MiB for {size / 2**20:.1f} MiB of rows"
    with torch.no_grad():
        conv = model(torch.from_numpy(x)).flatten(2).transpose(1, 2).reshape(-1, 256).numpy()
    close(got.values, conv)


def test_pooling_on_the_fly_refuses_a_sample_without_rows():
    values = np.arange(6, dtype=np.float32).reshape(3, 2)
    np.testing.assert_array_equal(pooled(values, np.array([0, 0, 1]), 2, "first"), [[0, 1], [4, 5]])
    np.testing.assert_array_equal(pooled(values, np.array([0, 0, 1]), 2, "last"), [[2, 3], [4, 5]])
    with pytest.raises(InputError, match="sample 1 has no stored positions"):
        pooled(values, np.array([0, 0, 2]), 3, "mean")


def test_the_pooled_readings_say_what_they_take_of_each_modality_without_brackets():
    """Notes quote these texts inside brackets (a projection's "pooling tokens (…)"), so they
    hold none; the mean's names what it takes of texts, conv maps and vision transformers
    alike rather than only the ViT case."""
    for name, text in POOLED_REDUCTIONS.items():
        assert not set("()[]") & set(text), name
    for taken in ("every token of a text", "convolutional map", "only the patches"):
        assert taken in POOLED_REDUCTIONS["mean"]


def test_positions_of_skips_masked_tokens_and_counts_real_ones():
    t = torch.arange(2 * 4 * 1, dtype=torch.float32).reshape(2, 4, 1)
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 0]])  # left and right padding
    found = positions_of(t, mask)
    assert found.values[:, 0].tolist() == [2.0, 3.0, 4.0, 5.0, 6.0]
    assert found.sample.tolist() == [0, 0, 1, 1, 1]
    assert found.position.tolist() == [0, 1, 0, 1, 2]
