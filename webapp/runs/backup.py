"""Backup and restore of one workspace: its rows and the bytes of every blob they reference, in
one tar file.

The archive holds ``manifest.json`` (format, workspace, counts), ``rows.json`` (the rows in
Django's JSON serialization, users by username, in the order of :data:`PARTS`),
``blobs.json`` (each referenced blob's id in the archive → its sha256 and size) and
``blobs/<sha256>`` (the bytes). A restore makes a new workspace with new ids: each row is
inserted without its id and its references are mapped to the ids given to the rows they name;
blobs are stored again through :meth:`Blob.store` after every one has been checked against its
sha256, and the rows are written in one transaction, so a bad archive leaves nothing.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from django.contrib.auth import get_user_model
from django.core import serializers
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import validate_slug
from django.db import connection, models, transaction

from webapp.catalog.models import (
    ActivationSet,
    Blob,
    Checkpoint,
    Dataset,
    Fit,
    Invitation,
    Membership,
    Upload,
    Workspace,
)
from webapp.catalog.retention import blob_fields
from webapp.runs.models import (
    Alignment,
    CompatibilityResult,
    KeptPreparation,
    LayerStatistics,
    ProbeResult,
    Projection,
    Report,
    Run,
    Score,
    Selection,
    SeriesCell,
    Worker,
)
from webapp.version import code_version

FORMAT = 1

PARTS: tuple[tuple[type[models.Model], str], ...] = (
    (Workspace, "pk"),
    (Membership, "workspace"),
    (Dataset, "workspace"),
    (Checkpoint, "workspace"),
    (Fit, "checkpoint__workspace"),
    (Run, "workspace"),
    (ActivationSet, "checkpoint__workspace"),
    (Score, "run__workspace"),
    (Alignment, "run__workspace"),
    (CompatibilityResult, "run__workspace"),
    (Projection, "run__workspace"),
    (ProbeResult, "run__workspace"),
    (Report, "run__workspace"),
    (SeriesCell, "activation_a__checkpoint__workspace"),
    (LayerStatistics, "activation__checkpoint__workspace"),
    (KeptPreparation, "activation__checkpoint__workspace"),
    (Selection, "workspace"),
)
"""Every model a workspace's backup holds, with the lookup from it to the workspace, in the
order of restoring: the rows a row references come before it (within a model, rows keep their
order of creation)."""

LEFT_OUT: dict[type[models.Model], str] = {
    Blob: "rows are made again from the bytes in the archive",
    Upload: "an upload in progress is a part file on the web node; send it again",
    Invitation: "a link is a one-use secret of the server that made it",
    Worker: "a worker belongs to the server, not to a workspace",
}
"""Models of the catalog and runs apps that a backup does not hold, and why."""


class ExactJSONEncoder(DjangoJSONEncoder):
    """Times to the microsecond (Django's encoder keeps milliseconds, as JavaScript does)."""

    def default(self, o: Any) -> Any:
        if isinstance(o, datetime):
            return o.isoformat()
        return super().default(o)


class ArchiveError(Exception):
    """The archive cannot be restored: not a backup, corrupted, or its slug taken."""


@dataclass
class Restored:
    workspace: Workspace
    counts: dict[str, int] = field(default_factory=dict)
    missing_users: set[str] = field(default_factory=set)  # their memberships are not restored


def backup(workspace: Workspace, path: Path) -> dict[str, int]:
    """Write the archive of ``workspace`` to ``path``; returns the number of rows by model."""
    # Every query sees the same snapshot of the database (a transaction already open, such
    # as a test's, is used as it is).
    snapshot = connection.vendor == "postgresql" and not connection.in_atomic_block
    with transaction.atomic():
        if snapshot:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        objects, counts = [], {}
        for model, lookup in PARTS:
            rows = list(model._default_manager.filter(**{lookup: workspace.pk}).order_by("pk"))
            counts[model._meta.label_lower] = len(rows)
            objects += rows
        rows_json = serializers.serialize(
            "json", objects, cls=ExactJSONEncoder, use_natural_foreign_keys=True
        )
        blob_ids = {getattr(o, f.attname) for o in objects for f in blob_fields(type(o))}
        blobs = {b.pk: b for b in Blob.objects.filter(pk__in=blob_ids - {None})}
    manifest = {
        "format": FORMAT,
        "workspace": workspace.slug,
        "code_version": code_version(),
        "counts": counts,
    }
    listing = {pk: {"sha256": b.sha256, "size": b.size} for pk, b in sorted(blobs.items())}
    partial = path.with_name(path.name + ".partial")  # a failed backup leaves no file
    try:
        with tarfile.open(partial, "w") as tar:
            _add_bytes(tar, "manifest.json", json.dumps(manifest, indent=1).encode())
            _add_bytes(tar, "rows.json", rows_json.encode())
            _add_bytes(tar, "blobs.json", json.dumps(listing, indent=1).encode())
            for blob in {b.sha256: b for b in blobs.values()}.values():
                info = tarfile.TarInfo(f"blobs/{blob.sha256}")
                info.size, info.mtime = blob.size, int(time.time())
                with blob.open() as f:
                    tar.addfile(info, f)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, path)
    return counts


def _add_bytes(tar: tarfile.TarFile, name: str, content: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime = len(content), int(time.time())
    tar.addfile(info, io.BytesIO(content))


def restore(path: Path, slug: str | None = None) -> Restored:
    """Restore the archive at ``path`` as a new workspace (named ``slug``, by default the one
    it was backed up from, which must not exist). Runs that were queued or running are queued
    again."""
    try:
        tar = tarfile.open(path, "r:*")
    except (OSError, tarfile.TarError) as err:
        raise ArchiveError(f"{path} cannot be read as a tar file: {err}") from None
    with tar:
        manifest = _read_json(tar, "manifest.json")
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise ArchiveError(f"{path} is not a RepLens workspace backup (format {FORMAT})")
        slug = slug or manifest["workspace"]
        try:
            validate_slug(slug)
        except ValidationError:
            raise ArchiveError(f"{slug!r} is not a slug (letters, digits, - and _)") from None
        if Workspace.objects.filter(slug=slug).exists():
            raise ArchiveError(f"a workspace {slug!r} exists: restore under another slug")
        rows = _read_json(tar, "rows.json")
        listing = _read_json(tar, "blobs.json")
        members = _checked_blobs(tar, {entry["sha256"] for entry in listing.values()})
        with transaction.atomic():
            stored = {sha256: Blob.store(_member_file(tar, m)) for sha256, m in members.items()}
            if any(blob.sha256 != sha256 for sha256, blob in stored.items()):
                raise ArchiveError("a blob changed while it was restored")
            blob_ids = {int(pk): stored[entry["sha256"]].pk for pk, entry in listing.items()}
            return _restore_rows(rows, blob_ids, slug)


def _member_file(tar: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes]:
    """The bytes of an archive member that is a file."""
    f = tar.extractfile(member)
    if f is None:
        raise ArchiveError(f"{member.name} in the archive is not a file")
    return f


def _read_json(tar: tarfile.TarFile, name: str) -> Any:
    try:
        member = tar.getmember(name)
    except KeyError:
        raise ArchiveError(f"the archive has no {name}: not a RepLens workspace backup") from None
    try:
        return json.load(_member_file(tar, member))
    except ValueError as err:
        raise ArchiveError(f"{name} in the archive is not valid JSON: {err}") from None


def _checked_blobs(tar: tarfile.TarFile, digests: set[str]) -> dict[str, tarfile.TarInfo]:
    """The archive's member of each blob, after checking its bytes against its sha256."""
    members = {}
    for sha256 in sorted(digests):
        name = f"blobs/{sha256}"
        try:
            member = tar.getmember(name)
        except KeyError:
            raise ArchiveError(f"the archive lacks {name}") from None
        if not member.isfile():
            raise ArchiveError(f"{name} is not a file")
        digest = hashlib.sha256()
        with _member_file(tar, member) as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        if digest.hexdigest() != sha256:
            raise ArchiveError(
                f"{name} is corrupted: its bytes have sha256 {digest.hexdigest()}; "
                "nothing was restored"
            )
        members[sha256] = member
    return members


def _restore_rows(rows: list[dict], blob_ids: dict[int, int], slug: str) -> Restored:
    User = get_user_model()
    models_by_label = {model._meta.label_lower: model for model, _ in PARTS}
    usernames = {
        row["fields"][f.name][0]
        for row in rows
        if row["model"] in models_by_label
        for f in models_by_label[row["model"]]._meta.concrete_fields
        if f.related_model is User and row["fields"].get(f.name)
    }
    users = dict(
        User._default_manager.filter(**{f"{User.USERNAME_FIELD}__in": usernames}).values_list(
            User.USERNAME_FIELD, "pk"
        )
    )
    # old id → new id, by model (a relation's related_model)
    ids: dict[object, dict[int, int]] = defaultdict(dict)
    later: list[tuple[type[models.Model], int, models.Field, list[int]]] = []  # self, m2m
    workspace: Workspace | None = None
    counts: dict[str, int] = {}
    missing_users: set[str] = set()
    for row in rows:
        model = models_by_label.get(row["model"])
        if model is None:
            raise ArchiveError(f"the archive holds rows of {row['model']}, not of a workspace")
        fields = dict(row["fields"])
        skip = False
        for f in model._meta.concrete_fields:
            value = fields.get(f.name)
            if not f.is_relation or value is None:
                continue
            target = f.related_model
            if target is Blob:
                fields[f.name] = blob_ids[value]
            elif target is User:
                fields[f.name] = users.get(value[0])
                if fields[f.name] is None and not f.null:  # a membership of an unknown user
                    missing_users.add(value[0])
                    skip = True
            elif target is model:  # set once every row of the model has its new id
                fields[f.name] = None
                later.append((model, row["pk"], f, [value]))
            else:  # a row outside the workspace (a parent checkpoint elsewhere) is dropped
                fields[f.name] = ids[target].get(value)
        if skip:
            continue
        for f in model._meta.many_to_many:
            later.append((model, row["pk"], f, fields.pop(f.name, [])))
        if model is Workspace:
            fields["slug"] = slug
        if model is Run:
            _renew_run(fields, ids)
        obj = next(serializers.deserialize("python", [{"model": row["model"], "fields": fields}]))
        obj.save()
        ids[model][row["pk"]] = obj.object.pk
        counts[row["model"]] = counts.get(row["model"], 0) + 1
        if isinstance(obj.object, Workspace):
            workspace = obj.object
        if isinstance(obj.object, Run) and obj.object.state == Run.State.QUEUED:
            obj.object.enqueue_on_commit()
    if workspace is None:
        raise ArchiveError("the archive holds no workspace")
    for model, old_pk, f, targets in later:
        mapped = [ids[f.related_model][t] for t in targets if t in ids[f.related_model]]
        if f.many_to_many:
            getattr(model._default_manager.get(pk=ids[model][old_pk]), f.name).set(mapped)
        elif mapped:
            model._default_manager.filter(pk=ids[model][old_pk]).update(**{f.attname: mapped[0]})
    return Restored(workspace, counts, missing_users)


def _renew_run(fields: dict, ids: dict) -> None:
    """A run's parameters name checkpoints (``checkpoints``, ``spaces``) and runs (``aligned``,
    see :mod:`webapp.runs.submit` and ``workers.tasks``) by id: they are mapped, and the
    request key is made again from the new ids, so asking for the same work in the restored
    workspace finds the restored run. A run that was queued or running is queued again."""
    checkpoints, runs = ids[Checkpoint], ids[Run]
    params = dict(fields["params"])
    if "checkpoints" in params:
        params["checkpoints"] = [checkpoints[c] for c in params["checkpoints"]]
    if "spaces" in params:
        params["spaces"] = [[checkpoints[c], layer] for c, layer in params["spaces"]]
    if "aligned" in params:
        params["aligned"] = runs[params["aligned"]]
    fields["params"] = params
    fields["request_key"] = Run.request_key_of(
        fields["kind"], fields["dataset"], fields["checkpoint"], fields["checkpoint_b"], params
    )
    fields["celery_task_id"] = fields["worker"] = ""
    if fields["state"] not in Run.TERMINAL:
        fields.update(
            state=Run.State.QUEUED, progress=0.0, attempts=0, started_at=None, heartbeat_at=None
        )
