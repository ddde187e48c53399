"""Unit matching beyond one-to-one between one layer of two checkpoints: the request (which
asks for the extractions it needs), the width limit, and the page's view of the stored Report
(:func:`analysis.measures.units.unit_matching_report`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import transaction

from analysis.errors import InputError
from analysis.measures.units import MIN_SAMPLES
from webapp.catalog.models import ActivationSet, Checkpoint, Dataset
from webapp.runs.kinds import KINDS
from webapp.runs.models import Report, Run
from webapp.runs.submit import (
    _checked,
    _layer_of_each,
    _same_workspace,
    _submit,
    request_extraction,
)

if TYPE_CHECKING:
    from webapp.catalog.models import AnyUser

MAX_UNITS = 256
"""The widest layer a unit matching takes. The lasso path of every unit of B from A's units
costs about p² · q per coordinate-descent sweep: on 2,000 samples of correlated ReLU layers,
128 units a side took 9 s and 256 took 26 s on the 2-core development machine, 512 more than
2.5 minutes of CPU (a run cannot be cancelled inside the lasso), so wider layers are refused.
The held-out path (fitted again on the training split) adds about as much again: with it, 128
a side took 27 s (12 s held-out) and 256 took 112 s (50 s held-out), on the same machine
shared with other work."""

KIND_DEFAULTS = {
    parameter.name: parameter.default for parameter in KINDS[Run.Kind.UNITS].parameters
}

LIMIT_NOTE = (
    f"layers wider than {MAX_UNITS} units are refused: the lasso path of every unit of B from "
    "A's units costs about p² · q per sweep"
)

DEFINITIONS = {
    "hungarian": "the one-to-one pairing of units that maximises the total correlation "
    "(Hungarian method); min(p, q) pairs",
    "semi_a": "each unit of A paired with the unit of B it correlates with most (several units "
    "of A may share a partner)",
    "semi_b": "each unit of B paired with the unit of A it correlates with most",
    "share": "the share of the pairs whose Pearson correlation over the samples is strictly "
    "above t; 1 below the lowest correlation, falling as t rises",
    "sparse": "each unit of B predicted from A's units by the lasso along a path of penalties: "
    "the in-sample share of its variance left unexplained, against the number of A's units "
    "with non-zero weight (mean over B's units); predicting the mean leaves all of it (1)",
    "heldout": "the same lasso path fitted on a random training split (standardised with its "
    "means and norms) and scored on the held-out samples: the share of each held-out unit's "
    "variance around its training mean left unexplained, for the least-penalised fit with at "
    "most k non-zero weights (mean over B's units); predicting the training mean leaves all of "
    "it (1), and unlike the in-sample error it rises again, above 1, when the weights fit noise",
    "correlation": "Pearson correlation of the two units' activations over the samples",
}
"""One-line definitions the page and the API show beside each statistic."""


def check_width(d: int, side: str) -> None:
    """Refuse a layer wider than :data:`MAX_UNITS` with one plain sentence."""
    if d > MAX_UNITS:
        raise InputError(
            f"{side} has {d} units; unit matching takes layers of at most {MAX_UNITS} units "
            "(the sparse prediction's lasso grows with the square of the width)"
        )


@transaction.atomic
def request_unit_matching(
    user: AnyUser,
    checkpoint_a: Checkpoint,
    checkpoint_b: Checkpoint,
    dataset: Dataset,
    layer_a: str,
    layer_b: str,
    **parameters: Any,
) -> tuple[Run, bool]:
    """The run that matches the units of ``layer_a`` of A with those of ``layer_b`` of B on
    ``dataset`` (Hungarian and semi-matchings, share-above-t curves, sparse prediction, best
    and worst pairs); it waits for the extractions it needs, requested here too.
    ``parameters`` are the kind's (pooling, n_pairs, top_m, n_alphas), defaults where absent.
    A layer already extracted wider than :data:`MAX_UNITS` is refused here, else by the run."""
    _same_workspace(dataset, checkpoint_a, checkpoint_b)
    checked = _checked(Run.Kind.UNITS, **parameters)
    if dataset.n_samples < MIN_SAMPLES:
        raise InputError(f"unit matching needs at least {MIN_SAMPLES} samples")
    _layer_of_each([checkpoint_a], layer_a)
    _layer_of_each([checkpoint_b], layer_b)
    pooling = checked["pooling"]
    for checkpoint, layer in ((checkpoint_a, layer_a), (checkpoint_b, layer_b)):
        stored = ActivationSet.objects.filter(
            checkpoint=checkpoint, dataset=dataset, layer=layer, pooling=pooling
        ).first()
        if stored is not None:
            check_width(stored.d, f"{checkpoint.name} {layer}")
    extract_a, _ = request_extraction(user, checkpoint_a, dataset, [layer_a], pooling)
    extract_b, _ = request_extraction(user, checkpoint_b, dataset, [layer_b], pooling)
    params = {"layer_a": layer_a, "layer_b": layer_b, **checked}
    return _submit(
        Run.Kind.UNITS,
        user,
        dataset,
        params,
        checkpoint_a,
        checkpoint_b,
        depends_on=[extract_a, extract_b],
    )


def _pairs(
    pairs: list[dict], top_b: list[list[int]], report: dict, dataset: Dataset | None
) -> list[dict]:
    """Each pair with the samples that activate its unit of B most (``top_samples_b``),
    whether either unit is constant (its "most activating" samples are then arbitrary) and,
    given the dataset, both lists of samples described (``samples_a``, ``samples_b``)."""
    constant_a, constant_b = set(report["constant_a"]), set(report["constant_b"])
    out = []
    for pair, b in zip(pairs, top_b, strict=True):
        pair = {
            **pair,
            "top_samples_b": b,
            "constant_a": pair["a"] in constant_a,
            "constant_b": pair["b"] in constant_b,
        }
        if dataset is not None:
            pair["samples_a"] = dataset.samples(pair["top_samples"])
            pair["samples_b"] = dataset.samples(b)
        out.append(pair)
    return out


def _heldout(heldout: dict | None) -> dict | None:
    """The held-out curve as the page reads it (k = 0, 1, … beside its error); None for a
    report kept before the held-out error existed or with too few samples to hold any out."""
    if heldout is None:
        return None
    errors = heldout["error_at_nonzeros"]
    lowest = min(range(len(errors)), key=errors.__getitem__)
    return {
        **heldout,
        "nonzeros": list(range(len(errors))),
        "lowest_error": errors[lowest],
        "lowest_at": lowest,
    }


def unit_matching_view(run: Run, *, samples: bool = True) -> dict:
    """A unit matching as its page and API clients read it: the two layers, the share-above-t
    curves (Hungarian, best partner A → B, best partner B → A), the sparse-prediction curve
    with the mean's error as reference, the best and worst one-to-one pairs (with their most
    activating samples described when ``samples``), definitions and provenance. ``report``
    is None until the run has finished."""
    p = run.params
    assert run.checkpoint_b is not None  # a unit matching has two checkpoints
    view: dict[str, Any] = {
        "run": run.pk,
        "state": run.state,
        "checkpoint_a": {"id": run.checkpoint_id, "name": run.checkpoint.name},
        "checkpoint_b": {"id": run.checkpoint_b_id, "name": run.checkpoint_b.name},
        "dataset": {"id": run.dataset_id, "name": run.dataset.name},
        "layer_a": p["layer_a"],
        "layer_b": p["layer_b"],
        # runs asked before the held-out split existed have no test_fraction or seed
        "parameters": {
            k: p.get(k, KIND_DEFAULTS[k])
            for k in ("pooling", "n_pairs", "top_m", "n_alphas", "test_fraction", "seed")
        },
        "positions": "",
        "max_units": MAX_UNITS,
        "limit": LIMIT_NOTE,
        "definitions": DEFINITIONS,
        "report": None,
    }
    stored = Report.objects.filter(run=run).first()
    if stored is None:
        return view
    result = stored.result
    report = result["report"]
    sparse = report["sparse"]
    view |= {
        "code_version": stored.code_version,
        "estimator": result["estimator"],
        "positions": result.get("positions", ""),
        "report": {
            "n": report["n"],
            "p": report["p"],
            "q": report["q"],
            "mean_hungarian": report["hungarian"]["mean"],
            "thresholds": report["thresholds"],
            "share_hungarian": report["share_hungarian"],
            "share_semi_a": report["share_semi_a"],
            "share_semi_b": report["share_semi_b"],
            "sparse": {
                "nonzeros": list(range(len(sparse["error_at_nonzeros"]))),
                "error_at_nonzeros": sparse["error_at_nonzeros"],
                "mean_nonzeros": sparse["mean_nonzeros"],
                "mean_error": sparse["mean_error"],
                "alphas": sparse["alphas"],
                "converged": sparse["converged"],
                "reference": 1.0,
            },
            "heldout": _heldout(report.get("heldout")),
            "constant_a": len(report["constant_a"]),
            "constant_b": len(report["constant_b"]),
            # the library names the layers X and Y; the page names them A and B
            "warnings": [
                w.replace(" in X", " in A").replace(" in Y", " in B") for w in report["warnings"]
            ],
        },
    }
    dataset = run.dataset if samples else None
    best = _pairs(report["best_pairs"], result["top_b"]["best"], report, dataset)
    worst = _pairs(report["worst_pairs"], result["top_b"]["worst"], report, dataset)
    view["report"] |= {"best_pairs": best, "worst_pairs": worst}
    return view


def unit_matching_charts(view: dict) -> dict:
    """What the page's plots draw (static/js/units): the share curves over t and the
    sparse-prediction curve with its reference."""
    report = view["report"]
    sparse = report["sparse"]
    return {
        "share": {
            "x": report["thresholds"],
            "lines": [
                {"name": "Hungarian (one-to-one)", "y": report["share_hungarian"]},
                {"name": "best partner A → B", "y": report["share_semi_a"]},
                {"name": "best partner B → A", "y": report["share_semi_b"]},
            ],
        },
        "sparse": {
            "x": sparse["nonzeros"],
            "y": sparse["error_at_nonzeros"],
            "reference": sparse["reference"],
            "heldout": None
            if report["heldout"] is None
            else {
                "x": report["heldout"]["nonzeros"],
                "y": report["heldout"]["error_at_nonzeros"],
            },
        },
    }
