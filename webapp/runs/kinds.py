"""One declarative spec per run kind: its parameters (type, default, range, help), its queue,
whether it is batch work, whether it runs an uploaded model (in a model host), the analysis
function it calls and the page that shows it.

Request serializers and page forms build their parameter fields from here, submission checks
values against it, the worker routes by it and calls its entry point, the fair queue orders by
it, and lists link to its page: a parameter or a kind is added here once. The objects a run is
about (checkpoints, dataset, layers) are not parameters; each request names them itself.
Uploads are checked by the same workers ahead of every run (:mod:`webapp.catalog.uploads`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from django.db import models

from analysis.explorer.projection import ALIGNED_METHODS
from analysis.explorer.projection import METHODS as PROJECTIONS
from analysis.explorer.projection import METRICS as PROJECTION_METRICS
from analysis.measures.alignment import METHODS as ALIGNMENT_METHODS
from analysis.measures.compatibility import CRITERIA
from analysis.measures.compatibility import METRICS as RETRIEVAL_METRICS
from analysis.measures.positions import PER_POSITION, POOLED_REDUCTIONS, REDUCTIONS
from analysis.measures.registry import MEASURES
from analysis.measures.relative import MAX_ANCHORS
from analysis.models.choices import EXTRACTION_POOLINGS, POOLINGS
from analysis.parameters import Parameter, check_values


class Kind(models.TextChoices):
    """The kinds of run (``Run.Kind``); each has a spec in :data:`KINDS`."""

    EXTRACT = "extract", "Extract activations"
    COMPARE = "compare", "Compare checkpoints"
    MODEL_MATRIX = "model_matrix", "Compare many checkpoints"
    ALIGN = "align", "Align two layers"
    COMPATIBILITY = "compatibility", "Compatibility of model versions"
    PROJECT = "project", "Project to 2-D"
    PROJECT_ALIGNED = "project_aligned", "Aligned projections"
    PROBE = "probe", "Equivariance probes"
    DYNAMICS = "dynamics", "Training dynamics"
    WEIGHTS = "weights", "Weight space"
    NESTED = "nested", "Nested embedding quality"
    UNITS = "units", "Unit matching"
    STITCH = "stitch", "Model stitching"


POOLING = Parameter(
    "pooling",
    "choice",
    "mean",
    "how a conv map or token sequence becomes one vector per sample",
    choices=tuple(POOLINGS),
    labels=tuple(f"{name}: {text}" for name, text in POOLINGS.items()),
)
EXTRACTION_POOLING = Parameter(
    "pooling",
    "choice",
    "mean",
    "how a conv map or token sequence is stored: one vector per sample, or every position as a "
    "row with its sample and position (tokens; its size is told before the run)",
    choices=tuple(EXTRACTION_POOLINGS),
    labels=tuple(f"{name}: {text}" for name, text in EXTRACTION_POOLINGS.items()),
)
COMPARISON_POOLING = replace(
    EXTRACTION_POOLING,
    help="how each sample's layer output becomes one vector for the comparison, or (tokens) "
    "every position is kept as a row and positions says how those rows are compared",
)
POSITIONS = Parameter(
    "positions",
    "choice",
    "mean",
    "only where a side's pooling is tokens (every position a row): how those sets are "
    "compared; one vector per sample is compared as it is",
    choices=tuple(REDUCTIONS),
    labels=tuple(f"{name}: {text}" for name, text in REDUCTIONS.items()),
)
POOLED_POSITIONS = replace(
    POSITIONS,
    help="only where pooling is tokens (every position a row): how each sample's rows become "
    "the one vector this run reads (per position is for comparisons, model matrices and "
    "dynamics)",
    choices=tuple(POOLED_REDUCTIONS),
    labels=tuple(f"{name}: {text}" for name, text in POOLED_REDUCTIONS.items()),
)
"""Of the kinds that read one vector per sample: ``positions`` without per position."""
RUN_POOLING = replace(
    EXTRACTION_POOLING,
    help="how each sample's layer output becomes one vector for the run, or (tokens) every "
    "position is kept as a row and positions says how each sample's rows become one",
)
SEED = Parameter("seed", "int", 0, "seed of the run's random choices", minimum=0, maximum=2**32 - 1)
MEASURE = Parameter(
    "measure",
    "choice",
    "cka/linear",
    "GET /api/v1/measures/ lists them with their properties and parameters",
    choices=tuple(MEASURES),
    labels=tuple(f"{m.name} ({m.id})" for m in MEASURES.values()),
)
N_PERMUTATIONS = Parameter(
    "n_permutations", "int", 10, "row shuffles for the permutation baseline", 1, 1000
)
N_BOOTSTRAP = Parameter(
    "n_bootstrap",
    "int",
    20,
    "bootstrap resamples for the 95% interval of each score (0: none)",
    minimum=0,
    maximum=1000,
)
AGREEMENT_K = Parameter(
    "agreement_k",
    "int",
    10,
    "neighbours of the per-sample kNN agreement behind each score (the drill-down)",
    minimum=1,
    maximum=100,
)
N_NEIGHBORS = Parameter("n_neighbors", "int", 15, "UMAP's neighbourhood size", 2, 200)
MIN_DIST = Parameter("min_dist", "float", 0.1, "UMAP's minimum distance", 0.0, 1.0)
LAYOUT_METRIC = Parameter(
    "metric",
    "choice",
    "euclidean",
    "distance in the layer (UMAP, t-SNE)",
    choices=PROJECTION_METRICS,
)
UMAP_OPTIONS = (N_NEIGHBORS, MIN_DIST, LAYOUT_METRIC)


def _fraction(name: str, default: float, help: str) -> Parameter:
    return Parameter(name, "float", default, help, minimum=0.01, maximum=0.99)


@dataclass(frozen=True)
class RunKind:
    """What runs of one kind take and where they go. ``entry`` is the analysis function the
    worker calls (``module:function``); ``hosted`` kinds run an uploaded model, so their entry
    point runs in a model host. ``batch`` work waits behind interactive work of other people
    (``webapp.runs.queue``). ``page`` names the URL of the page that shows a run."""

    kind: str
    queue: str
    parameters: tuple[Parameter, ...]
    entry: str
    page: str = "run"
    batch: bool = False
    hosted: bool = False

    def check(self, values: dict[str, Any]) -> dict[str, Any]:
        """Every parameter's value, checked (defaults where absent); an unknown name or a
        value out of range is an :class:`InputError` naming it."""
        return check_values(self.parameters, values, f"a {self.kind} run")

    def parameter(self, name: str) -> Parameter:
        return next(p for p in self.parameters if p.name == name)


KINDS: dict[str, RunKind] = {
    k.kind: k
    for k in [
        RunKind(
            Kind.EXTRACT, "gpu", (EXTRACTION_POOLING,), "analysis.host.tasks:extract", hosted=True
        ),
        RunKind(
            Kind.COMPARE,
            "cpu",
            (
                COMPARISON_POOLING,
                POSITIONS,
                MEASURE,
                N_PERMUTATIONS,
                N_BOOTSTRAP,
                AGREEMENT_K,
                SEED,
            ),
            "analysis.measures.engine:compare_layers",
            page="comparison",
            batch=True,
        ),
        RunKind(
            Kind.MODEL_MATRIX,
            "cpu",
            (
                COMPARISON_POOLING,
                POSITIONS,
                MEASURE,
                N_PERMUTATIONS,
                N_BOOTSTRAP,
                AGREEMENT_K,
                SEED,
            ),
            "analysis.measures.engine:compare_layers",
            page="model-matrix",
            batch=True,
        ),
        RunKind(
            Kind.ALIGN,
            "cpu",
            (
                RUN_POOLING,
                POOLED_POSITIONS,
                Parameter(
                    "method",
                    "choice",
                    "procrustes",
                    "the map fitted from A's layer to B's",
                    choices=tuple(ALIGNMENT_METHODS),
                    labels=tuple(ALIGNMENT_METHODS.values()),
                ),
                _fraction("test_fraction", 0.2, "share of samples held out to score the map"),
                SEED,
            ),
            "analysis.measures.alignment:fit_alignment",
        ),
        RunKind(
            Kind.COMPATIBILITY,
            "cpu",
            (
                RUN_POOLING,
                POOLED_POSITIONS,
                Parameter(
                    "metric", "choice", "cosine", "retrieval distance", choices=RETRIEVAL_METRICS
                ),
                Parameter(
                    "criterion",
                    "choice",
                    "top1",
                    "the retrieval score compared",
                    choices=CRITERIA,
                    labels=("top-1 accuracy", "top-5 accuracy", "mAP"),
                ),
                _fraction(
                    "query_fraction",
                    0.2,
                    "share of each class taken as queries (without a 'role' column)",
                ),
                SEED,
            ),
            "analysis.measures.compatibility:compatibility",
            page="compatibility",
            batch=True,
        ),
        RunKind(
            Kind.PROJECT,
            "cpu",
            (
                RUN_POOLING,
                POOLED_POSITIONS,
                Parameter(
                    "method",
                    "choice",
                    "pca",
                    "the 2-D layout",
                    choices=tuple(PROJECTIONS),
                    labels=tuple(PROJECTIONS.values()),
                ),
                *UMAP_OPTIONS,
                Parameter("perplexity", "float", 30.0, "t-SNE's perplexity", 1.0, 1000.0),
                SEED,
            ),
            "analysis.explorer.projection:project",
            page="projection",
        ),
        RunKind(
            Kind.PROJECT_ALIGNED,
            "cpu",
            (
                RUN_POOLING,
                POOLED_POSITIONS,
                Parameter(
                    "method",
                    "choice",
                    "umap",
                    "the aligned 2-D layout",
                    choices=tuple(ALIGNED_METHODS),
                    labels=tuple(ALIGNED_METHODS.values()),
                ),
                *UMAP_OPTIONS,
                SEED,
            ),
            "analysis.explorer.projection:project_aligned",
            batch=True,
        ),
        RunKind(
            Kind.PROBE,
            "gpu",
            (
                replace(
                    EXTRACTION_POOLING,
                    help="how a layer's output of x (stored) and of each g x (computed) is "
                    "read: one vector per sample, or (tokens) every position as a row, read as "
                    "positions says",
                ),
                replace(
                    POSITIONS,
                    default=PER_POSITION,
                    help="only with pooling tokens: per-position compares position p of g x "
                    "with position p of x where the family keeps every position in place "
                    "(keeps_positions in GET /api/v1/transformations/) and pools each "
                    "sample's rows by mean where it moves them; mean, first or last pools "
                    "every family",
                    labels=(
                        f"{PER_POSITION}: position p of g x against position p of x where the "
                        "family keeps positions in place; otherwise the mean of each sample's "
                        "rows",
                        *POSITIONS.labels[1:],
                    ),
                ),
                SEED,
            ),
            "analysis.host.tasks:probe",
            page="probe",
            batch=True,
            hosted=True,
        ),
        RunKind(
            Kind.DYNAMICS,
            "cpu",
            (COMPARISON_POOLING, POSITIONS, MEASURE),
            "analysis.dynamics.series:series_matrix",
            page="dynamics",
            batch=True,
        ),
        RunKind(
            Kind.WEIGHTS,
            "gpu",
            (
                Parameter(
                    "seed",
                    "int",
                    0,
                    "seed of the order weight matching visits the layers in",
                    minimum=0,
                    maximum=2**32 - 1,
                ),
            ),
            "analysis.host.tasks:weights",
            page="weight-space",
            batch=True,
            hosted=True,
        ),
        RunKind(
            Kind.NESTED,
            "cpu",
            (
                RUN_POOLING,
                POOLED_POSITIONS,
                Parameter(
                    "metric", "choice", "cosine", "retrieval distance", choices=RETRIEVAL_METRICS
                ),
            ),
            "analysis.explorer.nested:nested_quality",
            page="nested",
            batch=True,
        ),
        RunKind(
            Kind.UNITS,
            "cpu",
            (
                RUN_POOLING,
                POOLED_POSITIONS,
                Parameter("n_pairs", "int", 5, "best- and worst-matched unit pairs shown", 1, 50),
                Parameter("top_m", "int", 9, "most activating samples shown per pair", 1, 50),
                Parameter("n_alphas", "int", 30, "penalties on the lasso path", 2, 100),
                _fraction(
                    "test_fraction",
                    0.25,
                    "share of samples held out to score the lasso path (the held-out error)",
                ),
                Parameter("seed", "int", 0, "seed of the held-out split", 0, 2**32 - 1),
            ),
            "analysis.measures.units:unit_matching_report",
            page="unit-matching",
            batch=True,
        ),
        RunKind(
            Kind.STITCH,
            "gpu",
            (
                _fraction(
                    "test_fraction", 0.2, "share of samples held out to score the stitched models"
                ),
                Parameter("seed", "int", 0, "seed of the split and of the anchors", 0, 2**32 - 1),
                Parameter(
                    "map",
                    "choice",
                    "affine",
                    "the fitted map from A's layer to B's: with an intercept or through 0",
                    choices=("affine", "linear"),
                ),
                Parameter(
                    "ridge",
                    "float",
                    0.0,
                    "penalty of the fitted maps, in units of the training ‖X_c‖²_F (0: least "
                    "squares)",
                    minimum=0.0,
                    maximum=1e6,
                ),
                Parameter(
                    "n_anchors",
                    "int",
                    0,
                    "anchors of the zero-shot variant, drawn among the training samples (0: "
                    f"min({MAX_ANCHORS}, half of them))",
                    minimum=0,
                    maximum=100_000,
                ),
            ),
            "analysis.host.tasks:stitch",
            page="stitching",
            batch=True,
            hosted=True,
        ),
    ]
}
assert set(KINDS) == set(Kind.values), "every run kind has a spec"


def parameters_in(kind: str, data: dict) -> dict[str, Any]:
    """The values of ``kind``'s parameters in validated request ``data``."""
    return {p.name: data[p.name] for p in KINDS[kind].parameters if p.name in data}


def parameter_rows(kind: str, params: dict) -> list[dict[str, Any]]:
    """``{name, value, help}`` for each value of a run's ``params``, described by its kind's
    spec or its measure's declaration where they declare it (the run page's table)."""
    declared = {p.name: p for p in KINDS[kind].parameters}
    if "measure" in params:
        declared.update({p.name: p for p in MEASURES[params["measure"]].parameters})
    values = {k: v for k, v in params.items() if k != "measure_params"}
    values.update(params.get("measure_params") or {})
    return [
        {"name": name, "value": value, "help": declared[name].help if name in declared else ""}
        for name, value in values.items()
    ]


QUEUE_OF_KIND = {kind: spec.queue for kind, spec in KINDS.items()}
"""``gpu``: runs that run a model (in a model host); ``cpu``: measures and projections."""
