"""The transformation families probes offer, as declarations: key, unit, default grid of
magnitudes, valid range and a one-line description, and the checks of a user's magnitudes.
Nothing here transforms data (no torch): the web process lists and checks families from here,
and :mod:`analysis.probes.transforms` implements each one (its docstring gives the exact
definitions).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np

from analysis.errors import InputError

__all__ = [
    "FAMILIES",
    "INDUCED_ACTIONS",
    "MAX_MAGNITUDES",
    "MAX_SEED",
    "MODALITIES",
    "Family",
    "check_magnitude",
    "check_magnitudes",
    "families_for",
    "get_family",
]

MODALITIES = ("image", "text", "vector")
INDUCED_ACTIONS = ("shift", "rot90", "flip")
MAX_MAGNITUDES = 32
MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class Family:
    """A transformation family g_t as declared: what it is and which magnitudes it takes.
    :func:`analysis.probes.transforms.get_transform` gives the one that transforms a batch."""

    key: str  # "image/rotation"
    title: str  # "rotation"
    modality: str  # one of MODALITIES
    unit: str  # the unit of t
    magnitudes: tuple[float, ...]  # the default grid, ascending, first value 0 (identity)
    continuous: bool  # g_0 = identity and g_t continuous in t (see the module docstring)
    induced: str | None  # the action on conv feature maps (INDUCED_ACTIONS), else None
    bounds: tuple[float, float]  # the valid range of t, both ends included
    values: tuple[float, ...] | None  # the only valid values of a discrete family, else None
    description: str
    keeps_positions: bool
    """Whether g_t leaves every position where it was (pointwise or local edits of an image's
    pixels, per-feature edits of a vector), so a token-level probe compares position p of g x
    with position p of x; geometric transforms and text edits move or change positions."""


def check_magnitude(family: Family, t: Any) -> float:
    if isinstance(t, bool) or not isinstance(t, Real):
        raise InputError(f"the magnitude of {family.title} must be a number, got {t!r}")
    t = float(t)
    if not math.isfinite(t):
        raise InputError(f"the magnitude of {family.title} must be finite, got {t}")
    if family.values is not None:
        if t not in family.values:
            allowed = ", ".join(_fmt(v) for v in family.values)
            raise InputError(f"the magnitude of {family.title} must be one of {allowed}, got {t:g}")
    else:
        low, high = family.bounds
        if not low <= t <= high:
            raise InputError(
                f"the magnitude of {family.title} must be between {_fmt(low)} and "
                f"{_fmt(high)} {family.unit}, got {t:g}"
            )
    return t


def _fmt(value: float) -> str:
    return f"{value:g}"


def _family(
    key: str,
    unit: str,
    magnitudes: tuple[float, ...],
    bounds: tuple[float, float],
    description: str,
    *,
    continuous: bool = False,
    induced: str | None = None,
    values: tuple[float, ...] | None = None,
    keeps_positions: bool = False,
) -> Family:
    modality, title = key.split("/")
    return Family(
        key=key,
        title=title.replace("-", " "),
        modality=modality,
        unit=unit,
        magnitudes=tuple(float(m) for m in magnitudes),
        continuous=continuous,
        induced=induced,
        bounds=(float(bounds[0]), float(bounds[1])),
        values=None if values is None else tuple(float(v) for v in values),
        description=description,
        keeps_positions=keeps_positions,
    )


_PROBABILITY = (0.0, 1.0)

FAMILIES: dict[str, Family] = {
    f.key: f
    for f in (
        _family(
            "image/rotation",
            "degrees",
            (0, 15, 30, 45, 90, 180),
            (-360, 360),
            "counter-clockwise about the centre, bilinear, zero fill; multiples of 90° exact",
            continuous=True,
            induced="rot90",
        ),
        _family(
            "image/translate-circular",
            "pixels",
            (0, 1, 2, 4, 8),
            (-1024, 1024),
            "circular shift to the right; fractional shifts interpolate linearly",
            continuous=True,
            induced="shift",
        ),
        _family(
            "image/translate-zero",
            "pixels",
            (0, 1, 2, 4, 8),
            (-1024, 1024),
            "shift to the right, zero fill; fractional shifts interpolate linearly",
            continuous=True,
        ),
        _family(
            "image/scale",
            "relative size",
            (0, 0.1, 0.2, 0.3, 0.5),
            (-0.9, 9),
            "resize by 1 + t about the centre, bilinear, zero fill",
            continuous=True,
        ),
        _family(
            "image/hflip",
            "flip",
            (0, 1),
            _PROBABILITY,
            "mirror left–right at t = 1",
            induced="flip",
            values=(0, 1),
        ),
        _family(
            "image/vflip",
            "flip",
            (0, 1),
            _PROBABILITY,
            "mirror top–bottom at t = 1",
            induced="flip",
            values=(0, 1),
        ),
        _family(
            "image/brightness",
            "intensity",
            (0, 0.1, 0.2, 0.3, 0.5),
            (-1, 1),
            "x + t",
            continuous=True,
            keeps_positions=True,
        ),
        _family(
            "image/contrast",
            "relative contrast",
            (0, 0.25, 0.5, 1),
            (-1, 10),
            "mean + (1 + t)(x − mean), the mean per image",
            continuous=True,
            keeps_positions=True,
        ),
        _family(
            "image/noise",
            "σ",
            (0, 0.05, 0.1, 0.2, 0.4),
            (0, 10),
            "additive Gaussian noise of standard deviation t",
            keeps_positions=True,
        ),
        _family(
            "image/blur",
            "σ (pixels)",
            (0, 0.5, 1, 2, 4),
            (0, 32),
            "Gaussian blur of standard deviation t pixels, reflect padding",
            continuous=True,
            keeps_positions=True,
        ),
        _family(
            "image/occlusion",
            "fraction",
            (0, 0.1, 0.2, 0.3, 0.5),
            _PROBABILITY,
            "a square of side t·min(H, W) at a random position set to 0",
            keeps_positions=True,
        ),
        _family(
            "text/char-noise",
            "probability",
            (0, 0.05, 0.1, 0.2, 0.4),
            _PROBABILITY,
            "each letter replaced by a random lowercase letter with probability t",
        ),
        _family(
            "text/word-dropout",
            "probability",
            (0, 0.1, 0.2, 0.3, 0.5),
            _PROBABILITY,
            "each word dropped with probability t; at least one word stays",
        ),
        _family(
            "text/word-shuffle",
            "fraction",
            (0, 0.25, 0.5, 1),
            _PROBABILITY,
            "a fraction t of the words moved among their positions",
        ),
        _family(
            "text/case",
            "probability",
            (0, 0.25, 0.5, 1),
            _PROBABILITY,
            "each word upper-cased with probability t",
        ),
        _family(
            "vector/noise",
            "σ (data units)",
            (0, 0.05, 0.1, 0.2, 0.5),
            (0, 1e6),
            "additive Gaussian noise of standard deviation t",
            keeps_positions=True,
        ),
        _family(
            "vector/dropout",
            "probability",
            (0, 0.1, 0.2, 0.3, 0.5),
            _PROBABILITY,
            "each feature of each sample set to 0 with probability t",
            keeps_positions=True,
        ),
        _family(
            "vector/permutation",
            "fraction",
            (0, 0.1, 0.25, 0.5, 1),
            _PROBABILITY,
            "a fraction t of the features permuted, the same way for every sample",
        ),
        _family(
            "vector/scale",
            "relative scale",
            (0, 0.1, 0.25, 0.5, 1),
            (-1, 10),
            "x · (1 + t)",
            continuous=True,
            keeps_positions=True,
        ),
    )
}


def get_family(key: str) -> Family:
    """The family registered under ``key`` (a key of :data:`FAMILIES`)."""
    family = FAMILIES.get(key) if isinstance(key, str) else None
    if family is None:
        raise InputError(
            f"unknown transformation family {key!r}; choose one of: {', '.join(FAMILIES)}"
        )
    return family


def families_for(modality: str) -> list[Family]:
    """The families for one modality ("image", "text" or "vector"), in registry order."""
    if modality not in MODALITIES:
        raise InputError(f"unknown modality {modality!r}; choose one of: {', '.join(MODALITIES)}")
    return [f for f in FAMILIES.values() if f.modality == modality]


def check_magnitudes(family: Family | str, magnitudes: Any) -> tuple[float, ...]:
    """A user-given grid of magnitudes, validated and returned ascending as floats.

    The grid must be a list of 1 … MAX_MAGNITUDES distinct finite numbers within the family's
    valid range (or among its values, for a discrete family), and must include 0: the identity
    that every other magnitude is compared with.
    """
    family = family if isinstance(family, Family) else get_family(family)
    if isinstance(magnitudes, str | bytes) or not isinstance(magnitudes, Sequence | np.ndarray):
        raise InputError(f"the magnitudes of {family.title} must be a list of numbers")
    if len(magnitudes) == 0:
        raise InputError(f"give at least one magnitude for {family.title} (0, the identity)")
    if len(magnitudes) > MAX_MAGNITUDES:
        raise InputError(
            f"give at most {MAX_MAGNITUDES} magnitudes for {family.title}, got {len(magnitudes)}"
        )
    values = [check_magnitude(family, t) for t in magnitudes]
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        listed = ", ".join(_fmt(v) for v in repeated)
        raise InputError(f"the magnitudes of {family.title} repeat {listed}")
    if 0.0 not in values:
        raise InputError(
            f"the magnitudes of {family.title} must include 0, the identity that the other "
            "magnitudes are compared with"
        )
    return tuple(sorted(values))
