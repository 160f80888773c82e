"""``hs eval --scheduler``: the evaluations of a grid as tasks on ``dask.distributed`` workers.

Workers open the store themselves from its path (a local path, a shared file system, or whatever
``hsstore.open`` accepts) and run the same ``Engine`` code as a single process: only recipes,
task definitions and scores travel between client and workers, never arrays. Two kinds of task:

- pooling: a per-layer pooled matrix (or a whole bare recipe where pooling is not linear) of a
  task's corpus or of a post-processing reference, computed once, into the disk cache;
- evaluation: one (recipe, task), which finds its pooled matrices in the disk cache (shared by
  the workers of one machine, or on a shared file system) and runs post-processing and scoring.

Each task runs single-threaded in BLAS/OpenMP, as ``--jobs`` runs do (parallel.py), so the scores
equal a single-process run's exactly. Without the disk cache (``--no-cache``) there are no pooling
tasks: each evaluation pools for itself.
"""
from __future__ import annotations

import logging
import os
import re
import threading
import uuid
from dataclasses import replace

import numba

from hsstore.errors import EnvError, HsError
from hsstore.layers import parse_layers
from hsstore.store import open as open_store

from .threads import single_threaded

CONNECT_TIMEOUT_S = 10
_ENGINE: dict = {}  # this worker process's engine of the current run (one run at a time)
_LOCK = threading.Lock()


def connect(address: str):
    """A ``Client`` for ``local:N`` (a LocalCluster of N single-threaded worker processes) or the
    address of a running scheduler; a bad address is a one-line error."""
    try:
        from dask.distributed import Client, LocalCluster  # an optional extra: pip install 'hs[dask]'
    except ImportError:
        raise EnvError("--scheduler needs dask.distributed: pip install 'hs[dask]'") from None
    if address.startswith("local"):
        m = re.fullmatch(r"local:(\d+)", address)
        if not m or int(m[1]) < 1:
            raise HsError(f"--scheduler {address!r}: give local:N with N >= 1 worker processes, e.g. local:2")
        cluster = LocalCluster(n_workers=int(m[1]), threads_per_worker=1, processes=True, dashboard_address=None,
                               silence_logs=logging.ERROR)
        return Client(cluster)
    try:
        return Client(address, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise HsError(f"--scheduler {address!r}: cannot reach a dask scheduler there ({reason[:160]}); start one "
                      f"with `dask scheduler` and workers with `dask worker ADDRESS`, or use local:N") from None


def _engine(run: str, engine_class, path: str, options: dict, disk_cache: bool, numba_threads: int | None):
    """This worker's engine for run ``run``, of the client's class (a new run drops the last one's: the
    store may have changed)."""
    with _LOCK:
        if _ENGINE.get("run") != run:
            _ENGINE.clear()
            _ENGINE.update(run=run, engine=engine_class(open_store(path), options, disk_cache=disk_cache))
        if numba_threads:
            numba.set_num_threads(min(numba_threads, numba.config.NUMBA_NUM_THREADS))
        return _ENGINE["engine"]


def _pool_task(ctx: tuple, corpus: str, recipe) -> None:
    engine = _engine(*ctx)
    with single_threaded():
        engine.pool(corpus, recipe)


def _eval_task(ctx: tuple, recipe, task, diagnostics: bool, *after):
    with single_threaded([task]):
        return _engine(*ctx).evaluate(task, recipe, diagnostics)


def pooling_units(engine, recipe, task) -> list[tuple[str, object]]:
    """(corpus, bare recipe) pairs whose pooled matrices ``recipe`` on ``task`` reads (the task's corpus,
    a retrieval task's templated queries: ``Engine.inputs``, and the post-processing references): one
    per layer where per-layer results combine (linear pooling, or concatenation), else the recipe itself."""
    units = []
    for main, embedded in engine.inputs(task, recipe):
        bare = replace(embedded, post=())
        corpora = [main] + [s.ref for s in embedded.post if s.ref not in ("task", None)]
        split = (embedded.pool.cls.LINEAR or embedded.combine == "concat") and not any(
            p.step.kwargs.get("layers") for p in embedded.view)
        layers = parse_layers(embedded.layers, engine.store.n_model_layers) if split else None
        bares = [replace(bare, layers=str(layer)) for layer in layers] if layers and len(layers) > 1 else [bare]
        units += [(c, b) for c in dict.fromkeys(corpora) for b in bares]
    return list(dict.fromkeys(units))


def run_on_dask(engine, work: list, address: str, diagnostics: bool, done=None) -> list:
    """``[engine.evaluate(task, recipe) for recipe, task in work]`` on the workers of ``address``, in
    the order of ``work``; ``done()`` after each evaluation."""
    from dask.distributed import as_completed  # the optional extra, as in connect()
    from distributed import KilledWorker

    path = str(engine.store.path)
    if "://" not in path:
        path = os.path.abspath(path)  # workers do not share the client's working directory
    numba_threads = None
    client = connect(address)
    try:
        if address.startswith("local:"):  # N single-threaded workers share this machine's cores
            numba_threads = max(1, len(os.sched_getaffinity(0)) // int(address.split(":")[1]))
        disk = engine.disk_cache
        ctx = (uuid.uuid4().hex, type(engine), path, engine.options, disk, numba_threads)
        pooled: dict = {}
        evals = []
        for recipe, task in work:
            deps = []
            if disk:  # pooled once by one worker, then read from the disk cache by every evaluation
                for corpus, bare in pooling_units(engine, recipe, task):
                    key = (corpus, str(bare))
                    if key not in pooled:
                        pooled[key] = client.submit(_pool_task, ctx, corpus, bare, pure=False)
                    deps.append(pooled[key])
            evals.append(client.submit(_eval_task, ctx, recipe, task, diagnostics, *deps, pure=False))
        index = {f.key: i for i, f in enumerate(evals)}
        results: list = [None] * len(evals)
        for fut in as_completed(evals):
            try:
                results[index[fut.key]] = fut.result()  # re-raises a worker's error (an HsError stays one line)
            except KilledWorker:
                raise EnvError("dask workers died while running an evaluation (out of memory?); see the workers' "
                               "logs, give them more memory or run fewer per machine") from None
            if done:
                done()
        return results
    finally:
        cluster = getattr(client, "cluster", None)
        client.close()
        if cluster is not None and address.startswith("local:"):
            cluster.close()
