"""Declared parameters: name, type, default, range and help, checked in one place.

Measures declare theirs (``Measure.parameters``) and run kinds theirs; forms, serializers, the
API's listings and the client all read the declarations, so a parameter is added in one place.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from analysis.errors import InputError

TYPES = ("int", "float", "choice", "floats")


@dataclass(frozen=True)
class Parameter:
    """One parameter. ``kind`` is ``int``, ``float``, ``choice`` (one of ``choices``) or
    ``floats`` (a non-empty list of floats, each in range); ``nullable`` admits None, which
    then means what ``help`` says (an automatic rule)."""

    name: str
    kind: str
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    choices: tuple[str, ...] = ()
    nullable: bool = False
    labels: tuple[str, ...] = ()  # a readable name for each choice, in order

    def __post_init__(self) -> None:
        if self.kind not in TYPES:
            raise ValueError(f"unknown parameter type {self.kind!r}")
        if self.default is not None or not self.nullable:
            self.check(self.default)

    def choice_labels(self) -> list[tuple[str, str]]:
        return list(zip(self.choices, self.labels or self.choices, strict=True))

    def check(self, value: Any) -> Any:
        """``value`` as this parameter's type, or an :class:`InputError` naming it."""
        if value is None and self.nullable:
            return None
        if self.kind == "choice":
            if value not in self.choices:
                raise InputError(f"{self.name} must be one of: {', '.join(self.choices)}")
            return value
        if self.kind == "floats":
            if not isinstance(value, list | tuple) or not value:
                raise InputError(f"{self.name} must be a non-empty list of numbers")
            return [self._number(v) for v in value]
        return self._number(value)

    def _number(self, value: Any) -> int | float:
        integer = self.kind == "int"
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InputError(f"{self.name} must be {'an integer' if integer else 'a number'}")
        if integer and value != int(value):
            raise InputError(f"{self.name} must be an integer")
        if not math.isfinite(value):
            raise InputError(f"{self.name} must be finite")
        value = int(value) if integer else float(value)
        low, high = self.minimum, self.maximum
        below = low is not None and (value <= low if self.exclusive_minimum else value < low)
        if below or (high is not None and value > high):
            raise InputError(f"{self.name} must be {self.range_text()}, got {value}")
        return value

    def range_text(self) -> str:
        sign = ">" if self.exclusive_minimum else "≥"
        low = "" if self.minimum is None else f"{sign} {self.minimum:g}"
        high = "" if self.maximum is None else f"≤ {self.maximum:g}"
        return " and ".join(part for part in (low, high) if part) or "any value"

    def describe(self) -> dict:
        return {
            "name": self.name,
            "type": self.kind,
            "default": self.default,
            "help": self.help,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "exclusive_minimum": self.exclusive_minimum,
            "choices": list(self.choices),
            "nullable": self.nullable,
            "labels": list(self.labels),
        }


def check_values(
    parameters: Iterable[Parameter], values: Mapping[str, Any] | None, what: str
) -> dict[str, Any]:
    """Every parameter's value (the default where ``values`` has none), checked; an unknown
    name is an :class:`InputError` naming it and ``what`` takes the parameters."""
    declared = {p.name: p for p in parameters}
    values = dict(values or {})
    unknown = sorted(set(values) - set(declared))
    if unknown:
        known = ", ".join(declared) or "none"
        raise InputError(f"{what} has no parameter {unknown[0]!r} (its parameters: {known})")
    return {
        name: p.check(values[name]) if name in values else p.default for name, p in declared.items()
    }
