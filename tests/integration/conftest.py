"""A real Celery worker process against the test PostgreSQL database and the Redis broker."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from django.db import connection

from webapp.catalog.management.commands.demo import worker_command
from workers.celery import app

ROOT = Path(__file__).resolve().parents[2]


def _database_url() -> str:
    s = connection.settings_dict
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    return f"postgres://{s['USER']}{password}@{s['HOST']}:{s['PORT']}/{s['NAME']}"


@pytest.fixture
def worker(transactional_db, tmp_path):
    """Start a worker on the test database (committed data only: ``transactional_db``)."""
    app.control.purge()
    log = tmp_path / "worker.log"
    env = {**os.environ, "DATABASE_URL": _database_url()}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            worker_command("integration"), cwd=ROOT, env=env, stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + 60
        while not app.control.ping(timeout=1.0):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the worker did not start:\n{log.read_text()[-3000:]}")
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        connection.close()  # the worker's sessions are gone; let the flush reconnect
