"""What every measure between two representation spaces shares, and the layer × layer engine.

A measure compares X (n × p) and Y (n × q) whose rows are the same samples. Subclasses of
:class:`Measure` declare their properties (range, direction, symmetry, invariances: they drive
the UI's colour scales and legends) and implement ``prepare`` (per-layer work, done once per
layer however many pairs it takes part in) and ``score``. :func:`compare_layers` adds to every
value a permutation baseline (rows of one side shuffled: what unrelated representations of the
same n and d score) and, on request, a bootstrap confidence interval over samples.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

import numpy as np

from analysis.errors import InputError
from analysis.parameters import Parameter, check_values

BASELINE_WARNING = 0.5
"""Warn when unrelated data (the permutation baseline) already scores this high."""

Layers = Sequence[tuple[str, np.ndarray]]


class Measure:
    """Base class: subclasses set the class attributes and implement ``prepare``/``score``."""

    id: ClassVar[str]
    name: ClassVar[str]
    reference: ClassVar[str]
    range: ClassVar[tuple[float, float]] = (0.0, 1.0)  # for colour scales and legends
    bounds: ClassVar[tuple[float, float] | None] = None  # true bounds, when wider than range
    larger_is_more_similar: ClassVar[bool] = True
    symmetric: ClassVar[bool] = True
    is_metric: ClassVar[bool] = False  # a distance that satisfies the triangle inequality
    invariant_to: tuple[str, ...] = ()  # a measure's parameters may change it
    min_samples: ClassVar[int] = 4
    # False where resampling with replacement is meaningless (duplicated samples are each
    # other's nearest neighbours): such measures get no bootstrap interval.
    supports_bootstrap: ClassVar[bool] = True
    # True where the mean and sd over all row permutations are known in closed form
    # (``permutation_moments``): the baseline is then exact and no permutation is drawn.
    exact_baseline: ClassVar[bool] = False
    # True where a token-level comparison may take each position as a sample (rows × d, a
    # sample's several rows; :mod:`analysis.measures.positions`): the value is defined on any
    # paired rows, the cost grows linearly with them, and the baseline is exact.
    compares_positions: ClassVar[bool] = False
    # Where the measure's matrix products run (None: CUDA when there is a GPU); measures that
    # do not use torch ignore it.
    device: str | None = None
    # What a user may set, passed to ``__init__`` by name (``configured``).
    parameters: ClassVar[tuple[Parameter, ...]] = ()

    def configured(self, values: dict | None) -> Measure:
        """This measure with ``values`` for its parameters (the defaults elsewhere); an
        unknown name or a value out of range is an :class:`InputError` naming it."""
        return type(self)(**check_values(self.parameters, values, self.id))

    def settings(self) -> dict:
        """The value of every parameter (recorded with each score)."""
        return {p.name: _plain(getattr(self, p.name)) for p in self.parameters}

    def on(self, device: str | None) -> Measure:
        """This measure computing on ``device``."""
        measure = copy.copy(self)
        measure.device = device
        return measure

    def prepare(self, x: np.ndarray, name: str = "activations") -> Any:
        """Per-layer work: validation, centring, Gram or covariance matrices …"""
        raise NotImplementedError

    def score(self, a: Any, b: Any) -> float:
        raise NotImplementedError

    def rows(self, prepared: Any) -> np.ndarray:
        """The ``n × d`` rows a prepared layer was made from (for permutations, bootstrap)."""
        return prepared.data

    def permute(self, prepared: Any, perm: np.ndarray) -> Any:
        """The prepared layer with its rows permuted; override when it can be done cheaper."""
        return self.prepare(self.rows(prepared)[perm])

    def resample(self, prepared: Any, idx: np.ndarray, name: str = "activations") -> Any:
        """The prepared layer of the bootstrap resample ``rows[idx]`` (rows drawn with
        replacement). By default the resample is prepared afresh; a measure may override it
        to work from what ``prepared`` already holds where that gives the same layer, and
        say in :meth:`estimator` what is exact."""
        return self.prepare(self.rows(prepared)[idx], name)

    def permutation_moments(self, a: Any, b: Any) -> tuple[float, float]:
        """Exact mean and sd of the score over all row permutations of ``b``."""
        raise NotImplementedError

    def draws_in_parallel(self) -> bool:
        """Whether :func:`compare_layers` computes this measure's independent scores and
        resamples side by side, one per core, each with one BLAS thread. Right where each is
        small dense LAPACK work (an SVD or QR of a few hundred columns): OpenBLAS's threads
        barely speed that up, and on busy cores they spin, which made the CCA family's
        permutations 5× slower on a loaded 2-core machine (benchmarks/bench_cca.py). False by
        default: a large matrix product gains from BLAS's own threads."""
        return False

    def estimator(self, a: Any, b: Any) -> str:
        """How the value was computed for this pair (shown with the value)."""
        return ""

    def kept(self, prepared: Any) -> np.ndarray | None:
        """The costly part of a prepared layer, to store so that a later run on the same
        activations need not prepare it again (a series that grew by a checkpoint,
        :mod:`analysis.dynamics`); None (the default) where preparing costs little or makes
        something as large as the activations."""
        return None

    def restored(self, x: np.ndarray, kept: np.ndarray) -> Any:
        """The prepared layer of ``x`` from what :meth:`kept` returned for it."""
        raise NotImplementedError(f"{self.id} keeps nothing of a prepared layer")

    def baseline_note(self, n_permutations: int) -> str:
        """How the permutation baseline was obtained (shown with it)."""
        if self.exact_baseline:
            return "exact, over all row permutations"
        return f"{n_permutations} row shuffles"

    def baseline_warning_at(self) -> float:
        """A permutation baseline at least this similar gets a warning: half the scale (for a
        distance, half its maximum)."""
        if self.larger_is_more_similar:
            return BASELINE_WARNING
        return BASELINE_WARNING * self.range[1]

    def describe(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "reference": self.reference,
            "range": list(self.range),
            # the values it can take go below 0 (its colour scale diverges around 0)
            "can_be_negative": (self.bounds or self.range)[0] < 0,
            "larger_is_more_similar": self.larger_is_more_similar,
            "symmetric": self.symmetric,
            "metric": self.is_metric,
            "invariant_to": list(self.invariant_to),
            "parameters": [p.describe() for p in self.parameters],
            # Its chance level: every value comes with a permutation baseline (what unrelated
            # representations of the same n and d score), exact or from row shuffles; one at
            # least ``baseline_warning_at`` similar is flagged beside the value.
            "exact_baseline": self.exact_baseline,
            "baseline_warning_at": self.baseline_warning_at(),
            "compares_positions": self.compares_positions,
        }


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def check_activations(
    x: np.ndarray, name: str, min_samples: int, finite: bool = True
) -> np.ndarray:
    """``x`` as a finite 2-D array with enough samples, or a clear :class:`InputError`
    (``finite=False`` leaves the finiteness check to a caller that reads the rows anyway)."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise InputError(f"{name}: expected an n × d array, got shape {x.shape}")
    if x.shape[0] < min_samples:
        raise InputError(f"{name}: needs at least {min_samples} samples, got {x.shape[0]}")
    if x.shape[1] == 0:
        raise InputError(f"{name}: has no columns")
    if finite and not np.isfinite(x).all():
        raise not_finite(name)
    return x


def not_finite(name: str) -> InputError:
    return InputError(f"{name}: activations contain NaN or Inf")


@dataclass
class PairResult:
    value: float | None  # None where the measure refused the pair: ``refusal`` says why
    baseline: float | None  # mean score over row permutations of Y
    baseline_std: float | None
    n: int
    d_a: int
    d_b: int
    estimator: str
    ci_low: float | None = None  # bootstrap 95 % interval over samples, bias-corrected
    ci_high: float | None = None
    larger_is_more_similar: bool = True
    warn_at: float = BASELINE_WARNING  # a baseline this similar means n is too small for d
    refusal: str = ""

    @property
    def warnings(self) -> list[str]:
        if self.refusal:
            return [self.refusal]
        if self.baseline is None:
            return []
        similar = (
            self.baseline >= self.warn_at
            if self.larger_is_more_similar
            else self.baseline <= self.warn_at
        )
        if similar:
            return [
                f"unrelated data already scores {self.baseline:.2f} at n={self.n}, "
                f"d={max(self.d_a, self.d_b)}: use more samples or fewer dimensions"
            ]
        return []


def compare_layers(
    measure: Measure,
    layers_a: Layers,
    layers_b: Layers,
    n_permutations: int = 10,
    n_bootstrap: int = 0,
    seed: int = 0,
    progress: Callable[[float], None] | None = None,
) -> dict[tuple[str, str], PairResult]:
    """``measure`` with its permutation baseline for every pair (layer of A, layer of B).

    Each layer is prepared once (once more per bootstrap resample), however many times it
    appears on either side, as draws are run (:func:`_drawing`); the same seeded row
    permutations and resamples serve every pair, so baselines and intervals are comparable
    across the matrix. A measure whose permutation moments are known exactly draws none.

    A layer or pair the measure refuses (a dead layer for CKA, too few samples for CCA …) gets
    a result without a value whose ``refusal`` says why; the other pairs are scored. Only when
    no pair can be scored does the comparison itself fail, with the first reason.
    """
    if n_permutations < 1:
        raise InputError("the permutation baseline needs at least one permutation")
    if not layers_a or not layers_b:
        raise InputError("choose at least one layer on each side")
    sizes = {len(x) for _, x in [*layers_a, *layers_b]}
    if len(sizes) != 1:
        raise InputError(f"layers have different numbers of samples: {sorted(sizes)}")
    n = sizes.pop()
    rng = np.random.default_rng(seed)
    perms = [] if measure.exact_baseline else [rng.permutation(n) for _ in range(n_permutations)]
    resamples = [rng.integers(0, n, n) for _ in range(n_bootstrap)]
    if not measure.supports_bootstrap:
        resamples = []
    with _drawing(measure) as run:
        prepared = _prepare_each(measure, [*layers_a, *layers_b], run)
        refused_a: dict[str, str] = {}
        refused_b: dict[str, str] = {}
        prepared_a = _accepted(layers_a, prepared, refused_a)
        prepared_b = _accepted(layers_b, prepared, refused_b)
        values: dict[tuple[str, str], float] = {}
        refusals = {
            (name_a, name_b): refused_a.get(name_a) or refused_b[name_b]
            for name_a, _ in layers_a
            for name_b, _ in layers_b
            if name_a in refused_a or name_b in refused_b
        }
        by_a, by_b = dict(prepared_a), dict(prepared_b)
        total = len(prepared_a) * len(prepared_b) + len(perms) * len(prepared_b) + len(resamples)
        done = 0

        def advance() -> None:
            nonlocal done
            done += 1
            if progress:
                progress(done / total)

        pairs = [(name_a, a, name_b, b) for name_a, a in prepared_a for name_b, b in prepared_b]
        # a score may cache what permute() reuses
        outcomes = run([partial(measure.score, a, b) for _, a, _, b in pairs])
        for (name_a, _, name_b, _), outcome in zip(pairs, outcomes, strict=True):
            if isinstance(outcome, InputError):
                refusals[(name_a, name_b)] = str(outcome)
            else:
                values[(name_a, name_b)] = outcome
            advance()
        if not values:
            raise InputError(next(iter(refusals.values())))
        shuffled: dict[tuple[str, str], list[float]] = {key: [] for key in values}
        for perm in perms:  # each layer of B is permuted once per permutation, for all of A
            for name_b, b in prepared_b:
                permuted = measure.permute(b, perm)
                names = [name_a for name_a, _ in prepared_a if (name_a, name_b) in values]
                calls = [partial(measure.score, by_a[name_a], permuted) for name_a in names]
                for name_a, outcome in zip(names, run(calls), strict=True):
                    shuffled[(name_a, name_b)].append(_value(outcome))
                advance()
        dims_a = {name: x.shape[1] for name, x in layers_a}
        dims_b = {name: x.shape[1] for name, x in layers_b}
        if measure.exact_baseline:
            moments = {(a, b): measure.permutation_moments(by_a[a], by_b[b]) for a, b in values}
        else:
            moments = {
                key: (float(np.mean(draws)), float(np.std(draws)))
                for key, draws in shuffled.items()
            }
        results = {
            (name_a, name_b): PairResult(
                value=value,
                baseline=float(moments[(name_a, name_b)][0]),
                baseline_std=float(moments[(name_a, name_b)][1]),
                n=n,
                d_a=dims_a[name_a],
                d_b=dims_b[name_b],
                estimator=measure.estimator(by_a[name_a], by_b[name_b]),
                larger_is_more_similar=measure.larger_is_more_similar,
                warn_at=measure.baseline_warning_at(),
            )
            for (name_a, name_b), value in values.items()
        }
        for name_a, name_b in refusals:
            results[(name_a, name_b)] = PairResult(
                None,
                None,
                None,
                n,
                dims_a[name_a],
                dims_b[name_b],
                "",
                refusal=refusals[(name_a, name_b)],
            )
        if resamples:
            _bootstrap(measure, prepared_a, prepared_b, resamples, results, run, advance)
    return {(a, b): results[(a, b)] for a, _ in layers_a for b, _ in layers_b}


def _prepare_each(measure: Measure, layers: Layers, run: Run) -> dict[int, Any]:
    """Each distinct array of ``layers`` prepared once (a layer compared with itself, a model's
    own layer × layer matrix), as ``run`` runs draws: the prepared layer or the InputError that
    refused it, keyed by the array's id."""
    distinct: dict[int, tuple[str, np.ndarray]] = {}
    for name, x in layers:
        distinct.setdefault(id(x), (name, x))
    outcomes = run([partial(measure.prepare, x, name) for name, x in distinct.values()])
    return dict(zip(distinct, outcomes, strict=True))


def _accepted(
    layers: Layers, prepared: dict[int, Any], refused: dict[str, str]
) -> list[tuple[str, Any]]:
    """``(name, prepared)`` of each layer the measure accepted; the others' reasons go to
    ``refused``."""
    accepted = []
    for name, x in layers:
        outcome = prepared[id(x)]
        if isinstance(outcome, InputError):
            refused[name] = str(outcome)
        else:
            accepted.append((name, outcome))
    return accepted


def _bootstrap(
    measure: Measure,
    prepared_a: list[tuple[str, Any]],
    prepared_b: list[tuple[str, Any]],
    resamples: list[np.ndarray],
    results: dict[tuple[str, str], PairResult],
    run: Run,
    advance: Callable[[], None],
) -> None:
    """95 % intervals from bootstrap resamples of the samples; each resample prepares every
    layer once (:meth:`Measure.resample`; a layer on both sides once for both) and scores
    every pair (a symmetric measure scores a pair of layers that appears both ways once).

    Resampling with replacement duplicates rows, which biases plug-in estimators such as
    linear CKA upwards, so the percentile interval is shifted by the bootstrap estimate of
    the bias (mean of the draws minus the estimate) and clipped to the measure's bounds.
    """
    estimates = {key: result.value for key, result in results.items() if result.value is not None}
    draws: dict[tuple[str, str], list[float]] = {key: [] for key in estimates}
    layers: dict[int, tuple[str, Any]] = {}  # a layer on both sides once
    for name, p in [*prepared_a, *prepared_b]:
        layers.setdefault(id(p), (name, p))
    for idx in resamples:
        # None: the measure refused this layer's resample (e.g. one that left it constant);
        # the pairs it takes part in get no draw from this resample, the others do.
        outcomes = run([partial(measure.resample, p, idx, name) for name, p in layers.values()])
        resampled = {
            key: None if isinstance(outcome, InputError) else outcome
            for key, outcome in zip(layers, outcomes, strict=True)
        }
        calls: dict[tuple[int, int], Callable[[], Any]] = {}  # each pair of layers once
        wanted = []  # (pair of names, the pair of layers scored for it)
        for name_a, a in prepared_a:
            for name_b, b in prepared_b:
                if (name_a, name_b) not in draws:
                    continue
                if resampled[id(a)] is None or resampled[id(b)] is None:
                    continue
                pair = (id(a), id(b))
                if measure.symmetric and pair[::-1] in calls:
                    pair = pair[::-1]
                elif pair not in calls:
                    calls[pair] = partial(measure.score, resampled[id(a)], resampled[id(b)])
                wanted.append(((name_a, name_b), pair))
        found = dict(zip(calls, run(list(calls.values())), strict=True))
        for key, pair in wanted:
            draws[key].append(_value(found[pair]))
        advance()
    low, high = measure.bounds or measure.range
    for key, values in draws.items():
        if len(values) < 2:
            continue
        result = results[key]
        bias = float(np.mean(values)) - estimates[key]
        q_low, q_high = np.percentile(values, [2.5, 97.5]) - bias
        result.ci_low = float(np.clip(q_low, low, high))
        result.ci_high = float(np.clip(q_high, low, high))


Run = Callable[[Sequence[Callable[[], Any]]], list[Any]]
"""Runs a batch of independent calls; each one's value, or the InputError it raised, in order."""


@contextmanager
def _drawing(measure: Measure) -> Iterator[Run]:
    """How ``measure``'s independent preparations, scores and resamples are run: in turn, or,
    where it draws in parallel (:meth:`Measure.draws_in_parallel`) and BLAS may use several
    threads in this process (all cores, or a worker process's share of them), as many side by
    side, with BLAS held to one thread each (numpy's LAPACK releases the GIL). Either way each
    call computes what it would alone, so the values are the same. Preparations too: on a
    loaded 2-core machine a CCA layer's preparation (a QR and an SVD of 1,000 × 384) took
    1.1–2.0 s on two BLAS threads, which spin on busy cores, against 0.14 s on one."""
    if not measure.draws_in_parallel():
        yield _in_turn
        return
    from threadpoolctl import threadpool_info, threadpool_limits

    blas = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
    threads = max(blas, default=1)
    if threads < 2:
        yield _in_turn
        return
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(threads) as pool:
        yield lambda calls: list(pool.map(_outcome, calls))


def _in_turn(calls: Sequence[Callable[[], Any]]) -> list[Any]:
    return [_outcome(call) for call in calls]


def _outcome(call: Callable[[], Any]) -> Any:
    """``call()``, or the InputError it raised."""
    try:
        return call()
    except InputError as err:
        return err


def _value(outcome: Any) -> Any:
    """A call's value; the InputError it raised, raised again."""
    if isinstance(outcome, InputError):
        raise outcome
    return outcome
