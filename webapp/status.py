"""What the cluster is doing: which Celery workers are alive, the queues they consume, what
each is running, how many runs wait for each queue, and how many runs there are by kind and
state.

Only counts, worker node names and queue names: nothing about any workspace. Everything comes
from the database: each worker writes a row of its own when it is ready and every
``REPLENS_HEARTBEAT_S`` seconds after (:mod:`workers.presence`), and the runs it claims name
it. So the page answers at once, lists every live worker however busy it is (a worker in a long task
answers no broadcast), and its counts are those of the runs themselves. Only the broker's
reachability is asked of the broker, and that answer is cached for ``CACHE_S``.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import kombu
from django.conf import settings
from django.core.cache import cache
from django.db.models import Count
from django.utils import timezone

from webapp.celery import QUEUES, app
from webapp.runs.kinds import QUEUE_OF_KIND
from webapp.runs.models import Run, Worker

logger = logging.getLogger(__name__)

SILENT_BEATS = 3  # a worker silent for this many heartbeats is not counted as alive
SILENT_SHOWN_S = 3600  # how long a worker that fell silent stays listed as such
CACHE_S = 5
CACHE_KEY = "replens:broker-reachable"
BROKER_TIMEOUT_S = 2  # connecting and each socket operation; an unreachable broker fails fast


def _connection() -> kombu.Connection:
    return app.connection_for_write(
        transport_options={
            "socket_connect_timeout": BROKER_TIMEOUT_S,
            "socket_timeout": BROKER_TIMEOUT_S,
        }
    )


def broker_reachable() -> bool:
    """Whether a connection to the broker can be made now."""
    try:
        with _connection() as connection:
            connection.ensure_connection(max_retries=0, timeout=BROKER_TIMEOUT_S)
    except Exception:
        logger.warning("the broker is unreachable", exc_info=True)
        return False
    return True


def silent_after_s() -> float:
    """How long a live worker may go without writing that it is alive."""
    return SILENT_BEATS * settings.REPLENS_HEARTBEAT_S


def live_workers() -> list[Worker]:
    """The workers heard from within :func:`silent_after_s`."""
    since = timezone.now() - timedelta(seconds=silent_after_s())
    return list(Worker.objects.filter(seen_at__gte=since))


def overview() -> dict:
    """``{"broker", "silent_after_s", "workers", "silent", "queues", "runs"}``: the broker's
    reachability (cached), how long a live worker may stay silent, every live worker with the
    runs it is running and has finished since it started, the workers that fell silent within
    the hour, each queue with the runs waiting for it and the live workers consuming it, and
    the runs by kind and state."""
    reachable = cache.get(CACHE_KEY)
    if reachable is None:
        reachable = broker_reachable()
        cache.set(CACHE_KEY, reachable, CACHE_S)
    workers = live_workers()
    running = dict(
        Run.objects.filter(state=Run.State.RUNNING)
        .values_list("worker")
        .annotate(count=Count("pk"))
        .order_by()
    )
    counts = list(
        Run.objects.order_by("kind", "state").values("kind", "state").annotate(count=Count("pk"))
    )
    waiting = dict.fromkeys(sorted({*QUEUES, *(q for w in workers for q in w.queues)}), 0)
    for row in counts:
        if row["state"] == Run.State.QUEUED:
            waiting[QUEUE_OF_KIND[row["kind"]]] += row["count"]
    silent = Worker.objects.filter(
        seen_at__lt=timezone.now() - timedelta(seconds=silent_after_s()),
        seen_at__gte=timezone.now() - timedelta(seconds=SILENT_SHOWN_S),
    )
    return {
        "broker": "ok" if reachable else "unreachable",
        "silent_after_s": silent_after_s(),
        "workers": [
            {
                "name": w.name,
                "queues": w.queues,
                "active": running.get(w.name, 0),
                "concurrency": w.concurrency,
                "processed": Run.objects.filter(
                    worker=w.name, finished_at__gte=w.started_at
                ).count(),
                "started_at": w.started_at,
            }
            for w in workers
        ],
        "silent": [{"name": w.name, "seen_at": w.seen_at} for w in silent],
        "queues": [
            {
                "name": name,
                "waiting": count,
                "workers": sum(name in w.queues for w in workers),
            }
            for name, count in waiting.items()
        ],
        "runs": counts,
    }
