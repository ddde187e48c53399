"""Garbage collection: blobs no row references any more, and chunked uploads abandoned open.

A blob is unreferenced once every row that held it is gone (a workspace or a run deleted,
a result replaced by a retry). The references are found through Django's model metadata,
every foreign key to :class:`Blob` in every app, so a new model that stores blobs is counted
without a change here. Blobs younger than the grace age are kept whatever refers to them: an
upload or a worker stores its blobs before the rows that reference them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.apps import apps
from django.core.files.storage import default_storage
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from webapp.catalog import uploads
from webapp.catalog.models import Blob, Upload


def blob_fields(model: type[models.Model]) -> list[models.Field]:
    """The fields of ``model`` that hold a blob (foreign keys and one-to-ones to Blob)."""
    return [f for f in model._meta.concrete_fields if f.is_relation and f.related_model is Blob]


def blob_references() -> list[tuple[type[models.Model], models.Field]]:
    """Every (model, field) that references a blob, in every installed app; the tables of
    many-to-many relations are models of their own and are included."""
    return [
        (model, field)
        for model in apps.get_models(include_auto_created=True)
        for field in blob_fields(model)
    ]


def unreferenced_blobs(created_before: datetime) -> models.QuerySet[Blob]:
    queryset = Blob.objects.filter(created_at__lt=created_before)
    for model, field in blob_references():
        held = model._base_manager.filter(**{f"{field.attname}__isnull": False})
        queryset = queryset.exclude(pk__in=held.values(field.attname))
    return queryset


@dataclass
class Freed:
    blobs: int = 0
    blob_bytes: int = 0
    uploads: int = 0
    upload_bytes: int = 0


def collect_garbage(min_age: timedelta, upload_max_age: timedelta, dry_run: bool) -> Freed:
    """Delete blobs unreferenced and older than ``min_age`` (row and stored bytes), uploads
    left open with no chunk for ``upload_max_age`` (row and the chunks received, by
    :func:`webapp.catalog.uploads.abort`) and the records of uploads checked (made or refused)
    that long ago; uploads being checked are kept. With ``dry_run``, only count them."""
    now = timezone.now()
    freed = Freed()
    for blob in unreferenced_blobs(now - min_age).order_by("pk").iterator():
        if dry_run or _delete_blob(blob, now - min_age):
            freed.blobs += 1
            freed.blob_bytes += blob.size
    stale = Upload.objects.filter(
        state__in=(Upload.State.OPEN, Upload.State.DONE, Upload.State.FAILED),
        updated_at__lt=now - upload_max_age,
    )
    for upload in stale.order_by("created_at"):
        if not dry_run:
            uploads.abort(upload)
        freed.uploads += 1
        if upload.state == Upload.State.OPEN:  # a checked upload's chunks are gone already
            freed.upload_bytes += upload.received
    return freed


def _delete_blob(blob: Blob, created_before: datetime) -> bool:
    """Delete the row if still unreferenced (a row may have taken it since), then the bytes."""
    try:
        with transaction.atomic():
            deleted, _ = unreferenced_blobs(created_before).filter(pk=blob.pk).delete()
    except (IntegrityError, models.ProtectedError):  # referenced meanwhile: keep it
        return False
    if deleted:
        default_storage.delete(blob.key)
    return bool(deleted)
