"""Builders of model and data files in the formats of issue 7, for tests: a tiny BERT directory
(random weights, its own small vocabulary), archives of it, ONNX exports and text datasets."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

SENTENCES = [
    "the cat sat on the mat",
    "a dog ran in the park",
    "the matrix has a small norm",
    "compute the mean of the values",
    "the model learned a good representation",
    "a cat and a dog play",
    "sort the values in place",
    "the park is green in spring",
]
WORDS = sorted({w for s in SENTENCES for w in s.split()})
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def tiny_bert_dir(
    directory: Path, seed: int = 0, sentence_transformers: bool = False, words: list[str] = WORDS
) -> Path:
    """A 2-block BERT with random weights and a word-level vocabulary of ``words``, saved as
    ``save_pretrained`` writes it (safetensors); optionally with sentence-transformers files
    declaring mean pooling and normalisation."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    vocab = directory / "vocab.txt"
    vocab.write_text("\n".join(SPECIAL + words) + "\n")
    # vocab=, not vocab_file=: transformers 5 ignores the latter and reads every word as [UNK]
    tokenizer = BertTokenizerFast(vocab=str(vocab), do_lower_case=True)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(SPECIAL) + len(words),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(config).eval().save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    if sentence_transformers:
        modules = [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {
                "idx": 1,
                "name": "1",
                "path": "1_Pooling",
                "type": "sentence_transformers.models.Pooling",
            },
            {
                "idx": 2,
                "name": "2",
                "path": "2_Normalize",
                "type": "sentence_transformers.models.Normalize",
            },
        ]
        (directory / "modules.json").write_text(json.dumps(modules))
        (directory / "1_Pooling").mkdir(exist_ok=True)
        (directory / "1_Pooling" / "config.json").write_text(
            json.dumps({"word_embedding_dimension": 32, "pooling_mode_mean_tokens": True})
        )
        (directory / "2_Normalize").mkdir(exist_ok=True)
        (directory / "sentence_bert_config.json").write_text(
            json.dumps({"max_seq_length": 32, "do_lower_case": False})
        )
    return directory


def zip_dir(directory: Path, top: str = "") -> bytes:
    """The files of ``directory`` as a zip (under the folder ``top`` when given)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                zf.write(path, str(Path(top) / path.relative_to(directory)))
    return buffer.getvalue()


def tar_dir(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                tf.add(path, str(path.relative_to(directory)))
    return buffer.getvalue()


def small_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(16, 10),
    ).eval()


def onnx_bytes(model: nn.Module, example: torch.Tensor, dynamic_batch: bool = True) -> bytes:
    buffer = io.BytesIO()
    axes = {"x": {0: "n"}} if dynamic_batch else None
    torch.onnx.export(
        model,
        (example,),
        buffer,
        input_names=["x"],
        output_names=["y"],
        dynamic_axes=axes,
        dynamo=False,
    )
    return buffer.getvalue()


def texts_jsonl(n: int = 40) -> bytes:
    """``n`` short texts with a label (the sentence they vary) and a numeric metadata column."""
    lines = []
    for i in range(n):
        k = i % len(SENTENCES)
        words = SENTENCES[k].split()
        text = " ".join(words[: 3 + i % (len(words) - 2)])
        lines.append(
            json.dumps({"id": f"t{i}", "text": text, "label": f"s{k}", "words": len(text.split())})
        )
    return ("\n".join(lines) + "\n").encode()


def precomputed(n: int, dims=(8, 3), seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {f"layer{k}": rng.standard_normal((n, d)).astype(np.float32) for k, d in enumerate(dims)}


class Hang(nn.Module):
    """A valid model whose forward never returns (TorchScript loops in native code)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        i = 0
        while i >= 0:
            i = (i + 1) % 1000
        return x


class Hungry(nn.Module):
    """A valid model whose forward asks for 256 GiB."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.ones(1 << 36).sum()


def scripted(module: nn.Module) -> bytes:
    """``module`` as TorchScript bytes."""
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(module), buffer)
    return buffer.getvalue()


# ---- tiny random-weight Hugging Face directories of every kind (issue 19) ------------------

IMAGE_SIZE = 16


def word_tokenizer(directory: Path, padding_side: str = "right", pad: bool = True):
    """A word-level tokenizer over :data:`WORDS`, built offline (``tokenizers``), saved in
    ``directory``: with an end token, and a pad token unless ``pad`` is False (GPT-2 has none)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<eos>"] + (["<pad>"] if pad else [])
    vocab = {w: i for i, w in enumerate(specials + WORDS)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        unk_token="<unk>",
        eos_token="<eos>",
        pad_token="<pad>" if pad else None,
        padding_side=padding_side,
        model_max_length=64,
    )
    tokenizer.save_pretrained(directory)
    return tokenizer


def tiny_hf_dir(directory: Path, kind: str, seed: int = 0) -> Path:
    """A tiny random-weight model of ``kind`` (``vit``, ``deit``, ``dinov2``, ``clip-vision``,
    ``resnet``, ``convnext``, ``gpt2``, ``llama``, ``clip``, ``roberta``, ``distilbert``) saved
    with ``save_pretrained`` (safetensors), beside its image processor or word-level
    tokenizer."""
    import transformers as tf

    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    vocab = 3 + len(WORDS)
    small = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2}
    # The numpy/PIL processors: torchvision, which the default ones need, is not installed.
    vit_processor = tf.ViTImageProcessorPil(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    clip_processor = tf.CLIPImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    )
    conv_processor = tf.ConvNextImageProcessorPil(size={"shortest_edge": IMAGE_SIZE})
    if kind == "vit":
        config = tf.ViTConfig(**small, intermediate_size=64, image_size=IMAGE_SIZE, patch_size=4)
        model, processor = tf.ViTModel(config), vit_processor
    elif kind == "deit":  # a class and a distillation token before the patches
        config = tf.DeiTConfig(**small, intermediate_size=64, image_size=IMAGE_SIZE, patch_size=4)
        model, processor = tf.DeiTModel(config), vit_processor
    elif kind == "dinov2":
        config = tf.Dinov2Config(**small, image_size=IMAGE_SIZE, patch_size=4, mlp_ratio=2)
        model, processor = tf.Dinov2Model(config), vit_processor
    elif kind == "clip-vision":
        config = tf.CLIPVisionConfig(
            **small, intermediate_size=64, image_size=IMAGE_SIZE, patch_size=4
        )
        model, processor = tf.CLIPVisionModel(config), clip_processor
    elif kind == "resnet":
        config = tf.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1])
        model, processor = tf.ResNetModel(config), conv_processor
    elif kind == "convnext":
        config = tf.ConvNextConfig(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2)
        model, processor = tf.ConvNextModel(config), conv_processor
    elif kind == "gpt2":
        word_tokenizer(directory, pad=False)
        config = tf.GPT2Config(vocab_size=vocab, n_embd=32, n_layer=2, n_head=2, n_positions=64)
        model, processor = tf.GPT2LMHeadModel(config), None
    elif kind == "llama":
        word_tokenizer(directory, padding_side="left")
        config = tf.LlamaConfig(
            vocab_size=vocab,
            **small,
            intermediate_size=64,
            num_key_value_heads=1,
            max_position_embeddings=64,
        )
        model, processor = tf.LlamaForCausalLM(config), None
    elif kind == "roberta":  # its padding id is <pad>'s: position ids start after it
        word_tokenizer(directory)
        config = tf.RobertaConfig(
            vocab_size=vocab, **small, intermediate_size=64, max_position_embeddings=70,
            pad_token_id=2,
        )  # fmt: skip
        model, processor = tf.RobertaModel(config), None
    elif kind == "distilbert":  # with a BERT tokenizer, as DistilBERT checkpoints ship
        (directory / "vocab.txt").write_text("\n".join(SPECIAL + WORDS) + "\n")
        tf.BertTokenizerFast(vocab=str(directory / "vocab.txt")).save_pretrained(directory)
        config = tf.DistilBertConfig(
            vocab_size=len(SPECIAL) + len(WORDS), dim=32, n_layers=2, n_heads=2, hidden_dim=64
        )
        model, processor = tf.DistilBertModel(config), None
    elif kind == "clip":
        word_tokenizer(directory)
        text = {
            **small,
            "vocab_size": vocab,
            "intermediate_size": 64,
            "max_position_embeddings": 64,
            "eos_token_id": 1,
            "pad_token_id": 2,
        }
        vision = {**small, "intermediate_size": 64, "image_size": IMAGE_SIZE, "patch_size": 4}
        config = tf.CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)
        model, processor = tf.CLIPModel(config), clip_processor
    else:
        raise ValueError(kind)
    model.eval().save_pretrained(directory, safe_serialization=True)
    if processor is not None:
        processor.save_pretrained(directory)
    return directory


def tiny_images(n: int = 12, channels: int = 3, size: int = 20, seed: int = 0) -> np.ndarray:
    """``n`` random 8-bit pictures ``n × size × size × channels`` (uint8)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, size, size, channels), dtype=np.uint8)
