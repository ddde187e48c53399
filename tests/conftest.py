"""Shared fixtures: three personas (owner, member, outsider) and small real inputs.

Tests run against the database and broker named by DATABASE_URL and CELERY_BROKER_URL
(``make test`` points them at the local PostgreSQL and Redis, started if none answers). Tests
marked ``integration`` need both; under ``CI=true`` every test does, and a database other than
PostgreSQL, a broker other than Redis, or one that does not answer stops the run.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
import torch
from django.conf import settings
from django.db import connection
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from sklearn.datasets import load_digits

from analysis.models.architectures import mlp
from webapp.catalog.models import Membership, Workspace
from webapp.celery import QUEUES, app
from webapp.runs.management.commands.demo import worker_command

ROOT = Path(__file__).resolve().parents[1]


def _unreachable_services() -> list[str]:
    problems = []
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        problems.append(f"DATABASE_URL is not PostgreSQL ({db['ENGINE']})")
    elif not _port_open(db.get("HOST") or "127.0.0.1", int(db.get("PORT") or 5432)):
        problems.append(f"PostgreSQL at {db.get('HOST')}:{db.get('PORT')} is unreachable")
    broker = urlparse(settings.CELERY_BROKER_URL)
    if broker.scheme != "redis":
        problems.append(f"CELERY_BROKER_URL is not Redis ({settings.CELERY_BROKER_URL})")
    elif not _port_open(broker.hostname or "127.0.0.1", broker.port or 6379):
        problems.append(f"Redis at {broker.hostname}:{broker.port} is unreachable")
    return problems


def _port_open(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=2).close()
        return True
    except OSError:
        return False


def pytest_collection_modifyitems(config, items):
    """Under ``CI=true`` every test runs on PostgreSQL and Redis: any other database or broker,
    or one that does not answer, stops the run. Elsewhere, only the tests marked
    ``integration`` need them, and are skipped (with the reason) without them."""
    ci = os.environ.get("CI") == "true"
    needs_services = [i for i in items if ci or i.get_closest_marker("integration")]
    problems = _unreachable_services() if needs_services else []
    if not problems:
        return
    if ci:
        raise pytest.UsageError("under CI=true the tests cannot run: " + "; ".join(problems))
    skip = pytest.mark.skip(reason="; ".join(problems))
    for item in needs_services:
        item.add_marker(skip)


@pytest.fixture(autouse=True)
def _heartbeat_through_progress_only(settings):
    """Runs executed in the test's own process (``run_with_dependencies``) share the test's
    open transaction, whose row locks a heartbeat thread's own connection would wait on: there
    they beat through their progress reports only. Worker processes (``worker``) beat as
    deployed."""
    settings.REPLENS_HEARTBEAT_S = 24 * 3600


@pytest.fixture
def owner(django_user_model):
    return django_user_model.objects.create_user("owner", password="owner-pass")


@pytest.fixture
def member(django_user_model, workspace):
    user = django_user_model.objects.create_user("member", password="member-pass")
    Membership.objects.create(workspace=workspace, user=user, role=Membership.Role.EDITOR)
    return user


@pytest.fixture
def outsider(django_user_model):
    """Signed in, but in another workspace: must see nothing of ``workspace``."""
    user = django_user_model.objects.create_user("outsider", password="outsider-pass")
    other = Workspace.objects.create(name="Elsewhere", slug="elsewhere")
    Membership.objects.create(workspace=other, user=user, role=Membership.Role.OWNER)
    return user


@pytest.fixture
def workspace(owner):
    ws = Workspace.objects.create(name="Lab", slug="lab")
    Membership.objects.create(workspace=ws, user=owner, role=Membership.Role.OWNER)
    return ws


def api_client_for(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def api(owner):
    return api_client_for(owner)


def digits_npz_bytes(n: int = 300) -> bytes:
    """The first ``n`` of scikit-learn's real 8×8 digits as an upload-format .npz."""
    digits = load_digits()
    buffer = io.BytesIO()
    np.savez(
        buffer,
        x=(digits.images[:n] / 16).astype(np.float32)[:, None],
        y=digits.target[:n],
        ids=np.array([f"digit-{i:04d}" for i in range(n)]),
    )
    return buffer.getvalue()


def torchscript_mlp_bytes(seed: int, hidden=(32, 16)) -> bytes:
    """An untrained demo-architecture MLP for 8×8 inputs, saved as TorchScript."""
    torch.manual_seed(seed)
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(mlp(64, list(hidden), 10)), buffer)
    return buffer.getvalue()


def nudged_mlp_bytes(seed: int, scale: float) -> bytes:
    """The MLP of ``torchscript_mlp_bytes(seed)`` with every weight moved by ``scale`` × N(0, 1):
    another checkpoint whose embeddings retrieve almost exactly as the original's do."""
    torch.manual_seed(seed)
    model = mlp(64, [32, 16], 10)
    generator = torch.Generator().manual_seed(99)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter += scale * torch.randn(parameter.shape, generator=generator)
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(model), buffer)
    return buffer.getvalue()


@pytest.fixture
def digits_npz() -> bytes:
    return digits_npz_bytes()


@pytest.fixture
def mlp_pt() -> bytes:
    return torchscript_mlp_bytes(seed=0)


def _database_url() -> str:
    s = connection.settings_dict
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    return f"postgres://{s['USER']}{password}@{s['HOST']}:{s['PORT']}/{s['NAME']}"


def purge_queues() -> None:
    """Drop the messages every queue holds (left over by an earlier test)."""
    with app.connection_for_write() as connection:
        for queue in QUEUES:
            connection.default_channel.queue_purge(queue)


def node_name(name: str) -> str:
    """The Celery node name of the worker started as ``name`` on this machine."""
    return f"{name}@{socket.gethostname()}"


@contextmanager
def worker_process(
    log: Path, name: str = "pytest", queues: tuple[str, ...] = (), redis: bool = True, **env: str
):
    """A real Celery worker process ``name`` (consuming ``queues``, by default all) on the test
    database and the Redis broker, with extra environment ``env`` (settings such as
    REPLENS_HEARTBEAT_S). The queues are emptied before it starts. With ``redis`` False the
    environment names another broker, and the worker is yielded without waiting for it."""
    if redis:
        purge_queues()
    env = {**os.environ, "DATABASE_URL": _database_url(), **env}
    command = worker_command(name, queues=queues)
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 60
        while redis and not app.control.ping(destination=[node_name(name)], timeout=1.0):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the worker did not start:\n{log.read_text()[-3000:]}")
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        connection.close()  # the worker's sessions are gone; let the flush reconnect


@pytest.fixture
def worker(transactional_db, tmp_path):
    """A real worker process (tests that use it see committed data only:
    ``transactional_db``)."""
    with worker_process(tmp_path / "worker.log") as proc:
        yield proc


@pytest.fixture
def isolated_media(settings, tmp_path):
    """Blobs of each test go to their own folder, so 'nothing left behind' can be counted;
    a fast password hasher keeps the persona fixtures cheap. (Not for tests with a worker
    process, which reads blobs where the environment says.)"""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return settings.MEDIA_ROOT


@pytest.fixture
def digits(workspace, owner):
    """60 real 8×8 digits (an image dataset with thumbnails) in the owner's workspace."""
    from webapp.catalog.ingest import ingest_dataset

    dataset, _ = ingest_dataset(
        workspace, owner, io.BytesIO(digits_npz_bytes(60)), "digits.npz", "Digits"
    )
    return dataset


def checkpoint_from(workspace, owner, content: bytes, name: str):
    from webapp.catalog.ingest import ingest_checkpoint

    checkpoint, _ = ingest_checkpoint(workspace, owner, io.BytesIO(content), f"{name}.pt", name)
    return checkpoint


@pytest.fixture
def ckpt_a(workspace, owner):
    return checkpoint_from(workspace, owner, torchscript_mlp_bytes(0), "mlp-seed0")


@pytest.fixture
def ckpt_b(workspace, owner):
    return checkpoint_from(workspace, owner, torchscript_mlp_bytes(1), "mlp-seed1")


def run_with_dependencies(run):
    """Play the worker in-process: every dependency, then the run itself."""
    from workers.tasks import execute_run

    for dependency in run.depends_on.order_by("pk"):
        execute_run(dependency.pk)
    execute_run(run.pk)
    run.refresh_from_db()
    return run


def check_uploads() -> list:
    """Play the worker in-process: check every upload waiting, as workers take them; returns
    the uploads checked (refreshed)."""
    from webapp.catalog import uploads
    from webapp.celery import QUEUES
    from workers.tasks import check_upload

    checked = []
    for queue in QUEUES:
        while (upload := uploads.take_next(queue, "pytest")) is not None:
            check_upload(upload)
            upload.refresh_from_db()
            checked.append(upload)
    return checked


def checked(api, response) -> dict:
    """The upload an API answer (202) describes, after playing the worker's check: its state
    ``done`` with the dataset or checkpoint as ``result``, or ``failed`` with the ``error``."""
    assert response.status_code == 202, response.content
    check_uploads()
    return api.get(f"/api/v1/uploads/{response.json()['id']}/").json()
