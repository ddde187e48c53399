"""The Celery app of the project. Configuration comes from Django settings (``CELERY_*``); the
tasks are in ``workers.tasks``, which a worker (``celery -A webapp.celery worker``) imports.
The web layers send to it by task name only (``webapp.dispatch``)."""

from __future__ import annotations

import os
from pathlib import Path

from celery import Celery
from django.conf import settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

app = Celery("replens")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    # Tasks are idempotent, so a message is acknowledged only after the task ran: a worker that
    # dies mid-task gets its message re-delivered rather than lost.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    task_default_queue="default",
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)
app.autodiscover_tasks(["workers"], related_name="tasks")
app.conf.beat_schedule = {
    "reap-stale-runs": {"task": "replens.reap", "schedule": settings.REPLENS_REAP_EVERY_S},
}
app.conf.beat_schedule_filename = str(settings.VAR_DIR / "celerybeat-schedule")

QUEUES = ("default", "gpu", "cpu")
"""``gpu``: work that runs models; ``cpu``: measures; ``default``: light work."""


def ensure_broker_folders() -> None:
    """The filesystem transport needs its folders before anyone sends or receives."""
    options = app.conf.broker_transport_options or {}
    for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
        if key in options:
            Path(options[key]).mkdir(parents=True, exist_ok=True)


ensure_broker_folders()
