"""Every registered measure against its own declarations: each invariance it claims holds on
either side, self-similarity is the top of its scale, symmetric measures are symmetric, and
degenerate input gives a finite value or a clear refusal — never NaN.

The per-measure test files check each definition against a peer implementation; this file
makes sure the registry (which drives the UI's legends) does not claim more than is true.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import ortho_group

from analysis.errors import InputError
from analysis.measures.registry import MEASURES, describe

SEEDS = [0, 1, 2]
TOLERANCE = 1e-7


def score(measure, x: np.ndarray, y: np.ndarray) -> float:
    return measure.score(measure.prepare(x, "X"), measure.prepare(y, "Y"))


def related_pair(seed: int, n: int = 120, p: int = 8, q: int = 6):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, p)) + rng.normal(0, 2, size=p)  # uncentred
    y = np.tanh(x[:, :q] @ rng.standard_normal((q, q))) + 0.3 * rng.standard_normal((n, q))
    return x, y + 1.5


def transforms(name: str, z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    d = z.shape[1]
    if name == "orthogonal":
        return z @ ortho_group.rvs(d, random_state=rng)
    if name == "permutation of units":
        return z[:, rng.permutation(d)]
    if name == "isotropic scaling":
        return 3.7 * z
    if name == "translation":
        return z + rng.normal(0, 5, size=d)
    if name == "invertible linear":
        return z @ (np.eye(d) + 0.5 * rng.standard_normal((d, d)))
    raise AssertionError(f"no test transform for declared invariance {name!r}")


CLAIMS = [(m, inv) for m in MEASURES for inv in MEASURES[m].invariant_to]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("measure_id", "invariance"), CLAIMS)
def test_declared_invariances_hold_on_either_side(measure_id, invariance, seed):
    measure = MEASURES[measure_id]
    x, y = related_pair(seed)
    rng = np.random.default_rng(100 + seed)
    reference = score(measure, x, y)
    moved_y = score(measure, x, transforms(invariance, y, rng))
    moved_x = score(measure, transforms(invariance, x, rng), y)
    assert moved_y == pytest.approx(reference, abs=TOLERANCE)
    assert moved_x == pytest.approx(reference, abs=TOLERANCE)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("measure_id", list(MEASURES))
def test_self_similarity_is_the_top_of_the_scale(measure_id, seed):
    measure = MEASURES[measure_id]
    x, _ = related_pair(seed)
    identical = measure.range[1] if measure.larger_is_more_similar else measure.range[0]
    # Ridge shrinks a little even when X predicts itself exactly; the rest are exact.
    tolerance = 1e-6 if measure_id == "regression/ridge-r2" else TOLERANCE
    assert score(measure, x, x) == pytest.approx(identical, abs=tolerance)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("measure_id", [m for m in MEASURES if MEASURES[m].symmetric])
def test_symmetric_measures_are_symmetric(measure_id, seed):
    measure = MEASURES[measure_id]
    x, y = related_pair(seed)
    assert score(measure, x, y) == pytest.approx(score(measure, y, x), abs=TOLERANCE)


@pytest.mark.parametrize("measure_id", list(MEASURES))
def test_related_data_scores_more_similar_than_its_own_shuffle(measure_id):
    measure = MEASURES[measure_id]
    x, y = related_pair(0, n=300)
    shuffled = y[np.random.default_rng(1).permutation(len(y))]
    related, unrelated = score(measure, x, y), score(measure, x, shuffled)
    if measure.larger_is_more_similar:
        assert related > unrelated
    else:
        assert related < unrelated


DEGENERATE = {
    "three samples": lambda rng: (rng.standard_normal((3, 4)), rng.standard_normal((3, 4))),
    "constant column": lambda rng: (
        np.hstack([rng.standard_normal((40, 5)), np.ones((40, 1))]),
        rng.standard_normal((40, 3)),
    ),
    "fewer samples than dimensions": lambda rng: (
        rng.standard_normal((10, 50)),
        rng.standard_normal((10, 40)),
    ),
    "all-constant layer": lambda rng: (np.full((30, 4), 2.0), rng.standard_normal((30, 3))),
    "duplicated rows": lambda rng: (
        np.repeat(rng.standard_normal((10, 4)), 3, axis=0),
        np.repeat(rng.standard_normal((10, 3)), 3, axis=0),
    ),
}


@pytest.mark.parametrize("case", list(DEGENERATE))
@pytest.mark.parametrize("measure_id", list(MEASURES))
def test_degenerate_input_gives_a_value_or_a_clear_refusal_never_nan(measure_id, case):
    measure = MEASURES[measure_id]
    x, y = DEGENERATE[case](np.random.default_rng(0))
    try:
        value = score(measure, x, y)
    except InputError as err:
        assert str(err) and ("X" in str(err) or "Y" in str(err) or "sample" in str(err))
    else:
        assert math.isfinite(value)
        low, high = measure.bounds or measure.range
        assert low - 1e-9 <= value <= high + 1e-9


@pytest.mark.parametrize("measure_id", sorted(MEASURES))
def test_every_measure_is_described_with_a_definition_and_its_sign(measure_id):
    """The pages write the definition beside each value and colour a measure that can go
    negative on a scale diverging around 0; one declared never negative stays ≥ 0 on
    unrelated data (where chance fluctuations would push a signed measure below 0)."""
    described = describe(measure_id)
    assert described["definition"] and "\n" not in described["definition"]
    measure = MEASURES[measure_id]
    assert described["can_be_negative"] == ((measure.bounds or measure.range)[0] < 0)
    if not described["can_be_negative"]:
        rng = np.random.default_rng(0)
        for _ in range(3):
            x, y = rng.standard_normal((40, 6)), rng.standard_normal((40, 5))
            assert score(measure, x, y) >= -TOLERANCE
