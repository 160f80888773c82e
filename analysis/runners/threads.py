"""Independent evaluations in parallel threads, without oversubscribing the cores.

Scoring is numpy/BLAS, scikit-learn (OpenMP) and numba work that releases the GIL, so threads
share the engine's caches and still use every core. Each library would otherwise start one thread
per core in every worker (threads multiply), so BLAS and OpenMP are limited to one thread each
for the whole run, whatever ``jobs`` is: the numbers then do not depend on ``jobs``.
"""
from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager

from threadpoolctl import threadpool_limits

from ..evaluation.registry import family_of

# threadpoolctl only limits libraries already loaded, and scipy's OpenBLAS and scikit-learn's
# OpenMP load on first use, inside an evaluation: they are loaded before the limits are set (each
# family declares the libraries its evaluator uses)
_POOLS = ("scipy.linalg",)


def default_jobs() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def limit_worker_thread() -> None:
    """A pool's worker-thread initializer: OpenMP's thread count is per calling thread, so the
    limit set by :func:`single_threaded` in the main thread does not reach the workers. Numba's
    parallel pooling sets its own thread count and is unaffected."""
    threadpool_limits(limits=1, user_api="openmp")


@contextmanager
def single_threaded(tasks: Iterable = ()):
    """BLAS and OpenMP limited to one thread, for every library ``tasks``' evaluations use."""
    libraries = [name for task in tasks for name in family_of(task).libraries]
    for name in dict.fromkeys([*_POOLS, *libraries]):
        importlib.import_module(name)
    with threadpool_limits(limits=1):
        yield


def run_ordered(fn: Callable, items: Iterable, jobs: int | None = None, done: Callable | None = None,
                cost: Callable | None = None, tasks: Iterable = ()) -> list:
    """``[fn(x) for x in items]`` with ``jobs`` calls at a time; results in the order of ``items``.
    With ``cost`` (a rough relative cost of one item), the costliest items start first, so that a
    long one does not run alone at the end while the other workers idle. ``tasks``: the tasks the
    calls evaluate (see :func:`single_threaded`)."""
    items = list(items)
    jobs = max(1, min(jobs or default_jobs(), len(items) or 1))
    with single_threaded(tasks):
        if jobs == 1:
            out = []
            for x in items:
                out.append(fn(x))
                if done:
                    done()
            return out
        results: list = [None] * len(items)
        order = sorted(range(len(items)), key=lambda i: -cost(items[i])) if cost else range(len(items))
        with ThreadPoolExecutor(max_workers=jobs, initializer=limit_worker_thread) as pool:
            futures = {pool.submit(fn, items[i]): i for i in order}
            for fut in as_completed(futures):
                results[futures[fut]] = fut.result()  # re-raises a worker's error here
                if done:
                    done()
        return results
