"""Reading scores back as matrices: layer × layer for a comparison, model × model for a
model matrix. Both have one shape, so pages and API clients draw them the same way."""

from __future__ import annotations

import numpy as np

import analysis
from analysis.measures import BASELINE_WARNING
from analysis.ordering import hierarchical_order
from analysis.registry import MEASURES
from webapp.catalog.models import Checkpoint
from webapp.runs.models import Run


def comparison_matrix(run: Run) -> dict:
    """Everything a page or API client needs to draw and trust the layer × layer matrix;
    ``None`` cells are pairs not computed yet."""
    p = run.params
    scores = {(s.layer_a, s.layer_b): s for s in run.scores.filter(measure=p["measure"])}
    return {
        **_matrix(run, p["layers_a"], p["layers_b"], scores),
        "checkpoint_a": {"id": run.checkpoint_id, "name": run.checkpoint.name},
        "checkpoint_b": {"id": run.checkpoint_b_id, "name": run.checkpoint_b.name},
    }


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
    if len(scores) == len(ids) ** 2:
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
        "measure": measure.describe(),
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
            "n_permutations": p["n_permutations"],
            "n_bootstrap": p.get("n_bootstrap", 0),
            "seed": p["seed"],
            "code_version": any_score.code_version if any_score else analysis.__version__,
        },
        "baseline_warning_threshold": BASELINE_WARNING,
        "warnings": sorted({w for s in scores.values() for w in s.warnings}),
    }
