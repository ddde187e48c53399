"""Chunked, resumable uploads: large checkpoints and datasets sent from scripts in pieces.

A client declares the file (kind, name, size, sha256), sends its bytes in order with
``Content-Range``, asks for the offset after a dropped connection and carries on from there,
then completes it: the size and sha256 are checked and the file is ingested by the same code
as a one-shot upload (:mod:`webapp.catalog.ingest`). A file whose sha256 is already in the
workspace is answered at once, with nothing to send. The part file lives under
``VAR_DIR/uploads`` on the web node until the upload completes or is aborted.
"""

from __future__ import annotations

import hashlib
import re

from django.conf import settings
from django.db import transaction

from analysis.errors import InputError
from webapp.catalog.ingest import checkpoint_format, ingest_checkpoint, ingest_dataset
from webapp.catalog.models import Checkpoint, Dataset, Upload, Workspace

CHUNK_SIZE = 8 * 1024 * 1024
"""The chunk size suggested to clients (any size up to the request size limit works)."""
SHA256 = re.compile(r"^[0-9a-f]{64}$")
CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")


class OffsetMismatch(InputError):
    """A chunk that does not start where the received bytes end."""

    def __init__(self, upload: Upload, start: int):
        super().__init__(
            f"this chunk starts at byte {start} but {upload.received} bytes have been "
            f"received: resume from {upload.received}"
        )
        self.offset = upload.received


def existing(workspace: Workspace, kind: str, sha256: str, architecture: str = ""):
    """A dataset or checkpoint of ``workspace`` uploaded from the same bytes, if any."""
    if kind == Upload.Kind.DATASET:
        return Dataset.objects.filter(workspace=workspace, source__sha256=sha256).first()
    return Checkpoint.objects.filter(
        workspace=workspace, blob__sha256=sha256, architecture=architecture
    ).first()


def start(user, workspace: Workspace, kind: str, filename: str, size: int, sha256: str, **fields):
    """A new upload, or the dataset or checkpoint already made from the same bytes (then the
    first item is None)."""
    sha256 = sha256.lower()
    if not SHA256.match(sha256):
        raise InputError("sha256 must be 64 hexadecimal digits")
    if not 0 < size <= settings.REPLENS_MAX_UPLOAD_BYTES:
        raise InputError(
            f"size must be between 1 and {settings.REPLENS_MAX_UPLOAD_BYTES} bytes (the limit)"
        )
    if kind == Upload.Kind.CHECKPOINT:
        if checkpoint_format(filename) == "torchscript":
            fields["architecture"] = ""
        elif not fields.get("architecture"):
            raise InputError(".safetensors checkpoints need an architecture name")
    found = existing(workspace, kind, sha256, fields.get("architecture", ""))
    if found is not None:
        return None, found
    upload = Upload.objects.create(
        workspace=workspace,
        kind=kind,
        filename=filename,
        size=size,
        sha256=sha256,
        fields=fields,
        created_by=user,
    )
    upload.part_path.parent.mkdir(parents=True, exist_ok=True)
    upload.part_path.write_bytes(b"")
    return upload, None


def parse_range(header: str, length: int, size: int) -> int:
    """The first byte of a chunk from ``Content-Range: bytes a-b/size``, checked against the
    chunk's length and the upload's size."""
    match = CONTENT_RANGE.match(header or "")
    if not match:
        raise InputError("Content-Range: bytes <first>-<last>/<size> is required")
    first, last, total = (int(v) for v in match.groups())
    if total != size:
        raise InputError(f"Content-Range says the file is {total} bytes; it was declared {size}")
    if last - first + 1 != length or length == 0:
        raise InputError(f"Content-Range covers {last - first + 1} bytes; the body has {length}")
    if last >= size:
        raise InputError(f"Content-Range ends at byte {last}, past the file's end ({size})")
    return first


def append(upload: Upload, first: int, data: bytes) -> Upload:
    """Write a chunk at ``first``, which must be where the received bytes end. The row lock
    makes two concurrent senders of the same upload take turns."""
    with transaction.atomic():
        upload = Upload.objects.select_for_update().get(pk=upload.pk)
        if upload.state != Upload.State.OPEN:
            raise InputError(f"this upload is {upload.state}")
        if first != upload.received:
            raise OffsetMismatch(upload, first)
        with open(upload.part_path, "r+b") as f:
            f.seek(first)
            f.write(data)
            f.truncate()
        upload.received = first + len(data)
        upload.save(update_fields=["received", "updated_at"])
    return upload


def complete(upload: Upload):
    """Check the size and sha256, then ingest; returns ``(object, created)``. A mismatch or an
    invalid file discards the upload (state ``failed``) with the reason."""
    with transaction.atomic():
        upload = Upload.objects.select_for_update().get(pk=upload.pk)
        if upload.state == Upload.State.DONE:
            model = Dataset if upload.kind == Upload.Kind.DATASET else Checkpoint
            return model.objects.get(pk=upload.result_id), False
        if upload.state != Upload.State.OPEN:
            raise InputError(f"this upload is {upload.state}: {upload.error}")
        if upload.received != upload.size:
            raise InputError(
                f"{upload.received} of {upload.size} bytes received: send the rest first"
            )
        try:
            result, created = _ingest(upload)
        except InputError as err:
            failure = err
        else:
            failure = None
            upload.state, upload.result_id = Upload.State.DONE, result.pk
            upload.save(update_fields=["state", "result_id", "updated_at"])
    upload.part_path.unlink(missing_ok=True)
    if failure is not None:  # recorded outside the transaction, which rolled back
        Upload.objects.filter(pk=upload.pk).update(state=Upload.State.FAILED, error=str(failure))
        raise failure
    return result, created


def abort(upload: Upload) -> None:
    upload.part_path.unlink(missing_ok=True)
    upload.delete()


def _ingest(upload: Upload):
    digest = hashlib.sha256()
    with open(upload.part_path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != upload.sha256:
        raise InputError(
            f"the received bytes have sha256 {digest.hexdigest()}, not the declared "
            f"{upload.sha256}: the file was corrupted on the way; upload it again"
        )
    fields, user = upload.fields, upload.created_by
    with open(upload.part_path, "rb") as f:
        if upload.kind == Upload.Kind.DATASET:
            return ingest_dataset(
                upload.workspace,
                user,
                f,
                upload.filename,
                fields.get("name", ""),
                fields.get("description", ""),
            )
        return ingest_checkpoint(
            upload.workspace,
            user,
            f,
            upload.filename,
            fields.get("name", ""),
            fields.get("architecture", ""),
            fields.get("description", ""),
            fields.get("seed_group", ""),
            fields.get("step"),
        )
