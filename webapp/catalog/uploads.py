"""Chunked, resumable uploads: large checkpoints and datasets sent from scripts in pieces.

A client declares the file (kind, name, size, sha256), sends its bytes in order with
``Content-Range``, asks for the offset after a dropped connection and carries on from there,
then completes it: the size and sha256 are checked and the file is ingested by the same code
as a one-shot upload (:mod:`webapp.catalog.ingest`). A file whose sha256 is already in the
workspace is answered at once, with nothing to send.

Each chunk received is stored through the default storage as an object of its own,
``uploads/<upload id>/<first byte, 20 digits>``, so that any web node can take the next
chunk (with several web nodes the storage is the shared object store; a node's local disk
holds nothing between requests). A chunk stored by a request that then failed is replaced
when its offset is sent again: the chunk at ``received`` is the only one that can be stale.
Completing concatenates the chunks in order, a block at a time, into a local temporary file,
checks the sha256, ingests it and deletes the chunk objects; aborting deletes them too.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from pathlib import Path
from typing import IO

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
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
        dataset = fields.get("dataset")
        if dataset is not None and not workspace.datasets.filter(pk=dataset).exists():
            raise InputError(f"no dataset {dataset} in workspace {workspace.slug}")
        fmt = checkpoint_format(filename, precomputed=dataset is not None)
        if fmt != Checkpoint.Format.SAFETENSORS:
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
    """Store a chunk at ``first``, which must be where the received bytes end. The row lock
    makes two concurrent senders of the same upload take turns."""
    with transaction.atomic():
        upload = Upload.objects.select_for_update().get(pk=upload.pk)
        if upload.state != Upload.State.OPEN:
            raise InputError(f"this upload is {upload.state}")
        if first != upload.received:
            raise OffsetMismatch(upload, first)
        store_chunk(upload, first, data)
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
    delete_chunks(upload)
    if failure is not None:  # recorded outside the transaction, which rolled back
        Upload.objects.filter(pk=upload.pk).update(state=Upload.State.FAILED, error=str(failure))
        raise failure
    return result, created


def abort(upload: Upload) -> None:
    """Delete the upload and its chunks (under the row lock: no chunk arrives meanwhile)."""
    with transaction.atomic():
        upload = Upload.objects.select_for_update().filter(pk=upload.pk).first()
        if upload is not None:
            delete_chunks(upload)
            upload.delete()


def store_chunk(upload: Upload, first: int, data: bytes) -> None:
    """Store the bytes received at ``first``, replacing a chunk left there by a request that
    failed after storing it."""
    key = upload.chunk_key(first)
    default_storage.delete(key)
    saved = default_storage.save(key, ContentFile(data))
    if saved != key:  # the storage renamed it: a concurrent writer, which the row lock forbids
        default_storage.delete(saved)
        raise RuntimeError(f"chunk {key} was stored as {saved}")


def delete_chunks(upload: Upload) -> None:
    try:
        _, names = default_storage.listdir(upload.chunk_prefix)
    except FileNotFoundError:  # FileSystemStorage: no chunk was ever stored
        return
    for name in names:
        default_storage.delete(f"{upload.chunk_prefix}/{name}")
    try:  # FileSystemStorage keeps the emptied folder; an object store has none
        Path(default_storage.path(upload.chunk_prefix)).rmdir()
    except (NotImplementedError, OSError):
        pass


def _assemble(upload: Upload, out: IO[bytes]) -> str:
    """Write the chunks in order into ``out``, a block at a time; returns their sha256. Each
    chunk's key is the offset where the previous one ended, so a stale chunk is never read."""
    digest = hashlib.sha256()
    offset = 0
    while offset < upload.size:
        missing = InputError(
            f"the received bytes from byte {offset} on are missing from storage: "
            "upload the file again"
        )
        try:
            chunk = default_storage.open(upload.chunk_key(offset), "rb")
        except FileNotFoundError:
            raise missing from None
        chunk_start = offset
        with chunk:
            while block := chunk.read(1 << 20):
                digest.update(block)
                out.write(block)
                offset += len(block)
        if offset == chunk_start:  # an empty object: the offset would never move on
            raise missing
    if offset != upload.size:
        raise InputError(f"{offset} bytes are stored for a file of {upload.size}: upload it again")
    out.flush()
    out.seek(0)
    return digest.hexdigest()


def _ingest(upload: Upload):
    with tempfile.TemporaryFile() as f:
        digest = _assemble(upload, f)
        if digest != upload.sha256:
            raise InputError(
                f"the received bytes have sha256 {digest}, not the declared "
                f"{upload.sha256}: the file was corrupted on the way; upload it again"
            )
        fields, user = upload.fields, upload.created_by
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
            dataset=Dataset.objects.filter(pk=fields.get("dataset") or 0).first(),
        )
