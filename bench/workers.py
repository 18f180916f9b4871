"""Persistent worker processes with a fixed number of BLAS and torch threads and a memory limit each."""

from __future__ import annotations

import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

try:
    import resource
except ImportError:  # Windows has no resource module
    resource = None

logger = logging.getLogger(__name__)

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                    "NUMEXPR_NUM_THREADS")


class BenchmarkError(RuntimeError):
    """Raised when the benchmark cannot go on: a dead worker pool or an unreachable scheduler."""


def plan_workers(n_workers: int | None, n_threads: int | None) -> tuple[int, int]:
    """Return (workers, threads per worker) so that workers x threads equals the cores.

    By default each core runs one worker with one thread: two threads in one process
    stalled small matrix products in measurements on 2-core machines, while two
    one-thread workers gave twice the throughput.
    """
    n_cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if n_workers is None and n_threads is None:
        return n_cores, 1
    if n_workers is None:
        return max(1, n_cores // n_threads), n_threads
    if n_threads is None:
        return n_workers, max(1, n_cores // n_workers)
    return n_workers, n_threads


def set_thread_count(n_threads: int) -> None:
    """Fix the thread count of BLAS and torch in this process; call once, before any work."""
    for variable in THREAD_VARIABLES:
        os.environ[variable] = str(n_threads)
    from threadpoolctl import threadpool_limits

    threadpool_limits(n_threads)
    import torch

    torch.set_num_threads(n_threads)
    if torch.get_num_interop_threads() != n_threads:
        try:
            torch.set_num_interop_threads(n_threads)
        except RuntimeError:
            pass  # only settable before the first parallel work; then it keeps its value
    torch.use_deterministic_algorithms(True, warn_only=True)


def set_memory_limit(memory_limit_mb: float | None) -> bool:
    """Limit this process's address space to `memory_limit_mb` mebibytes with RLIMIT_AS.

    An allocation beyond the limit then fails inside the process (numpy raises MemoryError,
    torch a RuntimeError "can't allocate memory"), so the run fails with error kind `memory`
    and the worker lives on. The limit counts virtual memory, which exceeds the resident
    memory: importing torch 2.13 on CPU alone maps about 1 GiB.

    Returns:
        False where the platform has no RLIMIT_AS, after logging that the limit is not enforced.
    """
    if memory_limit_mb is None:
        return True
    if resource is None or not hasattr(resource, "RLIMIT_AS"):
        logger.warning("memory limit of %g MiB not enforced: this platform has no RLIMIT_AS", memory_limit_mb)
        return False
    limit_bytes = int(memory_limit_mb * 2**20)
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit_bytes = min(limit_bytes, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, hard))
    return True


def initialize_worker(n_threads: int, memory_limit_mb: float | None = None) -> None:
    """Prepare a fresh worker process: thread counts first, then the memory limit."""
    set_thread_count(n_threads)
    set_memory_limit(memory_limit_mb)


def start_pool(n_workers: int, n_threads: int, memory_limit_mb: float | None = None) -> ProcessPoolExecutor:
    """Start `n_workers` spawned processes, each with `n_threads` threads and the memory limit set at start."""
    for variable in THREAD_VARIABLES:
        os.environ[variable] = str(n_threads)
    context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(max_workers=n_workers, mp_context=context, initializer=initialize_worker,
                               initargs=(n_threads, memory_limit_mb))
