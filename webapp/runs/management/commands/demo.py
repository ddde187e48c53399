"""Run the embedded demo: migrate, start one worker and the site, build the demo workspaces."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from webapp.runs.management.commands.build_demo import DEMO_PASSWORD, DEMO_USER


class Command(BaseCommand):
    help = "Migrate, serve the site with one Celery worker, and build the demo workspaces."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--addr", default="127.0.0.1:8000")

    def handle(self, *args: Any, addr: str, **options: Any) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)  # hashed and compressed
        settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
        log_path = settings.VAR_DIR / "worker.log"
        # The worker and the site come first: the build's training run logs its checkpoints
        # to the site through the Python client, and the worker checks each upload.
        with open(log_path, "ab") as log:
            worker = subprocess.Popen(worker_command("demo", beat=True), stdout=log, stderr=log)
        try:
            site = threading.Thread(
                target=call_command,
                args=("runserver", addr),
                kwargs={"use_reloader": False, "use_threading": True},
                name="site",
                daemon=True,
            )
            site.start()
            url = local_url(addr)
            wait_for_site(url)
            # The training run's requests are not news: the site's log says only 4xx and 5xx
            # while the demo builds (set once the site serves: its WSGI handler's setup
            # configures the logging again).
            requests_log = logging.getLogger("django.server")
            level = requests_log.level
            requests_log.setLevel(logging.WARNING)
            call_command("build_demo", url=url)
            requests_log.setLevel(level)
            self.stdout.write(
                f"\nRepLens demo: http://{addr}/  (login {DEMO_USER} / {DEMO_PASSWORD})\n"
                f"worker pid {worker.pid}, log {log_path}; Ctrl-C stops both.\n"
            )
            while site.is_alive():
                site.join(timeout=1)
        finally:
            worker.terminate()  # a warm shutdown: it finishes the task it is on
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.stdout.write(f"the worker (pid {worker.pid}) stops once its run is done")


def wait_for_site(url: str, timeout_s: float = 120) -> None:
    """Return once the site at ``url`` answers (any HTTP status), or give up after
    ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            urllib.request.urlopen(f"{url}/healthz", timeout=10).close()
            return
        except urllib.error.HTTPError:  # it answers, if not happily (/healthz says why)
            return
        except OSError as err:
            if time.monotonic() > deadline:
                raise CommandError(f"the demo site did not answer at {url}: {err}") from err
            time.sleep(0.5)


def local_url(addr: str) -> str:
    """The URL this machine reaches runserver's ``addr`` at (``8000``, ``0.0.0.0:8000``,
    ``[::]:8000``, ``host:8000``)."""
    host, _, port = addr.rpartition(":")
    if host in ("", "0", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "[::]":
        host = "[::1]"
    return f"http://{host}:{port}"


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
