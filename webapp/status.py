"""What the cluster is doing: which Celery workers answer, the queues they consume, how many
tasks each is running, how long each queue is, and how many runs there are by kind and state.

Only counts, worker node names and queue names: nothing about any workspace. Workers are
asked by broadcast (a ping that waits ``PING_TIMEOUT_S`` for answers, then one request per
question to the workers that answered); the answer is cached for ``CACHE_S`` so that health
probes and a page open in many browsers do not flood the broker.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import kombu
from django.core.cache import cache
from django.db.models import Count
from kombu.exceptions import ChannelError

from webapp.celery import QUEUES, app
from webapp.runs.models import Run

logger = logging.getLogger(__name__)

PING_TIMEOUT_S = 1.0
CACHE_S = 5
CACHE_KEY = "replens:workers-status"
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


def cluster() -> dict:
    """``{"broker": "ok"|"unreachable", "workers": [...], "queues": [...]}``, cached."""
    found = cache.get(CACHE_KEY)
    if found is None:
        found = _ask_the_broker()
        cache.set(CACHE_KEY, found, CACHE_S)
    return found


def overview() -> dict:
    """The cluster and the number of runs by kind and state (always fresh)."""
    counts = (
        Run.objects.order_by("kind", "state").values("kind", "state").annotate(count=Count("pk"))
    )
    return {**cluster(), "runs": list(counts)}


def _ask_the_broker() -> dict:
    try:
        with _connection() as connection:
            connection.ensure_connection(max_retries=0, timeout=BROKER_TIMEOUT_S)
            workers = _workers(connection)
            consumed = [q for w in workers for q in w["queues"]]
            names = sorted({*QUEUES, *consumed})
            lengths = _queue_lengths(connection, names)
    except Exception:
        logger.warning("could not ask the broker about workers and queues", exc_info=True)
        return {"broker": "unreachable", "workers": [], "queues": []}
    queues = [
        {"name": name, "length": lengths[name], "workers": consumed.count(name)} for name in names
    ]
    return {"broker": "ok", "workers": workers, "queues": queues}


def _workers(connection: kombu.Connection) -> list[dict]:
    """The workers answering a ping, with the queues they consume, the tasks they are running,
    their concurrency and how many tasks they have processed since they started."""
    pongs = app.control.ping(timeout=PING_TIMEOUT_S, connection=connection) or []
    names = sorted(name for pong in pongs for name in pong)
    if not names:
        return []
    # Only the workers that answered are asked, and each question ends with their answers.
    inspect = app.control.inspect(
        destination=names, timeout=PING_TIMEOUT_S, limit=len(names), connection=connection
    )
    queues = inspect.active_queues() or {}
    active = inspect.active() or {}
    stats: Mapping[str, Mapping[str, Any]] = inspect.stats() or {}
    return [
        {
            "name": name,
            "queues": sorted(q["name"] for q in queues.get(name, [])),
            "active": len(active.get(name, [])),
            "concurrency": stats.get(name, {}).get("pool", {}).get("max-concurrency"),
            "processed": sum(stats.get(name, {}).get("total", {}).values()),
        }
        for name in names
    ]


def _queue_lengths(connection: kombu.Connection, names: list[str]) -> dict[str, int]:
    """Messages waiting in each queue (not those a worker has taken and not yet finished)."""
    channel = connection.default_channel
    lengths = {}
    for name in names:
        try:
            # typed as the abstract StdChannel; every transport's channel declares queues
            declared = channel.queue_declare(queue=name, passive=True)  # type: ignore[attr-defined]
            lengths[name] = declared.message_count
        except ChannelError:  # Redis keeps no empty list: a queue never used or drained
            lengths[name] = 0
    return lengths
