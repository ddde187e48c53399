"""Each pool process of a worker computes on its share of the cores (workers/cores.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from workers.cores import share

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("cores", "concurrency", "threads"),
    [(2, 1, 2), (2, 2, 1), (2, 4, 1), (16, 3, 5), (8, None, 8), (1, 1, 1)],
)
def test_each_pool_process_gets_its_share_of_the_cores_and_at_least_one(
    cores, concurrency, threads
):
    assert share(cores, concurrency) == threads


def test_limit_holds_blas_openmp_torch_and_the_processes_started_after_it():
    """In a fresh process (the test's own keeps its threads): numpy's BLAS, torch's intra-op
    threads, and a child process's torch, all at the limit."""
    probe = (
        "import json, os, subprocess, sys, numpy, torch\n"
        "from threadpoolctl import threadpool_info\n"
        "from workers.cores import limit\n"
        "limit(1)\n"
        "child = subprocess.run([sys.executable, '-c', "
        "'import torch; print(torch.get_num_threads())'], capture_output=True, text=True)\n"
        "print(json.dumps({'pools': [p['num_threads'] for p in threadpool_info()],"
        " 'torch': torch.get_num_threads(), 'child': int(child.stdout)}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["pools"] and set(found["pools"]) == {1}
    assert found["torch"] == 1 and found["child"] == 1
