"""``hs eval`` speed on a MiniLM store of the 7 classic STS tasks (+ WikiText-2), all in one run.

- one recipe over the 7 STS tasks: warm (in memory), warm from the disk cache, cold, and with
  whitening / quantile-to-uniform;
- the pooling kernel's float16 read rate against a memory copy of the same bytes (one thread and
  all threads) and against a straightforward numpy implementation, and the float16 decode choice
  (in-kernel table lookup vs ``astype(float32)`` first);
- reading: every stored layer of the 7 STS corpora read whole (``Corpus.layer``: each chunk file
  read, its CRC-32C computed and compared with its own and the manifest's);
- a 200-recipe STS grid, from an empty cache;
- the same recipes recomputed by running the model (a bare forward pass over the 7 STS corpora).

``--against DIR`` measures reading, pooling and a cold recipe side by side with another revision's
code (a ``git worktree add DIR REV``): the two run in turns, each in a fresh process with
PYTHONPATH at its tree, and the JSON gives each figure's median for both and their ratio.

    bash scripts/demo.sh            # makes runs/minilm
    python benchmarks/eval.py runs/minilm --json benchmarks/results/eval-cpu-minilm.json
    git worktree add /tmp/prev HEAD~1
    python benchmarks/eval.py runs/minilm --against /tmp/prev --rounds 5 --json benchmarks/results/read-against.json
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import timed

STS = ["sts12", "sts13", "sts14", "sts15", "sts16", "stsb", "sickr"]



def kernel_figures(store, layer: int, repeats: int) -> dict:
    from analysis.embedding.kernels import pool_states  # first: it sets numba's cache location

    import numba

    @numba.njit(parallel=True, cache=True)
    def parallel_copy(src, dst):
        for i in numba.prange(src.shape[0]):
            dst[i] = src[i]


    corpora = [store.corpus(t) for t in STS]
    layers = [c.layer(layer) for c in corpora]
    offsets = [c.offsets for c in corpora]
    ones = [np.ones(c.n_tokens, dtype=np.float32) for c in corpora]
    nbytes = sum(x.nbytes for x in layers)
    dsts = [np.empty_like(x) for x in layers]
    for x, d in zip(layers, dsts):  # touch destination pages and compile before timing
        np.copyto(d, x)
        parallel_copy(x.view(np.uint16), d.view(np.uint16))
        pool_states(x, [1.0], offsets[0][:2], ones[0], "mean")

    def kernel():
        for x, o, w in zip(layers, offsets, ones):
            pool_states(x, [1.0], o, w, "mean")

    def kernel_astype():
        for x, o, w in zip(layers, offsets, ones):
            pool_states(x.astype(np.float32), [1.0], o, w, "mean")

    def numpy_mean():
        for x, o in zip(layers, offsets):
            np.add.reduceat(x.astype(np.float32), o[:-1], axis=0) / np.diff(o)[:, None]

    def copy1():
        for x, d in zip(layers, dsts):
            np.copyto(d, x)

    def copy_all():
        for x, d in zip(layers, dsts):
            parallel_copy(x.view(np.uint16), d.view(np.uint16))

    fns = {"kernel": kernel, "kernel_astype": kernel_astype, "numpy": numpy_mean, "copy_1thread": copy1,
           "copy_all_threads": copy_all}
    runs = {name: [] for name in fns}
    for _ in range(repeats):  # interleaved, so each ratio compares runs seconds apart
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            runs[name].append(time.perf_counter() - t0)

    def ratio(slow, fast):
        return statistics.median(s / f for s, f in zip(runs[slow], runs[fast]))

    t = {k: statistics.median(v) for k, v in runs.items()}
    return {"bytes_float16": nbytes, "threads": numba.get_num_threads(),
            "GBps": {k: nbytes / v / 1e9 for k, v in t.items()},
            "kernel_vs_copy_all_threads": ratio("copy_all_threads", "kernel"),
            "kernel_vs_copy_1thread": ratio("copy_1thread", "kernel"),
            "kernel_vs_numpy": ratio("numpy", "kernel"), "table_decode_vs_astype": ratio("kernel_astype", "kernel")}


def read_figures(store_path, repeats: int) -> dict:
    """Every stored layer of the 7 STS corpora, read whole, in a store opened anew each time."""
    import hsstore

    def read_all():
        store = hsstore.open(store_path)
        return sum(store.corpus(t).layer(layer).nbytes for t in STS for layer in store.layers)

    nbytes = read_all()  # the files into the page cache: this times the reader, not the disk
    t = timed(read_all, repeats)
    return {"read_all_layers_s": t, "read_GBps": nbytes / t / 1e9, "bytes": nbytes}


def recipe_figures(store_path, repeats: int) -> dict:
    import hsstore
    from analysis.runners.engine import Engine
    from analysis.recipes.recipe import parse_recipe
    from hsstore.tasks import get_task

    tasks = [get_task(t) for t in STS]
    recipes = {"mean, first-last": "layers=first-last;pool=mean",
               "+ whitening@wikitext2": "layers=first-last;pool=mean;post=whiten@wikitext2",
               "+ quantile": "layers=first-last;pool=mean;post=quantile"}
    out = {}

    def run(engine, text):
        recipe = parse_recipe(text)
        return [engine.evaluate(t, recipe) for t in tasks]

    # cold: no pooled cache anywhere, layers read from the store
    store = hsstore.open(store_path)
    t0 = time.perf_counter()
    run(Engine(store, disk_cache=False), recipes["mean, first-last"])
    out["cold_s"] = time.perf_counter() - t0
    warm = Engine(store)
    run(warm, recipes["mean, first-last"])  # fills the disk cache
    for name, text in recipes.items():
        run(warm, text)
        out[f"warm_memory_s[{name}]"] = timed(lambda: run(warm, text), repeats)

    def fresh():  # a new process's view: pooled matrices from the disk cache
        run(Engine(hsstore.open(store_path)), recipes["mean, first-last"])
    out["warm_disk_s"] = timed(fresh, repeats)
    return out


def grid_figures(store_path) -> dict:
    import hsstore
    from analysis.runners.engine import Engine
    from analysis.recipes.recipe import grid
    from hsstore.tasks import get_task

    axes = {"layers": ["0", "1", "2", "3", "4", "5", "6", "first-last", "emb-last", "all"],
            "pool": ["mean", "max"], "drop": ["none", "special"],
            "post": ["none", "zscore", "l2", "whiten@wikitext2", "abtt:d=3@wikitext2"]}
    recipes = grid(axes)
    tasks = [get_task(t) for t in STS]
    engine = Engine(hsstore.open(store_path))
    t0 = time.perf_counter()
    results = engine.run(tasks, recipes, progress=False)
    secs = time.perf_counter() - t0
    best = max(recipes, key=lambda r: np.mean([x.main_score for x in results if x.recipe == r]))
    return {"recipes": len(recipes), "evaluations": len(results), "grid_s": secs, "per_recipe_s": secs / len(recipes),
            "best_recipe": str(best)}


def model_figures(store_path) -> dict:
    import hsstore
    from hsstore.dump import model as model_mod
    from hsstore.dump.sources import CorpusSource
    from hsstore.dump.forward import Forward
    from hsstore.dump.plan import plan_corpus
    from hsstore.tasks import get_task

    store = hsstore.open(store_path)
    loaded = model_mod.load(store.model["name"])
    forward = Forward(loaded, store.layers, "cpu", "fp32", "float16")
    t0 = time.perf_counter()
    for task in STS:
        plan = plan_corpus(loaded.tokenizer, CorpusSource(task, get_task(task).texts(), {}),
                           store.settings["max_length"], store.settings["batch_tokens"], store.settings["max_batch"])
        for b in range(len(plan.batch_ends)):
            forward.model_states(*forward.inputs(plan, b))
    return {"model_forward_7sts_s": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("store")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--layer", type=int, default=6)
    ap.add_argument("--skip-model", action="store_true", help="skip the (minute-long) forward pass")
    ap.add_argument("--only", action="append", choices=["kernel", "read", "recipe", "grid", "model"],
                    help="measure only these parts (repeatable)")
    ap.add_argument("--against", type=Path, metavar="DIR",
                    help="a checkout of another revision: reading, pooling and a cold recipe, side by side with it")
    ap.add_argument("--rounds", type=int, default=5, help="with --against: turns of each revision (default 5)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if args.against:
        return against(args)
    parts = set(args.only or ["kernel", "read", "recipe", "grid"] + ([] if args.skip_model else ["model"]))
    cache = tempfile.mkdtemp(prefix="hs-bench-cache-")
    os.environ["HS_CACHE"] = cache  # an empty pooled-matrix cache, so cold means cold
    try:
        import hsstore

        figures = {}
        if "kernel" in parts:
            figures["kernel"] = kernel_figures(hsstore.open(args.store), args.layer, args.repeats)
        if "read" in parts:
            figures["read"] = read_figures(args.store, args.repeats)
        if "recipe" in parts:
            figures["recipe"] = recipe_figures(args.store, args.repeats)
        if "grid" in parts:
            figures["grid"] = grid_figures(args.store)
        if "model" in parts and "grid" in parts and "recipe" in parts:
            figures["model"] = model_figures(args.store)
            figures["model"]["model_over_eval_per_recipe"] = (figures["model"]["model_forward_7sts_s"]
                                                               / figures["grid"]["per_recipe_s"])
            figures["model"]["model_over_eval_warm_recipe"] = (figures["model"]["model_forward_7sts_s"]
                                                               / figures["recipe"]["warm_memory_s[mean, first-last]"])
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    print(json.dumps(figures, indent=1))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


SIDE_BY_SIDE = {"read": ("read", "read_all_layers_s"), "pool (kernel GB/s)": ("kernel", "GBps", "kernel"),
                "cold recipe": ("recipe", "cold_s"), "warm from the disk cache": ("recipe", "warm_disk_s")}


def against(args) -> None:
    """Reading, pooling and a cold recipe with this tree's code and with ``args.against``'s, in turns."""
    here = Path(__file__).resolve().parents[1]
    runs: dict[str, list[dict]] = {"this": [], "against": []}
    for _ in range(args.rounds):
        for label, root in (("against", args.against.resolve()), ("this", here)):
            with tempfile.NamedTemporaryFile(suffix=".json") as out:
                env = {**os.environ, "PYTHONPATH": str(root)}
                subprocess.run([sys.executable, __file__, args.store, "--only", "read", "--only", "kernel", "--only",
                                "recipe", "--repeats", str(args.repeats), "--json", out.name],
                               env=env, check=True, stdout=subprocess.DEVNULL)
                runs[label].append(json.loads(Path(out.name).read_text()))

    def pick(fig, path):
        for key in path:
            fig = fig[key]
        return fig

    result = {"store": args.store, "against": str(args.against), "rounds": args.rounds,
              "revisions": {label: _revision(root) for label, root in (("this", here), ("against", args.against))}}
    for name, path in SIDE_BY_SIDE.items():
        this = statistics.median(pick(r, path) for r in runs["this"])
        other = statistics.median(pick(r, path) for r in runs["against"])
        result[name] = {"this": this, "against": other, "this_over_against": this / other}
    result["runs"] = runs
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


def _revision(root: Path) -> str:
    proc = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return proc.stdout.strip() + (" (with uncommitted changes)" if dirty else "")


if __name__ == "__main__":
    main()
