"""Run the embedded demo: migrate, build the demo workspace, start one worker and the site."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from webapp.runs.management.commands.build_demo import DEMO_PASSWORD, DEMO_USER


class Command(BaseCommand):
    help = "Migrate, build the demo workspace, then serve the site with one Celery worker."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--addr", default="127.0.0.1:8000")

    def handle(self, *args: Any, addr: str, **options: Any) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)  # hashed and compressed
        call_command("build_demo")
        settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
        log_path = settings.VAR_DIR / "worker.log"
        with open(log_path, "ab") as log:
            worker = subprocess.Popen(worker_command("demo", beat=True), stdout=log, stderr=log)
        self.stdout.write(
            f"\nRepLens demo: http://{addr}/  (login {DEMO_USER} / {DEMO_PASSWORD})\n"
            f"worker pid {worker.pid}, log {log_path}; Ctrl-C stops both.\n"
        )
        try:
            call_command("runserver", addr, use_reloader=False, use_threading=True)
        finally:
            worker.terminate()
            worker.wait(timeout=30)


def worker_command(
    name: str, concurrency: int = 1, beat: bool = False, queues: tuple[str, ...] = ()
) -> list[str]:
    """The Celery worker node ``name@<host>`` that serves ``queues`` (by default every queue,
    as the embedded default needs); with ``beat``, it also runs the periodic tasks (the reaper
    of stale runs; one beat per deployment)."""
    from webapp.celery import QUEUES

    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "webapp.celery",
        "worker",
        "-Q",
        ",".join(queues or QUEUES),
        "-c",
        str(concurrency),
        "-n",
        f"{name}@%h",
        "--loglevel",
        "INFO",
        *(["--beat"] if beat else []),
    ]
