"""Each pool process of a worker computes on its share of the cores.

BLAS (OpenBLAS, through numpy and scipy), OpenMP and torch each start a thread per core in
every process. A CPU worker runs ``--concurrency`` pool processes, so two runs at once would
put twice as many busy threads as cores on the machine, and OpenBLAS's threads spin while they
wait: on a 2-core machine a 384 × 384 SVD took 161 ms with two BLAS threads on busy cores
against 34 ms with one. So each pool process keeps ``cores // concurrency`` threads (at least
one) for BLAS, OpenMP and torch, and the model host it starts inherits the limit through
``OMP_NUM_THREADS``; :func:`analysis.measures.engine.compare_layers` draws as many scores side
by side as BLAS may use threads.
"""

from __future__ import annotations

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
    """In each new pool process: hold BLAS, OpenMP and torch to the process's share."""
    if _share is not None:
        limit(_share)


def limit(threads: int) -> None:
    """Hold this process's BLAS, OpenMP and (when loaded) torch to ``threads`` threads, and the
    processes it starts through ``OMP_NUM_THREADS``."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)  # kept: the process's limit from now on
    os.environ["OMP_NUM_THREADS"] = str(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
