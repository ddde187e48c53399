"""Each pool process of a worker computes on its share of the cores.

BLAS (OpenBLAS, through numpy and scipy), OpenMP and torch each start a thread per core in
every process. A CPU worker runs ``--concurrency`` pool processes, so two runs at once would
put twice as many busy threads as cores on the machine, and OpenBLAS's threads spin while they
wait: on a 2-core machine a 384 × 384 SVD took 161 ms with two BLAS threads on busy cores
against 34 ms with one. So each pool process keeps ``cores // concurrency`` threads (at least
one) for BLAS, OpenMP and torch, and the model host it starts inherits the limit through
``OMP_NUM_THREADS``; :func:`analysis.measures.engine.compare_layers` draws as many scores side
by side as BLAS may use threads.

Each pool process also keeps the memory it frees for its next arrays (:func:`keep_freed_memory`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from typing import Any

from celery.signals import celeryd_after_setup, worker_process_init

_share: int | None = None  # threads per pool process, set in the main process before forking


def share(cores: int, concurrency: int | None) -> int:
    """Threads each of ``concurrency`` pool processes may use on ``cores`` cores."""
    return max(1, cores // max(1, concurrency or 1))


@celeryd_after_setup.connect
def _divide(sender: Any, instance: Any, **kwargs: Any) -> None:
    """``instance`` is the worker: its pool size."""
    global _share
    _share = share(len(os.sched_getaffinity(0)), getattr(instance, "concurrency", None))


@worker_process_init.connect
def _limit(**kwargs: Any) -> None:
    """In each new pool process: hold BLAS, OpenMP and torch to the process's share, and keep
    freed memory for the next arrays."""
    if _share is not None:
        limit(_share)
    keep_freed_memory()


def limit(threads: int) -> None:
    """Hold this process's BLAS, OpenMP and (when loaded) torch to ``threads`` threads, and the
    processes it starts through ``OMP_NUM_THREADS``."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)  # kept: the process's limit from now on
    os.environ["OMP_NUM_THREADS"] = str(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


MMAP_THRESHOLD = 1 << 25
"""glibc malloc serves requests below this (32 MiB, its largest) from its heap, not a fresh map."""
TRIM_THRESHOLD = 1 << 28
"""glibc malloc keeps up to this much (256 MiB) free at the top of its heap for later requests."""


def keep_freed_memory() -> bool:
    """Have glibc's malloc keep arrays' freed memory in the process for the next ones (fixed
    thresholds, :data:`MMAP_THRESHOLD` and :data:`TRIM_THRESHOLD`), where by default it hands
    back anything from 128 KiB up once two such arrays are free, and the next array pays its page
    faults again. A comparison allocates the same few arrays over and over: linear CKA of two
    1,000 × 256 layers (two float64 copies, two products) took 6.0 ms with the defaults against
    4.1 ms with these (``python -m tests.benchmarks.bench_measures --sections linear``, which sets
    them as a worker does). False where the C library is not glibc (nothing changed)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    libc = ctypes.CDLL(name)
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    return bool(mallopt(m_mmap_threshold, MMAP_THRESHOLD)) and bool(
        mallopt(m_trim_threshold, TRIM_THRESHOLD)
    )
