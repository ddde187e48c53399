"""Workspaces and what they hold: blobs, datasets, checkpoints and activation sets."""

from __future__ import annotations

import hashlib
import secrets
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import IO, TYPE_CHECKING, TypeAlias, TypeVar

import numpy as np
from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import models
from django.utils import timezone

from analysis.data.datasets import DatasetArrays, npz_rows

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

    AnyUser: TypeAlias = User | AnonymousUser
    """Who makes a request: a signed-in user or the anonymous one (``request.user``)."""

M = TypeVar("M", bound=models.Model)


class Workspace(models.Model):
    """A team's project. Everything else belongs to exactly one workspace."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # An archived workspace is read-only and listed apart; its owners may bring it back.
    archived_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner"
        EDITOR = "editor"
        VIEWER = "viewer"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.EDITOR)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "user"], name="one_membership_per_user")
        ]


def owned_workspaces_of(user: AnyUser) -> models.QuerySet[Workspace]:
    return Workspace.objects.filter(
        memberships__user=user.pk, memberships__role=Membership.Role.OWNER
    )


INVITATION_DAYS = 7


def new_invitation_token() -> str:
    return secrets.token_urlsafe(32)


def invitation_expiry() -> datetime:
    return timezone.now() + timedelta(days=INVITATION_DAYS)


def workspaces_of(user: AnyUser) -> models.QuerySet[Workspace]:
    return Workspace.objects.filter(memberships__user=user.pk)


def editable_workspaces_of(user: AnyUser) -> models.QuerySet[Workspace]:
    """The workspaces ``user`` may change the rows of: owner or editor, and not archived."""
    roles = [Membership.Role.OWNER, Membership.Role.EDITOR]
    return Workspace.objects.filter(
        memberships__user=user.pk, memberships__role__in=roles, archived_at__isnull=True
    )


class Blob(models.Model):
    """Immutable bytes in the storage backend, addressed by their sha256."""

    sha256 = models.CharField(max_length=64, unique=True)
    size = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    @property
    def key(self) -> str:
        return f"blobs/{self.sha256[:2]}/{self.sha256}"

    @classmethod
    def store(cls, fileobj: IO[bytes]) -> Blob:
        """Store the bytes of ``fileobj`` (read from its start) once, whoever stores them."""
        fileobj.seek(0)
        digest = hashlib.sha256()
        size = 0
        for chunk in iter(lambda: fileobj.read(1 << 20), b""):
            digest.update(chunk)
            size += len(chunk)
        blob = cls(sha256=digest.hexdigest(), size=size)
        if not default_storage.exists(blob.key):
            fileobj.seek(0)
            saved = default_storage.save(blob.key, File(fileobj))
            if saved != blob.key:  # a concurrent writer won the name: same bytes, keep one
                default_storage.delete(saved)
        blob, _ = cls.objects.get_or_create(sha256=blob.sha256, defaults={"size": size})
        return blob

    @classmethod
    def store_array(cls, array: np.ndarray) -> Blob:
        with tempfile.TemporaryFile() as f:
            np.save(f, array, allow_pickle=False)
            return cls.store(f)

    @classmethod
    def store_arrays(cls, arrays: dict[str, np.ndarray]) -> Blob:
        """Several named arrays as one compressed ``.npz`` (read back by ``load_arrays``)."""
        with tempfile.TemporaryFile() as f:
            np.savez_compressed(f, allow_pickle=False, **arrays)
            return cls.store(f)

    def open(self) -> IO[bytes]:
        return default_storage.open(self.key, "rb")

    def load_arrays(self) -> dict[str, np.ndarray]:
        with self.open() as f, np.load(f, allow_pickle=False) as stored:
            return {name: stored[name] for name in stored.files}

    def load_array(self) -> np.ndarray:
        with self.open() as f:
            return np.load(f, allow_pickle=False)

    @contextmanager
    def memory_map(self) -> Iterator[np.ndarray]:
        """The stored array as a read-only memory map of a local copy: pages are read on use,
        so a few rows of a large array cost a few pages."""
        with self.local_path() as path:
            yield np.load(path, mmap_mode="r", allow_pickle=False)

    @contextmanager
    def local_path(self) -> Iterator[Path]:
        """A path on local disk holding the bytes (a temporary copy for remote storage)."""
        try:
            yield Path(default_storage.path(self.key))
            return
        except NotImplementedError:
            pass
        with tempfile.NamedTemporaryFile() as tmp, self.open() as src:
            shutil.copyfileobj(src, tmp)
            tmp.flush()
            yield Path(tmp.name)


class Dataset(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="datasets")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    filename = models.CharField(max_length=255)
    source = models.ForeignKey(Blob, on_delete=models.PROTECT, related_name="+")
    arrays = models.ForeignKey(Blob, on_delete=models.PROTECT, related_name="+")
    thumbnails = models.ForeignKey(Blob, on_delete=models.PROTECT, null=True, related_name="+")
    modality = models.CharField(max_length=20)
    n_samples = models.PositiveIntegerField()
    sample_shape = models.JSONField()
    label_names = models.JSONField(default=list)
    metadata_columns = models.JSONField(default=list)
    preview = models.JSONField(default=list)  # [{index, id, label}] of the first samples
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "arrays"], name="dataset_once_per_ws")
        ]

    def __str__(self) -> str:
        return self.name

    def load_arrays(self) -> DatasetArrays:
        with self.arrays.open() as f:
            return DatasetArrays.load(f)

    @cached_property
    def n_classes(self) -> int:
        """How many distinct labels its samples carry (0 when it has none), counted from the
        stored labels: label names may be absent (digits' ten integer classes) or name classes
        no sample has."""
        labels = self.column("y")
        return 0 if labels is None else int(np.unique(labels).size)

    def column(self, key: str) -> np.ndarray | None:
        """One per-sample array of the canonical file (``y``, ``ids``, ``meta:<name>``), or
        None when the dataset has no such column."""
        with self.arrays.open() as f, np.load(f, allow_pickle=False) as z:
            return z[key] if key in z.files else None

    def samples(self, indices: Iterable[int]) -> list[dict]:
        """``{index, id, label}`` of the given samples, and what a person can look at instead
        of a thumbnail: the ``text`` of a text sample, else the first feature values as
        ``row``."""
        indices = [int(i) for i in indices]
        with self.arrays.open() as f:  # only these samples' rows are read (npz_rows)
            ids = npz_rows(f, "ids", indices)
            labels = npz_rows(f, "y", indices)
            rows = npz_rows(f, "x", indices) if self.thumbnails_id is None else None
        assert ids is not None  # every canonical dataset has ids (DatasetArrays.save)
        names = self.label_names
        out = []
        for position, i in enumerate(indices):
            label = ""
            if labels is not None:
                k = int(labels[position])
                label = names[k] if k < len(names) else str(k)
            sample = {"index": i, "id": str(ids[position]), "label": label}
            if rows is not None and self.modality == "text":
                sample["text"] = str(rows[position])
            elif rows is not None:
                values = rows[position].ravel()
                shown = ", ".join(f"{v:.3g}" for v in values[:ROW_VALUES_SHOWN])
                sample["row"] = shown + (", …" if values.size > ROW_VALUES_SHOWN else "")
            out.append(sample)
        return out


ROW_VALUES_SHOWN = 6


class Checkpoint(models.Model):
    class Format(models.TextChoices):
        TORCHSCRIPT = "torchscript", "TorchScript"
        SAFETENSORS = "safetensors", "safetensors + architecture"
        HUGGINGFACE = "huggingface", "Hugging Face directory"
        ONNX = "onnx", "ONNX"
        PRECOMPUTED = "precomputed", "precomputed activations"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="checkpoints")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    filename = models.CharField(max_length=255)
    blob = models.ForeignKey(Blob, on_delete=models.PROTECT, related_name="+")
    format = models.CharField(max_length=20, choices=Format.choices)
    architecture = models.CharField(max_length=100, blank=True)
    parameter_count = models.BigIntegerField()
    layer_tree = models.JSONField()
    layers = models.JSONField()  # capturable layer names, forward order where known
    default_layers = models.JSONField()
    # Precomputed activations belong to the samples of one dataset.
    dataset = models.ForeignKey(
        "Dataset", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    # Lineage: series of checkpoints (seeds of one recipe, training steps) compare as a group.
    parent = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True)
    seed_group = models.CharField(max_length=200, blank=True)
    step = models.BigIntegerField(null=True, blank=True)
    # Training metrics logged with it ({name: number}: loss, accuracy, epoch …), drawn beside
    # its series' dynamics (webapp.catalog.lineage.check_metrics).
    metrics = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "blob", "architecture"], name="checkpoint_once_per_ws"
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def keeps_positions(self) -> bool:
        """Whether an extraction may keep its every position (pooling ``tokens``): any model
        the host runs (every kind of layer takes it), whatever poolings the layer tree
        declared when the checkpoint was described; not precomputed activations, one vector
        per sample. The one rule for both the API and the checkpoint page's form."""
        return self.format != self.Format.PRECOMPUTED


class ActivationSet(models.Model):
    """Activations of one layer of a checkpoint over a dataset: an ``n × d`` float32 blob whose
    rows follow the dataset's sample order. At every position (pooling ``tokens``) ``n`` counts
    rows, one per position, and ``positions`` holds each row's ``sample`` (its index in the
    dataset), ``position`` and ``special`` (:class:`analysis.models.base.Positions`: the rows
    the ``mean`` pooling leaves out; a blob stored without it has none), rows sorted by the
    first two."""

    checkpoint = models.ForeignKey(Checkpoint, on_delete=models.CASCADE, related_name="activations")
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="activations")
    layer = models.CharField(max_length=300)
    pooling = models.CharField(max_length=20)
    blob = models.ForeignKey(Blob, on_delete=models.PROTECT, related_name="+")
    n = models.PositiveIntegerField()
    d = models.PositiveIntegerField()
    dtype = models.CharField(max_length=20, default="float32")
    # Pooling ``tokens``: the int64 arrays ``sample`` and ``position`` of the rows and the
    # boolean ``special`` (an .npz).
    positions = models.ForeignKey(Blob, on_delete=models.PROTECT, null=True, related_name="+")
    run = models.ForeignKey("runs.Run", on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["checkpoint", "dataset", "layer", "pooling"], name="one_activation_set"
            )
        ]

    def __str__(self) -> str:
        return f"{self.checkpoint} · {self.layer} ({self.pooling}) on {self.dataset}"

    def load(self) -> np.ndarray:
        return self.blob.load_array()

    def memory_map(self) -> AbstractContextManager[np.ndarray]:
        """The activations as a read-only memory map (see :meth:`Blob.memory_map`)."""
        return self.blob.memory_map()


def visible_to(model: type[M], user: AnyUser) -> models.QuerySet[M]:
    """Rows of ``model`` (anything with a ``workspace``) in the user's workspaces; everything
    else must look like it does not exist (404, never 403)."""
    if not user.is_authenticated:
        return model._default_manager.none()
    return model._default_manager.filter(workspace__memberships__user=user)


class Fit(models.Model):
    """Whether a checkpoint's model reads a dataset's samples: the first sample run through
    the model in a model host when the later of the two was uploaded (:mod:`webapp.catalog.fits`).
    A request for a run of the pair is refused with the reason where it does not."""

    checkpoint = models.ForeignKey(Checkpoint, on_delete=models.CASCADE, related_name="fits")
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="fits")
    reason = models.TextField(blank=True)  # why the model cannot read it; "": it can
    # What the sample gave at each default layer, for a token-level extraction's size
    # (:func:`webapp.catalog.fits.token_storage`): {"max_tokens": int | None, "layers":
    # {layer: {"positions", "d", "positional"}}} (analysis.host.tasks.fit); {}: not known.
    shapes = models.JSONField(default=dict, blank=True)
    checked_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["checkpoint", "dataset"], name="one_fit_per_pair")
        ]

    def __str__(self) -> str:
        return f"{self.checkpoint} on {self.dataset}: {self.reason or 'fits'}"


class Upload(models.Model):
    """A file on its way into a workspace. Its bytes arrive in one request or in chunks over
    several (resumable): each chunk is stored as an object of its own under ``chunk_prefix``
    in the default storage, and a dropped connection resumes at ``received``. Once every byte
    is in, the upload is *checking*: a worker checks the size and sha256 and parses the file
    (a model only in a model host), then makes the dataset or checkpoint (*done*) or refuses
    the file with the reason (*failed*, nothing else kept) (:mod:`webapp.catalog.uploads`).
    The web process never parses a file."""

    class Kind(models.TextChoices):
        DATASET = "dataset"
        CHECKPOINT = "checkpoint"

    class State(models.TextChoices):
        OPEN = "open"  # receiving bytes
        CHECKING = "checking"  # every byte received: queued for a worker, or being checked
        DONE = "done"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="uploads")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    filename = models.CharField(max_length=255)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    received = models.BigIntegerField(default=0)
    fields = models.JSONField(default=dict)  # name, description, architecture, seed_group, step
    state = models.CharField(max_length=10, choices=State.choices, default=State.OPEN)
    error = models.TextField(blank=True)
    result_id = models.BigIntegerField(null=True)  # the dataset or checkpoint made
    # The check: claimed by a worker (conditional UPDATE), which beats while it checks; the
    # reaper gives a silent one back to the queue, at most REPLENS_MAX_ATTEMPTS times.
    worker = models.CharField(max_length=200, blank=True)
    started_at = models.DateTimeField(null=True)
    heartbeat_at = models.DateTimeField(null=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Set on the uploads webapp.catalog.uploads.shown lists: where one being checked stands
    # in its queue, and what a finished one made.
    place: int | None
    result: Dataset | Checkpoint | None

    class Meta:
        indexes = [models.Index(fields=["state"])]

    def __str__(self) -> str:
        return self.filename

    @property
    def queue(self) -> str:
        """Model files are checked where models run (``gpu`` workers, in a model host);
        datasets and precomputed activations by ``cpu`` workers."""
        if self.kind == self.Kind.CHECKPOINT and not self.fields.get("dataset"):
            return "gpu"
        return "cpu"

    @property
    def chunk_prefix(self) -> str:
        return f"uploads/{self.id}"

    def chunk_key(self, first: int) -> str:
        """The storage key of the chunk that starts at byte ``first``."""
        return f"{self.chunk_prefix}/{first:020d}"


class Invitation(models.Model):
    """A link an owner hands to a colleague: whoever signs in and opens it joins the workspace
    with ``role``, once, before it expires."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="invitations")
    role = models.CharField(max_length=10, choices=Membership.Role.choices)
    token = models.CharField(max_length=64, unique=True, default=new_invitation_token)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(default=invitation_expiry)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    accepted_at = models.DateTimeField(null=True)

    @property
    def usable(self) -> bool:
        return self.accepted_at is None and self.expires_at > timezone.now()
