"""A worker says it is alive: when it is ready it writes its row (:class:`Worker`: node name,
queues, pool size) and a thread rewrites ``seen_at`` every ``REPLENS_HEARTBEAT_S`` seconds;
when it stops it deletes the row. A worker killed outright stops writing, and the workers page
counts it as gone a few heartbeats later (:mod:`webapp.status`). Rows silent for a day are deleted
by the live workers."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Any

from celery.signals import worker_ready, worker_shutdown
from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone

from webapp.runs.models import Worker

logger = logging.getLogger(__name__)

FORGOTTEN_AFTER = timedelta(days=1)


class Presence:
    """The row of worker ``name``, kept fresh from a thread while the worker runs."""

    def __init__(self, name: str, queues: list[str], concurrency: int | None) -> None:
        self.name, self.queues, self.concurrency = name, queues, concurrency
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._beat, name="presence", daemon=True)

    def start(self) -> None:
        now = timezone.now()
        Worker.objects.update_or_create(
            name=self.name,
            defaults={
                "queues": self.queues,
                "concurrency": self.concurrency,
                "started_at": now,
                "seen_at": now,
            },
        )
        self.thread.start()

    def _beat(self) -> None:
        while not self.stopped.wait(settings.REPLENS_HEARTBEAT_S):
            try:
                now = timezone.now()
                Worker.objects.filter(name=self.name).update(seen_at=now)
                Worker.objects.filter(seen_at__lt=now - FORGOTTEN_AFTER).delete()
            except DatabaseError:  # the database restarts: say so, and reconnect next time
                logger.warning("could not record that worker %s is alive", self.name)
                connection.close()
        connection.close()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=2 * settings.REPLENS_HEARTBEAT_S)
        try:
            Worker.objects.filter(name=self.name).delete()
        except DatabaseError:
            logger.warning("could not record that worker %s stopped", self.name)


_presences: list[Presence] = []


@worker_ready.connect
def _ready(sender: Any, **kwargs: Any) -> None:
    """``sender`` is the worker's consumer: its node name, queues and pool size."""
    queues = sorted(sender.app.amqp.queues.consume_from)
    concurrency = getattr(sender.controller, "concurrency", None)
    presence = Presence(sender.hostname, queues, concurrency)
    presence.start()
    _presences.append(presence)


@worker_shutdown.connect
def _shutdown(sender: Any, **kwargs: Any) -> None:
    while _presences:
        _presences.pop().stop()
