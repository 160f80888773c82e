"""``hs dump --dask ADDRESS``: the shards of a sharded dump as Dask tasks, one per worker, then the merge.

Each task runs ``run_dump(..., shard=(k, n))`` on a worker (with dask-cuda's ``LocalCUDACluster`` or
``dask-cuda-worker``, one worker per GPU, each seeing its own GPU as ``cuda``), writing into
``OUT/shards/k-of-n`` on a file system every worker and the client share. A task whose worker dies
is rerun by the scheduler on another worker (Dask's ``allowed-failures``), and a task that fails is
retried; either way the rerun resumes from the shard's last commit. The client merges once all
shards are done (``shards.merge``).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

from hsstore.errors import EnvError, HsError
from hsstore.store.shards import merge

from .run import run_dump

RETRIES = 2  # reruns of a shard task that raised (a worker that dies is rerun by the scheduler anyway)


def _client(address: str):
    try:
        from distributed import Client, LocalCluster  # an optional extra: pip install 'hs[dask]'
    except ImportError:
        raise EnvError("--dask needs the distributed package: pip install distributed") from None
    if address.startswith("local:"):
        count = address.partition(":")[2]
        if not count.isdigit() or int(count) < 1:
            raise HsError(f"--dask {address!r}: give local:N with N >= 1 workers, or a scheduler address "
                          f"such as tcp://host:8786")
        cluster = LocalCluster(n_workers=int(count), threads_per_worker=1, processes=True, dashboard_address=":0",
                               silence_logs=logging.ERROR)
        return Client(cluster), cluster
    try:
        return Client(address, timeout="30s"), None
    except (OSError, TimeoutError, ValueError) as exc:
        raise EnvError(f"--dask {address}: cannot reach the Dask scheduler ({str(exc).splitlines()[0][:80]}); "
                       f"check the address (tcp://host:8786), or use --dask local:N") from None


def _run_shard(k: int, n: int, kwargs: dict) -> dict:
    return run_dump(**kwargs, shard=(k, n), progress=False, log=lambda message: None)


def dump_on_dask(address: str, shards: int | None, kwargs: dict, log: Callable[[str], None] = print) -> dict:
    """Run every shard of the dump ``kwargs`` (``run_dump``'s arguments) as a task, then merge; returns
    the first shard's summary."""
    client, cluster = _client(address)
    try:
        workers = sorted(client.scheduler_info()["workers"])
        n = shards or len(workers)
        if n < 1:
            raise EnvError(f"the Dask cluster at {address} has no workers; start some, or give --shards N")
        log(f"dumping {n} shards on {len(workers)} Dask workers")
        futures = [client.submit(_run_shard, k, n, kwargs, key=f"hs-dump-shard-{k}-of-{n}", pure=False,
                                 retries=RETRIES, workers=[workers[(k - 1) % len(workers)]] if workers else None,
                                 allow_other_workers=True)
                   for k in range(1, n + 1)]
        summaries = client.gather(futures)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    merge(Path(kwargs["out"]), log=log)
    return summaries[0]
