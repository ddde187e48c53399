"""Uploads: a file's bytes are stored by the web process and checked by a worker.

A file arrives in one request (a browser form, ``POST /datasets/``) or in chunks (scripts:
the client declares the file — kind, name, size, sha256 — sends its bytes in order with
``Content-Range``, asks for the offset after a dropped connection and carries on from there,
then completes it). Either way the web process only stores bytes and never parses them: a
complete upload is *checking* until a worker takes it (:func:`take_next`, ahead of every run of
its queue), checks the size and sha256, parses the file — a model only in a model host — and
makes the dataset or checkpoint (:func:`check`), or refuses it with the reason, keeping no
dataset, checkpoint or chunk. A file whose sha256 is already in the workspace is answered at
once, with nothing to send and nothing to check.

Each chunk received is stored through the default storage as an object of its own,
``uploads/<upload id>/<first byte, 20 digits>``, so that any web node can take the next
chunk (with several web nodes the storage is the shared object store; a node's local disk
holds nothing between requests). A chunk stored by a request that then failed is replaced
when its offset is sent again: the chunk at ``received`` is the only one that can be stale.
The check concatenates the chunks in order, a block at a time, into a local temporary file and
deletes them afterwards, whatever the outcome; aborting deletes them too.
"""

from __future__ import annotations

import hashlib
import logging
import re
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import models, transaction
from django.utils import timezone

from analysis.data.datasets import check_dataset_name
from analysis.errors import InputError
from webapp.catalog import fits
from webapp.catalog.ingest import checkpoint_format, ingest_checkpoint, ingest_dataset
from webapp.catalog.lineage import check_metrics
from webapp.catalog.models import Checkpoint, Dataset, Upload, Workspace
from webapp.dispatch import wake_on_commit

if TYPE_CHECKING:
    from django.contrib.auth.models import User

logger = logging.getLogger(__name__)

CHUNK_SIZE = 8 * 1024 * 1024
"""The chunk size suggested to clients (any size up to :data:`MAX_CHUNK_SIZE` works)."""
MAX_CHUNK_SIZE = 64 * 1024 * 1024
"""The largest chunk one request may carry (refused from its Content-Length, unread)."""
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


def existing(
    workspace: Workspace, kind: str, sha256: str, architecture: str = ""
) -> Dataset | Checkpoint | Upload | None:
    """A dataset or checkpoint of ``workspace`` made from the same bytes, or an upload of the
    same bytes being checked now; None if neither."""
    found: Dataset | Checkpoint | None
    if kind == Upload.Kind.DATASET:
        found = Dataset.objects.filter(workspace=workspace, source__sha256=sha256).first()
    else:
        found = Checkpoint.objects.filter(
            workspace=workspace, blob__sha256=sha256, architecture=architecture
        ).first()
    if found is not None:
        return found
    return Upload.objects.filter(
        workspace=workspace,
        kind=kind,
        sha256=sha256,
        fields__architecture=architecture,
        state=Upload.State.CHECKING,
    ).first()


def start(
    user: User,
    workspace: Workspace,
    kind: str,
    filename: str,
    size: int,
    sha256: str,
    **fields: Any,
) -> tuple[Upload | None, Dataset | Checkpoint | Upload | None]:
    """A new upload, or what the same bytes already made: the dataset or checkpoint, or the
    upload of them being checked (then the first item is None). What can be told from the
    declaration alone (the format by the file's extension, a missing architecture name) is
    refused here, before any byte is sent."""
    sha256 = sha256.lower()
    if not SHA256.match(sha256):
        raise InputError("sha256 must be 64 hexadecimal digits")
    if not 0 < size <= settings.REPLENS_MAX_UPLOAD_BYTES:
        raise InputError(
            f"size must be between 1 and {settings.REPLENS_MAX_UPLOAD_BYTES} bytes (the limit)"
        )
    fields.setdefault("architecture", "")
    if kind == Upload.Kind.DATASET:
        check_dataset_name(filename)
    else:
        dataset = fields.get("dataset")
        if dataset is not None and not workspace.datasets.filter(pk=dataset).exists():
            raise InputError(f"no dataset {dataset} in workspace {workspace.slug}")
        fmt = checkpoint_format(filename, precomputed=dataset is not None)
        if fmt != Checkpoint.Format.SAFETENSORS:
            fields["architecture"] = ""
        elif not fields["architecture"]:
            raise InputError(".safetensors checkpoints need an architecture name")
        fields["metrics"] = check_metrics(fields.get("metrics"))
    found = existing(workspace, kind, sha256, fields["architecture"])
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


def receive(
    user: User, workspace: Workspace, kind: str, f: IO[bytes], filename: str, **fields: Any
) -> tuple[Upload | None, Dataset | Checkpoint | Upload | None]:
    """A whole file in one request (a browser form, ``POST /datasets/``): stored as one chunk
    and completed, or what the same bytes already made. Returns ``(upload, found)`` like
    :func:`start`."""
    digest, size = hashlib.sha256(), 0
    f.seek(0)
    while block := f.read(1 << 20):
        digest.update(block)
        size += len(block)
    if size == 0:
        raise InputError(f"{filename} is empty")
    if size > settings.REPLENS_MAX_UPLOAD_BYTES:
        raise InputError(
            f"{filename} is {size} bytes; the limit is {settings.REPLENS_MAX_UPLOAD_BYTES}"
        )
    upload, found = start(user, workspace, kind, filename, size, digest.hexdigest(), **fields)
    if upload is None:
        return None, found
    f.seek(0)
    default_storage.save(upload.chunk_key(0), File(f))
    Upload.objects.filter(pk=upload.pk).update(received=size)
    return complete(upload), None


def parse_range(header: str | None, length: int, size: int) -> int:
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


def append(upload: Upload, first: int, data: IO[bytes], length: int) -> Upload:
    """Store a chunk of ``length`` bytes (read from ``data``) at ``first``, which must be where
    the received bytes end. The row lock makes two concurrent senders of the same upload take
    turns."""
    with transaction.atomic():
        upload = Upload.objects.select_for_update().get(pk=upload.pk)
        if upload.state != Upload.State.OPEN:
            raise InputError(f"this upload is {upload.state}")
        if first != upload.received:
            raise OffsetMismatch(upload, first)
        store_chunk(upload, first, data)
        upload.received = first + length
        upload.save(update_fields=["received", "updated_at"])
    return upload


def complete(upload: Upload) -> Upload:
    """Every byte is in: queue the upload for a check by a worker (idempotent). Refused while
    bytes are missing."""
    with transaction.atomic():
        upload = Upload.objects.select_for_update().get(pk=upload.pk)
        if upload.state == Upload.State.FAILED:
            raise InputError(f"this upload was refused: {upload.error}")
        if upload.state == Upload.State.OPEN:
            if upload.received != upload.size:
                raise InputError(
                    f"{upload.received} of {upload.size} bytes received: send the rest first"
                )
            upload.state = Upload.State.CHECKING
            upload.save(update_fields=["state", "updated_at"])
            wake_on_commit(upload.queue)
    return upload


def result_of(upload: Upload) -> Dataset | Checkpoint | None:
    """The dataset or checkpoint a finished upload made (None before, or if deleted since)."""
    if upload.state != Upload.State.DONE:
        return None
    if upload.result_id is None:
        return None
    if upload.kind == Upload.Kind.DATASET:
        return Dataset.objects.filter(pk=upload.result_id).first()
    return Checkpoint.objects.filter(pk=upload.result_id).first()


def _person(upload: Upload) -> int:
    return upload.created_by_id or -upload.workspace_id


def waiting(queue: str) -> list[Upload]:
    """Uploads of ``queue`` waiting for a check, in the order workers take them: the person
    with the fewest files being checked now first, then the oldest upload (so that one
    person's fifty files do not hold another's one)."""
    all_checking = Upload.objects.filter(state=Upload.State.CHECKING).order_by("created_at", "pk")
    checking = [u for u in all_checking if u.queue == queue]
    busy = Counter(_person(u) for u in checking if u.started_at is not None)
    ready = [u for u in checking if u.started_at is None]
    order: list[Upload] = []
    while ready:
        chosen = min(ready, key=lambda u: busy[_person(u)])  # min keeps the oldest of ties
        order.append(chosen)
        ready.remove(chosen)
        busy[_person(chosen)] += 1
    return order


def take_next(queue: str, worker: str = "") -> Upload | None:
    """Claim the upload of ``queue`` served next (a conditional UPDATE: two workers never
    take the same); None when none waits."""
    for upload in waiting(queue):
        now = timezone.now()
        claimed = Upload.objects.filter(
            pk=upload.pk, state=Upload.State.CHECKING, started_at__isnull=True
        ).update(worker=worker, started_at=now, heartbeat_at=now, attempts=models.F("attempts") + 1)
        if claimed:
            upload.refresh_from_db()
            return upload
    return None


def _places(queues: Iterable[str]) -> dict[object, int]:
    """Where each upload waiting for a check in ``queues`` stands in its queue (1 = next)."""
    return {u.pk: place for queue in queues for place, u in enumerate(waiting(queue), 1)}


def position(upload: Upload) -> int | None:
    """Where an upload waiting for its check stands in its queue (1 = next); None once a
    worker is checking it (or it is not checking)."""
    if upload.state != Upload.State.CHECKING or upload.started_at is not None:
        return None
    return _places([upload.queue]).get(upload.pk)


SHOWN_DONE_FOR = timedelta(hours=1)


def shown(workspace: Workspace, limit: int = 20) -> list[Upload]:
    """The uploads of ``workspace`` a person wants to see, newest first: those receiving
    bytes or being checked (``place``: their position, None once a worker checks them), those
    refused (until dismissed), and those that became a dataset or checkpoint in the last hour
    (``result``)."""
    recent = models.Q(state=Upload.State.DONE, updated_at__gte=timezone.now() - SHOWN_DONE_FOR)
    listed = list(
        Upload.objects.filter(workspace=workspace)
        .filter(recent | ~models.Q(state=Upload.State.DONE))
        .order_by("-created_at")[:limit]
    )
    places = _places({u.queue for u in listed if u.state == Upload.State.CHECKING})
    for upload in listed:
        upload.place = places.get(upload.pk)
        upload.result = result_of(upload)
    return listed


def beat(upload: Upload) -> bool:
    """Say the worker checking ``upload`` is alive; False once the upload was withdrawn or
    given to another worker."""
    return bool(
        Upload.objects.filter(
            pk=upload.pk, state=Upload.State.CHECKING, started_at=upload.started_at
        ).update(heartbeat_at=timezone.now())
    )


class Withdrawn(Exception):
    """The upload was withdrawn (or given to another worker) while this one checked it."""


def check(upload: Upload) -> None:
    """Check a claimed upload and make its dataset or checkpoint, or refuse it with the
    reason (an :class:`InputError` from the sha256 check or the parser); the chunks are
    deleted either way. A model file is parsed only in a model host, which is stopped within
    a second if the upload is withdrawn meanwhile."""

    def still_mine() -> None:
        if not beat(upload):
            raise Withdrawn(f"upload {upload.pk} was withdrawn")

    result: Dataset | Checkpoint | None = None
    created = False
    outcome: dict[str, Any]
    try:
        result, created = _ingest(upload, still_mine)
        if created:  # which models read it, known by the time the upload says it is done
            fits.check_fits(result)
    except InputError as err:
        # The person reads one plain sentence; the library's own words stay in the log.
        logger.info("upload %s refused: %s\n%s", upload.pk, err, err.details or "(no details)")
        outcome = {"state": Upload.State.FAILED, "error": str(err)}
    except Withdrawn:
        logger.info("upload %s was withdrawn while being checked", upload.pk)
        return  # aborted: its chunks are gone; given to another worker: it needs them
    except Exception:
        logger.exception("checking upload %s failed", upload.pk)
        outcome = {
            "state": Upload.State.FAILED,
            "error": "an internal error stopped the check of this file (the worker's log "
            "has the details); nothing was kept",
        }
    else:
        outcome = {"state": Upload.State.DONE, "result_id": result.pk}
    if _finish(upload, **outcome):
        delete_chunks(upload)
    elif created and result is not None:
        result.delete()  # withdrawn at the last moment: keep nothing (blobs are collected)


def _finish(upload: Upload, **fields: Any) -> bool:
    """Record the outcome of this worker's check; False if the upload is no longer its."""
    return bool(
        Upload.objects.filter(
            pk=upload.pk, state=Upload.State.CHECKING, started_at=upload.started_at
        ).update(**fields, updated_at=timezone.now())
    )


def reap(stale_after_s: float, max_attempts: int) -> dict[str, list]:
    """Uploads whose checking worker fell silent (killed, out of memory): given back to the
    queue while they have attempts left, else refused. Returns the queues to wake."""
    cutoff = timezone.now() - timedelta(seconds=stale_after_s)
    found: dict[str, list] = {"queued": [], "failed": []}
    stale = Upload.objects.filter(state=Upload.State.CHECKING, heartbeat_at__lt=cutoff)
    for upload in stale:
        same = Upload.objects.filter(
            pk=upload.pk, state=Upload.State.CHECKING, heartbeat_at__lt=cutoff
        )
        if upload.attempts < max_attempts:
            if same.update(worker="", started_at=None, heartbeat_at=None):
                found["queued"].append(upload.pk)
                wake_on_commit(upload.queue)
        elif same.update(
            state=Upload.State.FAILED,
            error=(
                f"the worker checking this file stopped responding ({upload.attempts} "
                "attempts); the file may need more memory than a worker has"
            ),
        ):
            found["failed"].append(upload.pk)
            delete_chunks(upload)
    return found


def abort(upload: Upload) -> None:
    """Delete the upload and its chunks (under the row lock: no chunk arrives meanwhile)."""
    with transaction.atomic():
        locked = Upload.objects.select_for_update().filter(pk=upload.pk).first()
        if locked is not None:
            delete_chunks(locked)
            locked.delete()


def store_chunk(upload: Upload, first: int, data: IO[bytes]) -> None:
    """Store the bytes received at ``first`` (streamed from ``data``), replacing a chunk left
    there by a request that failed after storing it."""
    key = upload.chunk_key(first)
    default_storage.delete(key)
    saved = default_storage.save(key, File(data))
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


def _ingest(upload: Upload, still_mine: Callable[[], None]) -> tuple[Dataset | Checkpoint, bool]:
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
            metrics=fields.get("metrics") or {},
            dataset=Dataset.objects.filter(pk=fields.get("dataset") or 0).first(),
            check=still_mine,
        )
