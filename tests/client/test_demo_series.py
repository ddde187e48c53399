"""The demo's training run arrives as a user's would: the build trains it and logs every
checkpoint with the Python client over HTTP (chunked uploads, each checked by the worker in a
model host), then asks for its dynamics with the client, again after the last checkpoint."""

from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token

from demo import series as training_run
from demo.series import CHECKPOINTS, FOLLOW_FROM, LAYERS, SERIES_NAME
from webapp.catalog.models import Checkpoint, Upload
from webapp.runs.management.commands.build_demo import Command
from webapp.runs.management.commands.demo import local_url
from webapp.runs.models import Run


@pytest.mark.django_db(transaction=True)
def test_the_demo_logs_its_training_run_through_the_client(
    server, workspace, owner, digits, tmp_path, monkeypatch
):
    # One SGD step between checkpoints: how long it trains is tests/analysis/test_demo_series'
    # concern; here, how its checkpoints arrive.
    monkeypatch.setattr(training_run, "STEPS_BETWEEN", 1)
    monkeypatch.setattr(training_run, "SLOW_UNTIL", 6)
    Command()._log_series(server, workspace, owner, digits, tmp_path / "series")

    series = list(Checkpoint.objects.filter(seed_group=SERIES_NAME).order_by("step"))
    assert [c.step for c in series] == list(range(CHECKPOINTS)) and CHECKPOINTS >= 12
    assert all(
        set(c.metrics) == {"loss", "train_accuracy", "held_out_accuracy", "lr", "epoch"}
        for c in series
    )
    assert [c.name for c in series] == [f"{SERIES_NAME}-step{c.step}" for c in series]
    # each checkpoint is what an upload with the demo user's API token made, once checked
    uploads = Upload.objects.filter(kind=Upload.Kind.CHECKPOINT)
    assert {u.state for u in uploads} == {Upload.State.DONE}
    assert sorted(u.result_id for u in uploads) == sorted(c.pk for c in series)
    assert {u.created_by_id for u in uploads} == {owner.pk} == {c.created_by_id for c in series}
    assert [u.fields["metrics"] for u in uploads.order_by("created_at")] == [
        c.metrics for c in series
    ]
    assert Token.objects.filter(user=owner).count() == 1

    # the dynamics, asked for by the client once FOLLOW_FROM checkpoints were in, then again
    # after the last one (that run computes only its new cells: tests/workers/test_dynamics)
    first, last = Run.objects.filter(kind=Run.Kind.DYNAMICS).order_by("pk")
    assert first.created_by == last.created_by == owner
    assert first.params["checkpoints"] == [c.pk for c in series[:FOLLOW_FROM]]
    assert last.params["checkpoints"] == [c.pk for c in series]
    assert first.params["layers"] == last.params["layers"] == LAYERS
    assert first.dataset == last.dataset == digits


@pytest.mark.parametrize(
    ("addr", "url"),
    [
        ("8000", "http://127.0.0.1:8000"),
        ("0.0.0.0:8000", "http://127.0.0.1:8000"),
        ("[::]:8000", "http://[::1]:8000"),
        ("demo.lan:8181", "http://demo.lan:8181"),
    ],
)
def test_the_build_logs_to_the_address_the_demo_serves(addr, url):
    assert local_url(addr) == url
