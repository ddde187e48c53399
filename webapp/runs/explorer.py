"""What the explorer reads from stored projections, for the pages and the API alike: per-sample
colourings, selections drawn on a projection, and the comparison of two
projections of the same samples (neighbourhood agreement, displacement, aligned coordinates).

Everything here is read-only arithmetic on stored blobs, cheap enough for a request (a few
passes over n × k integer arrays); the expensive parts (the projection, every sample's nearest
neighbours in the original space) were computed by the projection run.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import numpy as np
from django.db.models import Q, QuerySet

from analysis.errors import InputError
from analysis.explorer.selections import (
    displacement,
    most_changed,
    neighbourhood_agreement,
    points_in_polygon,
    similarity_align,
)
from analysis.measures.knn import knn_indices
from analysis.models.choices import TOKENS
from webapp.catalog.models import ActivationSet, Blob, Dataset
from webapp.runs.models import Alignment, ProbeResult, Run, Score, Selection

if TYPE_CHECKING:
    from webapp.catalog.models import AnyUser

NO_LABEL = 65535
MAX_CATEGORIES = 64
"""An integer metadata column with at most this many distinct values colours as categories."""
MAX_POLYGON_VERTICES = 10_000

Pair = TypeVar("Pair", Score, Alignment)


@dataclass
class Colouring:
    """One way to colour the points: ``categorical`` (uint16 codes, 65535 = none, with names)
    or ``continuous`` (float32, NaN = none). Continuous colourings of one ``group`` measure the
    same statistic (say, kNN agreement with each other space), so the page gives them one
    colour scale; ``bounds`` is the range the statistic can take, when it has one."""

    key: str
    title: str
    kind: str
    names: list[str] | None = None
    group: str = ""
    bounds: tuple[float, float] | None = None

    def describe(self) -> dict:
        out: dict[str, object] = {
            "key": self.key,
            "title": self.title,
            "kind": self.kind,
            "group": self.group or self.key,
        }
        if self.names is not None:
            out["names"] = self.names
        if self.bounds is not None:
            out["bounds"] = list(self.bounds)
        return out


SHARE = (0.0, 1.0)
"""The bounds of a share or a Jaccard index."""


def label_names(dataset: Dataset) -> list[str]:
    """The dataset's label names, or its class indices as text when it has labels without
    names (as the sample grids show them)."""
    if dataset.label_names:
        return list(dataset.label_names)
    labels = dataset.column("y")
    return [] if labels is None else [str(k) for k in range(int(labels.max()) + 1)]


def majority_share(dataset: Dataset) -> float | None:
    """The share of the samples that carry the dataset's most frequent label: the accuracy of
    always guessing it, the chance level of a classifier's accuracy (None without labels)."""
    labels = dataset.column("y")
    if labels is None:
        return None
    counts = np.unique(labels, return_counts=True)[1]
    return float(counts.max() / counts.sum())


def label_codes(dataset: Dataset) -> np.ndarray:
    """uint16 class index of every sample (65535: no label), dataset order."""
    labels = dataset.column("y")
    if labels is None:
        return np.full(dataset.n_samples, NO_LABEL, dtype=np.uint16)
    return np.asarray(labels, dtype=np.uint16)


def _metadata_colouring(name: str, column: np.ndarray) -> tuple[Colouring, np.ndarray] | None:
    key, title = f"meta:{name}", name
    if column.ndim != 1:
        return None
    if column.dtype.kind in "iub":
        values, codes = np.unique(column, return_inverse=True)
        if len(values) <= MAX_CATEGORIES:
            names = [str(v) for v in values.tolist()]
            return Colouring(key, title, "categorical", names), codes.astype(np.uint16)
        return Colouring(key, title, "continuous"), column.astype(np.float32)
    if column.dtype.kind == "f":
        return Colouring(key, title, "continuous"), column.astype(np.float32)
    if column.dtype.kind in "US":
        values, codes = np.unique(column, return_inverse=True)
        if len(values) >= NO_LABEL:
            return None
        names = [str(v) for v in values.tolist()]
        return Colouring(key, title, "categorical", names), codes.astype(np.uint16)
    return None


def _other_space(activation: ActivationSet, score_or_alignment: Score | Alignment) -> str:
    """``checkpoint · layer`` of the side of a pair that is not ``activation``, with its
    pooling where that differs from ``activation``'s and, at pooling tokens, how the pair read
    the rows: one layer compared at cls and at last pooling (or tokens read by first and
    per position) would otherwise read alike."""
    other = (
        score_or_alignment.activation_b
        if score_or_alignment.activation_a_id == activation.pk
        else score_or_alignment.activation_a
    )
    name = f"{other.checkpoint.name} · {other.layer}"
    positions = score_or_alignment.run.params.get("positions")
    if TOKENS in (other.pooling, activation.pooling) and positions:
        return f"{name} (pooling {other.pooling}, positions {positions})"
    return name if other.pooling == activation.pooling else f"{name} (pooling {other.pooling})"


def _pairs_of(model: type[Pair], activation: ActivationSet) -> QuerySet[Pair]:
    return (
        model.objects.filter(Q(activation_a=activation) | Q(activation_b=activation))
        .exclude(activation_a=activation, activation_b=activation)
        .select_related("activation_a__checkpoint", "activation_b__checkpoint", "run")
        .order_by("pk")
    )


def _agreement_scores(activation: ActivationSet) -> list[Score]:
    """One score per other space that stored per-sample kNN agreement with ``activation``
    (every measure of a pair stores the same agreement)."""
    seen: set[int | None] = set()
    scores: list[Score] = []
    for score in _pairs_of(Score, activation).filter(sample_agreement__isnull=False):
        if score.sample_agreement_id not in seen:
            seen.add(score.sample_agreement_id)
            scores.append(score)
    return scores


def colourings(run: Run) -> list[Colouring]:
    """Every colouring a projection offers: label, metadata columns, how well the projection
    keeps each sample's neighbourhood, kNN agreement with each space this layer was compared
    with, the residual of each alignment fitted from or to it, and its per-sample invariance
    under each probed transformation and magnitude."""
    projection = run.projection
    activation = projection.activation
    dataset = run.dataset
    found = []
    if dataset.column("y") is not None:
        found.append(Colouring("label", "label", "categorical", label_names(dataset)))
    for name in dataset.metadata_columns:
        column = dataset.column(f"meta:{name}")
        assert column is not None  # metadata_columns names the dataset's meta: columns
        described = _metadata_colouring(name, column)
        if described:
            found.append(described[0])
    kept = f"share of its {projection.knn_k} nearest neighbours the projection keeps"
    found.append(Colouring("kept", kept, "continuous", bounds=SHARE))
    for score in _agreement_scores(activation):
        title = f"kNN agreement with {_other_space(activation, score)}"
        key = f"agreement:{score.pk}"
        found.append(Colouring(key, title, "continuous", group="agreement", bounds=SHARE))
    for alignment in _pairs_of(Alignment, activation):
        direction = "to" if alignment.activation_a_id == activation.pk else "from"
        title = f"{alignment.method} residual {direction} {_other_space(activation, alignment)}"
        group = f"residual:{alignment.method}"
        found.append(Colouring(f"residual:{alignment.pk}", title, "continuous", group=group))
    for result in _probes_of(activation):
        r = result.result
        for position, t in enumerate(r["magnitudes"]):
            if t != 0:
                title = f"invariance under {result.family} {t:g}"
                key, group = f"probe:{result.pk}:{position}", f"probe:{result.family}"
                found.append(Colouring(key, title, "continuous", group=group))
    return found


def _probes_of(activation: ActivationSet) -> list[ProbeResult]:
    """Finished probe results that scored ``activation``'s layer (same checkpoint, dataset
    and pooling)."""
    results = ProbeResult.objects.filter(
        run__checkpoint=activation.checkpoint_id,
        run__dataset=activation.dataset_id,
        run__state=Run.State.SUCCEEDED,
        run__params__pooling=activation.pooling,
    ).order_by("pk")
    return [r for r in results if activation.layer in r.result["layers"]]


def colouring_values(run: Run, key: str) -> tuple[Colouring, np.ndarray]:
    """The colouring ``key`` of :func:`colourings` and its per-sample values (uint16 codes or
    float32), dataset order. Raises LookupError for a key this projection does not offer."""
    offered = {c.key: c for c in colourings(run)}
    if key not in offered:
        raise LookupError(f"this projection has no colouring {key!r}")
    colouring, projection = offered[key], run.projection
    kind, _, ref = key.partition(":")
    if kind == "label":
        return colouring, label_codes(run.dataset)
    if kind == "meta":
        column = run.dataset.column(key)
        assert column is not None  # offered, so colourings() read it
        described = _metadata_colouring(ref, column)
        assert described is not None  # offered, so colourings() could colour by it
        return colouring, described[1]
    if kind == "kept":
        return colouring, projection.kept.load_array().astype(np.float32)
    if kind == "probe":
        result, position = ref.split(":")
        probe = ProbeResult.objects.get(pk=int(result))
        layer = probe.result["layers"].index(projection.activation.layer)
        with probe.per_sample.memory_map() as per_sample:
            return colouring, np.array(per_sample[layer, int(position)], dtype=np.float32)
    if kind == "agreement":
        blob = Score.objects.get(pk=int(ref)).sample_agreement
        assert blob is not None  # offered, so the score stored agreement (_agreement_scores)
    else:
        blob = Alignment.objects.get(pk=int(ref)).residuals
    return colouring, blob.load_array().astype(np.float32)


MAX_QUERY = 200


def _containing(values: np.ndarray, query: str) -> np.ndarray:
    """Whether each value, as text and in lower case, contains ``query`` (lower case)."""
    return np.char.find(np.char.lower(np.asarray(values).astype(str)), query) >= 0


def search(dataset: Dataset, query: str) -> np.ndarray:
    """Ascending indices of the samples whose id, label name, text (text datasets) or value in
    any metadata column contains ``query``, case-insensitively."""
    query = query.strip().lower()
    if not query or len(query) > MAX_QUERY:
        raise InputError(f"search: 1 to {MAX_QUERY} characters are required")
    ids = dataset.column("ids")
    assert ids is not None  # every canonical dataset has ids (DatasetArrays.save)
    hit = _containing(ids, query)
    names = label_names(dataset)
    if names:
        named = np.flatnonzero(_containing(np.array(names), query))
        hit |= np.isin(label_codes(dataset), named)
    columns = [f"meta:{name}" for name in dataset.metadata_columns]
    if dataset.modality == "text":
        columns.append("x")
    for key in columns:
        column = dataset.column(key)
        if column is not None and column.ndim == 1:
            hit |= _containing(column, query)
    return np.flatnonzero(hit)


def encode(values: np.ndarray, as_type: str | None = None) -> bytes:
    """Little-endian bytes of a colouring, index or coordinate array, as the binary endpoints
    serve them; ``as_type`` (a numpy type name such as ``"float32"``) converts it first."""
    values = np.asarray(values, dtype=as_type)
    dtype = {"u": "<u", "i": "<i", "f": "<f"}[values.dtype.kind] + str(values.dtype.itemsize)
    return np.ascontiguousarray(values, dtype=dtype).tobytes()


# Selections ---------------------------------------------------------------------------------


def parse_polygon(polygon: object) -> list[list[float]]:
    """A polygon from a request: a list of at least three [x, y] pairs of finite numbers."""
    if not isinstance(polygon, list) or not 3 <= len(polygon) <= MAX_POLYGON_VERTICES:
        raise InputError(
            f"polygon: a list of 3 to {MAX_POLYGON_VERTICES} [x, y] vertices is required"
        )
    try:
        vertices = np.asarray(polygon, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError("polygon: every vertex must be a pair of numbers [x, y]") from None
    if vertices.shape != (len(polygon), 2) or not np.isfinite(vertices).all():
        raise InputError("polygon: every vertex must be a pair of finite numbers [x, y]")
    return vertices.tolist()


def parse_shown(text: str, n: int) -> np.ndarray:
    """Which of ``n`` points a page's filter shows, from base64 bits (point i at bit i % 8,
    least significant first, of byte i // 8): a boolean array of length n."""
    try:
        bits = np.frombuffer(base64.b64decode(text, validate=True), dtype=np.uint8)
    except (binascii.Error, ValueError):
        raise InputError("shown: base64 bits, one per sample, are required") from None
    if len(bits) != (n + 7) // 8:
        raise InputError(f"shown: {(n + 7) // 8} bytes of bits (one per sample) are required")
    return np.unpackbits(bits, count=n, bitorder="little").astype(bool)


def select_in_polygon(
    user: AnyUser,
    run: Run,
    polygon: object,
    name: str = "",
    tags: Iterable[str] = (),
    aligned_to: Run | None = None,
    shown: str | None = None,
) -> Selection:
    """The samples whose stored coordinates in projection ``run`` (moved onto projection
    ``aligned_to``'s, when given, as the side-by-side view shows them) fall inside
    ``polygon``, kept as a selection; only those the page's filter shows when ``shown`` is
    given (as :func:`parse_shown` reads it)."""
    polygon = parse_polygon(polygon)
    visible = None if shown is None else parse_shown(shown, run.dataset.n_samples)
    if aligned_to is None:
        coordinates = run.projection.coordinates.load_array()
    else:
        coordinates = aligned_coordinates(run, aligned_to)[0]
    indices = points_in_polygon(coordinates, polygon)
    if visible is not None:
        indices = indices[visible[indices]]
    return _store_selection(user, run.dataset, indices, run, polygon, name, tags)


def select_indices(
    user: AnyUser, dataset: Dataset, indices: object, name: str = "", tags: Iterable[str] = ()
) -> Selection:
    """A selection of the given sample indices of ``dataset``."""
    try:
        indices = np.asarray(indices, dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        indices = None
    if indices is None or indices.ndim != 1:
        raise InputError("indices: a list of sample indices (integers) is required")
    indices = np.unique(indices)
    if len(indices) and not 0 <= indices[0] <= indices[-1] < dataset.n_samples:
        raise InputError(f"indices must lie between 0 and {dataset.n_samples - 1}")
    return _store_selection(user, dataset, indices, None, None, name, tags)


def clean_tags(tags: object) -> list[str]:
    """Tags from a list or a comma-separated string: trimmed, distinct, in order."""
    if isinstance(tags, str):
        tags = tags.split(",")
    if not isinstance(tags, list | tuple) or not all(isinstance(t, str) for t in tags):
        raise InputError("tags: a list of strings (or one comma-separated string) is required")
    cleaned = [t.strip()[:50] for t in tags if t.strip()]
    return list(dict.fromkeys(cleaned))[:20]


def _store_selection(
    user: AnyUser,
    dataset: Dataset,
    indices: np.ndarray,
    run: Run | None,
    polygon: list[list[float]] | None,
    name: str,
    tags: Iterable[str],
) -> Selection:
    assert user.is_authenticated  # selections are made behind login_required or IsAuthenticated
    return Selection.objects.create(
        workspace=dataset.workspace,
        dataset=dataset,
        projection=run,
        polygon=polygon,
        name=name.strip()[:200],
        tags=clean_tags(list(tags)),
        indices=Blob.store_array(np.asarray(indices, dtype=np.uint32)),
        count=len(indices),
        created_by=user,
    )


def selection_summary(selection: Selection, limit: int = 24) -> dict:
    """Count, samples per label, and the first ``limit`` samples of a selection."""
    indices = selection.indices.load_array()
    dataset = selection.dataset
    per_label = []
    if dataset.column("y") is not None:
        codes = label_codes(dataset)[indices]
        names = label_names(dataset)
        counts = np.bincount(codes, minlength=len(names))
        per_label = [
            {"label": names[k], "count": int(c)} for k, c in enumerate(counts[: len(names)]) if c
        ]
    return {
        "indices": indices,
        "per_label": per_label,
        "samples": dataset.samples(indices[:limit]),
    }


# Two projections of the same samples --------------------------------------------------------


def check_pair(run_a: Run, run_b: Run) -> None:
    if run_a.dataset_id != run_b.dataset_id:
        raise InputError("the two projections must be of the same dataset")
    if run_a.state != Run.State.SUCCEEDED or run_b.state != Run.State.SUCCEEDED:
        raise InputError("both projections must have finished")


def same_space(run_a: Run, run_b: Run) -> bool:
    """Whether two projections picture the same activations (one layer, two layouts): then
    every sample's neighbourhood in the original space is the same on both sides, and their
    agreement is 1 for every sample: only the pictures can differ (:func:`picture_agreement`).
    One stored token set read two ways (``positions``: each sample's mean, its first
    position…) is two spaces."""
    return run_a.projection.activation_id == run_b.projection.activation_id and (
        run_a.params.get("positions") == run_b.params.get("positions")
    )


def max_k(run_a: Run, run_b: Run) -> int:
    """The largest k at which the two spaces' stored neighbour lists can be compared."""
    widths = []
    for run in (run_a, run_b):
        with run.projection.neighbours.memory_map() as neighbours:
            widths.append(neighbours.shape[1])
    return min(widths)


def pair_agreement(run_a: Run, run_b: Run, k: int) -> np.ndarray:
    """Per-sample Jaccard agreement of the k nearest neighbours in the two original spaces."""
    with (
        run_a.projection.neighbours.memory_map() as a,
        run_b.projection.neighbours.memory_map() as b,
    ):
        return neighbourhood_agreement(a, b, k)


def picture_agreement(run_a: Run, run_b: Run, k: int) -> np.ndarray:
    """Per-sample Jaccard agreement of the k nearest neighbours in the two pictures (2-D,
    Euclidean): where two layouts of the same samples agree, whatever space they picture."""
    pictures = (
        run_a.projection.coordinates.load_array(),
        run_b.projection.coordinates.load_array(),
    )
    a, b = (
        knn_indices(np.asarray(xy, dtype=np.float64), k, "euclidean", name=f"picture {side}")
        for xy, side in zip(pictures, "AB", strict=True)
    )
    return neighbourhood_agreement(a, b, k)


def pair_displacement(run_a: Run, run_b: Run, k: int) -> np.ndarray:
    """Neighbour-aware displacement of each sample from projection A to projection B."""
    a = run_a.projection.coordinates.load_array()
    b = run_b.projection.coordinates.load_array()
    with run_a.projection.neighbours.memory_map() as neighbours:
        return displacement(a, b, np.asarray(neighbours[:, :k]), k)


def aligned_coordinates(run: Run, reference: Run) -> tuple[np.ndarray, dict]:
    """Projection ``run``'s coordinates moved onto ``reference``'s by the similarity transform
    (rotation or reflection, scale, shift) that fits best: Procrustes-aligned projections."""
    return similarity_align(
        run.projection.coordinates.load_array(), reference.projection.coordinates.load_array()
    )


def changed_most(run_a: Run, run_b: Run, k: int, count: int = 24) -> list[dict]:
    """The samples whose neighbourhoods differ most between the two spaces, with agreement."""
    agreement = pair_agreement(run_a, run_b, k)
    indices = most_changed(agreement, count)
    samples = run_a.dataset.samples(indices)
    for sample in samples:
        sample["value"] = float(agreement[sample["index"]])
    return samples


def aligned_members(run: Run) -> list[Run]:
    """The projections an aligned-projections run made, one per space, in order."""
    members = Run.objects.filter(kind=Run.Kind.PROJECT, params__aligned=run.pk)
    return sorted(members.select_related("checkpoint"), key=lambda m: m.params["position"])


def axis_titles(run: Run) -> dict[str, str] | None:
    """What the axes of finished projection ``run`` are, when they mean something: the first
    two principal components of a PCA, with the share of the variance each explains (None for
    t-SNE and UMAP, whose axes mean nothing)."""
    if run.state != Run.State.SUCCEEDED or not run.projection.explained_variance:
        return None
    x, y = run.projection.explained_variance[:2]
    return {
        "x": f"PC 1 · {100 * x:.1f}% of the variance",
        "y": f"PC 2 · {100 * y:.1f}% of the variance",
    }


def mean_kept(run: Run) -> float | None:
    """The share of each sample's nearest neighbours finished projection ``run`` keeps, on
    average (None until it has finished)."""
    if run.state != Run.State.SUCCEEDED:
        return None
    with run.projection.kept.memory_map() as kept:
        return float(np.mean(kept))


SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _rank_step(n: int, most: int = 6) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, … that puts at most ``most`` ticks on ranks 1 … n."""
    step = 1
    while n // step >= most:
        step = step * 5 // 2 if str(step)[0] == "2" else step * 2
    return step


def spectrum_figure(values: np.ndarray, width: int = 340, height: int = 150) -> dict | None:
    """An SVG plot with axes of a covariance spectrum (eigenvalues, largest first): the
    polyline's points, ticks on component ranks (x) and on powers of ten of the eigenvalue (y,
    log scale), in px of a ``width`` × ``height`` box; None with fewer than two positive
    eigenvalues."""
    values = np.asarray(values, dtype=np.float64)
    ranks = np.flatnonzero(values > 0) + 1
    if len(ranks) < 2:
        return None
    logs = np.log10(values[ranks - 1])
    left, right, top, bottom = 46, 10, 8, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    low, high = int(np.floor(logs.min())), int(np.ceil(logs.max()))
    if low == high:
        low, high = low - 1, high + 1
    n = int(ranks[-1])

    def x(rank: float) -> float:
        return left + (rank - 1) / max(n - 1, 1) * plot_w

    def y(log: float) -> float:
        return top + (high - log) / (high - low) * plot_h

    decade = max(1, -(-(high - low) // 5))  # at most about 6 labelled powers of ten
    step = _rank_step(n)
    rank_ticks = [1, *range(step, n + 1, step)] if step > 1 else list(range(1, n + 1))
    return {
        "width": width,
        "height": height,
        "points": " ".join(
            f"{x(r):.1f},{y(v):.1f}" for r, v in zip(ranks.tolist(), logs.tolist(), strict=True)
        ),
        "x_ticks": [{"at": round(x(r), 1), "label": str(r)} for r in dict.fromkeys(rank_ticks)],
        "y_ticks": [
            {"at": round(y(k), 1), "label": "10" + str(k).translate(SUPERSCRIPT)}
            for k in range(low, high + 1, decade)
        ],
        "left": left,
        "right": width - right,
        "top": top,
        "bottom": height - bottom,
        "middle_x": left + plot_w / 2,
        "middle_y": top + plot_h / 2,
    }


def spectrum_plot(run: Run) -> dict | None:
    """:func:`spectrum_figure` of the layer's covariance spectrum (None until the projection
    has finished)."""
    if run.state != Run.State.SUCCEEDED:
        return None
    return spectrum_figure(np.array(run.projection.geometry.get("spectrum", [])))
