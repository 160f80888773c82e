"""Encoding new texts: ``hs encode`` of ``-r model`` against ``SentenceTransformer(model).encode`` of the
same texts with the same batch size, and a static recipe's exports against the contextual model.

Both contextual encoders run in this process over the same texts, alternating (hs, st, hs, st, ...),
so both see the same machine; the figure is the median of the per-pair throughput ratios. ``hs``
is what ``hs encode`` runs (``Encoder.load(DIR).encode``: the dump's plan and forward pass, the
pooling kernel, post-processing), with DIR from ``hs fit STORE -r model``. The static recipe
(``view=avg@REF;drop=special;weights=idf@REF;post=l2``) is timed through its model2vec folder, its
StaticEmbedding folder and hs's own encoder, each against sentence-transformers' contextual model in
the same run.

    python benchmarks/encode.py --store runs/enc --task stsb --json benchmarks/results/encode-cpu-minilm.json
    python benchmarks/encode.py                      # dumps STS-B into a temporary store first
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import hsstore
from analysis.recipes.recipe import parse_recipe
from encoder import Encoder
from encoder.fit import fit_folder
from hsstore.dump.model import resolve_model_path
from hsstore.dump.run import run_dump
from hsstore.dump.sources import CorpusSource
from hsstore.dump.st_modules import model_recipe
from hsstore.tasks import get_task
from common import report  # noqa: E402


def seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def side_by_side(a, b, repeats: int) -> tuple[list[float], list[float]]:
    """Wall times of ``a`` and ``b`` run alternately ``repeats`` times each."""
    ta, tb = [], []
    for _ in range(repeats):
        ta.append(seconds(a))
        tb.append(seconds(b))
    return ta, tb


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", type=Path, help="a MiniLM store holding --ref [default: dump --task into a temporary one]")
    ap.add_argument("--task", action="append", default=None, help="whose texts to encode [default: stsb]")
    ap.add_argument("--ref", default=None, help="the static recipe's reference corpus [default: the first task]")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", type=Path, help="write the figures here too")
    args = ap.parse_args()
    from sentence_transformers import SentenceTransformer
    from model2vec import StaticModel
    import torch

    tasks = args.task or ["stsb"]
    ref = args.ref or tasks[0]
    texts = [t for task in tasks for t in get_task(task).texts()]
    scratch = Path(tempfile.mkdtemp())
    try:
        store_path = args.store
        if store_path is None:
            store_path = scratch / "store"
            run_dump("minilm", [CorpusSource(ref, get_task(ref).texts(), {"task": ref})], store_path, progress=False,
                     log=lambda m: None)
        store = hsstore.open(store_path)
        model_text = model_recipe(store.model.get("pipeline"), store.model["name"])
        static_text = f"view=avg@{ref};drop=special;weights=idf@{ref};post=l2"
        fit_folder(store, parse_recipe(model_text), scratch / "model")
        for fmt in ("hs", "model2vec", "static-embedding"):
            fit_folder(store, parse_recipe(static_text), scratch / f"static-{fmt}", fmt=fmt)

        hs_model = Encoder.load(scratch / "model")
        st_model = SentenceTransformer(resolve_model_path("minilm"), device="cpu")
        hs_static = Encoder.load(scratch / "static-hs")
        m2v = StaticModel.from_pretrained(str(scratch / "static-model2vec"))
        st_static = SentenceTransformer(str(scratch / "static-static-embedding"), device="cpu")
        bs = args.batch_size
        runs = {
            "hs": lambda: hs_model.encode(texts, batch_size=bs),
            "st": lambda: st_model.encode(texts, batch_size=bs),
            "model2vec": lambda: m2v.encode(texts, batch_size=1024, use_multiprocessing=False),
            "static_embedding": lambda: st_static.encode(texts, batch_size=1024),
            "hs_static": lambda: hs_static.encode(texts, batch_size=1024),
        }
        for fn in runs.values():  # warm-up: compiled kernels, thread pools, first allocations
            fn()
        # agreement: the vectors both contextual encoders give, and the static ones
        X_hs, X_st = runs["hs"](), runs["st"]()
        X_static, X_m2v, X_se = runs["hs_static"](), runs["model2vec"](), runs["static_embedding"]()
        t_hs, t_st = side_by_side(runs["hs"], runs["st"], args.repeats)
        ratios = [s / h for h, s in zip(t_hs, t_st)]  # hs throughput / st throughput
        figures = {
            "model": store.model["name"], "texts": len(texts), "tasks": tasks, "batch_size": bs,
            "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(), "repeats": args.repeats,
            "recipe_model": model_text, "hs_encode_s": t_hs, "st_encode_s": t_st,
            "hs_texts_per_s": len(texts) / statistics.median(t_hs), "st_texts_per_s": len(texts) / statistics.median(t_st),
            "hs_over_st_throughput": statistics.median(ratios), "ratio_per_pair": ratios,
            "max_abs_diff_hs_st": float(np.abs(X_hs - X_st).max()),
            "recipe_static": static_text,
        }
        for name in ("model2vec", "static_embedding", "hs_static"):
            t_static, t_ctx = side_by_side(runs[name], runs["st"], args.repeats)
            factors = [c / s for s, c in zip(t_static, t_ctx)]
            figures[f"{name}_texts_per_s"] = len(texts) / statistics.median(t_static)
            figures[f"{name}_over_contextual"] = statistics.median(factors)
        figures["max_abs_diff_model2vec_hs_static"] = float(np.abs(X_m2v - X_static).max())
        figures["max_abs_diff_static_embedding_hs_static"] = float(np.abs(X_se - X_static).max())
        report(figures, args.json)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
