"""Runs survive their workers: a worker killed mid-run (SIGKILL) leaves a run the reaper
queues again, computed once more and stored once; a live worker's heartbeat keeps a long step
from looking dead; cancelling a run stops the process computing it; a worker says it is alive
while it runs, busy or not, and a killed one falls silent."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import time

import pytest

from tests.conftest import digits_npz_bytes, node_name, torchscript_mlp_bytes, worker_process
from webapp import status
from webapp.catalog.ingest import ingest_checkpoint, ingest_dataset
from webapp.celery import QUEUES
from webapp.runs.models import Projection, Run, Worker, reap_stale_runs
from webapp.runs.submit import request_projection

pytestmark = pytest.mark.integration

STALE_S = 2.5  # a run silent this long is dead to the reaper here (120 s when deployed)


@pytest.fixture
def slow_projection(transactional_db, owner, workspace):
    """A t-SNE of 1,797 real digits: several seconds in one call, with no progress report."""
    dataset, _ = ingest_dataset(
        workspace, owner, io.BytesIO(digits_npz_bytes(1797)), "d.npz", "digits"
    )
    checkpoint, _ = ingest_checkpoint(
        workspace, owner, io.BytesIO(torchscript_mlp_bytes(0)), "mlp.pt", "mlp"
    )

    def request(method: str = "tsne", seed: int = 0) -> Run:
        return request_projection(owner, checkpoint, dataset, "block1", method=method, seed=seed)[0]

    return request


def wait_for(predicate, timeout: float, what: str, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def state_of(run: Run) -> str:
    run.refresh_from_db()
    return run.state


def pool_children(worker: subprocess.Popen) -> list[int]:
    """The pool processes of a Celery worker (the ones that run tasks)."""
    found = subprocess.run(["pgrep", "-P", str(worker.pid)], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_worker_killed_mid_run_leaves_a_run_the_reaper_queues_again(tmp_path, slow_projection):
    with worker_process(tmp_path / "worker.log", REPLENS_HEARTBEAT_S="1") as worker:
        run = slow_projection()
        wait_for(lambda: state_of(run) == Run.State.RUNNING, 120, "the run to start")
        (child,) = pool_children(worker)
        os.kill(child, signal.SIGKILL)
        wait_for(lambda: not alive(child), 10, "the pool process to die")
        # Killed, it can neither finish nor beat: the run stays "running" until the reaper.
        time.sleep(STALE_S + 1)
        assert state_of(run) == Run.State.RUNNING
        assert reap_stale_runs(STALE_S, max_attempts=3) == {"queued": [run.pk], "failed": []}
        wait_for(lambda: state_of(run) in Run.TERMINAL, 120, "the run to finish")
        assert run.state == Run.State.SUCCEEDED, run.error
        assert run.attempts == 2
        assert Projection.objects.filter(run=run).count() == 1


def test_a_killed_run_out_of_attempts_fails_with_the_reason(tmp_path, slow_projection):
    with worker_process(tmp_path / "worker.log", REPLENS_HEARTBEAT_S="1") as worker:
        run = slow_projection()
        wait_for(lambda: state_of(run) == Run.State.RUNNING, 120, "the run to start")
        (child,) = pool_children(worker)
        os.kill(child, signal.SIGKILL)
        time.sleep(STALE_S + 1)
        assert reap_stale_runs(STALE_S, max_attempts=1) == {"queued": [], "failed": [run.pk]}
        assert state_of(run) == Run.State.FAILED and "stopped responding" in run.error


def test_a_live_worker_beats_through_a_long_step(tmp_path, slow_projection, settings):
    settings.REPLENS_HEARTBEAT_S = 1
    with worker_process(tmp_path / "worker.log", REPLENS_HEARTBEAT_S="1"):
        run = slow_projection()
        wait_for(lambda: state_of(run) == Run.State.RUNNING, 120, "the run to start")
        reaped, beats, listed = [], {}, []  # heartbeats seen at each progress value
        while state_of(run) == Run.State.RUNNING:
            beats.setdefault(run.progress, set()).add(run.heartbeat_at)
            reaped += reap_stale_runs(STALE_S, max_attempts=3)["queued"]
            listed += [(w["name"], w["active"]) for w in status.overview()["workers"]]
            time.sleep(0.5)
        # Busy in one long call, it still says it is alive, with the run it computes.
        assert listed and set(listed) <= {(node_name("pytest"), 1), (node_name("pytest"), 0)}
        assert listed.count((node_name("pytest"), 1)) >= 3
        assert run.state == Run.State.SUCCEEDED, run.error
        # The step made no progress report, yet the run went on beating through it: counted
        # as heartbeats, not measured as time, so a fast machine cannot void the test.
        assert max(len(seen) for seen in beats.values()) >= 3, beats
        assert reaped == [] and run.attempts == 1


def test_cancelling_a_run_stops_the_process_computing_it(tmp_path, slow_projection):
    with worker_process(tmp_path / "worker.log", REPLENS_HEARTBEAT_S="1") as worker:
        run = slow_projection()
        wait_for(lambda: state_of(run) == Run.State.RUNNING, 120, "the run to start")
        (child,) = pool_children(worker)
        assert run.cancel()
        wait_for(lambda: not alive(child), 15, "the computing process to be stopped")
        assert state_of(run) == Run.State.CANCELLED
        assert not Projection.objects.filter(run=run).exists()
        # The worker carries on with the next run.
        quick = slow_projection(method="pca")
        wait_for(lambda: state_of(quick) in Run.TERMINAL, 60, "the next run")
        assert quick.state == Run.State.SUCCEEDED, quick.error


def test_a_worker_says_it_is_alive_until_it_stops_or_falls_silent(
    transactional_db, tmp_path, settings
):
    settings.REPLENS_HEARTBEAT_S = 1
    name = node_name("pytest")
    with worker_process(tmp_path / "worker.log", REPLENS_HEARTBEAT_S="1") as worker:
        (alive_worker,) = status.overview()["workers"]
        assert alive_worker["name"] == name and alive_worker["queues"] == sorted(QUEUES)
        seen = Worker.objects.get(name=name).seen_at
        wait_for(lambda: Worker.objects.get(name=name).seen_at > seen, 10, "a second beat")
        children = pool_children(worker)
        os.kill(worker.pid, signal.SIGKILL)  # no chance to say it stops
        for child in children:  # its pool would linger, holding a database session
            os.kill(child, signal.SIGKILL)
        worker.wait()
        wait_for(lambda: not status.live_workers(), 10, "the killed worker to fall silent")
        assert [w["name"] for w in status.overview()["silent"]] == [name]
    Worker.objects.all().delete()
    with worker_process(tmp_path / "again.log", REPLENS_HEARTBEAT_S="1"):
        assert [w.name for w in status.live_workers()] == [name]
    assert not Worker.objects.exists()  # stopped, it said so
