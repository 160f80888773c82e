"""Retrieval scoring speed and memory: 100,000 documents and 1,000 queries of the demo model's width (384)
on random vectors, scored by the retrieval family's evaluator (exact blocked top-1000 search and MTEB's
metrics), against the floor (the same blocked matrix products alone) and a plain numpy search (the full
score matrix, argpartition, sort) in the same run.

Each case runs in a fresh process (``--case``) that makes the same seeded data, then reports its median
wall time over ``--repeats`` runs and its peak resident memory above what the data alone took
(``ru_maxrss`` before and after). ``hs`` runs as ``hs eval --jobs 1`` runs an evaluation (BLAS on one
thread, numba's search on every core); ``hs-all-threads`` leaves BLAS its threads too.

    python benchmarks/retrieval.py --json benchmarks/results/retrieval-synthetic.json
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import report  # noqa: E402

N_DOCS, N_QUERIES, WIDTH, RELEVANT = 100_000, 1_000, 384, 3
CASES = ("hs", "hs-all-threads", "matmul-floor", "numpy-full")


def data(n_docs: int, n_queries: int, seed: int = 0):
    """Seeded random vectors; each query judges ``RELEVANT`` random documents, relevance 1 or 2."""
    rng = np.random.default_rng(seed)
    D = rng.standard_normal((n_docs, WIDTH), dtype=np.float32)
    Q = rng.standard_normal((n_queries, WIDTH), dtype=np.float32)
    qrels = [(f"q{i}", f"d{j}", int(rng.integers(1, 3))) for i in range(n_queries)
             for j in rng.choice(n_docs, RELEVANT, replace=False)]
    return D, Q, qrels


class _Ids:
    """A stand-in for a stored corpus: text i is sentence i (the evaluator maps texts to rows)."""

    attrs: dict = {}

    def ids_of(self, texts):
        return np.fromiter((int(t) for t in texts), dtype=np.int64)


def evaluator(n_docs: int, n_queries: int, qrels):
    from analysis.evaluation.retrieval import Retrieval
    from hsstore.tasks.usertask import UserTask

    rows = [{"query": f"q{i}", "text": str(n_docs + i)} for i in range(n_queries)]
    rows += [{"document": f"d{j}", "text": str(j)} for j in range(n_docs)]
    rows += [{"qrel": list(q)} for q in qrels]
    return Retrieval(UserTask.make("synthetic", "retrieval", rows, {}), _Ids())


def run_case(case: str, n_docs: int, n_queries: int, repeats: int) -> dict:
    from threadpoolctl import threadpool_limits

    from analysis.evaluation.retrieval import BLOCK_DOCUMENTS, BLOCK_QUERIES, TOP_K, search
    from analysis.vectors import unit_rows

    D, Q, qrels = data(n_docs, n_queries)
    X = np.concatenate([D, Q])  # the corpus matrix: documents, then queries
    ev = evaluator(n_docs, n_queries, qrels)
    Du, Qu = unit_rows(D), unit_rows(Q)

    def hs_scores():
        return ev(X)["ndcg_at_10"]

    def floor():
        for q0 in range(0, n_queries, BLOCK_QUERIES):
            for d0 in range(0, n_docs, BLOCK_DOCUMENTS):
                Qu[q0:q0 + BLOCK_QUERIES] @ Du[d0:d0 + BLOCK_DOCUMENTS].T

    def numpy_full():
        S = Qu @ Du.T
        top = np.argpartition(-S, TOP_K - 1, axis=1)[:, :TOP_K]
        return np.take_along_axis(top, np.argsort(-np.take_along_axis(S, top, 1), axis=1), 1)

    fn = {"hs": hs_scores, "hs-all-threads": hs_scores, "matmul-floor": floor, "numpy-full": numpy_full}[case]
    limits = threadpool_limits(limits=1) if case in ("hs", "matmul-floor") else None
    if case.startswith("hs"):  # compile the search kernel on a few rows (its peak memory must not count here)
        search(Qu[:2], Du[:10], 5, ev.rank[:10])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times, value = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if limits is not None:
        limits.unregister()
    out = {"seconds": float(np.median(times)), "peak_extra_mb": (peak - before) / 1024,
           "data_mb": before / 1024}
    if case.startswith("hs"):
        out["ndcg_at_10"] = value
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=N_DOCS)
    ap.add_argument("--queries", type=int, default=N_QUERIES)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args.docs, args.queries, args.repeats)))
        return
    import os

    import numba

    figures = {"load_average_before": os.getloadavg()[0],
               "documents": args.docs, "queries": args.queries, "width": WIDTH, "top_k": 1000,
               "cores": len(os.sched_getaffinity(0)), "numba_threads": numba.config.NUMBA_NUM_THREADS,
               "repeats": args.repeats}
    for case in CASES:
        got = subprocess.run([sys.executable, __file__, "--case", case, "--docs", str(args.docs), "--queries",
                              str(args.queries), "--repeats", str(args.repeats)], capture_output=True, text=True)
        if got.returncode:
            sys.exit(f"case {case} failed:\n{got.stderr}")
        result = json.loads(got.stdout.strip().splitlines()[-1])
        figures.update({f"{case} {k}": v for k, v in result.items()})
    figures["load_average_after"] = os.getloadavg()[0]  # the machine is shared: other work slows every case
    figures["hs / matmul floor"] = figures["hs seconds"] / figures["matmul-floor seconds"]
    figures["numpy full / hs (time)"] = figures["numpy-full seconds"] / figures["hs-all-threads seconds"]
    figures["numpy full / hs (memory)"] = figures["numpy-full peak_extra_mb"] / max(1.0, figures["hs peak_extra_mb"])
    report(figures, args.json)


if __name__ == "__main__":
    main()
