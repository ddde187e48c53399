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


FAULTS = (
    "import json, resource, sys, numpy\n"
    "from workers.cores import keep_freed_memory\n"
    "kept = keep_freed_memory() if sys.argv[1] == 'keep' else None\n"
    "x = numpy.ones((1000, 256), dtype=numpy.float32)\n"
    "def step():  # what linear CKA of two 1,000 x 256 layers allocates\n"
    "    a = numpy.array(x, dtype=numpy.float64); b = numpy.array(x, dtype=numpy.float64)\n"
    "    return a.T @ a, b.T @ b\n"
    "for _ in range(5): step()\n"
    "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
    "for _ in range(50): step()\n"
    "faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 50\n"
    "print(json.dumps({'kept': kept, 'faults': faults}))\n"
)


def _faults(mode: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", FAULTS, mode], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_freed_memory_is_kept_for_the_next_arrays():
    """Two 2 MiB float64 copies allocated and freed over and over: with glibc's defaults each
    round maps fresh memory and faults on every page of it (512 a copy); once the worker's
    thresholds are set, the next round reuses the memory the last one freed."""
    default, kept = _faults("default"), _faults("keep")
    assert kept["kept"] is True
    assert default["faults"] > 500
    assert kept["faults"] < 20
