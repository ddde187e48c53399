"""The test run's own guarantees: under CI=true nothing runs on SQLite or the filesystem
broker; without services, ``tests.services`` starts throwaway ones."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT


def _pytest(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_under_ci_a_run_on_sqlite_or_the_filesystem_broker_stops_before_any_test(tmp_path):
    result = _pytest(
        {
            "CI": "true",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
            "CELERY_BROKER_URL": "filesystem://",
            "REPLENS_VAR_DIR": str(tmp_path),
        },
        "tests/analysis/test_errors.py",  # no database at all: still refused
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "under CI=true the tests cannot run" in output
    assert "DATABASE_URL is not PostgreSQL" in output and "CELERY_BROKER_URL is not Redis" in output
    assert " passed" not in output


def test_without_services_throwaway_ones_are_started_and_removed():
    """Ports where nothing listens (this machine's own services stay untouched)."""
    database, broker = "postgres://postgres@127.0.0.1:55439/replens", "redis://127.0.0.1:56389/0"
    probe = (
        "import os, psycopg, redis; "
        "psycopg.connect('postgresql://postgres@127.0.0.1:55439/postgres').close(); "
        "print(redis.Redis(port=56389).ping(), os.environ['DATABASE_URL'])"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.services",
            database,
            broker,
            "--",
            sys.executable,
            "-c",
            probe,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", database]
    assert "started a throwaway PostgreSQL on 127.0.0.1:55439" in result.stderr
    assert "started a throwaway Redis on 127.0.0.1:56389" in result.stderr
    from tests.services import listening

    assert not listening("127.0.0.1", 55439) and not listening("127.0.0.1", 56389)
