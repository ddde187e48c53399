"""What a person chooses about a model, as declarations (no torch): the built-in architectures
a ``.safetensors`` state dict may name, and the poolings a run may ask for. Forms and the API
list and check them in the web process; :mod:`analysis.models.architectures` builds the
architectures and :func:`analysis.models.extraction.pool` applies the poolings."""

from __future__ import annotations

from analysis.errors import InputError

POOLINGS = {
    "mean": "average over positions (conv: H×W; texts: real tokens; ViTs: patches, no class token)",
    "flatten": "concatenate all positions",
    "cls": "first token (sequences n×T×d only; a vision transformer's class token)",
    "last": "last token (sequences n×T×d only; texts: the last real token)",
}
"""How an output with more than two dimensions becomes ``n × d``. Conv maps are ``n×C×H×W``;
three-dimensional outputs are token sequences ``n×T×d``. Two-dimensional outputs are kept.
Models that read text pool over the attention mask (padding never counts; a decoder language
model's last real token is the one that saw the whole text); a vision transformer's ``mean``
averages its patch tokens, without the class token (and DeiT's distillation token). Which
pooling each kind of Hugging Face model takes: :data:`analysis.models.hf_kinds.POOLINGS`."""


TOKENS = "tokens"
EXTRACTION_POOLINGS = {
    **POOLINGS,
    TOKENS: "every position as a row, stored with its sample and position (texts: real tokens; "
    "ViTs: class token at 0, then the patches, the tokens mean leaves out marked special; "
    "conv: each of the H×W positions)",
}
"""What an extraction may store: one of :data:`POOLINGS`, or every position as a row
(:class:`analysis.models.base.Positions`: padding tokens are never rows; a vision transformer's
class token is position 0, marked special with DeiT's distillation token: the rows ``mean``
leaves out; a conv map's position is ``h · W + w``, its row the C channels;
a two-dimensional output is one row per sample, at position 0)."""


def check_pooling(pooling: str) -> None:
    if pooling not in EXTRACTION_POOLINGS:
        raise InputError(
            f"unknown pooling {pooling!r}; choose one of: {', '.join(EXTRACTION_POOLINGS)}"
        )


ARCHITECTURES = {
    "mlp": "flatten → blockN (Linear+ReLU) → head",
    "small-cnn": "convN (3×3 Conv+ReLU) → global average pool → head",
    "transformer": "embed (features as tokens + position) → blockN (pre-LN multi-head attention "
    "+ GELU MLP) → norm → mean over tokens → head",
}
"""The built-in architectures by name, each with what it is."""
