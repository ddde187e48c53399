"""Hugging Face model directories (transformers, sentence-transformers), loaded offline.

An upload is a ``.zip`` or ``.tar(.gz)`` of the directory ``save_pretrained`` writes: a
``config.json``, the tokenizer files and the weights. Weights are read from ``.safetensors``;
a ``pytorch_model.bin`` (a pickle) is read only with ``torch.load(weights_only=True)``, which
refuses anything but tensors. Custom model code (``trust_remote_code``) is never run, and
nothing is fetched from the network.

Layers are the hidden states the model returns (``output_hidden_states=True``): ``hidden.0``
is the embedding output and ``hidden.k`` the output of block k. Token sequences are pooled over
the attention mask: ``mean`` averages the real tokens, ``cls`` takes the first, ``last`` the
last real token. A sentence-transformers directory (``modules.json``) adds the layer
``sentence_embedding``: the pooling its ``1_Pooling/config.json`` declares (and the
normalisation its modules list), whatever pooling the request names.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from analysis.data.archives import single_root, unpack
from analysis.errors import InputError
from analysis.models.base import Model, Recorder

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedTokenizerBase

SENTENCE_EMBEDDING = "sentence_embedding"
DEFAULT_MAX_TOKENS = 512
TOKEN_POOLINGS = ("mean", "cls", "last")
SAFETENSORS_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
PICKLED_WEIGHTS = "pytorch_model.bin"
DECLARED_POOLINGS = {  # sentence-transformers' 1_Pooling/config.json keys → our poolings
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_cls_token": "cls",
    "pooling_mode_lasttoken": "last",
}


def load_huggingface(
    path: str | Path, filename: str, max_files: int, max_bytes: int
) -> HuggingFaceEncoder:
    """Unpack an archive of a model directory and load it (see :class:`HuggingFaceEncoder`)."""
    with tempfile.TemporaryDirectory(prefix="replens-hf-") as tmp:
        unpack(path, filename, Path(tmp), max_files, max_bytes)
        return HuggingFaceEncoder(single_root(Path(tmp), "config.json"))


def mask_pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """``batch × T × d`` token states → ``batch × d``, counting only tokens where ``mask``
    is 1 (left or right padding)."""
    if pooling == "mean":
        m = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
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


class HuggingFaceEncoder(Model):
    """A transformers model with its tokenizer, reading texts."""

    inputs = "text"

    def __init__(self, directory: Path) -> None:
        from transformers import AutoConfig, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
        options: dict[str, Any] = {"local_files_only": True, "trust_remote_code": False}
        try:
            config = AutoConfig.from_pretrained(directory, **options)
            self.tokenizer = AutoTokenizer.from_pretrained(directory, **options)
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as err:
            raise InputError.caused_by("not a loadable Hugging Face model directory", err) from None
        self.model = _load_weights(directory, config, options).eval()
        self.max_tokens = _max_tokens(directory, self.tokenizer)
        self.sentence = _sentence_head(directory)
        self.device = torch.device("cpu")
        self.n_hidden = int(config.num_hidden_layers) + 1

    def to(self, device: torch.device) -> HuggingFaceEncoder:
        self.device = torch.device(device)
        self.model.to(self.device)
        return self

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def capturable_layers(self) -> list[str]:
        extra = [SENTENCE_EMBEDDING] if self.sentence else []
        return [f"hidden.{k}" for k in range(self.n_hidden)] + extra

    def default_layers(self) -> list[str]:
        return self.capturable_layers()

    def layer_tree(self) -> list[dict]:
        blocks = _blocks(self.model)
        tree = []
        for k in range(self.n_hidden):
            module = blocks[k - 1] if k and len(blocks) == self.n_hidden - 1 else None
            tree.append(
                {
                    "name": f"hidden.{k}",
                    "type": type(module).__name__ if module is not None else "embeddings",
                    "parameters": sum(p.numel() for p in module.parameters()) if module else 0,
                    "children": [],
                }
            )
        if self.sentence:
            kind = self.sentence["pooling"] + (", normalised" if self.sentence["normalize"] else "")
            tree.append(
                {
                    "name": SENTENCE_EMBEDDING,
                    "type": f"pooling ({kind})",
                    "parameters": 0,
                    "children": [],
                }
            )
        return tree

    def recorder(self, layers: list[str], pooling: str) -> Recorder:
        available = set(self.capturable_layers())
        missing = [name for name in layers if name not in available]
        if missing:
            raise InputError(f"model has no layer(s) {', '.join(missing)}")
        if pooling not in TOKEN_POOLINGS and any(name != SENTENCE_EMBEDDING for name in layers):
            raise _not_for_tokens(pooling)
        head = self.sentence  # offered as a layer only where the directory declares one

        def run(texts: list[str]) -> dict[str, torch.Tensor]:
            tokens = self.tokenizer(
                texts,
                padding=True,
                truncation=True,
                max_length=self.max_tokens,
                return_tensors="pt",
            ).to(self.device)
            hidden = self.model(**tokens, output_hidden_states=True).hidden_states
            mask = tokens["attention_mask"]
            out = {}
            for name in layers:
                if name == SENTENCE_EMBEDDING and head is not None:
                    pooled = mask_pool(hidden[-1], mask, head["pooling"])
                    out[name] = F.normalize(pooled, dim=1) if head["normalize"] else pooled
                else:
                    out[name] = mask_pool(hidden[int(name.split(".")[1])], mask, pooling)
            return out

        return run


def _load_weights(
    directory: Path, config: PretrainedConfig, options: dict[str, Any]
) -> torch.nn.Module:
    from transformers import AutoModel

    try:
        if any((directory / name).is_file() for name in SAFETENSORS_WEIGHTS):
            return AutoModel.from_pretrained(directory, use_safetensors=True, **options)
        if (directory / PICKLED_WEIGHTS).is_file():
            state = torch.load(directory / PICKLED_WEIGHTS, map_location="cpu", weights_only=True)
            model = AutoModel.from_config(config)
            prefix = f"{model.base_model_prefix}."
            state = {k.removeprefix(prefix): v for k, v in state.items()}
            missing, _ = model.load_state_dict(state, strict=False)
            if missing:
                raise InputError(f"{PICKLED_WEIGHTS} lacks weights: {', '.join(missing[:5])}")
            return model
    except InputError:
        raise
    except Exception as err:  # transformers and torch raise many kinds for a bad directory
        raise InputError.caused_by("cannot load the model weights", err) from None
    raise InputError(
        "no weights in the model directory: it needs model.safetensors "
        f"(or {PICKLED_WEIGHTS}, read with weights_only=True)"
    )


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
