"""A sharded dump against a dump in one process: wall time of N shard processes side by side, the
merge's time, and whether the merged store's files equal the one-process dump's.

Each repetition runs the one-process dump, then the N shards at once (``hs dump --shard K/N``, each
a process of its own), then ``hs merge``; the ratio is per repetition. On a machine with one GPU per
shard the shards run in parallel; on a CPU machine they share its cores.

    python benchmarks/shards.py --model minilm --task sts12 --shards 2 --repeats 2
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import report  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def hs(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cli.main", *args, "-q"] if args[0] == "dump" else
                            [sys.executable, "-m", "cli.main", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def wait_all(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"hs failed: {err.strip()[-300:]}")


def snapshot(path: Path) -> dict[str, str]:
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--task", action="append", default=None)
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", type=Path, help="write the figures here too")
    args = ap.parse_args()
    base = ["dump", "--model", args.model, "--device", args.device]
    for task in args.task or ["sts12"]:
        base += ["--task", task]
    scratch = Path(tempfile.mkdtemp())
    one, sharded, merged, identical = [], [], [], []
    try:
        for r in range(args.repeats):
            single, multi = scratch / f"one{r}", scratch / f"sharded{r}"
            t0 = time.perf_counter()
            wait_all([hs(*base, "--out", str(single))])
            one.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            wait_all([hs(*base, "--out", str(multi), "--shard", f"{k}/{args.shards}")
                      for k in range(1, args.shards + 1)])
            sharded.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            wait_all([hs("merge", str(multi))])
            merged.append(time.perf_counter() - t0)
            identical.append(snapshot(single) == snapshot(multi))
            size = sum(p.stat().st_size for p in single.rglob("*") if p.is_file())
            shutil.rmtree(single)
            shutil.rmtree(multi)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    ratios = [o / (s + m) for o, s, m in zip(one, sharded, merged)]
    report({"model": args.model, "tasks": args.task or ["sts12"], "shards": args.shards, "cpus": os.cpu_count(),
            "load_avg": os.getloadavg(), "store_bytes": size, "one_process_s": one, "shards_side_by_side_s": sharded,
            "merge_s": merged, "speedup_with_merge": ratios, "speedup_median": statistics.median(ratios),
            "merged_files_identical": identical}, args.json)


if __name__ == "__main__":
    main()
