"""How much the CPU's arithmetic moves hs's figures: the demo's STS corpora dumped as the CPU runs them
and again with MKL, oneDNN and ATen held to their SSE4.2 / plain kernels (the code paths of another
CPU), then the stored float16 states and the default recipe's scores compared, task by task.

    python scripts/cpu_arithmetic.py --native runs/minilm --out runs/cpu-check \
        --json benchmarks/results/cpu-arithmetic-minilm.json

``--native`` reuses a store the demo made (else one is dumped under OUT/native). The forward pass is
float32; it is its summation order (vector width, blocking of the matrix products) that differs between
CPUs, and a last-bit difference there can change a state's float16 rounding.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

TASKS = ("sts12", "sts13", "sts15", "sts16", "stsb")  # the demo's tasks with MTEB's published figures
OTHER_CPU = {"MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "ONEDNN_MAX_CPU_ISA": "SSE41", "DNNL_MAX_CPU_ISA": "SSE41",
             "ATEN_CPU_CAPABILITY": "default"}


def dump(out: Path, env: dict) -> None:
    args = [sys.executable, "-m", "cli.main", "dump", "--model", "minilm", "--out", str(out), "-q"]
    for task in TASKS:
        args += ["--task", task]
    subprocess.run(args, check=True, env={**os.environ, **env})


def scores(store: Path) -> dict:
    out = subprocess.run([sys.executable, "-m", "cli.main", "eval", str(store), *sum((["-t", t] for t in TASKS), []),
                          "--json", "-", "-q", "--no-cache"], check=True, capture_output=True, text=True).stdout
    return {r["hs_task"]: r["scores"]["test"][0]["cosine_spearman"] for r in json.loads(out)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--native", type=Path, help="a store with the tasks, dumped on this CPU as usual")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    import hsstore  # after the dumps' subprocesses are set up: this process only reads

    native = a.native or a.out / "native"
    if a.native is None:
        dump(native, {})
    other = a.out / "sse42"
    dump(other, OTHER_CPU)
    s_native, s_other = scores(native), scores(other)
    x, y = hsstore.open(native), hsstore.open(other)
    rows = {}
    for task in TASKS:
        cx, cy = x.corpus(task), y.corpus(task)
        assert cx.texts == cy.texts
        per_layer = []
        for layer in x.layers:
            u, v = cx.layer(layer).astype(np.float32), cy.layer(layer).astype(np.float32)
            per_layer.append({"layer": layer, "share_differing": float(np.mean(u != v)),
                              "max_abs_difference": float(np.abs(u - v).max())})
        rows[task] = {"cosine_spearman_native": s_native[task], "cosine_spearman_other_cpu_path": s_other[task],
                      "difference": s_other[task] - s_native[task], "states": per_layer}
    result = {"model": x.model["name"], "tasks": rows, "other_cpu_path": OTHER_CPU,
              "cpu": subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo"], capture_output=True,
                                    text=True).stdout.strip()}
    text = json.dumps(result, indent=1)
    if a.json:
        a.json.write_text(text + "\n")
    for task, r in rows.items():
        last = r["states"][-1]
        print(f"{task:6s} native {r['cosine_spearman_native']:.7f}  other path {r['cosine_spearman_other_cpu_path']:.7f}  "
              f"diff {r['difference']:+.1e}  last layer: {100 * last['share_differing']:.2f}% of states differ, "
              f"by up to {last['max_abs_difference']:.2g}")


if __name__ == "__main__":
    main()
