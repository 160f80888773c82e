"""Peak memory of pooling and of the Avg. table builder against store size (synthetic stores).

Writes synthetic stores of the given sizes with hs's own writer (random float16 states, random
token ids; 4 layers of 384), then measures each case in a fresh process: its peak resident set
(``ru_maxrss``) and, with ``--cap-gb``, under an address-space limit (``RLIMIT_AS``) smaller than
the largest store. Cases:

- ``whole-layer``: ``corpus.layer(3)`` (one whole layer in memory: what does not stream, for scale)
- ``all-layers``: every layer in memory at once (what ``hs eval`` held for ``layers=all`` before
  pooling streamed: its layer cache kept up to 4 GiB); it must fail under a cap below the store size
- ``mean-all``: the pooled matrices of every layer, mean pooling (what ``hs eval`` computes)
- ``max-mix``: max pooling over the mean of layers 0 and 3 (reads both layers together)
- ``avg-table``: the Avg. table of layer 3 over the corpus (the static view's builder)

    python benchmarks/memory.py --sizes 0.25,1,2 --dir /tmp/hs-memory --cap-gb 1.5 --json benchmarks/results/memory.json

The stores are deleted at the end unless ``--keep``. ``--stream-cost STORE`` instead times mean
pooling of WikiText-2's last layer read whole against read block by block (medians of 5, interleaved):

    python benchmarks/memory.py --stream-cost runs/minilm
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

LAYERS, HIDDEN, VOCAB = 4, 384, 2000
CASES = ("whole-layer", "all-layers", "mean-all", "max-mix", "avg-table")


def make_store(path: Path, gigabytes: float, seed: int = 0) -> dict:
    """A store of one corpus ``big`` whose hidden states take about ``gigabytes`` GB."""
    from hsstore.format.layout import KIND_TEXT, default_chunk_tokens
    from hsstore.store.writer import CorpusPlan, StoreWriter

    rng = np.random.default_rng(seed)
    n_tokens_target = int(gigabytes * 1e9 / (LAYERS * HIDDEN * 2))
    lengths = rng.integers(5, 60, size=n_tokens_target // 32 + 1)
    lengths = lengths[:int(np.searchsorted(np.cumsum(lengths), n_tokens_target)) + 1]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    n_tokens = int(offsets[-1])
    batch_ends = np.append(np.searchsorted(offsets, np.arange(8192, n_tokens, 8192))[1:], len(lengths))
    batch_ends = np.unique(batch_ends[batch_ends > 0]).astype(np.int64)
    plan = CorpusPlan("big", [f"s{i}" for i in range(len(lengths))], offsets,
                      rng.integers(0, VOCAB, size=n_tokens).astype(np.int32), np.full(n_tokens, KIND_TEXT, np.uint8),
                      batch_ends, 0, {"synthetic": seed})
    model = {"name": "synthetic", "architecture": "synthetic", "n_layers": LAYERS - 1, "hidden_size": HIDDEN,
             "vocab_size": VOCAB, "revision": "none", "config_sha256": "-", "tokenizer_sha256": "-"}
    settings = {"dtype": "float16", "layers": list(range(LAYERS)), "max_length": 512, "precision": "fp32",
                "batch_tokens": 8192, "max_batch": 256, "chunk_tokens": default_chunk_tokens(HIDDEN, "float16")}
    with StoreWriter(path, model, settings, [f"t{i}" for i in range(VOCAB)]) as store:
        fp = plan.fingerprint(store.identity)
        writer = store.open_corpus(plan, fp, store.corpus_status("big", fp))
        start = 0
        for b, end in enumerate(batch_ends):
            n = int(offsets[end] - offsets[start])
            writer.add(b, rng.standard_normal((LAYERS, n, HIDDEN), dtype=np.float32).astype(np.float16))
            start = end
        writer.finish()
    return {"tokens": n_tokens, "sentences": len(lengths)}


def measure(store: str, case: str) -> dict:
    """Run one case in this process (a fresh one) and return its figures."""
    import hsstore
    from analysis.runners.engine import Engine
    from analysis.recipes.recipe import parse_recipe

    corpus = hsstore.open(store).corpus("big")
    t0 = time.perf_counter()
    if case == "whole-layer":
        out = corpus.layer(3)
    elif case == "all-layers":
        out = np.stack([corpus.layer(layer) for layer in range(LAYERS)])
    elif case == "avg-table":
        from analysis.embedding.views import state_sums
        out = state_sums(corpus, 3, VOCAB)
    else:
        recipe = {"mean-all": "layers=all;pool=mean", "max-mix": "layers=0,3;pool=max"}[case]
        out = Engine(corpus.store, disk_cache=False).embed("big", parse_recipe(recipe))
    seconds = time.perf_counter() - t0
    return {"case": case, "seconds": seconds, "output_MB": out.nbytes / 1e6,
            "peak_rss_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def stream_cost(store: str, name: str = "wikitext2", repeats: int = 5) -> dict:
    import statistics

    import hsstore
    from analysis.embedding import pooling
    from analysis.embedding.kernels import pool_states

    corpus = hsstore.open(store).corpus(name)
    layer = corpus.store.layers[-1]
    w = np.ones(corpus.n_tokens, np.float32)
    runs = {"whole": lambda: pool_states(corpus.layer(layer), [1.0], corpus.offsets, w, "mean"),
            "streamed": lambda: pooling.pool_streamed(pooling.StoredStates(corpus, [layer]), [1.0], corpus.offsets,
                                                      w, "mean")}
    assert np.array_equal(runs["whole"](), runs["streamed"]())  # also compiles the kernel
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(repeats):
        for k, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    out = {"tokens": corpus.n_tokens, "layer": layer, **{f"{k}_s": statistics.median(v) for k, v in times.items()}}
    out["streamed_over_whole"] = out["streamed_s"] / out["whole_s"]
    out["load"] = os.getloadavg()[0]
    return out


def child(store: Path, case: str, cap_gb: float | None) -> dict:
    cmd = [sys.executable, __file__, "--measure", str(store), case] + (["--cap-gb", str(cap_gb)] if cap_gb else [])
    # glibc's per-thread malloc arenas reserve address space that is never used: limit them, so that
    # RLIMIT_AS caps memory rather than reservations
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "MALLOC_ARENA_MAX": "2"})
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return {"case": case, "failed": tail[:200]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="0.25,1,3", help="store sizes in GB of hidden states, comma-separated")
    ap.add_argument("--dir", type=Path, default=Path("/tmp/hs-memory"), help="where the synthetic stores go")
    ap.add_argument("--cap-gb", type=float, help="also run every case under RLIMIT_AS of this many GB")
    ap.add_argument("--keep", action="store_true", help="keep the stores")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--stream-cost", metavar="STORE", help="time streamed against whole-layer pooling")
    ap.add_argument("--measure", nargs=2, metavar=("STORE", "CASE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.stream_cost:
        print(json.dumps(stream_cost(args.stream_cost)))
        return
    if args.measure:
        if args.cap_gb:
            cap = int(args.cap_gb * (1 << 30))
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        print(json.dumps(measure(*args.measure)))
        return
    os.environ.setdefault("NUMBA_NUM_THREADS", "2")  # each thread's stack counts against RLIMIT_AS
    rows = []
    try:
        for size in map(float, args.sizes.split(",")):
            path = args.dir / f"store-{size:g}GB"
            if path.exists():
                shutil.rmtree(path)
            t0 = time.perf_counter()
            info = make_store(path, size)
            on_disk = sum(f.stat().st_size for f in (path / "corpora/big/hidden").rglob("*") if f.is_file())
            print(f"store {size:g} GB: {info['tokens']:,} tokens, {on_disk / 1e9:.2f} GB of states on disk, "
                  f"written in {time.perf_counter() - t0:.0f} s", flush=True)
            for cap in [None] + ([args.cap_gb] if args.cap_gb else []):
                for case in CASES:
                    row = {"store_GB": on_disk / 1e9, "tokens": info["tokens"], "cap_GB": cap,
                           **child(path, case, cap), "load": os.getloadavg()[0]}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
            if not args.keep:
                shutil.rmtree(path)
    finally:
        if not args.keep:
            shutil.rmtree(args.dir, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
