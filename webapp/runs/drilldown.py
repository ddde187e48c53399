"""The samples behind a number: what a drill-down page shows of a stored result (a score's
per-sample agreement, a fitted map's worst samples, the queries an update breaks, the samples a
transform moves most, a point's neighbours in the original space).

Everything here reads stored blobs and a few rows of the dataset (``Dataset.samples``), cheap
enough for a request; the pages only authorize, call one of these and render.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from analysis.measures.alignment import METHODS as ALIGNMENT_METHODS
from analysis.measures.knn import knn_jaccard_chance
from analysis.probes.statistics import most_moved
from webapp.catalog.models import Dataset
from webapp.runs.models import ProbeResult, Run, Score

EXTREME_SAMPLES = 12  # samples shown at each end of a per-sample distribution
FLIPS_SHOWN = 24  # broken queries shown per pair of checkpoints
MOVED_SHOWN = 12  # samples a transform moves most, shown per layer and magnitude


def annotated(
    dataset: Dataset, values: np.ndarray, indices: Sequence[int] | np.ndarray
) -> list[dict]:
    """Samples at ``indices`` (``Dataset.samples``) with ``values[index]`` as their ``value``
    (for the sample grid)."""
    samples = dataset.samples(indices)
    for sample in samples:
        sample["value"] = float(values[sample["index"]])
    return samples


def agreement(score: Score, dataset: Dataset) -> dict:
    """The per-sample kNN agreement behind a score: its mean and its chance level (independent
    neighbourhoods of its n samples, :func:`knn_jaccard_chance`); its histogram, one bar per value
    it can take (the Jaccard index of two sets of k neighbours sharing j is j / (2k − j), for
    j = 0 … k), with the count and the height in per cent of the tallest bar; and the samples
    that agree least and most."""
    if score.sample_agreement is None:
        return {}
    values = score.sample_agreement.load_array()
    k = int(score.parameters.get("knn_k", 10))  # 10: the default before it was a parameter
    shared = np.rint(2 * k * values / (1 + values)).astype(np.int64)
    counts = np.bincount(np.clip(shared, 0, k), minlength=k + 1)
    tallest = max(1, int(counts.max()))
    order = np.argsort(values, kind="stable")
    return {
        "mean_agreement": float(values.mean()),
        "chance_agreement": knn_jaccard_chance(k, values.size),
        "histogram": [
            {
                "shared": j,
                "jaccard": j / (2 * k - j),
                "count": int(c),
                "height": 100 * int(c) / tallest,
            }
            for j, c in enumerate(counts)
        ],
        "tallest": tallest,
        "least": annotated(dataset, values, order[:EXTREME_SAMPLES]),
        "most": annotated(dataset, values, order[::-1][:EXTREME_SAMPLES]),
    }


def alignments_of_pair(run: Run, layer_a: str, layer_b: str) -> list[dict]:
    """Every alignment method, with its run for this layer pair of comparison ``run`` (same
    checkpoints, dataset and pooling) if there is one; a finished one with the median residual
    and the worst-aligned samples of its held-out part."""
    runs = Run.objects.filter(
        kind=Run.Kind.ALIGN,
        checkpoint=run.checkpoint,
        checkpoint_b=run.checkpoint_b,
        dataset=run.dataset,
    ).select_related("alignment")
    by_method: dict[str, Run] = {}
    for align in runs:
        p = align.params
        if (p["layer_a"], p["layer_b"], p["pooling"]) == (layer_a, layer_b, run.params["pooling"]):
            by_method.setdefault(p["method"], align)
    items = []
    for method, name in ALIGNMENT_METHODS.items():
        found = by_method.get(method)
        item: dict = {"method": method, "name": name, "run": found, "alignment": None}
        if found is not None and found.state == Run.State.SUCCEEDED:
            alignment = found.alignment
            residuals = alignment.residuals.load_array()
            held_out = np.flatnonzero(alignment.test_mask.load_array())
            worst = held_out[np.argsort(residuals[held_out], kind="stable")[::-1]]
            item.update(
                alignment=alignment,
                median_residual=float(np.median(residuals[held_out])),
                worst=annotated(run.dataset, residuals, worst[:EXTREME_SAMPLES]),
            )
        items.append(item)
    return items


def compatibility_pairs(run: Run, matrix: dict) -> list[dict]:
    """Each (new, old) pair of a finished compatibility run (``matrix`` from
    :func:`webapp.runs.results.compatibility_matrix`): the criterion across and within the two
    checkpoints, the empirical compatibility criterion, the update gain, and the queries the
    update breaks (negative flips)."""
    result = matrix["result"]
    if not result:
        return []
    full, names = result[run.params["criterion"]], result["names"]
    queries = np.array(matrix["query_indices"])
    # results stored before the bootstrap have no intervals and no verdict
    low, high = result.get("ci_low"), result.get("ci_high")

    def interval(i: int, j: int) -> list | None:
        return [low[i][j], high[i][j]] if low and high and low[i][j] is not None else None

    pairs = []
    for key, ecc in result["ecc"].items():
        i, j = map(int, key.split(","))
        flips = result["flips"].get(key, [])
        pairs.append(
            {
                "new": names[i],
                "old": names[j],
                "cross": full[i][j],
                "cross_ci": interval(i, j),
                "old_old": full[j][j],
                "old_old_ci": interval(j, j),
                "new_new": full[i][i],
                "new_new_ci": interval(i, i),
                "ecc": ecc,
                "difference": result.get("difference", {}).get(key),
                "difference_ci": result.get("difference_ci", {}).get(key),
                "verdict": result.get("verdict", {}).get(key),
                "gain": result["update_gain"][key],
                "gain_ci": result.get("update_gain_ci", {}).get(key),
                "n_flips": len(flips),
                "flips": run.dataset.samples(queries[flips[:FLIPS_SHOWN]]),
            }
        )
    return pairs


def moved(run: Run, row: ProbeResult, layer: int, t: int) -> list[dict]:
    """The samples probe family ``row`` moves most at layer ``layer`` and magnitude ``t``
    (indices into the result's lists), each with its per-sample invariance as ``value``."""
    with row.per_sample.memory_map() as per_sample:
        values = np.array(per_sample[layer, t])
    samples = annotated(run.dataset, values, most_moved(values, MOVED_SHOWN))
    if run.dataset.modality == "text" and row.previews is not None:
        shown = row.previews.load_arrays()
        at_t = shown["magnitude"] == t
        texts = dict(zip(shown["index"][at_t].tolist(), shown["text"][at_t].tolist(), strict=True))
        for sample in samples:
            sample["transformed"] = texts.get(sample["index"])
    return samples


def transformed_image(row: ProbeResult, t: int, index: int) -> np.ndarray | None:
    """The uint8 preview of image sample ``index`` as probe family ``row`` showed it to the
    model at magnitude ``t`` (an index into its magnitudes), where the run kept one: it keeps
    the samples :func:`moved` shows (:mod:`analysis.probes.previews`)."""
    if row.previews is None:
        return None
    shown = row.previews.load_arrays()
    hit = np.flatnonzero((shown["magnitude"] == t) & (shown["index"] == index))
    return shown["image"][hit[0]] if len(hit) and "image" in shown else None


def neighbours(run: Run, index: int) -> dict:
    """Sample ``index`` of finished projection ``run``, its k nearest neighbours in the
    original space (each with its distance as ``value``), and how many of them the projection
    keeps among its own k nearest."""
    projection = run.projection
    k = projection.knn_k
    with (
        projection.neighbours.memory_map() as ids,
        projection.neighbour_distances.memory_map() as distances,
        projection.kept.memory_map() as kept,
    ):
        near, far, share = ids[index, :k].tolist(), distances[index, :k], float(kept[index])
    samples = run.dataset.samples([index, *near])
    for sample, distance in zip(samples[1:], far, strict=True):
        sample["value"] = float(distance)
    return {"sample": samples[0], "neighbours": samples[1:], "kept": round(share * k)}
