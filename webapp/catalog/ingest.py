"""Turning an uploaded file into a usable dataset or checkpoint.

The same functions serve the check of an upload on a worker (:mod:`webapp.catalog.uploads`;
the web process never parses a file) and the demo builder. A file is fully parsed and
validated before anything is stored, a model only in a model host; the rows are written in one
transaction, so a bad file leaves nothing behind but an :class:`InputError` with a message for
the user.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING

from django.conf import settings
from django.db import transaction

from analysis.data.archives import archive_suffix
from analysis.data.datasets import DatasetArrays, read_dataset, thumbnails
from analysis.errors import InputError
from analysis.host import Limits, run_in_host
from analysis.models.precomputed import SUFFIXES as PRECOMPUTED_SUFFIXES
from analysis.models.precomputed import read_precomputed
from webapp.catalog.models import Blob, Checkpoint, Dataset, Workspace

if TYPE_CHECKING:
    from django.contrib.auth.models import User

PREVIEW_SAMPLES = 48
CHECKPOINT_SUFFIXES = {
    ".pt": "torchscript",
    ".pth": "torchscript",
    ".ts": "torchscript",
    ".torchscript": "torchscript",
    ".safetensors": "safetensors",
    ".onnx": "onnx",
}
"""Model files by extension; an archive (.zip, .tar, .tar.gz) is a Hugging Face directory."""


@contextmanager
def _spooled(upload: IO[bytes], filename: str) -> Iterator[tuple[Path, IO[bytes]]]:
    """The upload as a local file, refusing it when it exceeds the size limit."""
    suffix = PurePosixPath(filename).suffix.lower()
    with tempfile.NamedTemporaryFile(suffix=suffix) as tmp:
        upload.seek(0)
        shutil.copyfileobj(upload, tmp, length=1 << 20)
        tmp.flush()
        size = Path(tmp.name).stat().st_size
        if size == 0:
            raise InputError(f"{filename} is empty")
        if size > settings.REPLENS_MAX_UPLOAD_BYTES:
            raise InputError(
                f"{filename} is {size} bytes; the limit is {settings.REPLENS_MAX_UPLOAD_BYTES}"
            )
        tmp.seek(0)
        yield Path(tmp.name), tmp


def _clean_name(name: str, filename: str) -> str:
    name = (name or "").strip() or PurePosixPath(filename).stem
    if len(name) > 200:
        raise InputError("names are at most 200 characters")
    return name


def ingest_dataset(
    workspace: Workspace,
    user: User | None,
    upload: IO[bytes],
    filename: str,
    name: str = "",
    description: str = "",
) -> tuple[Dataset, bool]:
    """Parse, validate and store a dataset; an identical one already in the workspace is
    returned instead (``created`` is then False). Rows are written in one transaction; blob
    files are content-addressed, so one left by a failed write is harmless."""
    name = _clean_name(name, filename)
    with _spooled(upload, filename) as (path, f):
        arrays = read_dataset(path, filename, *archive_limits())
        thumbs = thumbnails(arrays)
        with tempfile.TemporaryFile() as canonical, transaction.atomic():
            arrays.save(canonical)
            arrays_blob = Blob.store(canonical)
            existing = Dataset.objects.filter(workspace=workspace, arrays=arrays_blob).first()
            if existing:
                return existing, False
            return Dataset.objects.create(
                workspace=workspace,
                name=name,
                description=description,
                filename=filename,
                source=Blob.store(f),
                arrays=arrays_blob,
                thumbnails=Blob.store_array(thumbs) if thumbs is not None else None,
                modality=arrays.modality,
                n_samples=arrays.n,
                sample_shape=list(arrays.x.shape[1:]),
                label_names=arrays.label_names,
                metadata_columns=list(arrays.metadata),
                preview=_preview(arrays),
                created_by=user,
            ), True


def _preview(arrays: DatasetArrays) -> list[dict]:
    count = min(PREVIEW_SAMPLES, arrays.n)
    return [
        {"index": i, "id": str(arrays.ids[i]), "label": arrays.label_of(i)} for i in range(count)
    ]


def checkpoint_format(filename: str, precomputed: bool = False) -> str:
    """The format of an uploaded checkpoint file: by its extension, or ``precomputed`` when
    the upload names the dataset its rows belong to."""
    suffix = PurePosixPath(filename.lower()).suffix
    if precomputed:
        if suffix not in PRECOMPUTED_SUFFIXES:
            raise InputError(
                f"unsupported activations file {filename!r}: upload "
                f"{', '.join(PRECOMPUTED_SUFFIXES)}"
            )
        return Checkpoint.Format.PRECOMPUTED
    if archive_suffix(filename):
        return Checkpoint.Format.HUGGINGFACE
    if suffix not in CHECKPOINT_SUFFIXES:
        hint = (
            " (precomputed activations: choose the dataset they belong to)"
            if suffix in PRECOMPUTED_SUFFIXES
            else ""
        )
        raise InputError(
            f"unsupported checkpoint file {filename!r}: upload TorchScript (.pt), .safetensors "
            "with an architecture name, .onnx, or a .zip / .tar of a Hugging Face model "
            f"directory{hint}"
        )
    return CHECKPOINT_SUFFIXES[suffix]


def archive_limits() -> tuple[int, int]:
    return settings.REPLENS_ARCHIVE_MAX_FILES, settings.REPLENS_ARCHIVE_MAX_BYTES


def host_limits() -> Limits:
    """What one model host may use, from the settings."""
    return Limits(
        wall_s=settings.REPLENS_HOST_TIME_LIMIT_S,
        stall_s=settings.REPLENS_HOST_STALL_S,
        memory_bytes=settings.REPLENS_HOST_MEMORY_BYTES,
        sandbox=settings.REPLENS_HOST_SANDBOX,
    )


def model_params(fmt: str, architecture: str, filename: str) -> dict:
    """How a model host finds the model in a checkpoint file (see :mod:`analysis.host.tasks`)."""
    return {
        "format": fmt,
        "architecture": architecture,
        "filename": filename,
        "archive_limits": list(archive_limits()),
    }


def checkpoint_model_params(checkpoint: Checkpoint) -> dict:
    return model_params(checkpoint.format, checkpoint.architecture, checkpoint.filename)


def _described_precomputed(path: Path, filename: str, dataset: Dataset) -> dict:
    """Layers of a precomputed file, checked against the dataset's samples now, so that a
    file whose rows do not match is refused at upload."""
    found = read_precomputed(path, filename)
    ids = dataset.column("ids")
    assert ids is not None  # every canonical dataset has ids (DatasetArrays.save)
    found.aligned_to(ids)
    return {
        "parameter_count": 0,
        "layer_tree": [
            {"name": name, "type": f"precomputed {v.shape[1]}-d", "parameters": 0, "children": []}
            for name, v in found.layers.items()
        ],
        "layers": list(found.layers),
        "default_layers": list(found.layers),
    }


def ingest_checkpoint(
    workspace: Workspace,
    user: User | None,
    upload: IO[bytes],
    filename: str,
    name: str = "",
    architecture: str = "",
    description: str = "",
    seed_group: str = "",
    step: int | None = None,
    dataset: Dataset | None = None,
    check: Callable[[], None] | None = None,
    metrics: dict[str, float] | None = None,
) -> tuple[Checkpoint, bool]:
    """Load the checkpoint in a model host (never unpickling, never in this process),
    discover its layers and store it. ``check`` may raise to stop the host (see
    :func:`analysis.host.run_in_host`).
    With ``dataset``, the file holds precomputed activations of that dataset's samples."""
    name = _clean_name(name, filename)
    fmt = checkpoint_format(filename, precomputed=dataset is not None)
    if dataset is not None and dataset.workspace_id != workspace.pk:
        raise InputError("the dataset must belong to the same workspace")
    if fmt != Checkpoint.Format.SAFETENSORS:
        architecture = ""
    with _spooled(upload, filename) as (path, f):
        if dataset is not None:  # precomputed activations of its samples
            described = _described_precomputed(path, filename, dataset)
        else:
            # The model is untrusted code: it is loaded and described in a model host only.
            described, _ = run_in_host(
                "analysis.host.tasks:describe",
                model_params(fmt, architecture, filename),
                {"model": path},
                host_limits(),
                check=check,
            )
        with transaction.atomic():
            blob = Blob.store(f)
            existing = Checkpoint.objects.filter(
                workspace=workspace, blob=blob, architecture=architecture
            ).first()
            if existing:
                return existing, False
            return Checkpoint.objects.create(
                workspace=workspace,
                name=name,
                description=description,
                filename=filename,
                blob=blob,
                format=fmt,
                architecture=architecture,
                dataset=dataset,
                **described,
                seed_group=seed_group,
                step=step,
                metrics=metrics or {},
                created_by=user,
            ), True
