"""The execution core with real worker processes: a model that hangs or allocates without
bound fails with a message and the worker takes its next run; cancelling a hung model stops
its process within seconds; one person's batch cannot hold another's run; runs start in the
order asked for, on Redis and on the embedded filesystem broker after its names outgrow their
width."""

from __future__ import annotations

import io
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from kombu import Connection

from tests.conftest import digits_npz_bytes, torchscript_mlp_bytes, worker_process
from tests.formats import Hang, Hungry, scripted
from tests.integration.test_reliability import alive, pool_children, state_of, wait_for
from webapp.catalog.ingest import ingest_checkpoint, ingest_dataset
from webapp.catalog.models import ActivationSet, Blob, Membership
from webapp.runs.models import Run
from webapp.runs.submit import request_extraction
from workers.tasks import work

pytestmark = pytest.mark.integration


@pytest.fixture
def uploads(transactional_db, owner, workspace):
    dataset, _ = ingest_dataset(
        workspace, owner, io.BytesIO(digits_npz_bytes(64)), "digits.npz", "digits"
    )

    def checkpoint(content: bytes, name: str):
        return ingest_checkpoint(workspace, owner, io.BytesIO(content), f"{name}.pt", name)[0]

    return dataset, checkpoint


def descendants(pid: int) -> list[int]:
    found = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        found += [int(child), *descendants(int(child))]
    return found


def test_hung_and_hungry_models_fail_with_a_message_and_the_worker_runs_the_next(
    tmp_path, owner, uploads
):
    dataset, checkpoint = uploads
    hang, hungry = checkpoint(scripted(Hang()), "hang"), checkpoint(scripted(Hungry()), "hungry")
    good = checkpoint(torchscript_mlp_bytes(0), "mlp")
    env = {"REPLENS_HOST_STALL_S": "3", "REPLENS_HOST_MEMORY_BYTES": str(3 * 1024**3)}
    with worker_process(tmp_path / "worker.log", **env) as worker:
        stuck = request_extraction(owner, hang, dataset)[0]
        wait_for(lambda: state_of(stuck) in Run.TERMINAL, 60, "the hung model to be stopped")
        assert stuck.state == Run.State.FAILED
        assert (
            stuck.error == "the model made no progress for 3 s (no batch finished) and was stopped"
        )

        greedy = request_extraction(owner, hungry, dataset)[0]
        wait_for(lambda: state_of(greedy) in Run.TERMINAL, 60, "the hungry model to fail")
        assert greedy.state == Run.State.FAILED
        assert "more memory than its limit of 3 GiB" in greedy.error

        fine = request_extraction(owner, good, dataset)[0]
        wait_for(lambda: state_of(fine) in Run.TERMINAL, 60, "the next run")
        assert fine.state == Run.State.SUCCEEDED, fine.error
        assert fine.worker == stuck.worker == greedy.worker
        assert worker.poll() is None


def test_cancelling_a_hung_model_kills_its_process_within_seconds(tmp_path, owner, uploads):
    dataset, checkpoint = uploads
    hang, good = checkpoint(scripted(Hang()), "hang"), checkpoint(torchscript_mlp_bytes(0), "m")
    with worker_process(tmp_path / "worker.log") as worker:
        stuck = request_extraction(owner, hang, dataset)[0]
        wait_for(lambda: state_of(stuck) == Run.State.RUNNING, 60, "the run to start")
        (pool,) = pool_children(worker)
        hosts = wait_for(lambda: descendants(pool)[1:], 30, "the model host")  # [zygote, host]
        assert stuck.cancel()
        wait_for(lambda: not any(alive(p) for p in hosts), 5, "the host to be killed")
        assert state_of(stuck) == Run.State.CANCELLED
        assert alive(pool)  # the worker's own process carries on
        fine = request_extraction(owner, good, dataset)[0]
        wait_for(lambda: state_of(fine) in Run.TERMINAL, 60, "the next run")
        assert fine.state == Run.State.SUCCEEDED, fine.error


# --------------------------------------------------------------------------- scheduling


def stored_layers(dataset, checkpoint, count: int, n: int, d: int) -> list[str]:
    rng = np.random.default_rng(0)
    names = []
    for i in range(count):
        values = rng.normal(size=(n, d)).astype(np.float32)
        ActivationSet.objects.create(
            checkpoint=checkpoint,
            dataset=dataset,
            layer=f"l{i}",
            pooling="mean",
            blob=Blob.store_array(values),
            n=n,
            d=d,
        )
        names.append(f"l{i}")
    return names


def comparison(person, dataset, checkpoint, layer: str, bootstrap: int, enqueue: bool = True):
    """A comparison of a stored layer with itself, created without extractions."""
    params = {
        "layers_a": [layer],
        "layers_b": [layer],
        "pooling": "mean",
        "measure": "cka/linear",
        "n_permutations": 1,
        "n_bootstrap": bootstrap,
        "seed": 0,
    }
    key = Run.request_key_of(Run.Kind.COMPARE, dataset.pk, checkpoint.pk, checkpoint.pk, params)
    fields = {
        "workspace": dataset.workspace,
        "dataset": dataset,
        "checkpoint": checkpoint,
        "checkpoint_b": checkpoint,
        "params": params,
        "created_by": person,
    }
    if enqueue:
        return Run.submit(kind=Run.Kind.COMPARE, request_key=key, **fields)[0]
    return Run.objects.create(kind=Run.Kind.COMPARE, request_key=key, **fields)


def test_one_persons_batch_does_not_hold_anothers_run(tmp_path, owner, workspace, uploads):
    dataset, checkpoint = uploads
    model = checkpoint(torchscript_mlp_bytes(0), "m")
    other = get_user_model().objects.create_user("bea", password="bea-pass")
    Membership.objects.create(workspace=workspace, user=other, role=Membership.Role.EDITOR)
    layers = stored_layers(dataset, model, 31, n=64, d=32)
    with worker_process(tmp_path / "worker.log"):
        batch = [comparison(owner, dataset, model, layer, bootstrap=200) for layer in layers[:30]]
        wait_for(lambda: state_of(batch[0]) != Run.State.QUEUED, 60, "the batch to start")
        small = comparison(other, dataset, model, layers[30], bootstrap=0)
        wait_for(lambda: state_of(small) in Run.TERMINAL, 120, "the other person's run")
        assert small.state == Run.State.SUCCEEDED, small.error
        started_after = [
            r
            for r in Run.objects.filter(pk__in=[r.pk for r in batch], started_at__isnull=False)
            if r.started_at > small.created_at
        ]
        # At most the run the worker had in hand; none of A's queued runs went first.
        assert all(r.started_at > small.started_at for r in started_after[1:])
        queued = Run.objects.filter(pk__in=[r.pk for r in batch], state=Run.State.QUEUED)
        assert queued.exists()  # the batch was still waiting: the test measured something
        Run.objects.filter(state=Run.State.QUEUED).update(state=Run.State.CANCELLED)


def start_order(runs: list[Run]) -> list[int]:
    return [r.pk for r in sorted((Run.objects.get(pk=r.pk) for r in runs), key=_started)]


def _started(run: Run):
    return run.started_at


def test_runs_start_in_the_order_asked_for_on_redis(tmp_path, owner, uploads):
    dataset, checkpoint = uploads
    model = checkpoint(torchscript_mlp_bytes(0), "m")
    layers = stored_layers(dataset, model, 50, n=64, d=8)
    with worker_process(tmp_path / "worker.log"):
        with transaction.atomic():  # all queued before the worker can take one
            runs = [comparison(owner, dataset, model, layer, bootstrap=0) for layer in layers]
        wait_for(lambda: all(state_of(r) in Run.TERMINAL for r in runs), 180, "all 50 runs")
    assert [r.error for r in runs if r.state != Run.State.SUCCEEDED] == []
    assert start_order(runs) == [r.pk for r in runs]


def test_runs_start_in_the_order_asked_for_on_the_filesystem_broker_past_1000_s(
    tmp_path, settings, owner, uploads
):
    """kombu's filesystem transport names a message after the monotonic clock in ms, without
    zero padding, and reads names in lexicographic order: past 1,000 s of uptime ("999990_…"
    vs "1000040_…") the newer messages sort first. The clock is faked across that boundary;
    the worker still takes the runs in the order they were asked for."""
    dataset, checkpoint = uploads
    model = checkpoint(torchscript_mlp_bytes(0), "m")
    layers = stored_layers(dataset, model, 50, n=64, d=8)
    runs = [comparison(owner, dataset, model, layer, 0, enqueue=False) for layer in layers]
    broker = tmp_path / "broker"
    options = {
        "data_folder_in": str(broker / "queue"),
        "data_folder_out": str(broker / "queue"),
        "processed_folder": str(broker / "processed"),
        "control_folder": str(broker / "control"),
        "store_processed": False,
    }
    for folder in ("queue", "processed", "control"):
        (broker / folder).mkdir(parents=True)
    clock = iter(999.0 + 0.05 * i for i in range(len(runs)))
    with (
        mock.patch("kombu.transport.filesystem.monotonic", lambda: next(clock)),
        Connection("filesystem://", transport_options=options) as connection,
    ):
        for _ in runs:
            work.apply_async(args=["cpu"], queue="cpu", connection=connection)
    names = sorted(p.name for p in (broker / "queue").iterdir())
    assert names[0].startswith("1000") and names[-1].startswith("999")  # the faked disorder
    env = {
        "CELERY_BROKER_URL": "filesystem://",
        "REPLENS_VAR_DIR": str(tmp_path),
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
    }
    with worker_process(tmp_path / "worker.log", redis=False, **env):
        wait_for(lambda: all(state_of(r) in Run.TERMINAL for r in runs), 180, "all 50 runs")
    assert [r.error for r in runs if r.state != Run.State.SUCCEEDED] == []
    assert start_order(runs) == [r.pk for r in runs]
