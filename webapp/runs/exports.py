"""Files that leave the site: every table is a header and rows, written by :func:`csv_text` —
one writer, which neutralises cells a spreadsheet would run as a formula — and every download
(a run's table, a selection's samples as CSV or Parquet) is a :class:`File`."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.http import HttpResponse

from analysis.errors import InputError
from analysis.measures.registry import MEASURES
from webapp.runs.explorer import label_codes, label_names
from webapp.runs.models import Run, Selection
from webapp.runs.results import compatibility_matrix

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""What makes a spreadsheet read a text cell as a formula (OWASP's list)."""

Table = tuple[list[str], Iterable[Sequence[Any]]]


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """The table as CSV. A text cell a spreadsheet would evaluate (``=HYPERLINK(…)`` in a
    label, say) is written with a leading apostrophe, so it shows as the text it is; numbers
    are written as they are."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([_inert(cell) for cell in header])
    for row in rows:
        writer.writerow([_inert(cell) for cell in row])
    return out.getvalue()


def _inert(cell: Any) -> Any:
    if isinstance(cell, str) and cell.startswith(FORMULA_STARTS):
        return "'" + cell
    return cell


@dataclass(frozen=True)
class File:
    """A download: its content, media type and file name."""

    body: bytes | str
    content_type: str
    name: str

    def response(self) -> HttpResponse:
        response = HttpResponse(self.body, content_type=self.content_type)
        response["Content-Disposition"] = f'attachment; filename="{self.name}"'
        return response


def run_table(run: Run, table: Callable[[Run], Table], name: str) -> File:
    """The table a function of this module makes of ``run``, as a CSV file (InputError while
    the run has no results)."""
    return File(csv_text(*table(run)), "text/csv", name)


SCORE_COLUMNS = [
    "measure",
    "layer_a",
    "layer_b",
    "value",
    "ci_low",
    "ci_high",
    "baseline",
    "baseline_std",
    "n",
    "d_a",
    "d_b",
    "estimator",
    "code_version",
]
COMPARISON_CONTEXT = [
    "checkpoint_a",
    "checkpoint_b",
    "dataset",
    "pooling",
    "positions",
    "n_permutations",
    "baseline_method",
    "n_bootstrap",
    "seed",
]


def comparison_table(run: Run) -> Table:
    """Every score of a comparison with its provenance, one row per layer pair (how its
    token-level sets were read and the bootstrap resamples drawn are the pair's own: a pair
    compared per position draws none)."""
    p = run.params
    assert run.checkpoint_b is not None  # a comparison has two checkpoints
    names = [run.checkpoint.name, run.checkpoint_b.name, run.dataset.name, p["pooling"]]
    baseline = [p["n_permutations"], MEASURES[p["measure"]].baseline_note(p["n_permutations"])]
    rows = (
        [getattr(score, column) for column in SCORE_COLUMNS]
        + names
        + [score.parameters.get("positions", "")]
        + baseline
        + [score.parameters.get("n_bootstrap", p.get("n_bootstrap", 0)), p["seed"]]
        for score in run.scores.order_by("id")
    )
    return SCORE_COLUMNS + COMPARISON_CONTEXT, rows


COMPATIBILITY_CONTEXT = [
    "layer",
    "pooling",
    "metric",
    "criterion",
    "query_fraction",
    "seed",
    "code_version",
]


def compatibility_table(run: Run) -> Table:
    """Every (query model, gallery model) cell with the three retrieval scores and the 95 %
    bootstrap interval of the run's criterion, the criteria of (new, old) pairs with their
    intervals and verdict, the chance levels and the run's provenance."""
    matrix = compatibility_matrix(run)
    if matrix["result"] is None:
        raise InputError("this compatibility run has no results yet")
    result, provenance = matrix["result"], matrix["provenance"]
    header = ["query_model", "gallery_model", "top1", "top5", "mean_ap"]
    header += ["criterion_ci_low", "criterion_ci_high"]
    header += ["ecc", "difference", "difference_ci_low", "difference_ci_high", "verdict"]
    header += ["update_gain", "update_gain_ci_low", "update_gain_ci_high", "negative_flips"]
    header += ["chance_top1", "chance_top5", "chance_mean_ap", "n_bootstrap"]
    header += ["n_queries", "n_gallery", "dataset", *COMPATIBILITY_CONTEXT]
    names = result["names"]
    # results stored before the bootstrap have no intervals, verdicts or chance levels
    chance = result.get("chance", {})
    low, high = result.get("ci_low"), result.get("ci_high")

    def pair(field: str, key: str) -> list:
        """A pair's value of ``field`` and the two ends of its interval (blank where none)."""
        interval = result.get(f"{field}_ci", {}).get(key) or ["", ""]
        value = result.get(field, {}).get(key)
        return ["" if value is None else value, *interval]

    def row(i: int, j: int) -> list:
        key = f"{i},{j}"
        cell = [low[i][j], high[i][j]] if low and high else [None, None]
        return (
            [names[i], names[j]]
            + [result[m][i][j] for m in ("top1", "top5", "mean_ap")]
            + ["" if end is None else end for end in cell]
            + [result["ecc"].get(key, "")]
            + pair("difference", key)
            + [result.get("verdict", {}).get(key, "")]
            + pair("update_gain", key)
            + [len(result["flips"][key]) if key in result["flips"] else ""]
            + [chance.get(m, "") for m in ("top1", "top5", "mean_ap")]
            + [result.get("n_bootstrap", "")]
            + [result["n_queries"], result["n_gallery"], run.dataset.name]
            + [provenance[k] for k in COMPATIBILITY_CONTEXT]
        )

    return header, (row(i, j) for i in range(len(names)) for j in range(len(names)))


def alignment_table(run: Run) -> Table:
    """Per-sample residuals of an alignment, with sample ids, labels and the split."""
    if run.state != Run.State.SUCCEEDED:
        raise InputError("this alignment has no results yet")
    alignment = run.alignment
    residuals = alignment.residuals.load_array()
    held_out = alignment.test_mask.load_array()
    header = ["index", "id", "label", "held_out", "residual", "method", "layer_a", "layer_b"]
    fixed = [alignment.method, alignment.activation_a.layer, alignment.activation_b.layer]
    rows = (
        [s["index"], s["id"], s["label"], bool(held_out[s["index"]]), float(residuals[s["index"]])]
        + fixed
        for s in run.dataset.samples(range(len(residuals)))
    )
    return header, rows


# A selection's samples ----------------------------------------------------------------------

SELECTION_TYPES = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}


def selection_file(selection: Selection, run: Run | None, extension: str) -> File:
    """The selected samples as ``extension`` (a key of :data:`SELECTION_TYPES`): the columns of
    :func:`selection_columns`."""
    columns = selection_columns(selection, run)
    body = _columns_csv(columns) if extension == "csv" else _columns_parquet(columns)
    return File(body, SELECTION_TYPES[extension], _selection_name(selection, extension))


def selection_columns(selection: Selection, run: Run | None) -> dict[str, np.ndarray]:
    """The columns of a selection's export: index, id, label, every metadata column, and x, y in
    projection ``run`` (the one it was drawn on, unless another is given)."""
    indices = selection.indices.load_array().astype(np.int64)
    dataset = selection.dataset
    ids = dataset.column("ids")
    assert ids is not None  # every canonical dataset has ids (DatasetArrays.save)
    columns = {"index": indices, "id": ids[indices].astype(str)}
    if dataset.column("y") is not None:
        names = label_names(dataset)
        columns["label"] = np.array([names[k] for k in label_codes(dataset)[indices]], dtype=str)
    for name in dataset.metadata_columns:
        values = dataset.column(f"meta:{name}")
        if values is not None and values.ndim == 1:
            columns[name if name not in columns else f"meta:{name}"] = values[indices]
    run = run or selection.projection
    if run is not None and run.state == Run.State.SUCCEEDED:
        coordinates = run.projection.coordinates.load_array()[indices]
        columns["x"], columns["y"] = coordinates[:, 0], coordinates[:, 1]
    return columns


def _columns_csv(columns: dict[str, np.ndarray]) -> str:
    rows = zip(*(c.tolist() for c in columns.values()), strict=True)
    return csv_text(list(columns), rows)


def _columns_parquet(columns: dict[str, np.ndarray]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = io.BytesIO()
    pq.write_table(pa.table({name: pa.array(values) for name, values in columns.items()}), out)
    return out.getvalue()


def _selection_name(selection: Selection, extension: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", selection.name or f"selection-{selection.pk}")
    return f"{stem.strip('-') or 'selection'}.{extension}"
