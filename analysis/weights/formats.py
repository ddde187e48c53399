"""Which checkpoints expose their weights to weight matching, declared apart from the torch
code that matches them, so that the web process can refuse a request without a model runtime
(:mod:`analysis.weights.space` computes)."""

from __future__ import annotations

from collections.abc import Sequence

MATCHABLE = ("mlp", "small-cnn", "transformer")
"""The built-in architectures with a permutation spec (:data:`analysis.weights.specs.SPECS`)."""

SCRIPTABLE = ("mlp", "small-cnn")
"""Those a TorchScript model may be recognised as by its layers' names (:data:`_TOP_LEVEL`);
a ``transformer`` is read from a .safetensors state dict only."""

ENCODERS = {"BertLayer": "bert", "RobertaLayer": "roberta", "TransformerBlock": "distilbert"}
"""Hugging Face encoders whose permutation structure is declared
(:data:`analysis.weights.bert.LAYOUTS`), by the type of their blocks in a checkpoint's layer
tree (``TransformerBlock`` is DistilBERT's, the only transformers model with blocks of that
name). Loaded as encoders, they have no class scores: their weight space has no loss paths."""

ENCODER_NAMES = "BERT, RoBERTa or DistilBERT"
"""The families of :data:`ENCODERS`, as a sentence names them."""

WEIGHT_FORMATS = (
    "weight space reads weights only from .safetensors state dicts of a built-in architecture "
    f"({', '.join(MATCHABLE)}), from TorchScript models whose layers follow the naming of "
    f"{' or '.join(SCRIPTABLE)} and from Hugging Face directories of {ENCODER_NAMES} encoders with "
    "model.safetensors weights (without loss paths, as they have no class scores)"
)
"""What a refusal says about the formats that expose weights this way."""

NOT_READ = {
    "torchscript": "is a TorchScript model whose layers follow no built-in architecture's naming",
    "huggingface": f"is a Hugging Face directory of another model than a {ENCODER_NAMES} encoder",
    "onnx": "is stored as ONNX, whose graph holds no parameters a permutation spec names",
    "precomputed": "holds precomputed activations, with no weights",
}
"""Why a checkpoint of each format whose weights are not read is refused: the start of the
sentence ``"<name> <why>, and <WEIGHT_FORMATS>"`` (:func:`refusal`)."""


def refusal(name: str, fmt: str, architecture: str = "") -> str:
    """The one sentence that refuses checkpoint ``name`` (of format ``fmt``) to weight space,
    naming what it reads instead."""
    why = NOT_READ.get(fmt, f"is a {fmt} checkpoint of architecture {architecture or 'none'}")
    return f"{name} {why}, and {WEIGHT_FORMATS}"


FUNCTION_TOLERANCE = 1e-5
"""The permuted B computes B's function when its outputs on every sample differ from B's by at
most this much times max(1, the largest |output| of B)."""

_TOP_LEVEL: dict[str, tuple[str, str, str]] = {  # keys: SCRIPTABLE
    # architecture → (numbered block prefix, the block's weighted layer type, what may precede)
    "mlp": ("block", "Linear", "flatten"),
    "small-cnn": ("conv", "Conv2d", ""),
}


def declared_architecture(fmt: str, architecture: str, layer_tree: Sequence[dict]) -> str | None:
    """The built-in architecture whose permutation spec applies to a checkpoint: the declared
    one of a ``.safetensors`` state dict, or the one a TorchScript model's top-level layers
    are named after (``flatten, block1 … blockK, head`` for ``mlp``; ``conv1 … convK, pool,
    head`` for ``small-cnn``), or a Hugging Face encoder of :data:`ENCODERS` by its blocks'
    type; None for any other checkpoint (:data:`WEIGHT_FORMATS` says why). The model host
    checks the parameters themselves (:func:`weight_space`)."""
    if fmt == "safetensors" and architecture in MATCHABLE:
        return architecture
    if fmt == "huggingface":
        blocks = [
            node.get("type")
            for node in layer_tree
            if str(node.get("name", "")).startswith("hidden.") and node.get("name") != "hidden.0"
        ]
        found = {ENCODERS.get(str(kind)) for kind in blocks}
        if blocks and len(found) == 1 and None not in found:
            return found.pop()
    if fmt == "torchscript":
        names = [node.get("name") for node in layer_tree]
        types = {node.get("name"): node.get("type") for node in layer_tree}
        for name, (prefix, layer_type, before) in _TOP_LEVEL.items():
            k = sum(1 for n in names if isinstance(n, str) and n.startswith(prefix))
            blocks = [f"{prefix}{i}" for i in range(1, k + 1)]
            after = ["pool", "head"] if name == "small-cnn" else ["head"]
            expected = ([before] if before else []) + blocks + after
            if k and names == expected and types["head"] == "Linear":
                children = {
                    child.get("type")
                    for node in layer_tree
                    if node.get("name") in blocks
                    for child in node.get("children", [])
                }
                if layer_type in children:
                    return name
    return None
