"""Which checkpoints can read which datasets. A model reads texts, images or both (Hugging Face
directories: their layer tree says, :mod:`analysis.models.hf_kinds`) or arrays (every other
format), and precomputed activations belong to one dataset: that much is known from the rows.
Whether a model reads a dataset's arrays (their shape, their number of channels) is known only
by running it: when the later upload of a pair has been checked, the worker runs the first
sample of each dataset through each model in a model host and keeps the answer (:class:`Fit`).
A request for a run of a pair that cannot work is refused with the reason (:func:`refusal`,
called by ``webapp.runs.submit``) instead of failing in the queue, and a checkpoint's page
acts on a dataset its model reads unless asked for another (:func:`default_dataset`)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from analysis.data.datasets import npz_rows
from analysis.host import run_in_host
from analysis.models.hf_kinds import described_reads, reads_dataset
from webapp.catalog.ingest import checkpoint_model_params, host_limits
from webapp.catalog.models import Checkpoint, Dataset, Fit

logger = logging.getLogger(__name__)

TOKEN_COUNT_LIMIT = 200_000
"""Up to this many texts, the fit check counts the tokens of every text of a dataset (a few
seconds with a fast tokenizer), so a token-level extraction's size is exact before it runs;
above, it is an upper bound."""
BUDGET_S = 120.0
"""How long one upload's check spends on fits: past it, the remaining models are left unknown
(their runs are accepted, and fail in the queue if they must), so that a workspace of many
models cannot hold an upload's check past the task's time limit."""


def _declared(checkpoint: Checkpoint, dataset: Dataset) -> str:
    """Why the rows alone say ``checkpoint`` cannot give activations of ``dataset``; ""."""
    if checkpoint.format == Checkpoint.Format.PRECOMPUTED:
        if checkpoint.dataset_id != dataset.pk:
            return (
                f"{checkpoint.name} holds precomputed activations of the samples of "
                f"{checkpoint.dataset}, not of {dataset.name}"
            )
        return ""
    if reads_dataset(checkpoint.format, checkpoint.layer_tree, dataset.modality):
        return ""
    reads = described_reads(checkpoint.format, checkpoint.layer_tree)
    if dataset.modality == "text":
        return f"{checkpoint.name} reads {reads}; {dataset.name} holds text"
    return f"{checkpoint.name} reads {reads}; {dataset.name} is {dataset.modality}"


def refusal(checkpoint: Checkpoint, dataset: Dataset) -> str:
    """Why a run of ``checkpoint`` on ``dataset`` cannot work, in one sentence; "" where it
    can or is not known yet (the check of the pair has not run)."""
    declared = _declared(checkpoint, dataset)
    if declared:
        return declared
    fit = Fit.objects.filter(checkpoint=checkpoint, dataset=dataset).first()
    if fit is not None and fit.reason:
        return f"{checkpoint.name} fails on the first sample of {dataset.name}: {fit.reason}"
    return ""


def default_dataset(checkpoint: Checkpoint, datasets: list[Dataset]) -> tuple[Dataset | None, str]:
    """The dataset of ``datasets`` (newest first) to act on with ``checkpoint`` when none was
    asked for: the newest its model is known to read (the check of the pair found no fault),
    else the newest not known to fail (the rows allow it and no check refused it), else the
    newest; and why, in a sentence, where that is not plainly the newest, known to fit
    ("" where it is)."""
    if not datasets:
        return None, ""
    faults = dict(
        Fit.objects.filter(checkpoint=checkpoint, dataset__in=datasets).values_list(
            "dataset_id", "reason"
        )
    )
    allowed = [d for d in datasets if not _declared(checkpoint, d) and not faults.get(d.pk)]
    known = [d for d in allowed if d.pk in faults]
    newest = datasets[0]
    unchecked = f"whether {checkpoint.name} reads {newest.name} is not checked yet"
    if not allowed:
        return newest, f"No dataset here fits {checkpoint.name}: {refusal(checkpoint, newest)}."
    chosen = (known or allowed)[0]
    if chosen == newest:
        return chosen, "" if known else f"{unchecked[0].upper()}{unchecked[1:]}."
    how = "is known to read" if known else "may read (none is checked yet)"
    why_not = refusal(checkpoint, newest) or unchecked
    return chosen, f"{chosen.name}: the newest dataset {checkpoint.name} {how}; {why_not}."


def check_fits(item: Checkpoint | Dataset) -> None:
    """Run the first sample of every dataset of the workspace through a new checkpoint's model
    (or a new dataset's first sample through every model), one model host per model, and keep
    the answers, for at most ``BUDGET_S``. A failure of the check itself is logged and leaves
    the pairs unknown."""
    started = time.monotonic()
    workspace = item.workspace
    checkpoints = [item] if isinstance(item, Checkpoint) else list(workspace.checkpoints.all())
    datasets = list(workspace.datasets.all()) if isinstance(item, Checkpoint) else [item]
    for checkpoint in checkpoints:
        if time.monotonic() - started > BUDGET_S:
            logger.warning("fits with %s and later models left unknown: out of time", checkpoint)
            break
        if checkpoint.format == Checkpoint.Format.PRECOMPUTED:
            continue
        readable = [d for d in datasets if not _declared(checkpoint, d)]
        if not readable:
            continue
        try:
            inputs: dict[str, Path | np.ndarray] = {}
            for dataset in readable:
                with dataset.arrays.open() as f:
                    first = npz_rows(f, "x", [0])
                if first is not None:  # every dataset has its samples in x
                    inputs[f"x:{dataset.pk}"] = first
                if dataset.modality == "text" and dataset.n_samples <= TOKEN_COUNT_LIMIT:
                    inputs[f"texts:{dataset.pk}"] = dataset.load_arrays().x  # tokens counted
            with checkpoint.blob.local_path() as path:
                inputs["model"] = path
                found, _ = run_in_host(
                    "analysis.host.tasks:fit",
                    checkpoint_model_params(checkpoint),
                    inputs,
                    host_limits(),
                )
        except Exception:
            logger.exception("could not check which datasets %s reads", checkpoint)
            continue
        for dataset in readable:
            if str(dataset.pk) not in found["fits"]:
                continue
            Fit.objects.update_or_create(
                checkpoint=checkpoint,
                dataset=dataset,
                defaults={
                    "reason": found["fits"][str(dataset.pk)],
                    "shapes": found["shapes"].get(str(dataset.pk), {}),
                },
            )


ROW_INDEX_BYTES = 17
"""Each stored row's sample and position (two int64) and whether it is special (a bool)."""
ESTIMATES = {
    "exact": "every sample has the same positions (an image grid, a conv map, one row per "
    "sample), known from the dataset's sample checked with the model; or a text dataset's "
    "tokens, counted with the model's tokenizer",
    "bound": "at most: each text read as the model's max_tokens (datasets of more than "
    f"{TOKEN_COUNT_LIMIT:,} texts are not counted); padding is never stored, so the run "
    "stores less",
    "unknown": "no sample of the dataset has run through the model at this layer yet",
}
"""How a token-level extraction's size is known before it runs (:func:`token_storage`)."""


def token_storage(checkpoint: Checkpoint, dataset: Dataset, layers: list[str]) -> dict:
    """What an extraction of ``layers`` at every position (pooling ``tokens``) would store,
    before it runs: per layer its rows, width and bytes (float32 values, each row's int64 sample and
    position and its bool special), and the total. ``estimate`` says how each is known:
    ``exact`` where every sample has the same positions (an image grid, a conv map, one row per
    sample: the checked sample's shape, :class:`Fit`) and for texts whose tokens the check
    counted (up to :data:`TOKEN_COUNT_LIMIT` texts), ``bound`` for the tokens of more texts
    (each is read as at most ``max_tokens``; padding is never stored, so the run stores less),
    ``unknown`` where no sample of the dataset has run through the model at that layer; the
    total is null when a layer's is unknown, and a bound when one layer's is."""
    fit = Fit.objects.filter(checkpoint=checkpoint, dataset=dataset).first()
    shapes = fit.shapes if fit is not None else {}
    max_tokens = shapes.get("max_tokens")
    n = dataset.n_samples
    rows = []
    for layer in layers:
        shape = shapes.get("layers", {}).get(layer)
        if shape is None:
            rows.append(_layer_storage(layer, None, None, "unknown"))
        elif dataset.modality == "text" and shape["positional"] and "tokens" in shapes:
            rows.append(_layer_storage(layer, shapes["tokens"], shape["d"], "exact"))
        elif dataset.modality == "text" and shape["positional"]:
            count = n * max_tokens if max_tokens else None
            rows.append(_layer_storage(layer, count, shape["d"], "bound" if count else "unknown"))
        else:
            rows.append(_layer_storage(layer, n * shape["positions"], shape["d"], "exact"))
    estimates = {r["estimate"] for r in rows}
    unknown = "unknown" in estimates
    return {
        "layers": rows,
        "bytes": None if unknown else sum(r["bytes"] for r in rows),
        "estimate": "unknown" if unknown else "bound" if "bound" in estimates else "exact",
        "samples": n,
        "max_tokens": max_tokens,
    }


def _layer_storage(layer: str, rows: int | None, d: int | None, estimate: str) -> dict:
    size = None if rows is None or d is None else rows * (4 * d + ROW_INDEX_BYTES)
    return {"layer": layer, "rows": rows, "d": d, "bytes": size, "estimate": estimate}
