"""Reading a comparison's scores back as a layer × layer matrix."""

from __future__ import annotations

import analysis
from analysis.measures import BASELINE_WARNING
from analysis.registry import MEASURES
from webapp.runs.models import Run


def comparison_matrix(run: Run) -> dict:
    """Everything a page or API client needs to draw and trust the matrix; ``None`` cells are
    pairs not computed yet."""
    p = run.params
    measure = MEASURES[p["measure"]]
    rows, cols = p["layers_a"], p["layers_b"]
    scores = {(s.layer_a, s.layer_b): s for s in run.scores.filter(measure=measure.id)}

    def grid(field: str) -> list[list]:
        return [[getattr(scores.get((a, b)), field, None) for b in cols] for a in rows]

    any_score = next(iter(scores.values()), None)
    dims_a = {s.layer_a: s.d_a for s in scores.values()}
    dims_b = {s.layer_b: s.d_b for s in scores.values()}
    warnings = sorted({w for s in scores.values() for w in s.warnings})
    return {
        "run": run.pk,
        "state": run.state,
        "measure": measure.describe(),
        "checkpoint_a": {"id": run.checkpoint_id, "name": run.checkpoint.name},
        "checkpoint_b": {"id": run.checkpoint_b_id, "name": run.checkpoint_b.name},
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
        "warnings": warnings,
    }
