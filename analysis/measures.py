"""The registry of measures: stable ids and declared properties that drive the UI."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Measure:
    id: str
    name: str
    reference: str
    range: tuple[float, float]
    larger_is_more_similar: bool
    symmetric: bool
    invariant_to: tuple[str, ...]


MEASURES: dict[str, Measure] = {
    m.id: m
    for m in [
        Measure(
            id="cka/linear",
            name="Linear CKA",
            reference="Kornblith et al. 2019",
            range=(0.0, 1.0),
            larger_is_more_similar=True,
            symmetric=True,
            invariant_to=("orthogonal", "isotropic scaling", "translation"),
        ),
    ]
}
