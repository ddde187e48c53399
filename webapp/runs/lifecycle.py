"""Renaming and deleting what a workspace holds: datasets, checkpoints, runs with their results.

Deleting a row takes with it everything that needs it: the rows Django's foreign keys cascade
to, the runs that depend on a deleted run, the activation sets an extraction made and the runs
whose results used them, until nothing more follows. :func:`plan` says what that is, so a page
can show it before anyone confirms; :func:`delete` removes it in one transaction, or refuses
while one of those runs is queued or running (a worker would write into rows that are gone).
The blobs only the deleted rows held are collected too: their rows at once, their bytes once
the transaction commits.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

from django.core.files.storage import default_storage
from django.db import DEFAULT_DB_ALIAS, models, transaction
from django.db.models.deletion import Collector
from django.utils import timezone

from analysis.errors import InputError
from webapp.catalog.models import ActivationSet, Blob, Checkpoint, Dataset
from webapp.catalog.retention import blob_fields, unreferenced_blobs
from webapp.catalog.workspaces import clean_name
from webapp.runs.models import Alignment, Projection, Run, Score, Selection

M = TypeVar("M", bound=models.Model)
Collected = dict[type[models.Model], set[models.Model]]

Deletable = Dataset | Checkpoint | Run


class _EveryRow(Collector):
    """A collector that loads every row it will delete (no fast deletes), so that each one's
    blobs are known and the page can count them."""

    def can_fast_delete(self, *args: object, **kwargs: object) -> bool:
        return False


@dataclass
class Removal:
    """What deleting ``target`` removes."""

    target: Deletable
    datasets: list[Dataset] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)
    selections: list[Selection] = field(default_factory=list)
    activations: int = 0
    results: int = 0  # scores, alignments, projections, probe results, compatibility results
    blobs: set[int] = field(default_factory=set)  # blob ids the deleted rows hold
    collector: Collector | None = None

    @property
    def active(self) -> list[Run]:
        """The runs a worker may be computing: deleting waits until they end."""
        return [r for r in self.runs if not r.is_terminal]

    @property
    def dependants(self) -> list[Deletable | Selection]:
        """What goes besides the target itself, datasets and checkpoints first."""
        rows: list[Deletable | Selection] = [*self.datasets, *self.checkpoints, *self.runs]
        return [r for r in [*rows, *self.selections] if r != self.target]


def _rows(collected: Collected, model: type[M]) -> list[M]:
    """The collected rows of ``model``, by id."""
    return sorted(collected.get(model, set()), key=lambda row: row.pk)  # type: ignore[arg-type]


def _sources(collected: Collected) -> set[models.Model]:
    """Rows that must go with the collected ones but that no foreign key cascades to: the
    runs depending on a collected run, the activation sets a collected extraction made, the
    runs whose results use a collected activation set, and the extractions that made one (a
    finished extraction whose activations are gone would be found again, and not rerun)."""
    run_ids = {r.pk for r in _rows(collected, Run)}
    more: set[models.Model] = set(
        Run.objects.filter(depends_on__in=run_ids).exclude(pk__in=run_ids).distinct()
    )
    more |= set(ActivationSet.objects.filter(run__in=run_ids))
    owners = {row.run_id for row in _rows(collected, Score)}
    owners |= {row.run_id for row in _rows(collected, Alignment)}
    owners |= {row.run_id for row in _rows(collected, Projection)}
    more |= set(Run.objects.filter(pk__in=owners - run_ids))
    for activation in _rows(collected, ActivationSet):  # and every extraction that made it
        extractions = Run.objects.filter(
            kind=Run.Kind.EXTRACT,
            checkpoint=activation.checkpoint_id,
            dataset=activation.dataset_id,
            params__pooling=activation.pooling,
        ).exclude(pk__in=run_ids)
        more |= {run for run in extractions if activation.layer in run.params["layers"]}
    return {row for row in more if row not in collected.get(type(row), set())}


def plan(target: Deletable) -> Removal:
    """What deleting ``target`` takes with it (nothing is deleted)."""
    seeds: list[models.Model] = [target]
    while True:
        collector = _EveryRow(using=DEFAULT_DB_ALIAS)
        for model in {type(seed) for seed in seeds}:  # a collector takes one model at a time
            collector.collect([seed for seed in seeds if type(seed) is model])
        collected = {model: set(rows) for model, rows in collector.data.items()}
        more = _sources(collected)
        if not more:
            break
        seeds += sorted(more, key=lambda row: (type(row).__name__, row.pk))
    removal = Removal(
        target=target,
        datasets=_rows(collected, Dataset),
        checkpoints=_rows(collected, Checkpoint),
        runs=_rows(collected, Run),
        selections=_rows(collected, Selection),
        activations=len(collected.get(ActivationSet, set())),
        collector=collector,
    )
    for model, rows in collected.items():
        if model._meta.app_label == "runs" and model not in (Run, Selection):
            removal.results += 0 if model._meta.auto_created else len(rows)
        for blob_field in blob_fields(model):
            removal.blobs |= {getattr(row, blob_field.attname) for row in rows} - {None}
    return removal


def delete(target: Deletable) -> Removal:
    """Delete ``target`` and what depends on it (see :func:`plan`), then the blobs nothing
    references any more; :class:`InputError` while a run among them is queued or running."""
    with transaction.atomic():
        removal = plan(target)
        # Their states under a lock: a run asked for again (failed → queued) or claimed by a
        # worker meanwhile (conditional UPDATEs) waits for this transaction, then finds no row.
        states = dict(
            Run.objects.select_for_update()
            .filter(pk__in=[run.pk for run in removal.runs])
            .values_list("pk", "state")
        )
        for run in removal.runs:
            run.state = states.get(run.pk, run.state)
        if removal.active:
            run = removal.active[0]
            raise InputError(
                f"{run} is {run.state}: cancel it or wait until it ends, then delete again"
            )
        assert removal.collector is not None
        removal.collector.delete()
        collect_blobs(removal.blobs)
    return removal


def collect_blobs(candidates: Iterable[int]) -> int:
    """Delete the blobs among ``candidates`` that no row references: their rows now, their
    bytes when the transaction commits (a rolled-back delete keeps them)."""
    orphans = list(unreferenced_blobs(timezone.now()).filter(pk__in=list(candidates)))
    Blob.objects.filter(pk__in=[blob.pk for blob in orphans]).delete()
    for blob in orphans:
        transaction.on_commit(partial(default_storage.delete, blob.key))
    return len(orphans)


def rename(target: Dataset | Checkpoint | Run, name: str) -> None:
    """Give ``target`` a new name (a run: a name shown instead of its title)."""
    target.name = clean_name(name)
    target.save(update_fields=["name"])
