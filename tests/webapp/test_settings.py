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
        ("REPLENS_API_RATE", "lots"),
        ("REPLENS_API_ANON_RATE", "100/fortnight"),
        ("REPLENS_DEVICE", "tpu"),
        ("STORAGE_BACKEND", "myapp.storage.Custom"),
        ("CACHE_URL", "memcached://localhost"),
        ("LOG_LEVEL", "LOUD"),
        ("REPLENS_HTTPS", "sometimes"),
        ("SECRET_KEY", "change-me-to-a-long-random-string"),
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


def test_a_site_others_can_reach_does_not_start_without_its_own_secret_key():
    public = {"ALLOWED_HOSTS": "replens.example.org", "DEBUG": "false"}
    refused = load_settings(public, unset=("SECRET_KEY",))
    assert refused.returncode != 0 and "SECRET_KEY must be set" in refused.stderr
    assert load_settings({**public, "SECRET_KEY": "k" * 50}).returncode == 0
    # The demo and the tests answer to this machine only: the local key serves them.
    assert load_settings({"DEBUG": "false"}, unset=("SECRET_KEY", "ALLOWED_HOSTS")).returncode == 0


def _env_example() -> dict[str, str]:
    values = {}
    for line in (ROOT / "docker" / ".env.example").read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            name, _, value = line.partition("=")
            values[name] = value
    return values


def test_check_deploy_is_clean_with_the_example_environment():
    """docker/.env.example with its placeholders filled in as an operator would passes
    ``manage.py check --deploy`` without a warning (HTTPS, HSTS, secure cookies, a strong key)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE", "CELERY"))}
    env.update(_env_example())
    env["SECRET_KEY"] = "a-strong-key-" + "x7Q9" * 12
    env["REPLENS_VAR_DIR"] = str(ROOT / "var" / "check-deploy")
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.django_db
def test_behind_a_tls_proxy_invitation_links_are_https(api, workspace, settings):
    """REPLENS_HTTPS sets SECURE_PROXY_SSL_HEADER: the proxy's X-Forwarded-Proto makes the
    request secure, so links the site makes start with https://."""
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    response = api.post(
        f"/api/v1/workspaces/{workspace.slug}/invitations/",
        {"role": "viewer"},
        format="json",
        HTTP_X_FORWARDED_PROTO="https",
        HTTP_HOST="testserver",  # as the proxy passes it on
    )
    assert response.status_code == 201, response.content
    assert response.json()["url"].startswith("https://testserver/invitations/")
