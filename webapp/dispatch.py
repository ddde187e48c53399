"""The one place the web layers talk to the workers: through the broker, by task name.

``wake`` tells a queue that work is waiting. The message carries no work, only the queue: a
free worker of that queue takes whatever the fair queue serves next (an upload's check,
:func:`webapp.catalog.uploads.take_next`, else a run, :mod:`webapp.runs.queue`). ``revoke``
kills the pool process computing a task.
"""

from __future__ import annotations

import logging

from django.db import transaction

from webapp.celery import app

logger = logging.getLogger(__name__)

WORK_TASK = "replens.work"


def wake(queue: str) -> None:
    app.send_task(WORK_TASK, args=[queue], queue=queue)


def wake_on_commit(queue: str) -> None:
    """Wake a worker of ``queue`` once the current transaction commits (so that it finds
    the rows this transaction wrote)."""
    transaction.on_commit(lambda: wake(queue), robust=False)


def revoke(task_id: str) -> None:
    """Kill the worker's pool process running task ``task_id`` with SIGKILL (it is replaced).
    Best effort: the broker may be briefly unreachable."""
    try:
        app.control.revoke(task_id, terminate=True, signal="SIGKILL")
    except Exception:
        logger.warning("could not stop task %s", task_id, exc_info=True)
