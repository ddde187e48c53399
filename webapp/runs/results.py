"""Reading results back: scores as matrices (layer × layer for a comparison, model × model for
a model matrix, query model × gallery model for compatibility — one shape, so pages and API
clients draw them the same way), and alignments."""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np

from analysis.explorer.geometry import ACCURACIES, STATISTICS
from analysis.explorer.ordering import hierarchical_order
from analysis.measures.engine import BASELINE_WARNING
from analysis.measures.registry import MEASURES, describe
from analysis.models.choices import POOLINGS
from analysis.probes.families import get_family
from webapp.catalog.models import Checkpoint
from webapp.runs.models import Alignment, Report, Run, Score
from webapp.version import code_version


def comparison_matrix(run: Run) -> dict:
    """Everything a page or API client needs to draw and trust the layer × layer matrix;
    ``None`` cells are pairs not computed yet."""
    p = run.params
    scores = {(s.layer_a, s.layer_b): s for s in run.scores.filter(measure=p["measure"])}
    assert run.checkpoint_b is not None  # a comparison has two checkpoints
    return {
        **_matrix(run, p["layers_a"], p["layers_b"], scores),
        "checkpoint_a": {"id": run.checkpoint_id, "name": run.checkpoint.name},
        "checkpoint_b": {"id": run.checkpoint_b_id, "name": run.checkpoint_b.name},
    }


def scores_with_cells(run: Run) -> list[Score]:
    """The run's scores, each with ``row``/``col``: its cell in the layer × layer matrix."""
    rows = {name: i for i, name in enumerate(run.params["layers_a"])}
    cols = {name: j for j, name in enumerate(run.params["layers_b"])}
    scores = list(run.scores.order_by("id"))
    for score in scores:
        score.row, score.col = rows[score.layer_a], cols[score.layer_b]
    return scores


SAME_READING = ("layers_a", "layers_b", "pooling", "pooling_b", "positions")
"""The parameters two comparisons of one pair share to read the same activations the same
way (``pooling_b`` and ``positions`` are absent where they say nothing)."""


def measures_of_pair(run: Run) -> list[dict]:
    """Every registered measure, with the comparison run that computed it for the same pair of
    checkpoints, dataset, layers, poolings and reading of token-level sets as ``run`` if there
    is one (``run`` itself for its own measure)."""
    p = run.params
    siblings = Run.objects.filter(
        kind=Run.Kind.COMPARE,
        checkpoint=run.checkpoint,
        checkpoint_b=run.checkpoint_b,
        dataset=run.dataset,
    ).order_by("pk")
    by_measure = {p["measure"]: run}
    for sibling in siblings:
        q = sibling.params
        if all(q.get(k) == p.get(k) for k in SAME_READING):
            by_measure.setdefault(q["measure"], sibling)
    return [{"measure": m, "run": by_measure.get(m.id)} for m in MEASURES.values()]


def model_matrix(run: Run) -> dict:
    """One layer of many checkpoints against each other, rows and columns in hierarchical
    order (similar checkpoints adjacent) once every cell is scored."""
    p = run.params
    names = dict(Checkpoint.objects.filter(pk__in=p["checkpoints"]).values_list("pk", "name"))
    scores = {
        (s.activation_a.checkpoint_id, s.activation_b.checkpoint_id): s
        for s in run.scores.filter(measure=p["measure"]).select_related(
            "activation_a", "activation_b"
        )
    }
    ids = list(p["checkpoints"])
    measure = MEASURES[p["measure"]]
    if len(scores) == len(ids) ** 2 and all(s.value is not None for s in scores.values()):
        values = np.array([[scores[(a, b)].value for b in ids] for a in ids])
        ids = [
            ids[i]
            for i in hierarchical_order(
                values, measure.larger_is_more_similar, top=measure.range[1]
            )
        ]
    matrix = _matrix(run, ids, ids, scores)
    labels = [names[i] for i in ids]
    return {
        **matrix,
        "layers_a": labels,
        "layers_b": labels,
        "checkpoints": [{"id": i, "name": names[i]} for i in ids],
        "layer": p["layer"],
        "checkpoint_a": {"id": None, "name": f"checkpoints ({p['layer']})"},
        "checkpoint_b": {"id": None, "name": f"checkpoints ({p['layer']})"},
    }


def positions_read(scores: list[Score]) -> str:
    """How a comparison read its token-level sets: its scores' one note, or, where pairs were
    read differently (per position where a pair's sets allow it), each note with how many
    pairs it holds for; "" without token-level sets."""
    notes: dict[str, int] = {}
    for score in scores:
        note = score.parameters.get("positions", "")
        notes[note] = notes.get(note, 0) + 1
    if len(notes) <= 1:
        return next(iter(notes), "")
    return " · ".join(f"{count} of {len(scores)} pairs: {note}" for note, count in notes.items())


def score_reading(parameters: dict) -> str:
    """How one score read its token-level sets, in a few words, from its ``positions`` note
    (:func:`workers.tasks._read_sets` writes it): ``per position``, ``pooled on the fly by
    mean`` (or first, last), ``one vector per sample``; "" without token-level sets. Notes
    stored before they said "by" read "pooled on the fly (mean)", and read the same here."""
    note = str(parameters.get("positions", ""))
    if not note:
        return ""
    if note.startswith("per position:"):
        return "per position"
    pooled = re.search(r"pooled on the fly (?:by (\w+)|\((\w+)\))", note)
    if pooled is None:
        return "one vector per sample"
    return f"pooled on the fly by {pooled.group(1) or pooled.group(2)}"


def _matrix(run: Run, rows: list, cols: list, scores: dict) -> dict:
    measure = MEASURES[run.params["measure"]]
    p = run.params

    def grid(field: str) -> list[list]:
        return [[getattr(scores.get((a, b)), field, None) for b in cols] for a in rows]

    any_score = next(iter(scores.values()), None)
    dims_a = {a: s.d_a for (a, _), s in scores.items()}
    dims_b = {b: s.d_b for (_, b), s in scores.items()}
    return {
        "run": run.pk,
        "state": run.state,
        "measure": describe(measure.id),
        "dataset": {"id": run.dataset_id, "name": run.dataset.name},
        "layers_a": rows,
        "layers_b": cols,
        "value": grid("value"),
        "baseline": grid("baseline"),
        "baseline_std": grid("baseline_std"),
        "ci_low": grid("ci_low"),
        "ci_high": grid("ci_high"),
        "estimator": grid("estimator"),
        "d_a": [dims_a.get(a) for a in rows],
        "d_b": [dims_b.get(b) for b in cols],
        "n": any_score.n if any_score else run.dataset.n_samples,
        "provenance": {
            "pooling": p["pooling"],
            "positions": positions_read(list(scores.values())),
            "n_permutations": p["n_permutations"],
            "baseline": measure.baseline_note(p["n_permutations"]),
            # as run: pairs compared per position draw none (their scores say so)
            "n_bootstrap": max(
                (s.parameters.get("n_bootstrap", 0) for s in scores.values()),
                default=p.get("n_bootstrap", 0),
            ),
            "seed": p["seed"],
            "code_version": any_score.code_version if any_score else code_version(),
        },
        "baseline_warning_threshold": BASELINE_WARNING,
        "warnings": sorted({w for s in scores.values() for w in s.warnings}),
    }


CRITERION_NAMES = {"top1": "Top-1 accuracy", "top5": "Top-5 accuracy", "mean_ap": "mAP"}
CRITERION_DEFINITIONS = {
    "top1": "share of queries whose nearest gallery item has their label",
    "top5": "share of queries with a gallery item of their label among their 5 nearest",
    "mean_ap": "mean over queries of the average precision of the whole gallery ranked by "
    "distance (precision at the rank of each item with the query's label, averaged)",
}


def compatibility_matrix(run: Run) -> dict:
    """The lower-triangular matrix C[i][j] = M(queries by model i, gallery by model j), i ≥ j,
    of the run's criterion, with the pairwise criteria, AC and AM; ``result`` is None until
    the run has finished."""
    p = run.params
    names = dict(Checkpoint.objects.filter(pk__in=p["checkpoints"]).values_list("pk", "name"))
    labels = [names[pk] for pk in p["checkpoints"]]
    stored = getattr(run, "compatibility", None) if run.state == Run.State.SUCCEEDED else None
    result = stored.result if stored else None
    values = ci_low = ci_high = None

    def lower(full: list[list]) -> list[list]:
        return [
            [full[i][j] if j <= i else None for j in range(len(full))] for i in range(len(full))
        ]

    if result:
        values = lower(result[p["criterion"]])
        if "ci_low" in result:  # results stored before the bootstrap have no intervals
            ci_low, ci_high = lower(result["ci_low"]), lower(result["ci_high"])
    return {
        "run": run.pk,
        "state": run.state,
        "measure": {
            "id": f"retrieval/{p['criterion']}",
            "name": CRITERION_NAMES[p["criterion"]],
            "range": [0.0, 1.0],
            "can_be_negative": False,
            "larger_is_more_similar": True,
            "reading": "higher = better retrieval",
            "definition": CRITERION_DEFINITIONS[p["criterion"]],
        },
        "dataset": {"id": run.dataset_id, "name": run.dataset.name},
        "checkpoints": [{"id": pk, "name": names[pk]} for pk in p["checkpoints"]],
        "layers_a": labels,
        "layers_b": labels,
        "value": values,
        "ci_low": ci_low,
        "ci_high": ci_high,
        "checkpoint_a": {"id": None, "name": "queries embedded by"},
        "checkpoint_b": {"id": None, "name": "gallery embedded by"},
        "result": result,
        "query_indices": stored.query_indices if stored else None,
        "provenance": {
            "layer": p["layer"],
            "pooling": p["pooling"],
            "metric": p["metric"],
            "criterion": p["criterion"],
            "query_fraction": p["query_fraction"],
            "positions": result.get("positions", "") if result else "",
            "seed": p["seed"],
            "n_bootstrap": result.get("n_bootstrap") if result else None,
            "code_version": stored.code_version if stored else code_version(),
        },
    }


def alignment_summary(alignment: Alignment) -> dict:
    """An alignment's scores with their provenance (per-sample residuals stay in the blob)."""
    run = alignment.run
    assert run.checkpoint_b is not None  # an alignment is between two checkpoints
    return {
        "run": run.pk,
        "method": alignment.method,
        "estimator": alignment.estimator,
        "checkpoint_a": {"id": run.checkpoint_id, "name": run.checkpoint.name},
        "checkpoint_b": {"id": run.checkpoint_b_id, "name": run.checkpoint_b.name},
        "dataset": {"id": run.dataset_id, "name": run.dataset.name},
        "layer_a": alignment.activation_a.layer,
        "layer_b": alignment.activation_b.layer,
        "n_train": alignment.n_train,
        "n_test": alignment.n_test,
        "d_a": alignment.d_a,
        "d_b": alignment.d_b,
        "r2": alignment.r2,
        "r2_shuffled": alignment.r2_shuffled,
        "retrieval_top1": alignment.retrieval_top1,
        "retrieval_top5": alignment.retrieval_top5,
        "retrieval_chance_top1": alignment.retrieval_chance_top1,
        "warnings": alignment.warnings,
        "provenance": {**alignment.parameters, "code_version": alignment.code_version},
    }


PROBE_MEASURES = {
    "invariance": (
        "invariance",
        (0.0, 1.0),
        True,
        "1 − E‖f(gx) − f(x)‖² / E‖f(x) − f(x′)‖², x′ another sample: 1 = unmoved, 0 = moved as "
        "far as swapping x for another sample, below 0 = further (no lower bound)",
    ),
    "equivariance_r2": (
        "learned-map R²",
        (0.0, 1.0),
        True,
        "held-out R² of a ridge map M fitted so that M f(x) ≈ f(gx), against the training mean "
        "of f(gx): 1 = g acts on the layer as a linear map, 0 = no better than the mean",
    ),
    "identity_r2": (
        "identity-map R²",
        (0.0, 1.0),
        True,
        "the same R² with f(x) itself as the prediction of f(gx): 1 = invariant; far below 0 "
        "when g moves the activations further than their spread",
    ),
    "shuffled_r2": (
        "shuffled-pairs R²",
        (0.0, 1.0),
        True,
        "the learned map's R² when fitted on pairs whose f(gx) were shuffled: what a map reaches "
        "without the pairing (the baseline for learned-map R²)",
    ),
    "structured_error": (
        "structured error",
        (0.0, 1.0),
        False,
        "‖f(gx) − ĝ f(x)‖ / ‖ĝ f(x)‖ with ĝ the induced action on the feature map: 0 = exactly "
        "equivariant",
    ),
}
"""The [layer][magnitude] statistics of a probe family: label, colour range, whether it can go
negative, definition (from analysis/probes/statistics.py)."""

PROBE_SCORES = {
    "lie_derivative": (
        "Lie derivative",
        "‖d/dt f(g_t x)‖ at t = 0 (central differences) over the layer's RMS distance from its "
        "mean activation, per unit of t: 0 = invariant near t = 0",
    ),
    "transform_r2": (
        "t predicted (R²)",
        "held-out R² of a ridge probe recovering t from [f(x), f(gx) − f(x)] on unseen samples; "
        "chance (always the mean t) is 0",
    ),
    "consistency": (
        "output unchanged",
        "share of samples whose top class is the same for x and gx",
    ),
}
"""The per-layer and per-magnitude scores of a probe family shown beside the grids: label,
definition."""


def _positions_read(run: Run, result: dict) -> dict:
    """How a probe family read its layers' positions: ``positions`` per-position, mean, first
    or last for token-level sets (:func:`analysis.probes.engine.reading`), None for one vector
    per sample; ``positions_note`` says it in words."""
    if result.get("positions") is not None:
        return {"positions": result["positions"], "positions_note": result["positions_note"]}
    pooling = run.params["pooling"]
    how = POOLINGS.get(pooling, pooling)
    return {
        "positions": None,
        "positions_note": f"one vector per sample, as extracted (pooling {pooling}: {how})",
    }


def probe_summary(run: Run, overlays: Iterable[Run] = ()) -> dict:
    """A probe run's families for a page or API client: every statistic by layer and
    magnitude, and the same family of each run in ``overlays`` (other checkpoints)."""
    others = {
        o.pk: {r.family: r.result for r in o.probe_results.all()} | {"name": o.checkpoint.name}
        for o in overlays
    }
    families = []
    for row in run.probe_results.all():
        family, r = get_family(row.family), row.result
        last = len(r["magnitudes"]) - 1
        rows = [
            {
                "layer": layer,
                "lie": r["lie_derivative"][i] if r["lie_derivative"] else None,
                "transform_r2": r["transform_r2"][i],
                "invariance": r["invariance"][i][last],
                "learned": r["equivariance_r2"][i][last],
                "identity": r["identity_r2"][i][last],
                "shuffled": r["shuffled_r2"][i][last],
            }
            for i, layer in enumerate(r["layers"])
        ]
        consistency = [
            {"t": t, "share": share}
            for t, share in zip(r["magnitudes"], r["consistency"] or [], strict=False)
            if share is not None  # models without an output (text encoders) have no top class
        ]
        families.append(
            {
                "rows": rows,
                "consistency_by_t": consistency,
                "key": row.family,
                "title": family.title,
                "unit": family.unit,
                "continuous": family.continuous,
                "induced": family.induced,
                **row.result,
                **_positions_read(run, r),
                "overlays": [
                    {"run": pk, "checkpoint": o["name"], **o[row.family]}
                    for pk, o in others.items()
                    if row.family in o
                ],
            }
        )
    return {
        "run": run.pk,
        "checkpoint": run.checkpoint.name,
        "dataset": run.dataset.name,
        "measures": {
            key: {
                "name": name,
                "range": list(span),
                "can_be_negative": negative,
                "definition": definition,
            }
            for key, (name, span, negative, definition) in PROBE_MEASURES.items()
        },
        "scores": {
            key: {"name": name, "definition": definition}
            for key, (name, definition) in PROBE_SCORES.items()
        },
        "families": families,
    }


def dynamics_view(run: Run) -> dict:
    """A dynamics run as its page and API clients draw it: the series' checkpoints with their
    steps and logged metrics, and per layer the step × step matrix (in the heatmap's matrix
    shape), the similarity of each step to the final one and each statistic over steps, with
    definitions and chance levels. Empty lists until the run has finished."""
    p = run.params
    by_pk = {c.pk: c for c in Checkpoint.objects.filter(pk__in=p["checkpoints"])}
    series = [by_pk[pk] for pk in p["checkpoints"] if pk in by_pk]
    steps = [c.step for c in series]
    labels = [f"step {c.step}" if c.step is not None else c.name for c in series]
    measure = describe(p["measure"])
    metric_names = sorted({name for c in series for name in c.metrics})
    view: dict = {
        "run": run.pk,
        "state": run.state,
        "series": p["series"],
        "measure": measure,
        "pooling": p["pooling"],
        "positions": "",
        "dataset": {"id": run.dataset_id, "name": run.dataset.name},
        "checkpoints": [
            {"id": c.pk, "name": c.name, "step": c.step, "metrics": c.metrics} for c in series
        ],
        "steps": steps,
        "step_labels": labels,
        "metrics": {name: [c.metrics.get(name) for c in series] for name in metric_names},
        "statistics": {
            name: {"name": title, "definition": text} for name, (title, text) in STATISTICS.items()
        },
        "accuracies": list(ACCURACIES),
        "layers": [],
    }
    stored = Report.objects.filter(run=run).first()
    if stored is None or len(series) != len(p["checkpoints"]):
        return view
    result = stored.result
    view |= {
        "label_chance": result["label_chance"],
        "positions": result.get("positions", ""),
        "probe_columns": result["columns"],
        "cells": result["cells"],
        "code_version": stored.code_version,
    }
    for layer in result["layers"]:
        matrix = layer["matrix"]
        view["layers"].append(
            {
                "layer": layer["layer"],
                "d": layer["d"],
                "json_id": f"matrix-{len(view['layers']) + 1}",
                "matrix": {
                    "measure": measure,
                    "layers_a": labels,
                    "layers_b": labels,
                    "value": matrix,
                    "n": run.dataset.n_samples,
                    "checkpoint_a": {"name": f"{p['series']} · {layer['layer']}"},
                    "checkpoint_b": {"name": f"{p['series']} · {layer['layer']}"},
                },
                "to_final": [row[-1] for row in matrix],
                "refusals": layer["refusals"],
                "refusal_reasons": sorted(set(layer["refusals"].values())),
                "statistics": {
                    name: [s["statistics"][name] for s in layer["statistics"]]
                    for name in STATISTICS
                },
                "probes": {
                    name: [s["probes"][name] for s in layer["statistics"]]
                    for name in result["columns"]
                },
            }
        )
    return view


def dynamics_charts(view: dict) -> dict:
    """The dynamics page's line charts (static/js/dynamics/figure.js) from
    :func:`dynamics_view`: similarity to the final checkpoint, each statistic and probe over
    steps (one line per layer; accuracies on their 0–1 range with their chance level), and
    each logged training metric. Statistics no step has (no labels: no accuracies) are left
    out."""
    layers = view["layers"]
    measure = view["measure"]
    charts: dict[str, dict] = {
        "to_final": {
            "lines": [{"name": layer["layer"], "y": layer["to_final"]} for layer in layers],
            "yTitle": f"{measure['name']} to the final step",
            "range": measure["range"],
        }
    }
    for name, about in view["statistics"].items():
        lines = [{"name": layer["layer"], "y": layer["statistics"][name]} for layer in layers]
        if all(v is None for line in lines for v in line["y"]):
            continue
        accuracy = name in view["accuracies"]
        charts[name] = {
            "lines": lines,
            "yTitle": about["name"],
            "range": [0, 1] if accuracy else None,
            "chance": view.get("label_chance") if accuracy else None,
        }
    for column, chance in (view.get("probe_columns") or {}).items():
        charts[f"probe:{column}"] = {
            "lines": [{"name": layer["layer"], "y": layer["probes"][column]} for layer in layers],
            "yTitle": f"probe accuracy of {column}",
            "range": [0, 1],
            "chance": chance,
        }
    for name, values in view["metrics"].items():
        charts[f"metric:{name}"] = {"lines": [{"name": name, "y": values}], "yTitle": name}
    return {"steps": view["steps"], "labels": view["step_labels"], "charts": charts}


NESTED_STATISTICS = {
    # key in analysis.explorer.nested.NestedQuality: (name, one-line definition, chance key)
    "mean_ap": (
        "mAP",
        "mean over queries of the average precision: the precision at the rank of each sample "
        "with the query's label, averaged over those samples",
        "mean_ap",
    ),
    "top1": ("top-1", "share of queries whose nearest sample has their label", "top1"),
    "top5": ("top-5", "share of queries with a sample of their label among the 5 nearest", "top5"),
    "probe_accuracy": (
        "probe accuracy",
        "exact leave-one-out accuracy of a ridge classifier of the label on the prefix",
        "probe",
    ),
    "cka": (
        "CKA to the full embedding",
        "linear CKA between the prefix and the whole embedding: how much of its geometry the "
        "prefix keeps (1 at the full width)",
        None,
    ),
}
"""The nested page's statistics, in the order drawn."""


def nested_view(run: Run) -> dict:
    """A nested-embedding run as its page and API clients draw it: per checkpoint the
    statistics of each prefix of its layer's embedding (``curves``, one per checkpoint, in
    the order asked), their chance levels and the protocol. Until the run has finished,
    ``curves`` is empty and ``chance`` and ``provenance`` are None."""
    p = run.params
    names = dict(Checkpoint.objects.filter(pk__in=p["checkpoints"]).values_list("pk", "name"))
    view: dict = {
        "run": run.pk,
        "state": run.state,
        "dataset": {"id": run.dataset_id, "name": run.dataset.name},
        "layer": p["layer"],
        "pooling": p["pooling"],
        "metric": p["metric"],
        "checkpoints": [{"id": pk, "name": names.get(pk, "")} for pk in p["checkpoints"]],
        "statistics": {
            key: {"name": name, "definition": text}
            for key, (name, text, _) in NESTED_STATISTICS.items()
        },
        "curves": [],
        "chance": None,
        "provenance": None,
    }
    stored = Report.objects.filter(run=run).first()
    if stored is None:
        return view
    results = stored.result["checkpoints"]
    first = results[0]
    view["curves"] = [
        {
            "checkpoint": {"id": r["checkpoint"], "name": names.get(r["checkpoint"], "")},
            "d": r["d"],
            "dims": r["dims"],
            **{key: r[key] for key in NESTED_STATISTICS},
            "warnings": r["warnings"],
        }
        for r in results
    ]
    view["chance"] = {
        key: first["chance"][chance] if chance else None
        for key, (_, _, chance) in NESTED_STATISTICS.items()
    }
    view["provenance"] = {
        "n": first["n"],
        "protocol": first["protocol"],
        "metric": first["metric"],
        "n_queries": first["n_queries"],
        "n_gallery": first["n_gallery"],
        "positions": stored.result.get("positions", ""),
        "code_version": stored.code_version,
    }
    return view


def nested_charts(view: dict) -> dict:
    """The nested page's line charts (static/js/nested/figure.js) from :func:`nested_view`:
    one chart per statistic against the prefix dimension, one line per checkpoint, on [0, 1]
    with the statistic's chance level; ``dims`` are the x-axis ticks (every checkpoint's)."""
    curves = view["curves"]
    return {
        "dims": sorted({m for curve in curves for m in curve["dims"]}),
        "charts": {
            key: {
                "lines": [
                    {"name": c["checkpoint"]["name"], "x": c["dims"], "y": c[key]} for c in curves
                ],
                "yTitle": about["name"],
                "range": [0, 1],
                "chance": (view["chance"] or {}).get(key),
            }
            for key, about in view["statistics"].items()
        },
    }
