"""The fair queue: which queued run a free worker takes next, and where a queued run stands.

A broker message only says "a worker of this queue may take a run"; the worker then takes the
first *ready* run (queued, every dependency succeeded) in this order:

1. interactive work (ingest-sized runs: an extraction, an alignment, a projection, a probe of
   one family) before batch work (comparisons, model matrices, compatibility, aligned
   projections, probes of several families);
2. the person with the fewest runs running now, then the one who was served longest ago, so
   that one person's batch of fifty cannot hold another's single run;
3. inside one person's interactive or batch work, the order they were asked for.

The broker's own order therefore never matters: not Redis's, nor the embedded filesystem
transport's (which reads message files in lexicographic order of names that are not
zero-padded). A run is claimed with a conditional UPDATE, so two workers never take the same.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Max
from django.utils import timezone
from django.utils.timesince import timeuntil

from webapp.runs.kinds import KINDS, QUEUE_OF_KIND
from webapp.runs.models import Run

DEFAULT_DURATION_S = 30.0
"""The guess for a kind no run of which has finished yet."""

_FAILED = (Run.State.FAILED, Run.State.CANCELLED)
_UNFINISHED = (Run.State.QUEUED, Run.State.RUNNING)
_LONG_AGO = datetime.min.replace(tzinfo=timezone.get_current_timezone())


def is_interactive(run: Run) -> bool:
    """Not batch work by its kind's spec; a probe of one family is interactive too."""
    if run.kind == Run.Kind.PROBE:
        return len(run.params.get("families", [])) <= 1
    return not KINDS[run.kind].batch


def kinds_of(queue: str) -> list[str]:
    return [kind for kind, q in QUEUE_OF_KIND.items() if q == queue]


def _person(run: Run) -> int:
    return run.created_by_id or -run.workspace_id


def ready_runs(queue: str) -> list[Run]:
    """Queued runs of ``queue`` whose dependencies all succeeded, oldest first."""
    return list(
        Run.objects.filter(state=Run.State.QUEUED, kind__in=kinds_of(queue))
        .exclude(depends_on__state__in=(*_UNFINISHED, *_FAILED))
        .order_by("created_at", "pk")
    )


def blocked_runs(queue: str) -> list[Run]:
    """Queued runs of ``queue`` that can never start: a dependency failed or was cancelled."""
    return list(
        Run.objects.filter(
            state=Run.State.QUEUED, kind__in=kinds_of(queue), depends_on__state__in=_FAILED
        ).distinct()
    )


def fair_order(ready: list[Run]) -> Iterator[Run]:
    """``ready`` (oldest first) in the order workers will take them if nothing else is asked
    for: each step takes the first run of the person the policy serves next (lazily: a
    worker needs only the first)."""
    people = {_person(r) for r in ready}
    running = Counter(
        _person(r)
        for r in Run.objects.filter(state=Run.State.RUNNING).only("created_by", "workspace")
    )
    served = dict(
        Run.objects.filter(created_by__in=[p for p in people if p > 0], started_at__isnull=False)
        .values_list("created_by")
        .annotate(last=Max("started_at"))
    )
    last_served = {p: served.get(p, _LONG_AGO) for p in people}
    remaining = list(ready)
    step = timezone.now()
    while remaining:
        heads: dict[tuple[int, bool], Run] = {}
        for run in remaining:
            heads.setdefault((_person(run), is_interactive(run)), run)
        chosen = min(
            heads.values(),
            key=lambda r: (
                not is_interactive(r),
                running[_person(r)],
                last_served[_person(r)],
                r.created_at,
                r.pk,
            ),
        )
        yield chosen
        remaining.remove(chosen)
        step += timedelta(microseconds=1)
        last_served[_person(chosen)] = step  # served now: the others come first next time


def fail_blocked(queue: str) -> list[Run]:
    """Fail the runs of ``queue`` whose dependencies failed; returns them (their own
    dependents are then blocked in turn)."""
    failed = blocked_runs(queue)
    for run in failed:
        run.fail_for_dependencies()
    return failed


def take_next(queue: str, task_id: str = "", worker: str = "") -> Run | None:
    """Claim the run of ``queue`` the policy serves next; None when none is ready."""
    for run in fair_order(ready_runs(queue)):
        if run.claim(task_id, worker):
            return run
    return None


@dataclass
class Standing:
    """Where a queued run stands: its place among ready runs of its queue (1 = next), the
    runs it still waits for, and when it may start (an estimate from recent run times)."""

    position: int | None
    waiting_for: int
    estimated_start: datetime | None

    def to_json(self) -> dict:
        return {
            "position": self.position,
            "waiting_for": self.waiting_for,
            "estimated_start": self.estimated_start.isoformat() if self.estimated_start else None,
        }

    @property
    def starts_in(self) -> str:
        """When the run may start, in words from now: "in under a minute" where the estimate
        is less than one (Django's ``timeuntil`` would say "0 minutes"), else "in about 3
        minutes"; "" without an estimate (the run waits for others)."""
        if self.estimated_start is None:
            return ""
        if self.estimated_start - timezone.now() < timedelta(minutes=1):
            return "in under a minute"
        return f"in about {timeuntil(self.estimated_start)}"


def typical_durations() -> dict[str, float]:
    """The median duration of the last 50 finished runs of each kind, in seconds."""
    durations = {}
    for kind in Run.Kind.values:
        recent = Run.objects.filter(
            kind=kind, state=Run.State.SUCCEEDED, started_at__isnull=False
        ).order_by("-finished_at")[:50]
        seconds = [r.duration_s for r in recent if r.duration_s is not None]
        durations[kind] = statistics.median(seconds) if seconds else DEFAULT_DURATION_S
    return durations


def standing(run: Run) -> Standing | None:
    """The standing of a queued run; None for a run that is not queued."""
    return standings([run]).get(run.pk)


def standings(runs: list[Run]) -> dict[int, Standing]:
    """The standing of each queued run of ``runs`` (a page of a list: each queue's order is
    worked out once)."""
    queued = [r for r in runs if r.state == Run.State.QUEUED]
    if not queued:
        return {}
    waiting = dict(
        Run.objects.filter(pk__in=[r.pk for r in queued], depends_on__state__in=_UNFINISHED)
        .values_list("pk")
        .annotate(n=Count("depends_on"))
    )
    found = {pk: Standing(None, n, None) for pk, n in waiting.items()}
    durations = typical_durations()
    now = timezone.now()
    for queue in {QUEUE_OF_KIND[r.kind] for r in queued if r.pk not in waiting}:
        order = list(fair_order(ready_runs(queue)))
        running = list(Run.objects.filter(state=Run.State.RUNNING, kind__in=kinds_of(queue)))
        remaining = sum(
            max(0.0, durations[r.kind] - (now - r.started_at).total_seconds())
            for r in running
            if r.started_at
        )
        workers = max(1, len({r.worker for r in running}), _recent_workers(queue))
        ahead = 0.0
        for position, run in enumerate(order):
            start = now + timedelta(seconds=(remaining + ahead) / workers)
            found[run.pk] = Standing(position + 1, 0, start)
            ahead += durations[run.kind]
    return {r.pk: found[r.pk] for r in queued if r.pk in found}


def _recent_workers(queue: str) -> int:
    """How many workers took runs of ``queue`` in the last hour."""
    since = timezone.now() - timedelta(hours=1)
    return (
        Run.objects.filter(kind__in=kinds_of(queue), started_at__gte=since)
        .exclude(worker="")
        .values("worker")
        .distinct()
        .count()
    )
