"""`hs eval --scheduler local:2` against `local:1` and a single process, over one grid, side by side.

Each run is a whole `hs eval` command with its own empty pooled-matrix cache (so every run pools
from the store), timed wall-clock and in CPU seconds of all its processes (workers included). The
JSON scores of every run are compared: they must be identical.

    python benchmarks/dask_eval.py /work/stores/minilm --json benchmarks/results/dask-eval-minilm.json
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STS = ("sts12", "sts13", "sts14", "sts15", "sts16", "stsb", "sickr")
GRID = ("--layers", "last", "--layers", "first-last", "--layers", "all", "--layers", "3",
        "--pool", "mean", "--pool", "max", "--post", "none", "--post", "whiten@wikitext2")
RUNS = {"one process, --jobs 1": ("--jobs", "1"), "one process, --jobs 2": ("--jobs", "2"),
        "--scheduler local:1": ("--scheduler", "local:1"), "--scheduler local:2": ("--scheduler", "local:2")}


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(store: str, extra: tuple[str, ...], scratch: Path) -> dict:
    cache, out = scratch / "cache", scratch / "out.json"
    shutil.rmtree(cache, ignore_errors=True)
    cmd = [sys.executable, "-m", "cli.main", "eval", store, *(a for t in STS for a in ("-t", t)), *GRID, *extra,
           "-q", "--json", str(out)]
    env = {**os.environ, "HS_CACHE": str(cache)}
    load, cpu0, t0 = os.getloadavg()[0], children_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, children_cpu() - cpu0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    records = json.loads(out.read_text())
    return {"wall_s": wall, "cpu_s": cpu, "load_before": load, "load_after": os.getloadavg()[0],
            "evaluations": len(records), "scores": [(r["hs_task"], r["recipe"], r["scores"]) for r in records]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("store")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="hs-dask-bench-"))
    try:
        results = {name: run(args.store, extra, scratch) for name, extra in RUNS.items()}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    reference = results["one process, --jobs 1"]["scores"]
    figures = {"cores": len(os.sched_getaffinity(0)), "tasks": STS, "grid": GRID,
               "evaluations": len(reference),
               "all_scores_identical": all(r["scores"] == reference for r in results.values())}
    for name, r in results.items():
        print(f"{name:24s} {r['wall_s']:7.1f} s wall {r['cpu_s']:7.1f} s CPU  load {r['load_before']:.1f}"
              f" -> {r['load_after']:.1f}")
        figures[name] = {k: v for k, v in r.items() if k != "scores"}
    one, two = results["--scheduler local:1"]["wall_s"], results["--scheduler local:2"]["wall_s"]
    figures["speedup_local2_over_local1"] = one / two
    figures["speedup_local2_over_jobs1"] = results["one process, --jobs 1"]["wall_s"] / two
    print(f"speed-up local:2 over local:1: {one / two:.2f}x; over one process --jobs 1: "
          f"{figures['speedup_local2_over_jobs1']:.2f}x; scores identical: {figures['all_scores_identical']}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
