"""Waking a worker: how the web layers tell a queue that work is waiting, by task name.

The message carries no work, only the queue: a free worker of that queue takes whatever the
fair queue serves next (:mod:`webapp.runs.queue`, :func:`webapp.catalog.uploads.take_next`).
"""

from __future__ import annotations

from django.db import transaction

from workers.celery import app

WORK_TASK = "replens.work"


def wake(queue: str) -> None:
    app.send_task(WORK_TASK, args=[queue], queue=queue)


def wake_on_commit(queue: str) -> None:
    """Wake a worker of ``queue`` once the current transaction commits (so that it finds
    the rows this transaction wrote)."""
    transaction.on_commit(lambda: wake(queue), robust=False)
