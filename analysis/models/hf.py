"""Hugging Face model directories (transformers, sentence-transformers), loaded offline.

An upload is a ``.zip`` or ``.tar(.gz)`` of the directory ``save_pretrained`` writes: a
``config.json``, the tokenizer or image processor files and the weights. Weights are read from
``.safetensors`` only: a ``pytorch_model.bin`` is a pickle, and unpickling an untrusted file
can run code, so a directory with no other weights is refused. Custom model code
(``trust_remote_code``) is never run, and nothing is fetched from the network.

What the directory is comes from its ``config.json`` (:func:`analysis.models.hf_kinds.model_kind`):

- a text encoder (BERT-like, :class:`HuggingFaceEncoder`) or a decoder language model
  (GPT-2, Llama, …: :class:`DecoderModel`) reads texts;
- an image encoder (ViT, DINOv2, DeiT, CLIP's vision tower, ResNet, ConvNeXt:
  :class:`ImageEncoder`) reads images, prepared by the directory's own image processor;
- a dual encoder (CLIP: :class:`DualEncoder`) reads either, each with its own tower.

Layers are the hidden states the model returns (``output_hidden_states=True``): ``hidden.0``
is the embedding output and ``hidden.k`` the output of block (or stage) k. Token sequences are
pooled over the attention mask: ``mean`` averages the real tokens, ``cls`` takes the first,
``last`` the last real token (left or right padding). A vision transformer pools its class
token (``cls``) or the mean of its patch tokens (``mean``, without the class token); a
convolutional map its mean over H × W (``mean``) or all of it (``flatten``). ``tokens`` keeps
every real token (a vision transformer's every token, the class token at position 0, it and
DeiT's distillation token marked special: the rows ``mean`` leaves out; a convolutional map's
every H × W position) as a row with its sample and position
(:class:`analysis.models.base.Positions`). A
sentence-transformers directory (``modules.json``) adds the layer ``sentence_embedding``: the
pooling its ``1_Pooling/config.json`` declares (and the normalisation its modules list),
whatever pooling the request names.

Texts run longest first (:meth:`HuggingFaceEncoder.run_order`), and each batch is split into
buckets of similar token counts, each padded to its own longest text (:func:`buckets`): the
padding a batch of mixed lengths would waste is not computed. Each row is put back in its
place, so the order changes nothing but the cost.
"""

from __future__ import annotations

import inspect
import json
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from analysis.data.archives import single_root, unpack
from analysis.errors import InputError
from analysis.models import hf_kinds
from analysis.models.base import Model, Positions, Recorder, positions_of

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedTokenizerBase

SENTENCE_EMBEDDING = "sentence_embedding"
EMBEDS = "embeds"
"""A dual encoder's shared space: the projected text or image embedding, as the sample is."""
DEFAULT_MAX_TOKENS = 512
TOKEN_POOLINGS = hf_kinds.POOLINGS["text"]
SAFETENSORS_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
PICKLED_WEIGHTS = "pytorch_model.bin"
DECLARED_POOLINGS = {  # sentence-transformers' 1_Pooling/config.json keys → our poolings
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_cls_token": "cls",
    "pooling_mode_lasttoken": "last",
}
PADDING_SLACK = 1.1
"""A bucket of texts grows while its padded token count stays within this factor of its real
one (:func:`buckets`)."""
OPTIONS: dict[str, Any] = {"local_files_only": True, "trust_remote_code": False}


def load_huggingface(path: str | Path, filename: str, max_files: int, max_bytes: int) -> Model:
    """Unpack an archive of a model directory and load it as the model its ``config.json``
    declares (see the module's docstring)."""
    with tempfile.TemporaryDirectory(prefix="replens-hf-") as tmp:
        unpack(path, filename, Path(tmp), max_files, max_bytes)
        return load_directory(single_root(Path(tmp), "config.json"))


def load_directory(directory: Path) -> Model:
    """The model of a ``save_pretrained`` directory, by the kind its ``config.json`` names."""
    config = _json(directory / "config.json")
    if not isinstance(config, dict):
        raise InputError("not a loadable Hugging Face model directory: no config.json")
    kind = hf_kinds.model_kind(config)
    loaders: dict[str, Callable[[Path], Model]] = {
        "text": HuggingFaceEncoder,
        "decoder": DecoderModel,
        "image": ImageEncoder,
        "dual": DualEncoder,
    }
    return loaders[kind](directory)


def mask_pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor | Positions:
    """``batch × T × d`` token states → ``batch × d``, counting only tokens where ``mask``
    is 1 (left or right padding); ``tokens``: every real token as a row (:class:`Positions`,
    positions counted over the real tokens)."""
    if pooling == "tokens":
        return positions_of(hidden, mask)
    if pooling == "mean":
        m = mask.to(hidden.dtype).unsqueeze(1)  # batch × 1 × T: one matrix product per text
        return torch.bmm(m, hidden).squeeze(1) / m.sum(2).clamp(min=1e-9)
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "last":
        positions = torch.arange(mask.shape[1], device=mask.device)
        last = (mask * positions).argmax(1)
        return hidden[torch.arange(len(hidden), device=hidden.device), last]
    raise _not_for_tokens(pooling)


def _not_for_tokens(pooling: str) -> InputError:
    return InputError(
        f"pooling {pooling!r} does not apply to token sequences of different lengths; "
        f"choose {', '.join(TOKEN_POOLINGS)}"
    )


def buckets(lengths: Sequence[int], slack: float = PADDING_SLACK) -> list[np.ndarray]:
    """Split texts into buckets of similar token counts: the positions of ``lengths`` sorted
    longest first, cut where padding a bucket to its longest would cost more than ``slack``
    times its real tokens. Every position is in exactly one bucket."""
    counts = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-counts, kind="stable")
    sorted_counts = counts[order]
    found, start = [], 0
    while start < len(order):
        longest, real, end = int(sorted_counts[start]), 0, start
        while end < len(order) and (end - start + 1) * longest <= slack * (
            real + int(sorted_counts[end])
        ):
            real += int(sorted_counts[end])
            end += 1
        end = max(end, start + 1)
        found.append(order[start:end])
        start = end
    return found


class TextTokens:
    """A tokenizer with the limits a model reads texts under: truncation at ``max_tokens``,
    the model's forward arguments only, and a pad token (decoders often declare none: the
    end-of-text token pads, masked out)."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        max_tokens: int,
        forward: Callable[..., Any],
    ) -> None:
        if tokenizer.pad_token is None:
            if tokenizer.eos_token is None:
                raise InputError("the tokenizer declares neither a padding nor an end token")
            tokenizer.pad_token = tokenizer.eos_token
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.accepted = set(inspect.signature(forward).parameters)
        self.slack = PADDING_SLACK

    def lengths(self, texts: Sequence[str]) -> list[int]:
        return [len(ids) for ids in self._encode(texts)["input_ids"]]

    def batches(
        self, texts: Sequence[str], device: torch.device
    ) -> Iterator[tuple[np.ndarray, dict[str, torch.Tensor]]]:
        """``(rows, tokens)`` per bucket of similar lengths (:func:`buckets`), each padded to
        its own longest text; ``rows`` are the bucket's positions in ``texts``."""
        encoded = self._encode(texts)
        keys = [k for k in encoded if k in self.accepted]
        for rows in buckets([len(ids) for ids in encoded["input_ids"]], self.slack):
            padded = self.tokenizer.pad(
                {k: [encoded[k][i] for i in rows] for k in keys}, return_tensors="pt"
            )
            yield rows, {k: v.to(device) for k, v in padded.items()}

    def _encode(self, texts: Sequence[str]) -> Any:
        return self.tokenizer(
            [str(s) for s in texts], truncation=True, max_length=self.max_tokens, verbose=False
        )


def in_place(
    parts: list[tuple[np.ndarray, dict[str, torch.Tensor | Positions]]], n: int
) -> dict[str, torch.Tensor | Positions]:
    """``{layer: n × d}`` from each bucket's ``(rows, {layer: rows × d})``, rows in place;
    a layer kept at every position: the buckets' rows, each sample its place in the batch."""
    out: dict[str, torch.Tensor] = {}
    positions: dict[str, list[Positions]] = {}
    for rows, pooled in parts:
        index = torch.as_tensor(rows)
        for name, value in pooled.items():
            if isinstance(value, Positions):
                positions.setdefault(name, []).append(value.of_rows(index))
                continue
            if name not in out:
                out[name] = value.new_empty((n, *value.shape[1:]))
            out[name][index.to(value.device)] = value
    return {**out, **{name: Positions.joined(found) for name, found in positions.items()}}


class _Directory(Model):
    """What every kind of directory shares: the config, the weights, the device, layers named
    ``hidden.k`` and a layer tree whose nodes say what they read. ``model`` is the bare model
    the layers are read from; ``classifier`` the sequence classifier around it (its head's
    logits), where the kind takes one (:attr:`classifies`) and ``config.json``'s
    ``architectures`` declares a ``…ForSequenceClassification``, else None."""

    classifies = False

    def __init__(self, directory: Path) -> None:
        from transformers import AutoConfig
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
        try:
            self.config = AutoConfig.from_pretrained(directory, **OPTIONS)
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as err:
            raise InputError.caused_by("not a loadable Hugging Face model directory", err) from None
        loaded = _load_weights(directory, self.config, self.classifies).eval()
        base = loaded.base_model  # a bare model's is itself
        assert isinstance(base, torch.nn.Module)
        self.model: torch.nn.Module = base
        self.classifier: torch.nn.Module | None = None if loaded is base else loaded
        self.device = torch.device("cpu")

    def to(self, device: torch.device) -> _Directory:
        self.device = torch.device(device)
        (self.classifier or self.model).to(self.device)
        return self

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def default_layers(self) -> list[str]:
        return self.capturable_layers()

    def _check_layers(self, layers: list[str]) -> None:
        available = set(self.capturable_layers())
        missing = [name for name in layers if name not in available]
        if missing:
            raise InputError(f"model has no layer(s) {', '.join(missing)}")


def _hidden_nodes(
    model: torch.nn.Module, n_hidden: int, reads: str, family: str, prefix: str = ""
) -> list[dict]:
    """Layer-tree nodes of ``n_hidden`` hidden states, the blocks' types where the model's
    repeated blocks (or stages) are found one per hidden state after the first; each says
    what it reads and the poolings it takes (``family``'s, :data:`hf_kinds.POOLINGS`)."""
    blocks = _blocks(model)
    nodes = []
    for k in range(n_hidden):
        module = blocks[k - 1] if k and len(blocks) == n_hidden - 1 else None
        nodes.append(
            {
                "name": f"{prefix}hidden.{k}",
                "type": type(module).__name__ if module is not None else "embeddings",
                "parameters": sum(p.numel() for p in module.parameters()) if module else 0,
                "children": [],
                "reads": [reads],
                "poolings": list(hf_kinds.POOLINGS[family]),
            }
        )
    return nodes


def _hidden_count(config: PretrainedConfig) -> int:
    """The number of hidden states a model returns: the embedding output and one per block
    (transformers) or per stage (convolutional networks)."""
    blocks = getattr(config, "num_hidden_layers", None)
    if blocks is None:
        blocks = len(config.depths)
    return int(blocks) + 1


def _layer_index(name: str) -> int:
    return int(name.rsplit(".", 1)[1])


class HuggingFaceEncoder(_Directory):
    """A transformers text encoder with its tokenizer, reading texts."""

    inputs = "text"
    what = "text encoders"
    family = "text"
    classifies = True

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        tokenizer = _tokenizer(directory)
        self.tokens = TextTokens(tokenizer, _max_tokens(directory, tokenizer), self.model.forward)
        self.tokenizer = tokenizer
        self.max_tokens = self.tokens.max_tokens
        self.sentence = _sentence_head(directory)
        self.n_hidden = _hidden_count(self.config)

    def blocks(self) -> list[torch.nn.Module]:
        """The repeated blocks: ``hidden.k`` is block k's output (k ≥ 1) where there is one
        block per hidden state after the embeddings'."""
        return _blocks(self.model)

    def capturable_layers(self) -> list[str]:
        extra = [SENTENCE_EMBEDDING] if self.sentence else []
        return [f"hidden.{k}" for k in range(self.n_hidden)] + extra

    def layer_tree(self) -> list[dict]:
        tree = _hidden_nodes(self.model, self.n_hidden, hf_kinds.TEXT, self.family)
        if self.sentence:
            kind = self.sentence["pooling"] + (", normalised" if self.sentence["normalize"] else "")
            tree.append(
                {
                    "name": SENTENCE_EMBEDDING,
                    "type": f"pooling ({kind})",
                    "parameters": 0,
                    "children": [],
                    "reads": [hf_kinds.TEXT],
                }
            )
        return tree

    def token_counts(self, texts: np.ndarray) -> np.ndarray:
        return np.asarray(self.tokens.lengths([str(s) for s in texts]), dtype=np.int64)

    def run_order(self, x: np.ndarray) -> np.ndarray | None:
        """Longest texts first, by token count: a batch then holds texts of similar lengths,
        split into few buckets (sentence-transformers' encode sorts the same way); the longest
        batch, which needs the most memory, runs first."""
        return np.argsort(-self.token_counts(x), kind="stable")

    def recorder(self, layers: list[str], pooling: str) -> Recorder:
        self._check_layers(layers)
        if any(name != SENTENCE_EMBEDDING for name in layers):
            self._check_pooling(pooling)
        head = self.sentence  # offered as a layer only where the directory declares one

        def run(texts: list[str]) -> dict[str, torch.Tensor | Positions]:
            parts = []
            for rows, tokens in self.tokens.batches(texts, self.device):
                hidden = self._hidden_states(tokens)
                mask = tokens["attention_mask"]
                pooled: dict[str, torch.Tensor | Positions] = {}
                for name in layers:
                    if name == SENTENCE_EMBEDDING and head is not None:
                        vector = mask_pool(hidden[-1], mask, head["pooling"])
                        assert isinstance(vector, torch.Tensor)  # mean, cls or last
                        pooled[name] = F.normalize(vector, dim=1) if head["normalize"] else vector
                    else:
                        pooled[name] = mask_pool(hidden[_layer_index(name)], mask, pooling)
                parts.append((rows, pooled))
            return in_place(parts, len(texts))

        return run

    def _check_pooling(self, pooling: str) -> None:
        if self.family == "text" and pooling not in TOKEN_POOLINGS:
            raise _not_for_tokens(pooling)
        hf_kinds.check_pooling(self.family, pooling, self.what)

    def _hidden_states(self, tokens: dict[str, torch.Tensor]) -> Sequence[torch.Tensor]:
        return self.model(**tokens, output_hidden_states=True).hidden_states


class DecoderModel(HuggingFaceEncoder):
    """A decoder language model (GPT-2, Llama, …) reading texts under its causal mask.
    Positions count real tokens only (``position_ids`` from the attention mask), so a text's
    states do not depend on the padding beside it, on the left or on the right."""

    what = "decoder language models (pool by the last real token or the mean)"
    family = "decoder"
    classifies = False

    def _hidden_states(self, tokens: dict[str, torch.Tensor]) -> Sequence[torch.Tensor]:
        extra = {}
        if "position_ids" in self.tokens.accepted:
            positions = tokens["attention_mask"].long().cumsum(1) - 1
            extra["position_ids"] = positions.clamp(min=0)
        return self.model(**tokens, **extra, output_hidden_states=True).hidden_states


class ImagePixels:
    """The directory's own image processor (the slow, numpy one: no torchvision), fed the
    dataset's ``n × C × H × W`` images in [0, 1] as the 8-bit RGB pictures they were read
    from (grey ones repeated to three channels where the model reads three)."""

    def __init__(self, directory: Path, channels: int) -> None:
        from transformers import AutoImageProcessor

        try:
            self.processor = AutoImageProcessor.from_pretrained(
                directory, use_fast=False, **OPTIONS
            )
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as err:
            raise InputError.caused_by(
                "the model directory has no usable image processor (preprocessor_config.json)",
                err,
            ) from None
        self.channels = channels

    def __call__(self, images: torch.Tensor, device: torch.device) -> torch.Tensor:
        if images.ndim != 4:
            raise InputError(
                f"this model reads images (n × C × H × W); the samples have shape "
                f"{tuple(images.shape[1:])}"
            )
        pictures = np.rint(images.detach().cpu().numpy().clip(0, 1) * 255).astype(np.uint8)
        if pictures.shape[1] == 1 and self.channels == 3:
            pictures = np.repeat(pictures, 3, axis=1)
        prepared = self.processor(
            images=list(pictures.transpose(0, 2, 3, 1)),
            input_data_format="channels_last",
            return_tensors="pt",
        )
        return prepared["pixel_values"].to(device=device, dtype=torch.float32)


def _image_family(config: PretrainedConfig) -> tuple[str, int]:
    """``("vit", tokens before the patches)`` or ``("convnet", 0)``."""
    model_type = str(config.model_type)
    if model_type in hf_kinds.VISION_TRANSFORMERS:
        return "vit", hf_kinds.VISION_TRANSFORMERS[model_type]
    return "convnet", 0


def image_pool(
    hidden: torch.Tensor, family: str, prefix: int, pooling: str
) -> torch.Tensor | Positions:
    """A vision transformer's ``batch × T × d`` states: the class token (``cls``) or the mean of
    the patches after the ``prefix`` tokens (``mean``); a convolutional ``batch × C × H × W``
    map: its mean over H × W (``mean``) or all of it (``flatten``). ``tokens`` keeps every
    token (the class token first) or every H × W position as a row
    (:func:`analysis.models.base.positions_of`), a ViT's ``prefix`` tokens marked special:
    the rows ``mean`` leaves out."""
    if pooling == "tokens":
        return positions_of(hidden, prefix=prefix if family == "vit" else 0)
    if family == "vit":
        return hidden[:, 0] if pooling == "cls" else hidden[:, prefix:].mean(1)
    return hidden.flatten(2).mean(2) if pooling == "mean" else hidden.flatten(1)


class ImageEncoder(_Directory):
    """A transformers image encoder (ViT, DINOv2, DeiT, CLIP's vision tower, ResNet,
    ConvNeXt) with its image processor, reading images."""

    inputs = "image"

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.pixels = ImagePixels(directory, int(getattr(self.config, "num_channels", 3)))
        self.family, self.prefix = _image_family(self.config)
        self.n_hidden = _hidden_count(self.config)

    def capturable_layers(self) -> list[str]:
        return [f"hidden.{k}" for k in range(self.n_hidden)]

    def layer_tree(self) -> list[dict]:
        return _hidden_nodes(self.model, self.n_hidden, hf_kinds.IMAGE, self.family)

    def recorder(self, layers: list[str], pooling: str) -> Recorder:
        self._check_layers(layers)
        what = "vision transformers" if self.family == "vit" else "convolutional image models"
        hf_kinds.check_pooling(self.family, pooling, what)

        def run(images: torch.Tensor) -> dict[str, torch.Tensor | Positions]:
            pixels = self.pixels(images, self.device)
            hidden = self.model(pixel_values=pixels, output_hidden_states=True).hidden_states
            return {
                name: image_pool(hidden[_layer_index(name)], self.family, self.prefix, pooling)
                for name in layers
            }

        return run


class DualEncoder(_Directory):
    """A CLIP-like dual encoder: its text tower reads texts (layers ``text.hidden.k``), its
    image tower images (``vision.hidden.k``); ``embeds`` is the shared space, the projected
    text or image embedding as the samples are. A batch runs through the tower that reads it;
    naming the other tower's layers is refused."""

    inputs = "text+image"

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        tokenizer = _tokenizer(directory)
        self.towers = {
            "text": _part(self.model, "text_model"),
            "vision": _part(self.model, "vision_model"),
        }
        self.projections = {
            "text": _part(self.model, "text_projection"),
            "vision": _part(self.model, "visual_projection"),
        }
        self.tokens = TextTokens(
            tokenizer, _max_tokens(directory, tokenizer), self.towers["text"].forward
        )
        self.max_tokens = self.tokens.max_tokens
        vision_config = self.config.vision_config
        self.pixels = ImagePixels(directory, int(getattr(vision_config, "num_channels", 3)))
        self.n_text = _hidden_count(self.config.text_config)
        self.n_vision = _hidden_count(vision_config)

    def capturable_layers(self) -> list[str]:
        text = [f"text.hidden.{k}" for k in range(self.n_text)]
        vision = [f"vision.hidden.{k}" for k in range(self.n_vision)]
        return [*text, *vision, EMBEDS]

    def default_layers(self) -> list[str]:
        """The shared space: the one layer that both a text and an image dataset have."""
        return [EMBEDS]

    def layer_tree(self) -> list[dict]:
        text = _hidden_nodes(self.towers["text"], self.n_text, hf_kinds.TEXT, "text", "text.")
        vision = _hidden_nodes(
            self.towers["vision"], self.n_vision, hf_kinds.IMAGE, "vit", "vision."
        )
        projections = sum(p.numel() for m in self.projections.values() for p in m.parameters())
        shared = {
            "name": EMBEDS,
            "type": "projection (text or image embedding)",
            "parameters": projections,
            "children": [],
            "reads": [hf_kinds.TEXT, hf_kinds.IMAGE],
        }
        return [*text, *vision, shared]

    def token_counts(self, texts: np.ndarray) -> np.ndarray:
        return np.asarray(self.tokens.lengths([str(s) for s in texts]), dtype=np.int64)

    def run_order(self, x: np.ndarray) -> np.ndarray | None:
        if x.dtype.kind != "U":
            return None
        return np.argsort(-self.token_counts(x), kind="stable")

    def recorder(self, layers: list[str], pooling: str) -> Recorder:
        self._check_layers(layers)

        def run(batch: torch.Tensor | list[str]) -> dict[str, torch.Tensor | Positions]:
            texts = isinstance(batch, list)
            other = [n for n in layers if n.startswith("vision." if texts else "text.")]
            if other:
                raise InputError(
                    f"layer(s) {', '.join(other)} belong to the other tower; "
                    f"these samples are {'texts' if texts else 'images'}"
                )
            if isinstance(batch, list):
                return self._texts(batch, layers, pooling)
            return self._images(batch, layers, pooling)

        return run

    def _texts(
        self, texts: list[str], layers: list[str], pooling: str
    ) -> dict[str, torch.Tensor | Positions]:
        if any(name != EMBEDS for name in layers):
            hf_kinds.check_pooling("text", pooling, "a text tower")
        parts = []
        for rows, tokens in self.tokens.batches(texts, self.device):
            out = self.towers["text"](**tokens, output_hidden_states=True)
            mask = tokens["attention_mask"]
            pooled: dict[str, torch.Tensor | Positions] = {}
            for name in layers:
                if name == EMBEDS:
                    pooled[name] = self.projections["text"](out.pooler_output)
                else:
                    pooled[name] = mask_pool(out.hidden_states[_layer_index(name)], mask, pooling)
            parts.append((rows, pooled))
        return in_place(parts, len(texts))

    def _images(self, images: torch.Tensor, layers: list[str], pooling: str) -> dict:
        if any(name != EMBEDS for name in layers):
            hf_kinds.check_pooling("vit", pooling, "an image tower")
        pixels = self.pixels(images, self.device)
        out = self.towers["vision"](pixel_values=pixels, output_hidden_states=True)
        return {
            name: self.projections["vision"](out.pooler_output)
            if name == EMBEDS
            else image_pool(out.hidden_states[_layer_index(name)], "vit", 1, pooling)
            for name in layers
        }


def _part(model: torch.nn.Module, name: str) -> torch.nn.Module:
    """The submodule ``name`` of a dual encoder (its towers and projections)."""
    part = getattr(model, name, None)
    if not isinstance(part, torch.nn.Module):
        raise InputError(f"this dual encoder has no {name}")
    return part


def _load_weights(
    directory: Path, config: PretrainedConfig, classifier: bool = False
) -> torch.nn.Module:
    """The model's weights, from ``.safetensors`` only (never a pickle): the bare model, or
    with ``classifier`` the sequence classifier ``config.json`` declares (head included)."""
    from transformers import AutoModel, AutoModelForSequenceClassification

    if not any((directory / name).is_file() for name in SAFETENSORS_WEIGHTS):
        if (directory / PICKLED_WEIGHTS).is_file():
            raise InputError(
                f"the model directory holds its weights as {PICKLED_WEIGHTS}, a pickle, which "
                "is never loaded (unpickling can run code); save the model with "
                "save_pretrained(directory, safe_serialization=True) to get model.safetensors"
            )
        raise InputError("no weights in the model directory: it needs model.safetensors")
    try:
        declared = any(
            name.endswith("ForSequenceClassification") for name in config.architectures or []
        )
        auto = AutoModelForSequenceClassification if classifier and declared else AutoModel
        return auto.from_pretrained(directory, config=config, use_safetensors=True, **OPTIONS)
    except Exception as err:  # transformers and torch raise many kinds for a bad directory
        raise InputError.caused_by("cannot load the model weights", err) from None


def _max_tokens(directory: Path, tokenizer: PreTrainedTokenizerBase) -> int:
    """sentence-transformers' declared maximum, else the tokenizer's (capped at 512)."""
    config = _json(directory / "sentence_bert_config.json")
    declared = config.get("max_seq_length") if config else None
    return int(declared or min(tokenizer.model_max_length, DEFAULT_MAX_TOKENS))


def _sentence_head(directory: Path) -> dict | None:
    """The pooling and normalisation a sentence-transformers directory declares, or None."""
    modules = _json(directory / "modules.json")
    if not modules:
        return None
    types = [m.get("type", "") for m in modules]
    pooling_module = next((m for m in modules if m.get("type", "").endswith(".Pooling")), None)
    if pooling_module is None:
        return None
    config = _json(directory / pooling_module.get("path", "") / "config.json") or {}
    chosen = [ours for key, ours in DECLARED_POOLINGS.items() if config.get(key)]
    if len(chosen) != 1:
        raise InputError(
            "the sentence-transformers pooling must be exactly one of "
            f"{', '.join(DECLARED_POOLINGS)}; found {config}"
        )
    return {"pooling": chosen[0], "normalize": any(t.endswith(".Normalize") for t in types)}


def _json(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError.caused_by(f"{path.name} is not valid JSON", err) from None


def _blocks(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The repeated blocks (the longest ModuleList), for the layer tree."""
    lists = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList)]
    if not lists:
        return []
    longest = max(lists, key=len)
    return list(longest)


def _tokenizer(directory: Path) -> Any:
    """The directory's own tokenizer, or one plain sentence saying it has none."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(directory, **OPTIONS)
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as err:
        raise InputError.caused_by("the model directory has no usable tokenizer", err) from None
