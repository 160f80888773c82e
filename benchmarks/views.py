"""Static views: building the Avg. tables, and a static-view recipe against a contextual one.

- Avg. tables over WikiText-2, one layer: bytes of stored states per second streamed through the
  scatter-add kernel, against reading the same layer and pooling it (mean) with the pooling
  kernel; and the peak memory allocated while building every layer's table, against the tables
  themselves and the corpus's states.
- One recipe over the 7 STS tasks, warm (states or tables in memory, kernels compiled, pooled
  matrices recomputed): static views (`re`, `input`, `avg`) against the contextual last layer.

    python benchmarks/views.py /work/stores/views-minilm --json benchmarks/results/views-cpu-minilm.json
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile

from common import timed

STS = ["sts12", "sts13", "sts14", "sts15", "sts16", "stsb", "sickr"]



def table_rate(store, layer: int, repeats: int) -> dict:
    import numpy as np

    from analysis.embedding.kernels import pool_states
    from analysis.embedding.views import state_sums

    wiki = store.corpus("wikitext2")
    nbytes = wiki.n_tokens * store.hidden_size * wiki.stored_dtype.itemsize
    ones = np.ones(wiki.n_tokens, dtype=np.float32)
    state_sums(wiki, layer, len(store.vocab), block_tokens=4096)  # compile
    pool_states(wiki.layer_rows(layer, 0, 4096), [1.0], np.array([0, 4096]), ones[:4096], "mean")
    t_pool = timed(lambda: pool_states(wiki.layer(layer), [1.0], wiki.offsets, ones, "mean"), repeats)
    t_avg = timed(lambda: state_sums(wiki, layer, len(store.vocab)), repeats)
    return {"layer_mb": nbytes / 1e6, "read_and_pool_mb_s": nbytes / 1e6 / t_pool,
            "stream_avg_table_mb_s": nbytes / 1e6 / t_avg, "ratio_avg_to_pool": t_pool / t_avg}


def peak_memory(store) -> dict:
    """Peak bytes allocated (tracemalloc sees numpy's buffers, zarr's reads included) while building
    every layer's Avg. table and keeping them all."""
    import tracemalloc

    from analysis.embedding.views import state_sums

    wiki = store.corpus("wikitext2")
    wiki.all_token_ids  # noqa: B018 - the token ids (read once, kept by the corpus) are not counted
    tracemalloc.start()
    tables = [state_sums(wiki, layer, len(store.vocab)) for layer in store.layers]
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    layer_bytes = wiki.n_tokens * store.hidden_size * wiki.stored_dtype.itemsize
    return {"peak_mb": peak / 1e6, "tables_mb": sum(t.nbytes for t in tables) / 1e6,
            "one_layer_of_corpus_mb": layer_bytes / 1e6, "all_layers_of_corpus_mb": layer_bytes * len(store.layers) / 1e6}


def recipe_times(store, recipes: list[str], repeats: int) -> dict:
    from analysis.runners.engine import Engine
    from analysis.recipes.recipe import parse_recipe
    from hsstore.tasks import get_task

    engine = Engine(store, disk_cache=False)
    tasks = [get_task(t) for t in STS]
    out = {}
    for text in recipes:
        recipe = parse_recipe(text)

        def run(recipe=recipe):
            engine.pooler.pooled.clear()  # recompute the pooled matrices; tables stay, states are read again
            return [engine.evaluate(t, recipe).main_score for t in tasks]

        scores = run()  # warm up: read states, build tables, compile
        out[text] = {"seconds": timed(run, repeats), "avg_score": sum(scores) / len(scores)}
    base = out[recipes[0]]["seconds"]
    for text in recipes:
        out[text]["ratio_to_first"] = out[text]["seconds"] / base
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("store")
    ap.add_argument("--layer", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json")
    args = ap.parse_args()
    os.environ.setdefault("HS_CACHE", tempfile.mkdtemp())
    import hsstore

    store = hsstore.open(args.store)
    result = {"avg_table_build": table_rate(store, args.layer, args.repeats), "avg_table_memory": peak_memory(store),
              "sts7_warm": recipe_times(store, ["layers=last", "view=re;layers=last", "view=input",
                                                "view=avg;layers=last"], args.repeats)}
    a = result["avg_table_build"]
    print(f"Avg. table, layer {args.layer} of WikiText-2 ({a['layer_mb']:.0f} MB of states): streamed "
          f"{a['stream_avg_table_mb_s']:.0f} MB/s; read + mean-pool {a['read_and_pool_mb_s']:.0f} MB/s; "
          f"ratio {a['ratio_avg_to_pool']:.2f}")
    m = result["avg_table_memory"]
    print(f"Avg. tables of all {len(store.layers)} layers: peak allocation {m['peak_mb']:.0f} MB "
          f"(tables {m['tables_mb']:.0f} MB; the corpus's states {m['all_layers_of_corpus_mb']:.0f} MB)")
    for text, r in result["sts7_warm"].items():
        print(f"{text:28s} 7 STS tasks warm: {r['seconds']:.3f} s ({r['ratio_to_first']:.2f}x the first), "
              f"avg {r['avg_score']:.2f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)


if __name__ == "__main__":
    main()
