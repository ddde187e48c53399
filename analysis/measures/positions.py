"""Token-level activation sets (every position a row, each with its sample and position: the
extraction pooling ``tokens``) made comparable without running the model again: pooled on the
fly to one vector per sample, or compared per position, each row a sample of the measure,
where both sides hold the same rows and the measure compares positions
(:attr:`analysis.measures.engine.Measure.compares_positions`)."""

from __future__ import annotations

import numpy as np

from analysis.errors import InputError

PER_POSITION = "per-position"
REDUCTIONS = {
    PER_POSITION: "each position a sample, where both sets hold the same rows (equal sample "
    "and position arrays: models that read the same tokens or patches) and the measure "
    "compares positions; otherwise the mean of each sample's rows",
    "mean": "the mean of each sample's rows as the mean extraction takes it, over every token "
    "of a text, every position of a convolutional map and only the patches of a vision "
    "transformer, its rows marked special left out",
    "first": "each sample's first position, a text's first token or a vision transformer's "
    "class token",
    "last": "each sample's last position, a text's last real token or a vision transformer's "
    "last patch",
}
"""How a comparison reads token-level sets, each with what it is. The pooled ones hold no
brackets: pages show the note that quotes them inside brackets."""
POOLED_REDUCTIONS = {name: text for name, text in REDUCTIONS.items() if name != PER_POSITION}
"""The reductions to one vector per sample: how the kinds that read one read token-level sets."""


def pooled(
    values: np.ndarray,
    sample: np.ndarray,
    n: int,
    how: str,
    special: np.ndarray | None = None,
) -> np.ndarray:
    """``n × d`` float32: the rows ``values`` of each of the ``n`` samples (rows sorted by
    ``sample``, then position, as stored) reduced by ``how`` (``mean``, ``first`` or
    ``last``). ``special`` marks the rows ``mean`` leaves out (a vision transformer's class
    and distillation tokens, :attr:`analysis.models.base.Positions.special`; None: none), so
    the mean pooled here is the ``mean`` extraction; ``first`` and ``last`` take any row. A
    sample without rows to pool (a text of no tokens) cannot be pooled and is refused."""
    if how not in REDUCTIONS or how == PER_POSITION:
        raise InputError(f"unknown reduction {how!r}; choose mean, first or last")
    counts = _counts(sample, n)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    if how == "first":
        return np.asarray(values[starts], dtype=np.float32)
    if how == "last":
        return np.asarray(values[starts + counts - 1], dtype=np.float32)
    if special is not None and special.any():
        kept = ~special
        values, sample = values[kept], sample[kept]
        counts = _counts(sample, n)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    sums = np.add.reduceat(np.asarray(values, dtype=np.float64), starts, axis=0)
    return (sums / counts[:, None]).astype(np.float32)


def _counts(sample: np.ndarray, n: int) -> np.ndarray:
    """How many rows each of the ``n`` samples has; a sample without any is refused."""
    counts = np.bincount(sample, minlength=n)
    if len(counts) > n or not counts.all():
        missing = int(np.flatnonzero(counts == 0)[0]) if not counts.all() else n
        raise InputError(f"sample {missing} has no stored positions: it cannot be pooled")
    return counts


def same_rows(positions: list[dict[str, np.ndarray]]) -> bool:
    """Whether every set holds the same rows: equal ``sample`` and ``position`` arrays."""
    first = positions[0]
    return all(
        np.array_equal(p["sample"], first["sample"])
        and np.array_equal(p["position"], first["position"])
        for p in positions[1:]
    )
