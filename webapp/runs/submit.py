"""Asking for work: validate a request, then create (or find) its Run."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from django.db import transaction

from analysis.errors import InputError
from analysis.explorer.projection import PARAMETERS as PROJECTION_PARAMETERS
from analysis.measures.positions import PER_POSITION
from analysis.measures.registry import MEASURES
from analysis.models.choices import TOKENS
from analysis.probes.families import check_magnitudes, get_family
from webapp.catalog import fits
from webapp.catalog.models import Checkpoint, Dataset, Workspace
from webapp.runs.kinds import KINDS
from webapp.runs.models import Run

if TYPE_CHECKING:
    from webapp.catalog.models import AnyUser


def _layers(checkpoint: Checkpoint, layers: list[str] | None) -> list[str]:
    if not layers:
        return list(checkpoint.default_layers)
    unknown = [layer for layer in layers if layer not in checkpoint.layers]
    if unknown:
        raise InputError(
            f"{checkpoint.name} has no layer(s) {', '.join(unknown)}; "
            f"available: {', '.join(checkpoint.layers)}"
        )
    return list(dict.fromkeys(layers))


def _same_workspace(dataset: Dataset, *checkpoints: Checkpoint) -> None:
    if any(c.workspace_id != dataset.workspace_id for c in checkpoints):
        raise InputError("the checkpoint(s) and the dataset must belong to the same workspace")


def _check_inputs(checkpoint: Checkpoint, dataset: Dataset) -> None:
    """The checkpoint can give activations of this dataset's samples (:mod:`fits`)."""
    reason = fits.refusal(checkpoint, dataset)
    if reason:
        raise InputError(reason)


def _layer_of_each(checkpoints: list[Checkpoint], layer: str) -> None:
    lacking = [c.name for c in checkpoints if layer not in c.layers]
    if lacking:
        raise InputError(f"layer {layer!r} is not in: {', '.join(lacking)}")


def _checked(kind: str, pooling_b: str | None = None, **values: Any) -> dict:
    """The run's parameters checked against its kind's spec (``webapp.runs.kinds``). How
    token-level sets are read (``positions``) is kept only where a pooling (``pooling``, or
    ``pooling_b``: B's of a comparison) is ``tokens``: it means nothing without them, and a
    request made before there were any finds its run again. Per position is refused, in one
    sentence, to the kinds that read one vector per sample."""
    spec = KINDS[kind]
    offered = [p.choices for p in spec.parameters if p.name == "positions"]
    if values.get("positions") == PER_POSITION and offered and PER_POSITION not in offered[0]:
        raise InputError(
            f"a {kind} run reads one vector per sample, so positions cannot be {PER_POSITION} "
            "(that is for compare, model_matrix and dynamics runs); choose mean, first or last"
        )
    checked = spec.check(values)
    if "positions" in checked and TOKENS not in (checked.get("pooling"), pooling_b):
        del checked["positions"]
    return checked


def _series_at_layer(
    user: AnyUser, checkpoints: Iterable[Checkpoint], dataset: Dataset, layer: str, pooling: str
) -> tuple[list[Checkpoint], list[Run]]:
    """Two or more distinct checkpoints of the dataset's workspace that all have ``layer``, in
    the order given, and the extractions of that layer they need."""
    distinct = list(dict.fromkeys(checkpoints))
    if len(distinct) < 2:
        raise InputError("choose at least two checkpoints")
    _same_workspace(dataset, *distinct)
    _layer_of_each(distinct, layer)
    extractions = [request_extraction(user, c, dataset, [layer], pooling)[0] for c in distinct]
    return distinct, extractions


def _positions_of(checked: dict) -> dict:
    """``{"positions": …}`` where ``checked`` keeps it (a token-level request), else ``{}``."""
    return {"positions": checked["positions"]} if "positions" in checked else {}


def _comparison_parameters(
    kind: str, dataset: Dataset, measure_params: dict | None, **values: Any
) -> dict:
    """A comparison's checked parameters, with the measure's own complete (defaults filled
    in) as ``measure_params``."""
    checked = _checked(kind, **values)
    measure = MEASURES[checked["measure"]].configured(measure_params)
    if dataset.n_samples < measure.min_samples:
        raise InputError(f"{measure.name} needs at least {measure.min_samples} samples")
    return {**checked, "measure_params": measure.settings()}


def _submit(
    kind: str,
    user: AnyUser,
    dataset: Dataset,
    params: dict,
    checkpoint: Checkpoint,
    checkpoint_b: Checkpoint | None = None,
    depends_on: Iterable[Run] = (),
) -> tuple[Run, bool]:
    """The run for this request, found or created: its key is the kind, the dataset, the
    checkpoint(s) and every parameter, so the same request always maps to the same run."""
    checkpoint_b_id = checkpoint_b.pk if checkpoint_b is not None else None
    return Run.submit(
        kind=kind,
        request_key=Run.request_key_of(kind, dataset.pk, checkpoint.pk, checkpoint_b_id, params),
        depends_on=depends_on,
        workspace=dataset.workspace,
        dataset=dataset,
        checkpoint=checkpoint,
        checkpoint_b=checkpoint_b,
        params=params,
        created_by=user,
    )


def extraction_layers(
    checkpoint: Checkpoint, dataset: Dataset, layers: list[str] | None = None
) -> list[str]:
    """The layers an extraction of ``checkpoint`` over ``dataset`` stores (default: top-level
    blocks and output), once the pair is checked (same workspace, the model reads the data)."""
    _same_workspace(dataset, checkpoint)
    _check_inputs(checkpoint, dataset)
    return _layers(checkpoint, layers)


@transaction.atomic  # a request makes all of its runs or none
def request_extraction(
    user: AnyUser,
    checkpoint: Checkpoint,
    dataset: Dataset,
    layers: list[str] | None = None,
    pooling: str = "mean",
) -> tuple[Run, bool]:
    """The run that stores activations of ``layers`` (default: top-level blocks and output);
    pooling ``tokens``: every position, which precomputed activations do not have."""
    chosen = extraction_layers(checkpoint, dataset, layers)
    if pooling == TOKENS and not checkpoint.keeps_positions:
        raise InputError(
            f"{checkpoint.name} holds precomputed activations, one vector per sample: they have "
            "no positions to keep"
        )
    params = {"layers": chosen, **_checked(Run.Kind.EXTRACT, pooling=pooling)}
    return _submit(Run.Kind.EXTRACT, user, dataset, params, checkpoint)


@transaction.atomic
def request_comparison(
    user: AnyUser,
    checkpoint_a: Checkpoint,
    checkpoint_b: Checkpoint,
    dataset: Dataset,
    layers_a: list[str] | None = None,
    layers_b: list[str] | None = None,
    pooling: str = "mean",
    *,
    pooling_b: str | None = None,
    measure_params: dict | None = None,
    **parameters: Any,
) -> tuple[Run, bool]:
    """The run that scores every (layer of A, layer of B) pair; it waits for the extractions
    it needs, which are requested here too. ``pooling_b`` pools B's token sequences or maps
    differently from A's (e.g. a model against itself at CLS and mean pooling);
    ``parameters`` are the comparison kind's (``webapp.runs.kinds``: measure,
    n_permutations, n_bootstrap, seed …), defaults where absent."""
    _same_workspace(dataset, checkpoint_a, checkpoint_b)
    pooling_b = _checked(Run.Kind.EXTRACT, pooling=pooling_b or pooling)["pooling"]
    checked = _comparison_parameters(
        Run.Kind.COMPARE,
        dataset,
        measure_params,
        pooling=pooling,
        pooling_b=pooling_b,
        **parameters,
    )
    layers_a = _layers(checkpoint_a, layers_a)
    layers_b = _layers(checkpoint_b, layers_b)
    extract_a, _ = request_extraction(user, checkpoint_a, dataset, layers_a, pooling)
    extract_b, _ = request_extraction(user, checkpoint_b, dataset, layers_b, pooling_b)
    params = {
        "layers_a": layers_a,
        "layers_b": layers_b,
        "pooling": pooling,
        **({"pooling_b": pooling_b} if pooling_b != pooling else {}),
        **checked,
    }
    return _submit(
        Run.Kind.COMPARE,
        user,
        dataset,
        params,
        checkpoint_a,
        checkpoint_b,
        depends_on=[extract_a, extract_b],
    )


@transaction.atomic
def request_model_matrix(
    user: AnyUser,
    checkpoints: list[Checkpoint],
    dataset: Dataset,
    layer: str,
    pooling: str = "mean",
    *,
    measure_params: dict | None = None,
    **parameters: Any,
) -> tuple[Run, bool]:
    """The run that scores one layer of every checkpoint against every other (e.g. all seeds
    of one recipe): a model × model matrix; ``parameters`` as for a comparison."""
    checked = _comparison_parameters(
        Run.Kind.MODEL_MATRIX, dataset, measure_params, pooling=pooling, **parameters
    )
    checkpoints, extractions = _series_at_layer(user, checkpoints, dataset, layer, pooling)
    params = {
        "checkpoints": [c.pk for c in checkpoints],
        "layer": layer,
        **checked,
    }
    return _submit(
        Run.Kind.MODEL_MATRIX, user, dataset, params, checkpoints[0], depends_on=extractions
    )


@transaction.atomic
def request_alignment(
    user: AnyUser,
    checkpoint_a: Checkpoint,
    checkpoint_b: Checkpoint,
    dataset: Dataset,
    layer_a: str,
    layer_b: str,
    **parameters: Any,
) -> tuple[Run, bool]:
    """The run that fits a map from ``layer_a`` of A to ``layer_b`` of B on a training split
    and scores it on the held-out samples; ``parameters`` are the alignment kind's
    (``webapp.runs.kinds``: pooling, method, test_fraction, seed), defaults where absent."""
    _same_workspace(dataset, checkpoint_a, checkpoint_b)
    checked = _checked(Run.Kind.ALIGN, **parameters)
    pooling = checked["pooling"]
    _layer_of_each([checkpoint_a], layer_a)
    _layer_of_each([checkpoint_b], layer_b)
    extract_a, _ = request_extraction(user, checkpoint_a, dataset, [layer_a], pooling)
    extract_b, _ = request_extraction(user, checkpoint_b, dataset, [layer_b], pooling)
    params = {
        "layer_a": layer_a,
        "layer_b": layer_b,
        **checked,
    }
    return _submit(
        Run.Kind.ALIGN,
        user,
        dataset,
        params,
        checkpoint_a,
        checkpoint_b,
        depends_on=[extract_a, extract_b],
    )


def series_order(checkpoints: Iterable[Checkpoint]) -> list[Checkpoint]:
    """Checkpoints oldest first: by training step where every one has a step, else by
    upload time."""
    checkpoints = list(dict.fromkeys(checkpoints))
    if all(c.step is not None for c in checkpoints):
        return sorted(checkpoints, key=lambda c: (c.step, c.created_at, c.pk))
    return sorted(checkpoints, key=lambda c: (c.created_at, c.pk))


def series_of(workspace: Workspace, seed_group: str) -> list[Checkpoint]:
    """The checkpoints of one training run (one seed group), oldest first."""
    return series_order(Checkpoint.objects.filter(workspace=workspace, seed_group=seed_group))


def series_in(workspace: Workspace) -> dict[str, list[Checkpoint]]:
    """Every series of the workspace by name (its seed groups), each oldest first."""
    groups: dict[str, list[Checkpoint]] = {}
    for checkpoint in workspace.checkpoints.exclude(seed_group=""):
        groups.setdefault(checkpoint.seed_group, []).append(checkpoint)
    return {name: series_order(group) for name, group in sorted(groups.items())}


@transaction.atomic
def request_dynamics(
    user: AnyUser,
    workspace: Workspace,
    seed_group: str,
    dataset: Dataset,
    layers: list[str] | None = None,
    pooling: str = "mean",
    *,
    measure_params: dict | None = None,
    **parameters: Any,
) -> tuple[Run, bool]:
    """The run that follows ``layers`` (default: the last checkpoint's default layers) over
    the checkpoints of the series ``seed_group`` as it stands now: step × step matrices of the
    measure, similarity to the final checkpoint and statistics per step. A series that grew
    since an earlier request makes a new run, which computes only the new cells."""
    checkpoints = series_of(workspace, seed_group)
    if len(checkpoints) < 2:
        raise InputError(
            f"the series {seed_group!r} has {len(checkpoints)} checkpoint(s); it needs two"
        )
    _same_workspace(dataset, *checkpoints)
    checked = _comparison_parameters(
        Run.Kind.DYNAMICS, dataset, measure_params, pooling=pooling, **parameters
    )
    layers = _layers(checkpoints[-1], layers)
    for layer in layers:
        _layer_of_each(checkpoints, layer)
    extractions = [request_extraction(user, c, dataset, layers, pooling)[0] for c in checkpoints]
    params = {
        "series": seed_group,
        "checkpoints": [c.pk for c in checkpoints],
        "layers": layers,
        **checked,
    }
    return _submit(
        Run.Kind.DYNAMICS, user, dataset, params, checkpoints[-1], depends_on=extractions
    )


@transaction.atomic
def request_compatibility(
    user: AnyUser,
    checkpoints: list[Checkpoint],
    dataset: Dataset,
    layer: str,
    **parameters: Any,
) -> tuple[Run, bool]:
    """The run that measures cross-model retrieval between a series of checkpoints (given
    oldest first) at one layer: queries embedded by each model against the gallery embedded
    by each other one; ``parameters`` are the compatibility kind's (pooling, metric,
    criterion, query_fraction, seed), defaults where absent."""
    checked = _checked(Run.Kind.COMPATIBILITY, **parameters)
    pooling = checked["pooling"]
    if dataset.column("y") is None:
        raise InputError(f"{dataset.name} has no labels: retrieval needs identity or class labels")
    checkpoints, extractions = _series_at_layer(user, checkpoints, dataset, layer, pooling)
    params = {
        "checkpoints": [c.pk for c in checkpoints],
        "layer": layer,
        **checked,
    }
    return _submit(
        Run.Kind.COMPATIBILITY, user, dataset, params, checkpoints[0], depends_on=extractions
    )


@transaction.atomic
def request_projection(
    user: AnyUser,
    checkpoint: Checkpoint,
    dataset: Dataset,
    layer: str,
    pooling: str = "mean",
    method: str = "pca",
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    metric: str = "euclidean",
    perplexity: float = 30.0,
    seed: int = 0,
    positions: str = "mean",
) -> tuple[Run, bool]:
    """The run that projects every sample of one layer to 2-D; only the parameters the
    method uses are part of the request (``positions`` only at pooling ``tokens``)."""
    _same_workspace(dataset, checkpoint)
    checked = _checked(
        Run.Kind.PROJECT,
        pooling=pooling,
        positions=positions,
        method=method,
        n_neighbors=n_neighbors,
        min_dist=min_dist,
        metric=metric,
        perplexity=perplexity,
        seed=seed,
    )
    _layer_of_each([checkpoint], layer)
    extraction, _ = request_extraction(user, checkpoint, dataset, [layer], pooling)
    used = {name: checked[name] for name in PROJECTION_PARAMETERS[method]}
    params = {
        "layer": layer,
        "pooling": pooling,
        **_positions_of(checked),
        "method": method,
        **used,
        "seed": seed,
    }
    return _submit(Run.Kind.PROJECT, user, dataset, params, checkpoint, depends_on=[extraction])


@transaction.atomic
def request_aligned_projections(
    user: AnyUser,
    spaces: list[tuple[Checkpoint, str]],
    dataset: Dataset,
    pooling: str = "mean",
    method: str = "umap",
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    metric: str = "euclidean",
    seed: int = 0,
    positions: str = "mean",
) -> tuple[Run, bool]:
    """The run that projects two or more spaces of the same samples (layers of one checkpoint,
    or one layer of several checkpoints) so that each sample sits in comparable places; each
    space becomes a projection of its own, listed with the others of its layer."""
    checked = _checked(
        Run.Kind.PROJECT_ALIGNED,
        pooling=pooling,
        positions=positions,
        method=method,
        n_neighbors=n_neighbors,
        min_dist=min_dist,
        metric=metric,
        seed=seed,
    )
    spaces = list(dict.fromkeys((checkpoint, layer) for checkpoint, layer in spaces))
    if len(spaces) < 2:
        raise InputError("choose at least two spaces (layers or checkpoints) to align")
    _same_workspace(dataset, *(checkpoint for checkpoint, _ in spaces))
    extractions = []
    for checkpoint, layer in spaces:
        _layer_of_each([checkpoint], layer)
        extractions.append(request_extraction(user, checkpoint, dataset, [layer], pooling)[0])
    options = {name: checked[name] for name in PROJECTION_PARAMETERS["umap"]}
    params = {
        "spaces": [[checkpoint.pk, layer] for checkpoint, layer in spaces],
        "pooling": pooling,
        **_positions_of(checked),
        "method": method,
        **({} if method == "pca" else options),
        "seed": seed,
    }
    return _submit(
        Run.Kind.PROJECT_ALIGNED, user, dataset, params, spaces[0][0], depends_on=extractions
    )


DEFAULT_PROBES = {
    "image": ["image/rotation", "image/translate-circular", "image/noise"],
    "vector": ["vector/noise", "vector/dropout", "vector/permutation"],
    "text": ["text/char-noise", "text/word-dropout", "text/word-shuffle"],
}
"""The families a probe request without any probes, by the dataset's modality."""


@transaction.atomic
def request_probe(
    user: AnyUser,
    checkpoint: Checkpoint,
    dataset: Dataset,
    layers: list[str] | None = None,
    pooling: str = "mean",
    families: Mapping[str, list[float] | None] | list[str] | None = None,
    seed: int = 0,
    positions: str | None = None,
) -> tuple[Run, bool]:
    """The run that measures how ``layers`` (default: top-level blocks and output) respond to
    each transformation family over its magnitude grid (a family given without a grid gets
    its default one); it reuses the stored activations of the untransformed samples. With
    pooling ``tokens``, ``positions`` (default per position) says how each family reads their
    rows (:func:`analysis.probes.engine.reading`); given with another pooling, it is
    refused."""
    _same_workspace(dataset, checkpoint)
    if checkpoint.format == Checkpoint.Format.PRECOMPUTED:
        raise InputError(
            "probes run the model on transformed samples; precomputed activations have no model"
        )
    if positions is not None and pooling != TOKENS:
        raise InputError(
            f"positions says how the rows of token-level activations are read, so it needs "
            f"pooling tokens, not {pooling}, where every sample is one vector"
        )
    asked = {} if positions is None else {"positions": positions}
    checked = _checked(Run.Kind.PROBE, pooling=pooling, seed=seed, **asked)
    layers = _layers(checkpoint, layers)
    kind = "vector" if dataset.modality == "tabular" else dataset.modality  # rows of numbers
    if families is None:
        families = DEFAULT_PROBES.get(kind, [])
    chosen: Mapping[str, list[float] | None] = (
        dict.fromkeys(families) if isinstance(families, list) else families
    )
    if not chosen:
        raise InputError(f"choose at least one transformation for a {dataset.modality} dataset")
    grids = []  # [[key, magnitudes], …]: a list keeps the order given (JSONB sorts keys)
    for key, magnitudes in chosen.items():
        family = get_family(key)
        if family.modality != kind:
            raise InputError(
                f"{key} transforms {family.modality} data; {dataset.name} is {dataset.modality}"
            )
        grids.append([key, list(check_magnitudes(family, magnitudes or family.magnitudes))])
    extraction, _ = request_extraction(user, checkpoint, dataset, layers, pooling)
    params = {"layers": layers, "pooling": pooling, "families": grids, "seed": seed}
    if pooling == TOKENS:  # other probes' params stay as they were, to find their runs again
        params["positions"] = checked["positions"]
    return _submit(Run.Kind.PROBE, user, dataset, params, checkpoint, depends_on=[extraction])


@transaction.atomic
def request_nested(
    user: AnyUser,
    checkpoints: list[Checkpoint],
    dataset: Dataset,
    layer: str,
    **parameters: Any,
) -> tuple[Run, bool]:
    """The run that measures, for one layer of each checkpoint (one or more, drawn
    overlaid), the quality of every prefix of the embedding (8, 16, 32, … d dimensions):
    retrieval, leave-one-out probe accuracy and CKA to the full embedding, on a labelled
    dataset; ``parameters`` are the nested kind's (pooling, metric), defaults where absent."""
    checked = _checked(Run.Kind.NESTED, **parameters)
    if dataset.column("y") is None:
        raise InputError(
            f"{dataset.name} has no labels: nested-embedding quality needs class or identity labels"
        )
    checkpoints = list(dict.fromkeys(checkpoints))
    if not checkpoints:
        raise InputError("choose at least one checkpoint")
    _same_workspace(dataset, *checkpoints)
    _layer_of_each(checkpoints, layer)
    extractions = [
        request_extraction(user, c, dataset, [layer], checked["pooling"])[0] for c in checkpoints
    ]
    params = {"checkpoints": [c.pk for c in checkpoints], "layer": layer, **checked}
    return _submit(Run.Kind.NESTED, user, dataset, params, checkpoints[0], depends_on=extractions)
