"""Scale-out: two real worker processes against the same PostgreSQL and Redis, one consuming
the ``gpu`` queue (extractions), the other ``cpu`` and ``default`` (measures, alignments,
projections), work through a batch of 50 runs: every run succeeds exactly once, on the worker
of its queue, with its results stored once; the throughput is printed."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from itertools import combinations

import pytest
from django.core.cache import cache
from django.db.models import Count
from django.test import Client

from tests.conftest import ROOT, digits_npz_bytes, node_name, torchscript_mlp_bytes, worker_process
from tests.integration.test_reliability import wait_for
from webapp import status
from webapp.catalog.ingest import ingest_checkpoint, ingest_dataset
from webapp.catalog.models import ActivationSet
from webapp.runs.kinds import QUEUE_OF_KIND
from webapp.runs.models import Alignment, Projection, Run, Score
from webapp.runs.submit import request_alignment, request_comparison, request_projection

pytestmark = pytest.mark.integration

MEASURES = ("cka/linear", "cka/linear-debiased")
QUICK = {"n_permutations": 2, "n_bootstrap": 0}
LAYERS = 4  # the default layers of the test MLP: flatten, block1, block2, head


@pytest.fixture
def batch(transactional_db, owner, workspace):
    """Five checkpoints and 100 real digits; ``submit()`` asks for 50 runs: for each pair of
    checkpoints a comparison with each of two measures and an alignment, for each checkpoint a
    projection, and the 15 extractions these wait for (every layer, block1, block2)."""
    dataset, _ = ingest_dataset(
        workspace, owner, io.BytesIO(digits_npz_bytes(100)), "digits.npz", "digits"
    )
    checkpoints = [
        ingest_checkpoint(
            workspace, owner, io.BytesIO(torchscript_mlp_bytes(seed)), f"s{seed}.pt", f"s{seed}"
        )[0]
        for seed in range(5)
    ]

    def submit() -> None:
        for a, b in combinations(checkpoints, 2):
            for measure in MEASURES:
                request_comparison(owner, a, b, dataset, measure=measure, **QUICK)
            request_alignment(owner, a, b, dataset, "block1", "block1")
        for checkpoint in checkpoints:
            request_projection(owner, checkpoint, dataset, "block2")

    return submit


def test_fifty_runs_on_two_workers_with_separate_queues(tmp_path, batch):
    gpu, cpu = node_name("gpu"), node_name("cpu")
    with (
        worker_process(tmp_path / "gpu.log", name="gpu", queues=("gpu",)),
        worker_process(tmp_path / "cpu.log", name="cpu", queues=("cpu", "default")),
    ):
        started = time.monotonic()
        batch()
        assert Run.objects.count() == 50
        wait_for(
            lambda: not Run.objects.exclude(state__in=Run.TERMINAL).exists(),
            90,
            "every run to finish",
            every=0.2,
        )
        elapsed = time.monotonic() - started

        cache.delete(status.CACHE_KEY)
        workers = {w["name"]: w for w in status.overview()["workers"]}
        assert {name: w["queues"] for name, w in workers.items()} == {
            gpu: ["gpu"],
            cpu: ["cpu", "default"],
        }
        assert workers[gpu]["processed"] >= 15 and workers[cpu]["processed"] >= 35
        health = Client().get("/healthz/workers")
        assert health.status_code == 200 and health.json() == {"status": "ok", "workers": 2}
        # The worker's own health check, as a container runs it.
        ping = subprocess.run(
            [sys.executable, "-m", "celery", "-A", "webapp.celery", "inspect", "ping", "-d", gpu],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert ping.returncode == 0 and "pong" in ping.stdout, ping.stdout + ping.stderr

    runs = list(Run.objects.all())
    failed = [(r.pk, r.kind, r.error) for r in runs if r.state != Run.State.SUCCEEDED]
    assert failed == []
    assert {r.attempts for r in runs} == {1}
    kinds = {kind: sum(r.kind == kind for r in runs) for kind in {r.kind for r in runs}}
    assert kinds == {"extract": 15, "compare": 20, "align": 10, "project": 5}
    for run in runs:  # each worker ran only the kinds of its queue
        assert run.worker == (gpu if QUEUE_OF_KIND[run.kind] == "gpu" else cpu), run
    # Results stored once: every layer of every checkpoint, every layer pair of a comparison.
    assert ActivationSet.objects.count() == 5 * LAYERS
    per_comparison = Score.objects.values("run").annotate(n=Count("pk")).values_list("n", flat=True)
    assert sorted(per_comparison) == [LAYERS * LAYERS] * 20
    assert Alignment.objects.count() == 10 and Projection.objects.count() == 5
    print(
        f"\nscale-out: 50 runs on 2 workers (gpu, cpu) in {elapsed:.1f} s: "
        f"{50 / elapsed:.2f} runs/s"
    )
