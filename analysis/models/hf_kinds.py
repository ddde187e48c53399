"""What a Hugging Face model directory is, declared without torch: the kind its
``config.json`` names (``model_type``, ``architectures``), what each kind reads and how its
layers pool; and what a described checkpoint reads, from its stored layer tree, so that the web
process can match models to datasets without a model runtime (:mod:`analysis.models.hf` loads
and runs the models, in the model host only)."""

from __future__ import annotations

from collections.abc import Sequence

from analysis.errors import InputError

KINDS = {
    "text": "a text encoder (BERT-like): hidden states pooled over the attention mask",
    "decoder": "a decoder language model: hidden states under the causal mask",
    "image": "an image encoder: hidden states of the images its own image processor prepares",
    "dual": "a dual encoder (CLIP-like): a text tower and an image tower, and their shared space",
}
"""The kinds of Hugging Face directories RepLens runs, each with what it is."""

VISION_TRANSFORMERS = {"vit": 1, "dinov2": 1, "deit": 2, "clip_vision_model": 1}
"""Vision transformers by ``model_type``, with the number of tokens before the patches (the
class token; DeiT's distillation token): ``cls`` pools the first, ``mean`` the patches."""
CONVNETS = ("resnet", "convnext", "convnextv2")
"""Convolutional image encoders by ``model_type``: their hidden states are ``C × H × W`` maps."""
DECODERS = ("gpt2", "llama", "mistral", "qwen2")
"""Decoder language models by ``model_type`` (any ``…ForCausalLM`` architecture also counts)."""
DUAL_ENCODERS = ("clip",)
"""Dual encoders by ``model_type``: a ``text_model`` and a ``vision_model`` with projections
into one space."""
ENCODER_DECODERS = ("t5", "mt5", "bart", "mbart", "marian", "pegasus", "whisper")

POOLINGS = {
    "text": ("mean", "cls", "last", "tokens"),
    "decoder": ("last", "mean", "tokens"),
    "vit": ("cls", "mean", "tokens"),
    "convnet": ("mean", "flatten", "tokens"),
}
"""The poolings each kind of hidden state takes (see
:data:`analysis.models.choices.EXTRACTION_POOLINGS`): text over the real tokens; a decoder's
last real token (the one that saw the whole text) or mean; a vision transformer's class token
or mean over the patches (without the class token); a convolutional map's mean over H × W or
all of it; every kind, each real token, token or position as a row (``tokens``)."""

READS = {"text": ("text",), "decoder": ("text",), "image": ("image",), "dual": ("text", "image")}
"""What each kind reads: texts, or images (``n × C × H × W`` in [0, 1])."""

TEXT, IMAGE, ARRAY = "text", "image", "array"


def model_kind(config: dict) -> str:
    """The kind (a key of :data:`KINDS`) of the model a ``config.json`` describes; an
    encoder-decoder or an image model of a family not declared here is refused in one
    sentence."""
    model_type = str(config.get("model_type", ""))
    architectures = [str(a) for a in config.get("architectures") or []]
    if model_type in DUAL_ENCODERS:
        return "dual"
    if model_type in VISION_TRANSFORMERS or model_type in CONVNETS:
        return "image"
    if config.get("is_encoder_decoder") or model_type in ENCODER_DECODERS:
        raise InputError(
            f"{model_type or 'this model'} is an encoder-decoder model; RepLens runs text "
            "encoders, decoder language models, image encoders and CLIP-like dual encoders"
        )
    if model_type in DECODERS or any(
        a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures
    ):
        return "decoder"
    if "num_channels" in config or "image_size" in config or "vision_config" in config:
        supported = ", ".join([*VISION_TRANSFORMERS, *CONVNETS, *DUAL_ENCODERS])
        raise InputError(
            f"image models of type {model_type or 'unknown'!r} are not supported; "
            f"supported: {supported}"
        )
    return "text"


def check_pooling(family: str, pooling: str, what: str) -> None:
    """Refuse a pooling that ``family``'s hidden states (a key of :data:`POOLINGS`) do not
    take, naming ``what`` (the model, in words) and the poolings that apply."""
    if pooling not in POOLINGS[family]:
        raise InputError(
            f"pooling {pooling!r} does not apply to {what}; choose {', '.join(POOLINGS[family])}"
        )


def checkpoint_reads(fmt: str, layer_tree: Sequence[dict]) -> tuple[str, ...]:
    """What a described checkpoint's model reads: ``text``, ``image`` (image datasets) or
    ``array`` (any array dataset of the shape the model takes); nothing for precomputed
    activations. A Hugging Face directory's layer nodes say what they read (``reads``); a
    directory described before image models were read, without them, reads text."""
    if fmt == "precomputed":
        return ()
    if fmt != "huggingface":
        return (ARRAY,)
    found: set[str] = set()
    for node in layer_tree:
        found.update(node.get("reads") or (TEXT,))
    return tuple(sorted(found, reverse=True))  # text before image


def reads_dataset(fmt: str, layer_tree: Sequence[dict], modality: str) -> bool:
    """Whether such a checkpoint's model reads a dataset of ``modality``."""
    reads = checkpoint_reads(fmt, layer_tree)
    if modality == TEXT:
        return TEXT in reads
    return ARRAY in reads or (modality == IMAGE and IMAGE in reads)


def described_reads(fmt: str, layer_tree: Sequence[dict]) -> str:
    """What such a checkpoint reads, in words ("text", "images", "text or images", "arrays")."""
    words = {TEXT: "text", IMAGE: "images", ARRAY: "arrays"}
    return " or ".join(words[r] for r in checkpoint_reads(fmt, layer_tree))


def offered_poolings(layer_tree: Sequence[dict], modality: str) -> tuple[str, ...] | None:
    """The poolings that every hidden state reading ``modality`` takes, as the described layer
    tree declares them (``poolings`` on its nodes); None where it declares none (any other
    format, or a directory described before they were declared)."""
    declared = [
        node["poolings"]
        for node in layer_tree
        if node.get("poolings") and modality_read(node, modality)
    ]
    if not declared:
        return None
    return tuple(p for p in declared[0] if all(p in d for d in declared))


def modality_read(node: dict, modality: str) -> bool:
    reads = node.get("reads") or (TEXT,)
    return modality in reads if modality == TEXT else IMAGE in reads
