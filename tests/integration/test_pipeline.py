"""Upload over HTTP → extraction and comparison in a real worker → result JSON and page."""

from __future__ import annotations

import time

import numpy as np
import pytest
import redis
import requests
from django.conf import settings
from rest_framework.authtoken.models import Token

from tests.conftest import digits_npz_bytes, torchscript_mlp_bytes
from webapp.celery import app
from webapp.runs.models import Run, Score
from workers.tasks import execute_run

pytestmark = pytest.mark.integration


def wait_for_run(session, base, run_id, timeout=180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = session.get(f"{base}/api/v1/runs/{run_id}/").json()
        if run["state"] in ("succeeded", "failed", "cancelled"):
            return run
        time.sleep(0.5)
    pytest.fail(f"run {run_id} did not finish in {timeout} s: {run}")


def wait_until_idle(queue: str, timeout: float = 30) -> None:
    """Until the worker has taken every message of ``queue`` and finished its tasks."""
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        active = app.control.inspect(timeout=1).active() or {}
        if broker.llen(queue) == 0 and not any(active.values()):
            return
        time.sleep(0.2)
    pytest.fail(f"the worker did not drain queue {queue!r}")


@pytest.fixture
def http(live_server, owner, workspace):
    session = requests.Session()
    token, _ = Token.objects.get_or_create(user=owner)
    session.headers["Authorization"] = f"Token {token.key}"
    return session, live_server.url


def upload(session, base, kind, filename, content, timeout=60, **fields):
    """Upload a file and wait while the worker checks it; the dataset or checkpoint made."""
    response = session.post(
        f"{base}/api/v1/{kind}/",
        data={"workspace": "lab", **fields},
        files={"file": (filename, content)},
    )
    assert response.status_code == 202 and response.json()["state"] == "checking", response.text
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        upload = session.get(f"{base}/api/v1/uploads/{response.json()['id']}/").json()
        if upload["state"] != "checking":
            assert upload["state"] == "done", upload["error"]
            return upload["result"]
        time.sleep(0.2)
    pytest.fail(f"{filename} was not checked in {timeout} s")


def test_upload_extract_compare_through_a_real_worker(worker, http, owner, client):
    session, base = http
    dataset = upload(session, base, "datasets", "digits.npz", digits_npz_bytes(300))
    mlp_a = upload(session, base, "checkpoints", "a.pt", torchscript_mlp_bytes(seed=0))
    mlp_b = upload(session, base, "checkpoints", "b.pt", torchscript_mlp_bytes(seed=1))

    request = {"checkpoint_a": mlp_a["id"], "checkpoint_b": mlp_b["id"], "dataset": dataset["id"]}
    response = session.post(f"{base}/api/v1/comparisons/", json=request)
    assert response.status_code == 201, response.text
    comparison = response.json()
    assert len(comparison["depends_on"]) == 2
    again = session.post(f"{base}/api/v1/comparisons/", json=request)
    assert again.status_code == 200 and again.json()["id"] == comparison["id"]

    finished = wait_for_run(session, base, comparison["id"])
    assert finished["state"] == "succeeded", finished["error"]
    for dependency in finished["depends_on"]:
        extraction = session.get(f"{base}/api/v1/runs/{dependency}/").json()
        assert extraction["state"] == "succeeded"
        assert extraction["timings"]["samples_per_s"] > 0

    matrix = session.get(f"{base}/api/v1/comparisons/{comparison['id']}/").json()
    layers = mlp_a["default_layers"]
    assert matrix["layers_a"] == layers and matrix["layers_b"] == layers
    values = np.array(matrix["value"], dtype=float)
    assert values.shape == (len(layers), len(layers))
    assert np.all((values >= 0) & (values <= 1))
    # The flatten block is the input itself in both models: identical, so CKA is exactly 1.
    assert values[0, 0] == pytest.approx(1.0, abs=1e-9)
    baseline = np.array(matrix["baseline"], dtype=float)
    assert np.all(baseline < 0.2)  # n=300 ≫ d: unrelated data scores near 0
    assert matrix["n"] == 300 and matrix["provenance"]["pooling"] == "mean"

    client.force_login(owner)
    page = client.get(f"/comparisons/{comparison['id']}/")
    assert page.status_code == 200
    assert b'id="matrix-data"' in page.content and b"hx-trigger" not in page.content


def test_replayed_message_is_a_no_op(worker, http):
    session, base = http
    dataset = upload(session, base, "datasets", "digits.npz", digits_npz_bytes(100))
    model = upload(session, base, "checkpoints", "a.pt", torchscript_mlp_bytes(seed=3))
    response = session.post(
        f"{base}/api/v1/extractions/", json={"checkpoint": model["id"], "dataset": dataset["id"]}
    )
    run_id = response.json()["id"]
    first = wait_for_run(session, base, run_id)
    assert first["state"] == "succeeded"
    stored = Run.objects.get(pk=run_id).finished_at
    activation_ids = sorted(
        a["id"]
        for a in session.get(f"{base}/api/v1/activations/?checkpoint={model['id']}").json()[
            "results"
        ]
    )

    execute_run.apply_async(args=[run_id], queue="gpu")  # replay through the broker
    wait_until_idle("gpu")
    run = Run.objects.get(pk=run_id)
    assert run.state == Run.State.SUCCEEDED and run.finished_at == stored
    after = sorted(
        a["id"]
        for a in session.get(f"{base}/api/v1/activations/?checkpoint={model['id']}").json()[
            "results"
        ]
    )
    assert after == activation_ids
    assert Score.objects.count() == 0
