"""Runs (background jobs) and the scores they produce.

The Run row is the source of truth; the broker only carries its id. A run is created before it
is enqueued, enqueued on commit, claimed by a conditional UPDATE (so a replayed message is a
no-op) and keyed by a deterministic request key (so asking twice returns the same run).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from webapp.catalog.models import ActivationSet, Checkpoint, Dataset, Workspace
from webapp.dispatch import revoke, wake_on_commit
from webapp.runs.kinds import KINDS, QUEUE_OF_KIND, Kind
from webapp.version import code_version


class Cancelled(Exception):
    """The run was cancelled (or taken away) while a worker was computing it."""


class Run(models.Model):
    Kind = Kind  # the kinds and their specs: webapp.runs.kinds

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    TERMINAL = (State.SUCCEEDED, State.FAILED, State.CANCELLED)

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="runs")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    name = models.CharField(max_length=200, blank=True)  # given by a person; else a title
    params = models.JSONField()
    request_key = models.CharField(max_length=64, unique=True)
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="runs")
    checkpoint = models.ForeignKey(Checkpoint, on_delete=models.CASCADE, related_name="runs")
    checkpoint_b = models.ForeignKey(
        Checkpoint, on_delete=models.CASCADE, null=True, blank=True, related_name="runs_as_b"
    )
    depends_on = models.ManyToManyField("self", symmetrical=False, related_name="dependents")
    state = models.CharField(max_length=20, choices=State.choices, default=State.QUEUED)
    progress = models.FloatField(default=0.0)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)  # claims by a worker
    error = models.TextField(blank=True)
    error_details = models.TextField(
        blank=True, help_text="the text behind the error (a model's traceback), shown folded"
    )
    celery_task_id = models.CharField(max_length=64, default="")
    worker = models.CharField(max_length=200, blank=True)  # Celery node name of the last claim
    code_version = models.CharField(max_length=40, default=code_version)  # then the worker's
    timings = models.JSONField(default=dict)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Set on the members of an aligned run the run page lists: the projection before this one.
    previous: Run | None

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["state"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk}"

    @property
    def is_terminal(self) -> bool:
        return self.state in self.TERMINAL

    @property
    def duration_s(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None

    @staticmethod
    def key_for(kind: str, **identity: Any) -> str:
        """Deterministic key of a request: the same request always maps to the same run."""
        text = json.dumps({"kind": kind, **identity}, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    @classmethod
    def request_key_of(
        cls, kind: str, dataset: int, checkpoint: int, checkpoint_b: int | None, params: dict
    ) -> str:
        """The key of a request, from the ids of its rows and its parameters: a series names
        its checkpoints in ``params``; a space of an aligned projection run is keyed by that
        run and its position."""
        if "aligned" in params:
            return cls.key_for(kind, aligned=params["aligned"], position=params["position"])
        if "checkpoints" in params:
            ids = {}
        elif checkpoint_b is None:
            ids = {"checkpoint": checkpoint}
        else:
            ids = {"checkpoint_a": checkpoint, "checkpoint_b": checkpoint_b}
        return cls.key_for(kind, dataset=dataset, **ids, **params)

    @classmethod
    def submit(
        cls, *, kind: str, request_key: str, depends_on: Iterable[Run] = (), **fields: Any
    ) -> tuple[Run, bool]:
        """The run for this request, and whether this call queued work: a new run, or a
        failed or cancelled one asked for again. Work is enqueued when the transaction commits.
        """
        with transaction.atomic():
            run, queued = cls.objects.get_or_create(
                request_key=request_key, defaults={"kind": kind, **fields}
            )
            if queued:
                run.depends_on.set(depends_on)
            elif run.state in (cls.State.FAILED, cls.State.CANCELLED):
                queued = bool(
                    cls.objects.filter(pk=run.pk, state=run.state).update(
                        state=cls.State.QUEUED,
                        error="",
                        error_details="",
                        progress=0.0,
                        started_at=None,
                        finished_at=None,
                        heartbeat_at=None,
                    )
                )
                run.refresh_from_db()
            if queued:
                run.enqueue_on_commit()
        return run, queued

    def enqueue_on_commit(self) -> None:
        """Wake a worker of the run's queue once the transaction commits."""
        wake_on_commit(QUEUE_OF_KIND[self.kind])

    def dependencies_state(self) -> str:
        """``ready``, ``waiting`` or ``failed`` according to the runs this one depends on."""
        states = set(self.depends_on.values_list("state", flat=True))
        if states & {self.State.FAILED, self.State.CANCELLED}:
            return "failed"
        if states - {self.State.SUCCEEDED}:
            return "waiting"
        return "ready"

    def fail_for_dependencies(self) -> None:
        """Fail this queued run because a run it depends on failed or was cancelled."""
        failed = self.depends_on.filter(state__in=[self.State.FAILED, self.State.CANCELLED]).first()
        assert failed is not None  # called once dependencies_state() is "failed"
        self.finish(self.State.FAILED, f"{failed} did not succeed: {failed.error or failed.state}")

    def claim(self, task_id: str = "", worker: str = "") -> bool:
        """Take the run for this worker's task ``task_id`` (the one to revoke on cancel) on
        the Celery node ``worker``; False if another delivery already has it."""
        now = timezone.now()
        claimed = Run.objects.filter(pk=self.pk, state=self.State.QUEUED).update(
            code_version=code_version(),  # the code that computes it
            celery_task_id=task_id or self.celery_task_id,
            worker=worker,
            state=self.State.RUNNING,
            started_at=now,
            heartbeat_at=now,
            progress=0.0,
            attempts=models.F("attempts") + 1,
        )
        if claimed:
            self.refresh_from_db()
        return bool(claimed)

    def report_progress(self, fraction: float) -> None:
        """Record progress and a heartbeat; raise :class:`Cancelled` if the run was cancelled."""
        updated = Run.objects.filter(pk=self.pk, state=self.State.RUNNING).update(
            progress=max(0.0, min(1.0, fraction)), heartbeat_at=timezone.now()
        )
        if not updated:
            raise Cancelled(f"run {self.pk} is no longer running")

    def check_running(self) -> None:
        """Raise :class:`Cancelled` if the run was cancelled (or taken away) meanwhile."""
        if not Run.objects.filter(pk=self.pk, state=self.State.RUNNING).exists():
            raise Cancelled(f"run {self.pk} is no longer running")

    def finish(
        self, state: str, error: str = "", timings: dict | None = None, details: str = ""
    ) -> None:
        fields = {
            "state": state,
            "error": error,
            "error_details": details,
            "finished_at": timezone.now(),
        }
        if state == self.State.SUCCEEDED:
            fields["progress"] = 1.0
        if timings is not None:
            fields["timings"] = timings
        Run.objects.filter(pk=self.pk).exclude(state__in=self.TERMINAL).update(**fields)
        self.refresh_from_db()

    def beat(self) -> bool:
        """Say the worker computing this run is alive; False once it is no longer running."""
        return bool(
            Run.objects.filter(pk=self.pk, state=self.State.RUNNING).update(
                heartbeat_at=timezone.now()
            )
        )

    def cancel(self) -> bool:
        """Cancel the run; the computation of a running one is stopped within seconds: a
        model host's supervisor sees the cancel within a second and kills the host itself;
        other runs compute in a worker's pool process, which is killed with SIGKILL (native
        code cannot delay it) and replaced. Best effort: a worker that misses the signal stops
        at the run's next progress report."""
        was_running = Run.objects.filter(pk=self.pk, state=self.State.RUNNING).exists()
        cancelled = (
            Run.objects.filter(pk=self.pk)
            .exclude(state__in=self.TERMINAL)
            .update(state=self.State.CANCELLED, finished_at=timezone.now())
        )
        self.refresh_from_db()
        if cancelled and was_running and not KINDS[self.kind].hosted and self.celery_task_id:
            revoke(self.celery_task_id)
        return bool(cancelled)


def reap_stale_runs(stale_after_s: float, max_attempts: int) -> dict[str, list[int]]:
    """Runs marked running whose worker stopped beating for ``stale_after_s`` (killed, out of
    memory, machine gone): queued again while they have attempts left, else failed. Never
    computed twice at once: a live worker beats every few seconds, and a run is only queued
    again after its worker fell silent; results are written by run, so a retry replaces."""
    cutoff = timezone.now() - timedelta(seconds=stale_after_s)
    found: dict[str, list[int]] = {"queued": [], "failed": []}
    stale = Run.objects.filter(state=Run.State.RUNNING, heartbeat_at__lt=cutoff)
    for run in stale:
        if run.attempts < max_attempts:
            updated = Run.objects.filter(
                pk=run.pk, state=Run.State.RUNNING, heartbeat_at__lt=cutoff
            )
            if updated.update(state=Run.State.QUEUED, progress=0.0, heartbeat_at=None):
                found["queued"].append(run.pk)
                run.enqueue_on_commit()
        else:
            message = (
                f"the worker stopped responding ({run.attempts} attempts); "
                "it may have run out of memory or been killed"
            )
            updated = Run.objects.filter(
                pk=run.pk, state=Run.State.RUNNING, heartbeat_at__lt=cutoff
            )
            if updated.update(state=Run.State.FAILED, error=message, finished_at=timezone.now()):
                found["failed"].append(run.pk)
                for dependent in run.dependents.filter(state=Run.State.QUEUED):
                    dependent.enqueue_on_commit()
    return found


class Worker(models.Model):
    """A Celery worker that says it is alive (:mod:`workers.presence`): written when it is
    ready and every ``REPLENS_HEARTBEAT_S`` seconds after, deleted when it stops. One silent
    for a few heartbeats (``webapp.status.silent_after_s``) stopped without saying so
    (killed, out of memory, machine gone)."""

    name = models.CharField(max_length=200, unique=True)  # the Celery node name: "cpu@host"
    queues = models.JSONField(default=list)  # the queues it consumes
    concurrency = models.PositiveIntegerField(null=True)  # pool processes
    started_at = models.DateTimeField()
    seen_at = models.DateTimeField()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Score(models.Model):
    """One global score between a layer of checkpoint A and a layer of checkpoint B, with the
    provenance needed to trust it."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="scores")
    measure = models.CharField(max_length=60)  # stable id from analysis.measures.engine
    estimator = models.CharField(max_length=300, blank=True)
    parameters = models.JSONField(default=dict)
    activation_a = models.ForeignKey(ActivationSet, on_delete=models.CASCADE, related_name="+")
    activation_b = models.ForeignKey(ActivationSet, on_delete=models.CASCADE, related_name="+")
    layer_a = models.CharField(max_length=300)
    layer_b = models.CharField(max_length=300)
    # None where the measure refused this pair (the reason is in ``warnings``).
    value = models.FloatField(null=True)
    baseline = models.FloatField(null=True)
    baseline_std = models.FloatField(null=True)
    ci_low = models.FloatField(null=True)  # bootstrap 95 % interval over samples
    ci_high = models.FloatField(null=True)
    # Per-sample kNN Jaccard agreement between the two layers (n float32, dataset order): the
    # drill-down from this global score to the samples behind it.
    sample_agreement = models.ForeignKey(
        "catalog.Blob", on_delete=models.PROTECT, null=True, related_name="+"
    )
    n = models.PositiveIntegerField()
    d_a = models.PositiveIntegerField()
    d_b = models.PositiveIntegerField()
    warnings = models.JSONField(default=list)
    code_version = models.CharField(max_length=40)
    created_at = models.DateTimeField(auto_now_add=True)
    # Set on the scores webapp.runs.results.scores_with_cells lists: their cell in the layer ×
    # layer matrix.
    row: int
    col: int

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["run", "measure", "activation_a", "activation_b"],
                name="one_score_per_pair",
            )
        ]


class Alignment(models.Model):
    """A map fitted from a layer of checkpoint A to a layer of checkpoint B on a training
    split of the samples, and how well it transfers to the held-out ones."""

    run = models.OneToOneField(Run, on_delete=models.CASCADE, related_name="alignment")
    activation_a = models.ForeignKey(ActivationSet, on_delete=models.CASCADE, related_name="+")
    activation_b = models.ForeignKey(ActivationSet, on_delete=models.CASCADE, related_name="+")
    method = models.CharField(max_length=40)  # a key of analysis.measures.alignment.METHODS
    estimator = models.CharField(max_length=300, blank=True)
    parameters = models.JSONField(default=dict)
    n_train = models.PositiveIntegerField()
    n_test = models.PositiveIntegerField()
    d_a = models.PositiveIntegerField()
    d_b = models.PositiveIntegerField()
    r2 = models.FloatField()  # held out
    r2_shuffled = models.FloatField()  # the same map fitted on shuffled pairs
    retrieval_top1 = models.FloatField()
    retrieval_top5 = models.FloatField()
    retrieval_chance_top1 = models.FloatField()
    # Per-sample squared residual over the mean squared deviation (n float32, dataset order)
    # and which samples were held out (n bool).
    residuals = models.ForeignKey("catalog.Blob", on_delete=models.PROTECT, related_name="+")
    test_mask = models.ForeignKey("catalog.Blob", on_delete=models.PROTECT, related_name="+")
    warnings = models.JSONField(default=list)
    code_version = models.CharField(max_length=40)
    created_at = models.DateTimeField(auto_now_add=True)


class CompatibilityResult(models.Model):
    """Cross-model retrieval between the checkpoints of a series (query by model i, gallery by
    model j) and the compatibility criteria derived from it."""

    run = models.OneToOneField(Run, on_delete=models.CASCADE, related_name="compatibility")
    result = models.JSONField()  # analysis.measures.compatibility.Compatibility.to_json()
    query_indices = models.JSONField()  # dataset rows of the queries; flips index into these
    code_version = models.CharField(max_length=40)
    created_at = models.DateTimeField(auto_now_add=True)


class Projection(models.Model):
    """2-D coordinates of every sample of one activation set (PCA, UMAP or t-SNE). Runs with
    other parameters make other projections, kept side by side."""

    run = models.OneToOneField(Run, on_delete=models.CASCADE, related_name="projection")
    activation = models.ForeignKey(ActivationSet, on_delete=models.CASCADE, related_name="+")
    method = models.CharField(max_length=20)  # a key of analysis.explorer.projection.METHODS
    parameters = models.JSONField(default=dict)
    estimator = models.CharField(max_length=300, blank=True)
    coordinates = models.ForeignKey("catalog.Blob", on_delete=models.PROTECT, related_name="+")
    explained_variance = models.JSONField(null=True)
    # Each sample's k nearest neighbours in the original space (n × k int32, nearest first),
    # their distances (n × k float32), and the share of them the projection keeps (n float32).
    knn_k = models.PositiveIntegerField()
    knn_metric = models.CharField(max_length=20)
    neighbours = models.ForeignKey("catalog.Blob", on_delete=models.PROTECT, related_name="+")
    neighbour_distances = models.ForeignKey(
        "catalog.Blob", on_delete=models.PROTECT, related_name="+"
    )
    kept = models.ForeignKey("catalog.Blob", on_delete=models.PROTECT, related_name="+")
    # analysis.explorer.geometry.Geometry.to_json() of the layer
    geometry = models.JSONField(default=dict)
    warnings = models.JSONField(default=list)
    code_version = models.CharField(max_length=40)
    created_at = models.DateTimeField(auto_now_add=True)


class Selection(models.Model):
    """A set of samples of one dataset, drawn on a projection (lasso or box, resolved on the
    server against the stored coordinates) or given as indices. A selection without a name is a
    draft: the last thing a user drew, kept so that its URL can be shared; naming it saves it."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="selections")
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="selections")
    projection = models.ForeignKey(
        Run, on_delete=models.SET_NULL, null=True, blank=True, related_name="selections"
    )
    polygon = models.JSONField(null=True)  # [[x, y], …] in the projection's coordinates
    name = models.CharField(max_length=200, blank=True)
    tags = models.JSONField(default=list)
    indices = models.ForeignKey("catalog.Blob", on_delete=models.PROTECT, related_name="+")
    count = models.PositiveIntegerField()  # uint32 sample indices, ascending, in ``indices``
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name or f"selection #{self.pk} (unsaved)"


class ProbeResult(models.Model):
    """How every probed layer of a checkpoint responds to one transformation family over its
    magnitude grid (invariance, learned-map equivariance, structured error, Lie derivative,
    transform prediction, prediction consistency)."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="probe_results")
    family = models.CharField(max_length=60)  # a key of analysis.probes.transforms.FAMILIES
    result = models.JSONField()  # analysis.probes.engine.FamilyProbe.to_json()
    # Per-sample invariance, float32 (layers, magnitudes, n): the samples moved most.
    per_sample = models.ForeignKey("catalog.Blob", on_delete=models.PROTECT, related_name="+")
    # The samples a page shows as the probe showed them to the model (an .npz of
    # analysis.probes.previews): None for vector families and runs from before they were kept.
    previews = models.ForeignKey(
        "catalog.Blob", on_delete=models.PROTECT, null=True, related_name="+"
    )
    code_version = models.CharField(max_length=40)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(fields=["run", "family"], name="one_result_per_family")
        ]


class SeriesCell(models.Model):
    """One measure's value between two stored activation sets (one layer of two checkpoints of
    a series on one dataset), with the measure's settings: kept apart from any run so that a
    series that grows by a checkpoint computes only its new cells (:mod:`analysis.dynamics`)."""

    activation_a = models.ForeignKey(ActivationSet, on_delete=models.CASCADE, related_name="+")
    activation_b = models.ForeignKey(ActivationSet, on_delete=models.CASCADE, related_name="+")
    measure = models.CharField(max_length=60)
    settings = models.JSONField()  # Measure.settings()
    value = models.FloatField(null=True)  # None where the measure refused the pair
    refusal = models.TextField(blank=True)
    run = models.ForeignKey(Run, on_delete=models.SET_NULL, null=True, related_name="+")
    code_version = models.CharField(max_length=40)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["activation_a", "activation_b", "measure", "settings"],
                name="one_series_cell",
            )
        ]


class KeptPreparation(models.Model):
    """The costly part of one activation set prepared for one measure and settings
    (``Measure.kept``: a kNN graph), so that a series that grows by a checkpoint does not
    prepare its earlier steps again (analysis.dynamics.series)."""

    activation = models.ForeignKey(ActivationSet, on_delete=models.CASCADE, related_name="+")
    measure = models.CharField(max_length=60)
    settings = models.JSONField()  # Measure.settings()
    blob = models.ForeignKey("catalog.Blob", on_delete=models.PROTECT, related_name="+")
    code_version = models.CharField(max_length=40)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["activation", "measure", "settings"], name="one_kept_preparation"
            )
        ]


class LayerStatistics(models.Model):
    """The statistics of one stored activation set (analysis.dynamics.series.step_statistics)
    for one choice of label columns, kept for every series that includes its checkpoint."""

    activation = models.ForeignKey(ActivationSet, on_delete=models.CASCADE, related_name="+")
    columns = models.JSONField()  # the label columns probed, in order
    statistics = models.JSONField()  # StepStatistics.to_json()
    run = models.ForeignKey(Run, on_delete=models.SET_NULL, null=True, related_name="+")
    code_version = models.CharField(max_length=40)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["activation", "columns"], name="one_layer_statistics")
        ]


class Report(models.Model):
    """A run's result as one JSON document, for the kinds whose result is small enough and
    read whole (a series' dynamics …); webapp.runs.results assembles each page's view of it.
    Per-sample arrays belong in a model of their own with Blob foreign keys, which keep the
    blobs from garbage collection (webapp.catalog.retention)."""

    run = models.OneToOneField(Run, on_delete=models.CASCADE, related_name="report")
    result = models.JSONField()
    code_version = models.CharField(max_length=40)
    created_at = models.DateTimeField(auto_now_add=True)
