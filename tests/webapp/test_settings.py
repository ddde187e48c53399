"""Settings come from the environment and fail loudly on bad values."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def load_settings(env: dict[str, str], unset=()) -> subprocess.CompletedProcess:
    """Import the settings in a fresh interpreter; print the database engine and broker."""
    base = {k: v for k, v in os.environ.items() if k not in env and k not in unset}
    code = (
        "import webapp.settings as s; print(s.DATABASES['default']['ENGINE'], s.CELERY_BROKER_URL)"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DEBUG", "maybe"),
        ("DATABASE_URL", "nosuchdb://x"),
        ("CELERY_BROKER_URL", "kafka://localhost"),
        ("REPLENS_MAX_UPLOAD_BYTES", "lots"),
        ("REPLENS_MAX_UPLOAD_BYTES", "0"),
    ],
)
def test_a_bad_value_stops_start_up_naming_the_variable(variable, value):
    result = load_settings({variable: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and variable in result.stderr


def test_defaults_give_the_embedded_database(tmp_path):
    result = load_settings(
        {"REPLENS_VAR_DIR": str(tmp_path)}, unset=("DATABASE_URL", "CELERY_BROKER_URL")
    )
    assert result.stdout.split() == ["django.db.backends.sqlite3", "filesystem://"]
