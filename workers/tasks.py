"""Thin, idempotent tasks: take a run id, load rows, call one analysis function, store results.

A task message only says "look at run N". The run row decides: a run that is not queued, or
whose dependencies are not all finished, is left alone, so a replayed or early message is a
no-op; the last dependency to finish enqueues its dependents again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from time import monotonic
from typing import Any

import numpy as np
import torch
from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from analysis.dynamics.series import (
    chance_level,
    is_probed,
    matrix_of,
    missing_cells,
    series_matrix,
    step_statistics,
    steps_needed,
)
from analysis.errors import InputError
from analysis.explorer.geometry import geometry
from analysis.explorer.nested import MAX_LOO_SAMPLES, nested_quality
from analysis.explorer.projection import (
    PARAMETERS,
    WIDTH,
    NeighbourSearch,
    nearest_neighbours,
    neighbourhoods,
    project,
    project_aligned,
)
from analysis.explorer.projection import Projection as Projected
from analysis.host import run_in_host
from analysis.measures.alignment import fit_alignment
from analysis.measures.compatibility import compatibility as cross_model_retrieval
from analysis.measures.compatibility import query_gallery_split
from analysis.measures.engine import Measure, PairResult, compare_layers
from analysis.measures.knn import knn_indices, knn_jaccard_per_sample
from analysis.measures.positions import PER_POSITION, REDUCTIONS, pooled, same_rows
from analysis.measures.registry import MEASURES
from analysis.measures.units import TEST_FRACTION, unit_matching_report
from analysis.models.choices import TOKENS
from analysis.models.precomputed import read_precomputed
from analysis.probes.previews import previews
from webapp.catalog import uploads
from webapp.catalog.ingest import checkpoint_model_params, host_limits
from webapp.catalog.models import ActivationSet, Blob, Checkpoint, Dataset, Upload
from webapp.celery import QUEUES
from webapp.dispatch import WORK_TASK, wake
from webapp.runs.drilldown import MOVED_SHOWN
from webapp.runs.kinds import KINDS
from webapp.runs.models import (
    Alignment,
    Cancelled,
    CompatibilityResult,
    KeptPreparation,
    LayerStatistics,
    ProbeResult,
    Projection,
    Report,
    Run,
    Score,
    SeriesCell,
    reap_stale_runs,
)
from webapp.runs.queue import fail_blocked, ready_runs, take_next
from webapp.runs.units import check_width
from workers import cores, presence  # noqa: F401  (signals: share the cores; say it is alive)

logger = logging.getLogger(__name__)


@contextmanager
def heartbeat(beat: Callable[[], bool], every_s: float, name: str) -> Iterator[None]:
    """Call ``beat`` from a thread every ``every_s`` while the body computes (until it
    returns False), so a long step without progress reports does not look like a dead worker
    to the reaper."""
    stop = threading.Event()

    def beating() -> None:
        try:
            while not stop.wait(every_s) and beat():
                pass
        finally:
            connection.close()  # this thread's own database connection

    thread = threading.Thread(target=beating, name=f"heartbeat-{name}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@shared_task(name="replens.reap")
def reap() -> dict:
    """Periodic (Celery beat): queue again, or fail, runs and upload checks whose worker fell
    silent; and wake a worker of every queue that has work waiting (a lost message never
    strands a run or an upload)."""
    limits = settings.REPLENS_STALE_AFTER_S, settings.REPLENS_MAX_ATTEMPTS
    found = reap_stale_runs(*limits)
    checks = uploads.reap(*limits)
    if found["queued"] or found["failed"] or checks["queued"] or checks["failed"]:
        logger.warning(
            "reaper: queued again runs %s and uploads %s, failed runs %s and uploads %s",
            found["queued"],
            checks["queued"],
            found["failed"],
            checks["failed"],
        )
    for queue in QUEUES:
        if ready_runs(queue) or uploads.waiting(queue):
            wake(queue)
    return {"runs": found, "uploads": checks}


@shared_task(name=WORK_TASK, bind=True)
def work(task: Task, queue: str) -> None:
    """A worker of ``queue`` is free: check the next upload waiting, if any (checks come
    before every run: they are short, and people wait for them), else take the run the fair
    queue serves next, if any."""
    upload = uploads.take_next(queue, task.request.hostname or "")
    if upload is not None:
        check_upload(upload)
        return
    for blocked in fail_blocked(queue):
        _enqueue_dependents(blocked)
    run = take_next(queue, task.request.id or "", task.request.hostname or "")
    if run is not None:
        _execute(run)


def check_upload(upload: Upload) -> None:
    """Check a claimed upload (:func:`webapp.catalog.uploads.check`), beating meanwhile."""
    with heartbeat(lambda: uploads.beat(upload), settings.REPLENS_HEARTBEAT_S, str(upload.pk)):
        uploads.check(upload)


@shared_task(name="replens.execute_run", bind=True)
def execute_run(task: Task, run_id: int) -> None:
    """Execute this run if it is queued and ready (tests and replays name a run)."""
    run = Run.objects.filter(pk=run_id).first()
    if run is None or run.state != Run.State.QUEUED:
        return
    dependencies = run.dependencies_state()
    if dependencies == "waiting":
        return
    if dependencies == "failed":
        run.fail_for_dependencies()
        _enqueue_dependents(run)
        return
    if run.claim(task.request.id or "", task.request.hostname or ""):
        _execute(run)


def _execute(run: Run) -> None:
    """Compute a claimed run and record how it ended."""
    try:
        with heartbeat(run.beat, settings.REPLENS_HEARTBEAT_S, f"run-{run.pk}"):
            timings = RUNNERS[run.kind](run)
    except Cancelled:
        logger.info("run %s was cancelled while running", run.pk)
    except InputError as err:
        logger.info("run %s failed: %s", run.pk, err)
        run.finish(Run.State.FAILED, str(err), details=err.details)
    except SoftTimeLimitExceeded:
        run.finish(Run.State.FAILED, "the run exceeded its time limit")
    except Exception:
        logger.exception("run %s failed", run.pk)
        run.finish(
            Run.State.FAILED,
            f"the server failed while computing this run (internal error; its log has the "
            f"details under run {run.pk})",
        )
    else:
        run.finish(Run.State.SUCCEEDED, timings=timings)
    _enqueue_dependents(run)


def _enqueue_dependents(run: Run) -> None:
    for dependent in run.dependents.filter(state=Run.State.QUEUED):
        dependent.enqueue_on_commit()


def extract(run: Run) -> dict:
    """Store the activations of the run's layers that are not stored yet."""
    checkpoint, dataset = run.checkpoint, run.dataset
    pooling = run.params["pooling"]
    stored = set(
        ActivationSet.objects.filter(
            checkpoint=checkpoint, dataset=dataset, pooling=pooling
        ).values_list("layer", flat=True)
    )
    todo = [layer for layer in run.params["layers"] if layer not in stored]
    if not todo:
        return {"layers_extracted": 0}
    started = monotonic()
    arrays = dataset.load_arrays()
    if checkpoint.format == Checkpoint.Format.PRECOMPUTED:
        with checkpoint.blob.local_path() as path:
            found = read_precomputed(path, checkpoint.filename).aligned_to(arrays.ids)
        loaded = monotonic()
        activations = {layer: found[layer] for layer in todo}
    else:
        loaded = monotonic()
        _, activations = _in_host(run, {"layers": todo, "pooling": pooling}, {"x": arrays.x})
    computed = monotonic()
    for layer in todo:
        values = activations[layer]
        positions = None
        if pooling == TOKENS:  # each row's sample, position, special (analysis.host.tasks)
            positions = Blob.store_arrays(
                {key: activations[f"{key}:{layer}"] for key in ("sample", "position", "special")}
            )
        ActivationSet.objects.update_or_create(
            checkpoint=checkpoint,
            dataset=dataset,
            layer=layer,
            pooling=pooling,
            defaults={
                "blob": Blob.store_array(values),
                "positions": positions,
                "n": values.shape[0],
                "d": values.shape[1],
                "run": run,
            },
        )
    return {
        "layers_extracted": len(todo),
        "load_s": round(loaded - started, 3),
        "compute_s": round(computed - loaded, 3),
        "store_s": round(monotonic() - computed, 3),
        "samples_per_s": round(arrays.n / max(computed - loaded, 1e-9), 1),
    }


def _in_host(run: Run, params: dict, inputs: dict) -> tuple[dict, dict]:
    """Run the entry point of the run's kind on its checkpoint in a model host: stopped
    within a second of the run being cancelled, and at the host's limits."""
    device = settings.REPLENS_DEVICE or ("cuda" if torch.cuda.is_available() else "cpu")
    with run.checkpoint.blob.local_path() as path:
        return run_in_host(
            KINDS[run.kind].entry,
            {**checkpoint_model_params(run.checkpoint), **params, "device": device},
            {"model": path, **inputs},
            host_limits(),
            progress=run.report_progress,
            check=run.check_running,
            cpu_only=not device.startswith("cuda"),
        )


def _activation_sets(
    run: Run, checkpoint: Checkpoint | None, layers: list[str], pooling: str | None = None
) -> list[ActivationSet]:
    """The stored activations of ``layers`` (at ``pooling``, default the run's)."""
    pooling = pooling or run.params["pooling"]
    found = {
        s.layer: s
        for s in ActivationSet.objects.filter(
            checkpoint=checkpoint, dataset=run.dataset, pooling=pooling, layer__in=layers
        ).select_related("blob")
    }
    missing = [layer for layer in layers if layer not in found]
    if missing:
        raise InputError(f"no stored activations of {checkpoint} for {', '.join(missing)}")
    for s in found.values():
        if s.positions_id is None and s.n != run.dataset.n_samples:
            raise InputError(
                f"activations of {s.layer} have {s.n} rows but {run.dataset} has "
                f"{run.dataset.n_samples} samples"
            )
    return [found[layer] for layer in layers]


def compare(run: Run) -> dict:
    """Score every (layer of A, layer of B) pair and store one Score row per pair; asked per
    position, each pair is read per position where its two sets allow it (:func:`_parts`)."""
    p = run.params
    sets_a = _activation_sets(run, run.checkpoint, p["layers_a"])
    sets_b = _activation_sets(run, run.checkpoint_b, p["layers_b"], p.get("pooling_b"))
    return _score_pairs(
        run, {s.layer: s for s in sets_a}, {s.layer: s for s in sets_b}, per_pair=True
    )


def model_matrix(run: Run) -> dict:
    """Score one layer of every checkpoint against the same layer of every other one."""
    p = run.params
    checkpoints = {c.pk: c for c in Checkpoint.objects.filter(pk__in=p["checkpoints"])}
    sets = {
        str(pk): _activation_sets(run, checkpoints[pk], [p["layer"]])[0] for pk in p["checkpoints"]
    }
    return _score_pairs(run, sets, sets)


def _score_pairs(run: Run, sets_a: dict, sets_b: dict, per_pair: bool = False) -> dict:
    """Score every (A, B) pair of activation sets with the run's measure, baseline and
    interval, add per-sample kNN agreement, and store one Score row per pair. Activations are
    memory-mapped, so measures that stream (linear CKA) hold only blocks of them in memory.
    ``per_pair``: asked per position, each pair is read per position where its own two sets
    allow it (a comparison's layers); else the whole run is read one way (a model matrix, whose
    cells are ordered against each other)."""
    p = run.params
    measure = MEASURES[p["measure"]].configured(p.get("measure_params"))
    measure = measure.on(settings.REPLENS_DEVICE or None)
    started = monotonic()
    with ExitStack() as stack:
        mapped = {
            s.pk: stack.enter_context(s.memory_map()) for s in {*sets_a.values(), *sets_b.values()}
        }
        how = p.get("positions", "mean")
        compared = _read_sets([*sets_a.values(), *sets_b.values()], mapped, how, measure)
        parts = [Part(compared, list(sets_a), list(sets_b))]
        if per_pair and how == PER_POSITION and measure.compares_positions:
            if not compared.per_position:  # some pairs may still be read per position
                parts = _parts(measure, sets_a, sets_b, mapped, compared)
        results: dict[tuple[str, str], PairResult] = {}
        read_as: dict[tuple[str, str], Part] = {}
        done = 0.0
        for part in parts:
            share = len(part.pairs) / (len(sets_a) * len(sets_b))

            def progress(f: float, at: float = done, w: float = share) -> None:
                run.report_progress(0.8 * (at + w * f))

            found = compare_layers(
                measure,
                [(name, part.read.arrays[sets_a[name].pk]) for name in part.names_a],
                [(name, part.read.arrays[sets_b[name].pk]) for name in part.names_b],
                n_permutations=p["n_permutations"],
                n_bootstrap=0 if part.read.per_position else p.get("n_bootstrap", 0),
                seed=p["seed"],
                progress=progress,
            )
            for pair in part.pairs:
                results[pair], read_as[pair] = found[pair], part
            done += share
        # The drill-down reads each sample as the score did: read per position, by its mean
        # (the note says so); pooled on the fly by mean, first or last, as pooled.
        vectors = compared.per_sample if compared.per_position else compared.arrays
        agreement = _sample_agreement(
            [(name, vectors[s.pk]) for name, s in sets_a.items()],
            [(name, vectors[s.pk]) for name, s in sets_b.items()],
            p.get("agreement_k", 10),
        )
    computed = monotonic()
    parameters = {
        "pooling": p["pooling"],
        **({"pooling_b": p["pooling_b"]} if "pooling_b" in p else {}),
        "measure_params": measure.settings(),
        "n_permutations": p["n_permutations"],
        "baseline": measure.baseline_note(p["n_permutations"]),
        "seed": p["seed"],
        "knn_k": agreement.k,
        "knn_metric": agreement.metric,
    }
    with transaction.atomic():
        for (name_a, name_b), r in results.items():
            a, b = sets_a[name_a], sets_b[name_b]
            part = read_as[(name_a, name_b)]
            read = {
                "positions": part.notes.get((name_a, name_b), part.read.note),
                "n_bootstrap": 0 if part.read.per_position else p.get("n_bootstrap", 0),
            }
            Score.objects.update_or_create(
                run=run,
                measure=p["measure"],
                activation_a=a,
                activation_b=b,
                defaults={
                    "layer_a": a.layer,
                    "layer_b": b.layer,
                    "estimator": r.estimator,
                    "parameters": {**parameters, **read},
                    "value": r.value,
                    "baseline": r.baseline,
                    "baseline_std": r.baseline_std,
                    "ci_low": r.ci_low,
                    "ci_high": r.ci_high,
                    "sample_agreement": agreement.blobs[(name_a, name_b)],
                    "n": r.n,
                    "d_a": r.d_a,
                    "d_b": r.d_b,
                    "warnings": r.warnings,
                    "code_version": run.code_version,
                },
            )
    return {"compute_s": round(computed - started, 3), "pairs": len(results)}


@dataclass
class Part:
    """Pairs of a comparison read one way: ``read`` (the arrays, and how they were read), the
    layers of A and B it scores together, the ``pairs`` of them kept (default: every one) and,
    where a pair's reading needs its own words, ``notes`` by pair."""

    read: ReadSets
    names_a: list[str]
    names_b: list[str]
    pairs: list[tuple[str, str]] = field(default_factory=list)
    notes: dict[tuple[str, str], str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.pairs = self.pairs or [(a, b) for a in self.names_a for b in self.names_b]


def _parts(
    measure: Measure,
    sets_a: dict[str, ActivationSet],
    sets_b: dict[str, ActivationSet],
    mapped: dict[int, np.ndarray],
    whole: ReadSets,
) -> list[Part]:
    """A comparison asked per position whose sets are not all alike (``whole``: how the run
    would read them together), one pair at a time: the pairs of token-level sets that hold the
    same rows per position, a part for each such group of sets; every other pair pooled on the
    fly (the mean), saying why it was not read per position. A set of one row per sample
    (stored so or at pooling tokens, as a sentence embedding is) is read as it is."""
    n = next(iter(sets_a.values())).dataset.n_samples

    def vectors(s: ActivationSet) -> bool:
        return s.pk not in whole.rows or len(whole.rows[s.pk]["sample"]) == n

    groups: list[list[ActivationSet]] = []
    for s in dict.fromkeys([*sets_a.values(), *sets_b.values()]):
        if vectors(s):
            continue
        alike = next(
            (g for g in groups if same_rows([whole.rows[g[0].pk], whole.rows[s.pk]])), None
        )
        if alike is None:
            groups.append([s])
        else:
            alike.append(s)
    parts, covered = [], set()
    for group in groups:
        names_a = [name for name, s in sets_a.items() if s in group]
        names_b = [name for name, s in sets_b.items() if s in group]
        if names_a and names_b:
            parts.append(Part(_read_sets(group, mapped, PER_POSITION, measure), names_a, names_b))
            covered |= {(a, b) for a in names_a for b in names_b}
    rest = [(a, b) for a in sets_a for b in sets_b if (a, b) not in covered]
    if rest:
        names_a = list(dict.fromkeys(a for a, _ in rest))
        names_b = list(dict.fromkeys(b for _, b in rest))
        sets = [*(sets_a[name] for name in names_a), *(sets_b[name] for name in names_b)]
        pooled = _read_sets(list(dict.fromkeys(sets)), mapped, "mean")
        notes = {}
        for a, b in rest:
            alone = [s for s in (sets_a[a], sets_b[b]) if vectors(s)]
            names = list(dict.fromkeys(s.layer for s in alone))
            why = (
                f"{' and '.join(names)} {'holds' if len(names) == 1 else 'hold'} one row per sample"
                if alone
                else "the two sets hold different rows (the models read different tokens or "
                "patches)"
            )
            read = "one vector per sample, compared as it is" if len(alone) == 2 else pooled.note
            notes[(a, b)] = f"per position was asked, but {why}; {read}"
        parts.append(Part(pooled, names_a, names_b, rest, notes))
    return parts


@dataclass
class ReadSets:
    """What a run reads of each activation set (by its id): ``arrays`` for its analysis,
    ``per_sample`` one vector per sample (a token-level set's mean: the drill-down's agreement
    where the rows are read per position, a series' statistics); ``reading``, how token-level
    sets were read (``per-position``, ``mean``, ``first`` or ``last``; "" where there were
    none) and ``note``, for provenance, that in words ("" where there were none)."""

    arrays: dict[int, np.ndarray]
    per_sample: dict[int, np.ndarray]
    per_position: bool = False
    note: str = ""
    reading: str = ""
    rows: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)


def _read_sets(
    sets: list[ActivationSet],
    mapped: dict[int, np.ndarray],
    how: str,
    measure: Measure | None = None,
) -> ReadSets:
    """The arrays a run reads (``mapped``: each set's stored rows): sets of one vector per
    sample as stored; token-level sets (pooling ``tokens``) per position where ``how`` asks for
    it, a ``measure`` compares them (None: the run reads one vector per sample) and every set
    holds the same rows, else pooled on the fly by ``how``
    (:mod:`analysis.measures.positions`), the model never run again. Every kind that reads
    stored activations reads them here."""
    positions = {s.pk: s.positions.load_arrays() for s in sets if s.positions is not None}
    if not positions:
        return ReadSets(mapped, mapped)
    n = sets[0].dataset.n_samples
    means = {  # "special": the rows mean leaves out (a ViT's class token); older blobs: none
        pk: pooled(mapped[pk], found["sample"], n, "mean", found.get("special"))
        for pk, found in positions.items()
    }
    per_sample = {pk: means.get(pk, x) for pk, x in mapped.items()}
    if how == PER_POSITION:
        why = (
            "this run reads one vector per sample"
            if measure is None
            else _not_per_position(measure, sets, positions)
        )
        if not why:
            note = (
                f"per position: each of the {len(mapped[sets[0].pk])} rows (a sample's token or "
                "patch) is a sample of the measure; no bootstrap interval, and the baseline "
                "shuffles rows as if they were independent, which a sample's positions are not "
                "(it is the level of unrelated positions, below that of unrelated texts or "
                "images); the drill-down's agreement is on each sample's mean"
            )
            return ReadSets(mapped, per_sample, True, note, PER_POSITION, positions)
        how = "mean"
        asked = f"per position was asked, but {why}; "
    else:
        asked = ""
    arrays = dict(mapped)
    for pk, found in positions.items():
        arrays[pk] = means[pk] if how == "mean" else pooled(mapped[pk], found["sample"], n, how)
    note = f"{asked}pooled on the fly by {how}: {REDUCTIONS[how]}, from the stored positions"
    return ReadSets(arrays, per_sample, note=note, reading=how, rows=positions)


@contextmanager
def _vectors(run: Run, sets: list[ActivationSet]) -> Iterator[ReadSets]:
    """``sets`` memory-mapped and read as one vector per sample (:func:`_read_sets`, by the
    run's ``positions``): what the kinds that read no positions work on, while open."""
    with ExitStack() as stack:
        mapped = {s.pk: stack.enter_context(s.memory_map()) for s in sets}
        yield _read_sets(sets, mapped, run.params.get("positions", "mean"))


def _positions_note(read: ReadSets) -> dict[str, str]:
    """``{"positions": note}`` for a result's provenance where token-level sets were read."""
    return {"positions": read.note} if read.note else {}


def _not_per_position(
    measure: Measure, sets: list[ActivationSet], positions: dict[int, dict[str, np.ndarray]]
) -> str:
    """Why these sets cannot be compared per position (``positions``: each token-level set's
    sample and position arrays); "" where they can."""
    if not measure.compares_positions:
        return f"{measure.name} compares samples only"
    if len(positions) < len({s.pk for s in sets}):
        return "a set holds one vector per sample"
    if not same_rows(list(positions.values())):
        n = sets[0].dataset.n_samples
        vectors = sorted({s.layer for s in sets if len(positions[s.pk]["sample"]) == n})
        if vectors and len(vectors) < len({s.layer for s in sets}):
            return (
                f"{', '.join(vectors)} {'holds' if len(vectors) == 1 else 'hold'} one row per "
                "sample and the other layers a row per token or patch (compare those layers "
                "alone to read them per position)"
            )
        return "the sets hold different rows (the models read different tokens or patches)"
    return ""


@dataclass
class SampleAgreement:
    k: int
    metric: str
    blobs: dict[tuple[str, str], Blob]


def _sample_agreement(
    layers_a: Sequence[tuple[str, np.ndarray]],
    layers_b: Sequence[tuple[str, np.ndarray]],
    k: int = 10,
    metric: str = "euclidean",
) -> SampleAgreement:
    """Per-sample kNN Jaccard agreement of every layer pair, stored as blobs: the drill-down
    behind each global score. Each layer's kNN graph is computed once. Euclidean, so that
    all-zero rows (dead ReLU samples) need no special case."""
    k = min(k, len(layers_a[0][1]) - 1)
    graph_a = {name: knn_indices(x, k, metric, name=name) for name, x in layers_a}
    graph_b = {name: knn_indices(x, k, metric, name=name) for name, x in layers_b}
    blobs = {
        (a, b): Blob.store_array(knn_jaccard_per_sample(ia, ib).astype(np.float32))
        for a, ia in graph_a.items()
        for b, ib in graph_b.items()
    }
    return SampleAgreement(k, metric, blobs)


def align(run: Run) -> dict:
    """Fit the run's map between two layers and store its held-out scores and residuals."""
    p = run.params
    set_a = _activation_sets(run, run.checkpoint, [p["layer_a"]])[0]
    set_b = _activation_sets(run, run.checkpoint_b, [p["layer_b"]])[0]
    started = monotonic()
    with _vectors(run, [set_a, set_b]) as read:
        r = fit_alignment(
            read.arrays[set_a.pk],
            read.arrays[set_b.pk],
            p["method"],
            test_fraction=p["test_fraction"],
            seed=p["seed"],
            progress=run.report_progress,
            name_a=f"{run.checkpoint} {set_a.layer}",
            name_b=f"{run.checkpoint_b} {set_b.layer}",
        )
    computed = monotonic()
    Alignment.objects.update_or_create(
        run=run,
        defaults={
            "activation_a": set_a,
            "activation_b": set_b,
            "method": r.method,
            "estimator": r.estimator,
            "parameters": {
                **{k: p[k] for k in ("pooling", "test_fraction", "seed")},
                **_positions_note(read),
            },
            "n_train": r.n_train,
            "n_test": r.n_test,
            "d_a": r.d_a,
            "d_b": r.d_b,
            "r2": r.r2,
            "r2_shuffled": r.r2_shuffled,
            "retrieval_top1": r.retrieval_top1,
            "retrieval_top5": r.retrieval_top5,
            "retrieval_chance_top1": r.retrieval_chance_top1,
            "residuals": Blob.store_array(r.residuals.astype(np.float32)),
            "test_mask": Blob.store_array(r.test),
            "warnings": r.warnings,
            "code_version": run.code_version,
        },
    )
    return {"compute_s": round(computed - started, 3)}


def compatibility(run: Run) -> dict:
    """Cross-model retrieval between every pair of the series and the compatibility criteria."""
    p = run.params
    checkpoints = {c.pk: c for c in Checkpoint.objects.filter(pk__in=p["checkpoints"])}
    series = [checkpoints[pk] for pk in p["checkpoints"]]
    dataset = run.dataset
    labels = dataset.column("y")
    if labels is None:
        raise InputError(f"{dataset} has no labels: retrieval needs identity or class labels")
    query, gallery = query_gallery_split(
        labels, dataset.column("meta:role"), query_fraction=p["query_fraction"], seed=p["seed"]
    )
    started = monotonic()
    sets = [_activation_sets(run, c, [p["layer"]])[0] for c in series]
    with _vectors(run, sets) as read:
        result = cross_model_retrieval(
            [(c.name, np.asarray(read.arrays[s.pk])) for c, s in zip(series, sets, strict=True)],
            labels,
            query,
            gallery,
            metric=p["metric"],
            criterion=p["criterion"],
            seed=p["seed"],
            progress=run.report_progress,
        )
    computed = monotonic()
    CompatibilityResult.objects.update_or_create(
        run=run,
        defaults={
            "result": {**result.to_json(), **_positions_note(read)},
            "query_indices": query.tolist(),
            "code_version": run.code_version,
        },
    )
    return {"compute_s": round(computed - started, 3), "models": len(series)}


def projection(run: Run) -> dict:
    """Project every sample of the run's layer to 2-D and store the coordinates, with each
    sample's nearest neighbours in the original space, the share the projection keeps, and
    the layer's geometry."""
    p = run.params
    activation = _activation_sets(run, run.checkpoint, [p["layer"]])[0]
    options = {name: p[name] for name in PARAMETERS[p["method"]]}
    started = monotonic()
    with _vectors(run, [activation]) as read:
        x = read.arrays[activation.pk]
        search = None
        if p["method"] == "umap":  # one neighbour search for the UMAP graph and the explorer
            width = max(WIDTH, p["n_neighbors"] - 1)
            search = nearest_neighbours(x, width, p["metric"], seed=p["seed"])
        result = project(
            x,
            p["method"],
            seed=p["seed"],
            name=f"{run.checkpoint} {activation.layer}",
            progress=lambda f: run.report_progress(0.8 * f),
            search=search,
            **options,
        )
        _store_projection(run, activation, x, result, search, read.note)
    return {"compute_s": round(monotonic() - started, 3), "points": len(result.coordinates)}


def aligned_projections(run: Run) -> dict:
    """Project several spaces of the same samples together, aligned; each space is stored as
    a finished projection run of its own (keyed by this run and its position), so the explorer,
    side-by-side views and selections work on it as on any projection."""
    p = run.params
    checkpoints = {c.pk: c for c in Checkpoint.objects.filter(pk__in=[c for c, _ in p["spaces"]])}
    spaces = [(checkpoints[c], layer) for c, layer in p["spaces"]]
    activations = [_activation_sets(run, c, [layer])[0] for c, layer in spaces]
    options = {name: p[name] for name in PARAMETERS["umap"] if name in p}
    started = monotonic()
    with _vectors(run, activations) as read:
        xs = [read.arrays[a.pk] for a in activations]
        results = project_aligned(
            xs,
            p["method"],
            seed=p["seed"],
            names=[f"{c} {layer}" for c, layer in spaces],
            progress=lambda f: run.report_progress(0.7 * f),
            **options,
        )
        for position, ((checkpoint, layer), activation, x, result) in enumerate(
            zip(spaces, activations, xs, results, strict=True)
        ):
            member = _aligned_member(run, position, checkpoint, layer)
            _store_projection(member, activation, x, result, note=read.note)
            run.report_progress(0.7 + 0.3 * (position + 1) / len(spaces))
    return {"compute_s": round(monotonic() - started, 3), "spaces": len(spaces)}


def _aligned_member(run: Run, position: int, checkpoint: Checkpoint, layer: str) -> Run:
    """The finished projection run that shows space ``position`` of an aligned run."""
    p = run.params
    options = {name: p[name] for name in PARAMETERS["umap"] if name in p}
    params = {
        "layer": layer,
        "pooling": p["pooling"],
        **({"positions": p["positions"]} if "positions" in p else {}),
        "method": f"aligned-{p['method']}",
        **options,
        "seed": p["seed"],
        "aligned": run.pk,
        "position": position,
    }
    member, _ = Run.objects.update_or_create(
        request_key=Run.request_key_of(
            Run.Kind.PROJECT, run.dataset_id, checkpoint.pk, None, params
        ),
        defaults={
            "kind": Run.Kind.PROJECT,
            "workspace": run.workspace,
            "dataset": run.dataset,
            "checkpoint": checkpoint,
            "params": params,
            "state": Run.State.SUCCEEDED,
            "progress": 1.0,
            "code_version": run.code_version,
            "created_by": run.created_by,
            "started_at": run.started_at,
            "finished_at": timezone.now(),
        },
    )
    return member


def _store_projection(
    run: Run,
    activation: ActivationSet,
    x: np.ndarray,
    result: Projected,
    search: NeighbourSearch | None = None,
    note: str = "",
) -> None:
    """Store a projection of ``x`` (the activations of ``activation``, one vector per sample)
    with each sample's nearest neighbours in the original space (``search``, when they were
    found already; how they were found, with their measured recall when approximate, is kept
    in the parameters as ``neighbours``), the share the projection keeps, and the layer's
    geometry; ``note``: how a token-level set was read (kept as ``positions``)."""
    near = neighbourhoods(
        x,
        result.coordinates,
        metric=run.params.get("metric", "euclidean"),
        search=search,
        seed=run.params.get("seed", 0),
    )
    shape = geometry(x, run.dataset.column("y"), search=near.found)
    Projection.objects.update_or_create(
        run=run,
        defaults={
            "activation": activation,
            "method": result.method,
            "parameters": {
                **result.params,
                "neighbours": near.search,
                **({"positions": note} if note else {}),
            },
            "estimator": result.estimator,
            "coordinates": Blob.store_array(result.coordinates),
            "explained_variance": result.explained_variance,
            "knn_k": near.k,
            "knn_metric": near.metric,
            "neighbours": Blob.store_array(near.indices),
            "neighbour_distances": Blob.store_array(near.distances),
            "kept": Blob.store_array(near.kept),
            "geometry": shape.to_json(),
            "warnings": result.warnings,
            "code_version": run.code_version,
        },
    )


def probe(run: Run) -> dict:
    """Run the checkpoint on transformed copies of the dataset and store, per family, how each
    layer responds; the untransformed activations are the stored ones."""
    p = run.params
    activations = _activation_sets(run, run.checkpoint, p["layers"])
    started = monotonic()
    arrays = run.dataset.load_arrays()
    with ExitStack() as stack:
        stored = {f"stored:{a.layer}": stack.enter_context(a.memory_map()) for a in activations}
        for a in activations:  # token-level sets: each row's sample, position and special
            if a.positions is not None:
                found_rows = a.positions.load_arrays()
                stored |= {f"{key}:{a.layer}": value for key, value in found_rows.items()}
        params = {k: p[k] for k in ("layers", "pooling", "families", "seed", "positions") if k in p}
        found, per_sample = _in_host(run, params, {"x": arrays.x, **stored})
    computed = monotonic()
    for i, result in enumerate(found["families"]):
        moved = per_sample[f"per_sample:{i}"]
        shown = previews(
            result["family"], arrays.x, result["magnitudes"], moved, p["seed"], MOVED_SHOWN
        )
        ProbeResult.objects.update_or_create(
            run=run,
            family=result["family"],
            defaults={
                "result": result,
                "per_sample": Blob.store_array(moved),
                "previews": None if shown is None else Blob.store_arrays(shown),
                "code_version": run.code_version,
            },
        )
    transformed = arrays.n * sum(len(m) for _, m in p["families"])
    return {
        "compute_s": round(computed - started, 3),
        "transformed_samples_per_s": round(transformed / max(computed - started, 1e-9), 1),
    }


def dynamics(run: Run) -> dict:
    """Per layer of the series: the step × step matrix (only the cells no earlier run of any
    series computed with these activations and measure settings), the similarity of each step
    to the final checkpoint, and each step's statistics (also computed once per activation
    set); stored as the run's Report."""
    p = run.params
    by_pk = {c.pk: c for c in Checkpoint.objects.filter(pk__in=p["checkpoints"])}
    series = [by_pk[pk] for pk in p["checkpoints"]]
    measure = MEASURES[p["measure"]].configured(p.get("measure_params"))
    measure = measure.on(settings.REPLENS_DEVICE or None)
    measure_settings = measure.settings()
    labels, columns = _label_columns(run.dataset)
    k, n_layers = len(series), len(p["layers"])
    started = monotonic()
    computed_cells = reused_cells = computed_statistics = 0
    layers, notes = [], {}
    for position, layer in enumerate(p["layers"]):
        sets = [_activation_sets(run, c, [layer])[0] for c in series]
        index = {s.pk: i for i, s in enumerate(sets)}

        def progress(f: float, at: int = position) -> None:
            run.report_progress((at + f) / n_layers)

        with ExitStack() as stack:
            mapped = {s.pk: stack.enter_context(s.memory_map()) for s in sets}
            read = _read_sets(sets, mapped, p.get("positions", "mean"), measure)
            arrays = [read.arrays[s.pk] for s in sets]
            # a cell of token-level sets is kept for the way they were read
            cell_settings = {
                **measure_settings,
                **({"positions": read.reading} if read.reading else {}),
            }
            known: dict[tuple[int, int], float | str] = {
                (index[c.activation_a_id], index[c.activation_b_id]): (
                    c.value if c.value is not None else c.refusal
                )
                for c in SeriesCell.objects.filter(
                    activation_a__in=sets,
                    activation_b__in=sets,
                    measure=measure.id,
                    settings=cell_settings,
                )
            }
            todo = missing_cells(k, measure.symmetric, known)
            prepared = _kept_preparations(measure, cell_settings, sets, arrays, steps_needed(todo))
            restored = set(prepared)
            cells = series_matrix(measure, arrays, known, progress, prepared)
            _keep_preparations(run, measure, cell_settings, sets, prepared, restored)
            new = {cell: cells[cell] for cell in todo}
            per_sample = [read.per_sample[s.pk] for s in sets]
            statistics, fresh = _statistics(run, sets, per_sample, labels, columns)
        if read.note:
            notes[layer] = read.note
        SeriesCell.objects.bulk_create(
            [
                SeriesCell(
                    activation_a=sets[i],
                    activation_b=sets[j],
                    measure=measure.id,
                    settings=cell_settings,
                    value=outcome if isinstance(outcome, float) else None,
                    refusal=outcome if isinstance(outcome, str) else "",
                    run=run,
                    code_version=run.code_version,
                )
                for (i, j), outcome in new.items()
            ],
            ignore_conflicts=True,  # another run of an overlapping series stored it first
        )
        computed_cells += len(new)
        reused_cells += len(known)
        computed_statistics += fresh
        refusals = {f"{i},{j}": o for (i, j), o in cells.items() if isinstance(o, str)}
        layers.append(
            {
                "layer": layer,
                "d": sets[0].d,
                "matrix": matrix_of(cells, k),
                "refusals": refusals,
                "statistics": statistics,
            }
        )
    computed = monotonic()
    result = {
        "measure_params": measure_settings,
        **_dynamics_positions(notes),
        "labels": labels is not None,
        "columns": {name: chance_level(values) for name, values in columns.items()},
        "label_chance": chance_level(labels) if labels is not None else None,
        "layers": layers,
        "cells": {"computed": computed_cells, "reused": reused_cells},
    }
    Report.objects.update_or_create(
        run=run, defaults={"result": result, "code_version": run.code_version}
    )
    return {
        "compute_s": round(computed - started, 3),
        "cells_computed": computed_cells,
        "cells_reused": reused_cells,
        "statistics_computed": computed_statistics,
    }


def _dynamics_positions(notes: dict[str, str]) -> dict[str, str]:
    """A series' ``positions`` provenance (``notes``: how each layer's token-level sets were
    read, by layer): the one note where every such layer was read alike, else each layer's
    note after its name; ``{}`` without token-level sets. Statistics read each sample's mean."""
    if not notes:
        return {}
    distinct = set(notes.values())
    note = (
        distinct.pop()
        if len(distinct) == 1
        else "; ".join(f"{layer}: {note}" for layer, note in notes.items())
    )
    return {"positions": f"{note}; the statistics of each step read each sample's mean"}


def _kept_preparations(
    measure: Measure,
    settings: dict,
    sets: list[ActivationSet],
    arrays: list[np.ndarray],
    needed: set[int],
) -> dict[int, Any]:
    """The prepared layers of the ``needed`` steps that an earlier run kept (with the
    measure's ``settings`` and the way token-level sets were read), restored."""
    kept = {
        p.activation_id: p
        for p in KeptPreparation.objects.filter(
            activation__in=[sets[i] for i in needed],
            measure=measure.id,
            settings=settings,
        ).select_related("blob")
    }
    return {
        i: measure.restored(arrays[i], kept[sets[i].pk].blob.load_array())
        for i in needed
        if sets[i].pk in kept
    }


def _keep_preparations(
    run: Run,
    measure: Measure,
    settings: dict,
    sets: list[ActivationSet],
    prepared: dict[int, Any],
    restored: set[int],
) -> None:
    """Store what the measure keeps of each layer prepared by this run, under ``settings``."""
    for i, layer in prepared.items():
        if i in restored or (kept := measure.kept(layer)) is None:
            continue
        KeptPreparation.objects.get_or_create(
            activation=sets[i],
            measure=measure.id,
            settings=settings,
            defaults={"blob": Blob.store_array(kept), "code_version": run.code_version},
        )


def _label_columns(dataset: Dataset) -> tuple[np.ndarray | None, dict[str, np.ndarray]]:
    """The dataset's label (None without one) and its other columns a linear probe reads
    (``meta:<name>`` with 2 to 100 distinct values), by name."""
    labels = dataset.column("y")
    columns = {}
    for name in dataset.metadata_columns:
        values = dataset.column(f"meta:{name}")
        if values is not None and is_probed(values):
            columns[name] = values
    return labels, columns


def _statistics(
    run: Run,
    sets: list[ActivationSet],
    arrays: list[np.ndarray],
    labels: np.ndarray | None,
    columns: dict[str, np.ndarray],
) -> tuple[list[dict], int]:
    """Each activation set's statistics (stored ones reused), and how many were computed."""
    names = list(columns)
    stored = {
        s.activation_id: s.statistics
        for s in LayerStatistics.objects.filter(activation__in=sets, columns=names)
    }
    out, fresh = [], 0
    for s, x in zip(sets, arrays, strict=True):
        if s.pk not in stored:
            stored[s.pk] = step_statistics(x, labels, columns).to_json()
            LayerStatistics.objects.get_or_create(
                activation=s,
                columns=names,
                defaults={
                    "statistics": stored[s.pk],
                    "run": run,
                    "code_version": run.code_version,
                },
            )
            fresh += 1
        out.append(stored[s.pk])
    return out, fresh


def nested(run: Run) -> dict:
    """For each checkpoint, the quality of every prefix of its layer's embedding (retrieval,
    leave-one-out probe accuracy, CKA to the full embedding), memory-mapped from the stored
    activations; stored as the run's Report. Retrieval is leave-one-out up to
    MAX_LOO_SAMPLES samples, beyond that queries against a gallery (the dataset's ``role``
    column, else a fifth of each label, seed 0)."""
    p = run.params
    by_pk = {c.pk: c for c in Checkpoint.objects.filter(pk__in=p["checkpoints"])}
    series = [by_pk[pk] for pk in p["checkpoints"]]
    labels = run.dataset.column("y")
    if labels is None:
        raise InputError(f"{run.dataset} has no labels: nested-embedding quality needs them")
    query = gallery = None
    if len(labels) > MAX_LOO_SAMPLES:
        query, gallery = query_gallery_split(labels, run.dataset.column("meta:role"))
    started = monotonic()
    results, note = [], ""
    for position, checkpoint in enumerate(series):
        activation = _activation_sets(run, checkpoint, [p["layer"]])[0]
        with _vectors(run, [activation]) as read:
            quality = nested_quality(
                read.arrays[activation.pk],
                labels,
                metric=p["metric"],
                query_idx=query,
                gallery_idx=gallery,
            )
        note = note or read.note
        results.append({"checkpoint": checkpoint.pk, **quality.to_json()})
        run.report_progress((position + 1) / len(series))
    result = {"checkpoints": results, **({"positions": note} if note else {})}
    Report.objects.update_or_create(
        run=run, defaults={"result": result, "code_version": run.code_version}
    )
    return {"compute_s": round(monotonic() - started, 3), "checkpoints": len(series)}


def unit_matching(run: Run) -> dict:
    """Unit matching beyond one-to-one between the run's layer of A and layer of B
    (:func:`unit_matching_report` on the stored activations), with the samples that activate
    each shown pair's unit of B most beside those of its unit of A; stored as the run's Report.
    A layer wider than MAX_UNITS is refused before any work."""
    p = run.params
    set_a = _activation_sets(run, run.checkpoint, [p["layer_a"]])[0]
    set_b = _activation_sets(run, run.checkpoint_b, [p["layer_b"]])[0]
    check_width(set_a.d, f"{run.checkpoint} {set_a.layer}")
    check_width(set_b.d, f"{run.checkpoint_b} {set_b.layer}")
    started = monotonic()
    with _vectors(run, [set_a, set_b]) as read:
        x, y = read.arrays[set_a.pk], read.arrays[set_b.pk]
        report = unit_matching_report(
            x,
            y,
            n_alphas=p["n_alphas"],
            n_pairs=p["n_pairs"],
            top_m=p["top_m"],
            test_fraction=p.get("test_fraction", TEST_FRACTION),
            seed=p.get("seed", 0),
        )
        columns = np.asarray(y)

        def top_b(pairs: list) -> list[list[int]]:
            return [
                np.argsort(-columns[:, pair.b].astype(np.float64), kind="stable")[
                    : p["top_m"]
                ].tolist()
                for pair in pairs
            ]

        tops = {"best": top_b(report.best_pairs), "worst": top_b(report.worst_pairs)}
    computed = monotonic()
    result = {
        "report": report.to_json(),
        "top_b": tops,
        "estimator": "Pearson correlations of units over the samples; Hungarian matching; "
        f"lasso path of {len(report.sparse.alphas)} penalties, coordinate descent, on all "
        "samples (in-sample error) and on a training split (held-out error)",
        **_positions_note(read),
    }
    Report.objects.update_or_create(
        run=run, defaults={"result": result, "code_version": run.code_version}
    )
    return {"compute_s": round(computed - started, 3), "p": report.p, "q": report.q}


def weight_space(run: Run) -> dict:
    """Match B's hidden units to A's in a model host that loads both checkpoints, and store
    what :func:`analysis.host.tasks.weights` reports (function check, L2, paths, spectra) as
    the run's Report."""
    assert run.checkpoint_b is not None  # a weight-space run has two checkpoints
    arrays = run.dataset.load_arrays()
    started = monotonic()
    with run.checkpoint_b.blob.local_path() as path_b:
        result, _ = _in_host(
            run,
            {
                "spec": run.params["spec"],
                "seed": run.params["seed"],
                "model_b": checkpoint_model_params(run.checkpoint_b),
            },
            # an encoder's weight space reads texts without labels
            {"model_b": path_b, "x": arrays.x} | ({} if arrays.y is None else {"y": arrays.y}),
        )
    Report.objects.update_or_create(
        run=run, defaults={"result": result, "code_version": run.code_version}
    )
    return {"compute_s": round(monotonic() - started, 3)}


def stitching(run: Run) -> dict:
    """Stitch A's layers into B's in a model host that loads both checkpoints (B rebuilt as
    its eager built-in architecture where it is TorchScript), and store what
    :func:`analysis.host.tasks.stitch` reports (both accuracy matrices, B alone, A alone,
    chance) as the run's Report."""
    assert run.checkpoint_b is not None  # a stitching run has two checkpoints
    arrays = run.dataset.load_arrays()
    started = monotonic()
    with run.checkpoint_b.blob.local_path() as path_b:
        result, _ = _in_host(
            run,
            {**run.params, "model_b": checkpoint_model_params(run.checkpoint_b)},
            {"model_b": path_b, "x": arrays.x, "y": arrays.y},
        )
    Report.objects.update_or_create(
        run=run, defaults={"result": result, "code_version": run.code_version}
    )
    return {"compute_s": round(monotonic() - started, 3)}


RUNNERS: dict[str, Callable[[Run], dict]] = {
    Run.Kind.EXTRACT: extract,
    Run.Kind.COMPARE: compare,
    Run.Kind.MODEL_MATRIX: model_matrix,
    Run.Kind.ALIGN: align,
    Run.Kind.COMPATIBILITY: compatibility,
    Run.Kind.PROJECT: projection,
    Run.Kind.PROJECT_ALIGNED: aligned_projections,
    Run.Kind.PROBE: probe,
    Run.Kind.DYNAMICS: dynamics,
    Run.Kind.NESTED: nested,
    Run.Kind.WEIGHTS: weight_space,
    Run.Kind.UNITS: unit_matching,
    Run.Kind.STITCH: stitching,
}
