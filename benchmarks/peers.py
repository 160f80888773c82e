"""Static token models side by side with the real ``model2vec`` package, on the 7 classic STS test sets.

In one run, on one store (the 7 STS tasks, WikiText-2, STS-B's dev split):

- Model2Vec: ``model2vec.distill.distill`` of the store's model with the package's defaults (PCA
  to 256 dimensions, Zipf weights with 1e-4, float16, ``[unused]`` tokens removed), its sentences
  encoded by ``StaticModel.encode`` and scored by hs's own STS evaluator (the same pairs from hs's
  task registry, cosine, Spearman, STS12-16 subsets concatenated);
- hs's ``view=alone`` recipe of Model2Vec's defaults (fixed in advance, not chosen);
- hs's static views (alone, Avg. and BERT2Static over WikiText-2, the input embeddings, RE), each
  bare and with the shaping chosen for it on STS-B's dev split from a small grid of reference-corpus
  statistics (WikiText-2's idf or SIF, Zipf, all-but-the-top, whitening: never a test set's), and
  the best of all of them on the dev split;
- the contextual model (its own recipe: last layer, mean).

Times: distillation (the package's ``distill``; hs's vocabulary dump, run in the same process into a
temporary store, and the BERT2Static training; the Avg. table), and encoding STS-B's 2,552 sentences
(the package from raw text; hs from the stored token ids, plus the tokenizer's time on the same texts
shown apart; the contextual model by a forward pass). Disk: what each row's vectors need.

    python benchmarks/peers.py /work/stores/static-minilm --b2s-epochs 5 --json benchmarks/results/peers-cpu-minilm.json
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

STS = ["sts12", "sts13", "sts14", "sts15", "sts16", "stsb", "sickr"]
DEV = "stsb-dev"
M2V_RECIPE = "view=alone>tablepca:k=256;layers=last;drop=special+unk;weights=zipf"
CTX_RECIPE = "view=ctx;layers=last;pool=mean"
VIEWS = {"alone": "view=alone;layers=last", "alone>tablepca": "view=alone>tablepca:k=256;layers=last",
         "Avg.": "view=avg;layers=last", "B2S": "view=b2s", "input": "view=input", "RE": "view=re:seed=0"}
SHAPING = [f"drop={d};weights={w};post={p}" for d in ("none", "special+unk")
           for w in ("none", "idf@wikitext2", "sif:a=0.001@wikitext2", "zipf")
           for p in ("none", "abtt:d=3@wikitext2", "whiten@wikitext2")]


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("store")
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--b2s-epochs", type=int, default=1, help="epochs of hs b2s (choose them on the dev split)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    import numpy as np
    import torch
    from transformers import AutoModel, AutoTokenizer

    import hsstore
    from analysis.embedding.views import state_sums
    from analysis.recipes.recipe import parse_recipe
    from analysis.runners.engine import Engine
    from hsstore.distil.b2s import Settings, run as train_b2s
    from hsstore.dump.model import resolve_model_path
    from hsstore.dump.run import run_dump
    from hsstore.store import vocabulary
    from hsstore.tasks import get_task
    from model2vec.distill import distill

    torch.set_num_threads(1)  # every row on one thread (the machine is shared; ratios stay fair)
    model_dir = resolve_model_path(args.model)
    tasks = [get_task(t) for t in STS]
    out = {"store": args.store, "model": args.model, "rows": [], "notes": []}
    work = Path(tempfile.mkdtemp(prefix="hs-peers-"))
    try:
        # -- distillations, side by side ------------------------------------------------------------
        t0 = time.perf_counter()
        m2v = distill(model_dir, device="cpu")
        t_m2v = time.perf_counter() - t0
        m2v.save_pretrained(work / "m2v")
        t0 = time.perf_counter()
        run_dump(model_dir, [], work / "vocab-store", progress=False, log=lambda m: None, vocabulary_states=True,
                 device="cpu")
        t_vocab = time.perf_counter() - t0
        vocab_bytes = du(work / "vocab-store" / vocabulary.GROUP)
        b2s_measured = train_b2s(args.store, "wikitext2", Settings(epochs=args.b2s_epochs), progress=False,
                                 log=lambda m: print(m, file=sys.stderr))
        store = hsstore.open(args.store)
        t0 = time.perf_counter()
        state_sums(store.corpus("wikitext2"), store.n_model_layers, len(store.vocab))
        t_avg = time.perf_counter() - t0
        engine = Engine(store, disk_cache=False)

        def scores(recipe: str) -> list[float]:
            r = parse_recipe(recipe)
            engine.check(tasks, [r])
            return [round(engine.evaluate(t, r).main_score, 2) for t in tasks]

        def dev(recipe: str) -> float:
            return engine.evaluate(get_task(DEV), parse_recipe(recipe)).main_score

        # -- encode times on STS-B ------------------------------------------------------------------
        stsb = store.corpus("stsb")
        texts = stsb.texts
        t0 = time.perf_counter()
        m2v.encode(texts)
        t_m2v_enc = time.perf_counter() - t0
        tok = AutoTokenizer.from_pretrained(model_dir)
        t0 = time.perf_counter()
        tok(texts)
        t_tok = time.perf_counter() - t0
        model = AutoModel.from_pretrained(model_dir).eval()
        t0 = time.perf_counter()
        with torch.inference_mode():
            for i in range(0, len(texts), 64):
                model(**tok(texts[i:i + 64], padding=True, truncation=True, return_tensors="pt"))
        t_ctx_enc = time.perf_counter() - t0

        def hs_encode_seconds(recipe: str) -> float:
            """Pooling STS-B's stored ids (and the post-processing's transform) with the table built,
            the kernels compiled and the post-processing fitted: what encoding new sentences costs."""
            r = parse_recipe(recipe)
            engine.embed("stsb", r)
            engine.pooler.pooled.clear()
            engine.pooler.weights.clear()
            t = time.perf_counter()
            engine.embed("stsb", r)
            return time.perf_counter() - t

        # -- the package's own row ------------------------------------------------------------------
        m2v_scores, exact, gap = [], [], 0.0
        for task in tasks:
            corpus = store.corpus(task.id)
            Y = m2v.encode(corpus.texts).astype(np.float32)
            m2v_scores.append(round(engine.evaluator(task)(Y)["main_score"], 2))
            X = engine.embed(task.id, parse_recipe(M2V_RECIPE + ";post=l2"))
            gap = max(gap, float(np.abs(X - Y).max()))
            exact.append([engine.evaluator(task)(Y)["main_score"], engine.evaluator(task)(X)["main_score"]])
        out["m2v_agreement"] = {"max_abs_difference_of_unit_vectors": gap, "scores_package_hs": exact}
        dev_corpus = store.corpus(DEV)
        m2v_dev = engine.evaluator(get_task(DEV))(m2v.encode(dev_corpus.texts).astype(np.float32))["main_score"]
        rows = [{"row": "model2vec package, defaults", "recipe": "model2vec.distill.distill(model), defaults",
                 "chosen": "the package's defaults", "scores": m2v_scores, "dev": round(m2v_dev, 2), "distill_s": round(t_m2v, 1),
                 "encode_stsb_s": round(t_m2v_enc, 3), "disk_bytes": du(work / "m2v")}]
        rows.append({"row": "hs view=alone, Model2Vec's defaults", "recipe": M2V_RECIPE,
                     "chosen": "Model2Vec's defaults, fixed in advance", "scores": scores(M2V_RECIPE),
                     "dev": round(dev(M2V_RECIPE), 2),
                     "distill_s": round(t_vocab, 1), "encode_stsb_s": round(hs_encode_seconds(M2V_RECIPE), 3),
                     "disk_bytes": vocab_bytes})
        # -- hs's static views: bare, and with the shaping chosen on the dev split ----------------------
        dev_scores = {}
        for view in VIEWS.values():
            for shaping in SHAPING:
                dev_scores[f"{view};{shaping}"] = round(dev(f"{view};{shaping}"), 2)
        costs = {"alone": (t_vocab, vocab_bytes), "alone>tablepca": (t_vocab, vocab_bytes),
                 "Avg.": (t_avg, len(store.vocab) * store.hidden_size * 4),
                 "B2S": (b2s_measured["seconds"], len(store.vocab) * store.hidden_size * 4),
                 "input": (0.0, len(store.vocab) * store.hidden_size * 4), "RE": (0.0, 0)}
        for name, view in VIEWS.items():
            best = max((f"{view};{s}" for s in SHAPING), key=lambda r: dev_scores[r])
            for label, recipe, chosen in ((f"{name}, bare", f"{view};drop=none;weights=none;post=none", "no shaping"),
                                          (f"{name}, shaped", best, f"best of {len(SHAPING)} shapings on {DEV}")):
                rows.append({"row": label, "recipe": str(parse_recipe(recipe)), "chosen": chosen, "scores": scores(recipe),
                             "dev": dev_scores[recipe] if recipe in dev_scores else round(dev(recipe), 2),
                             "distill_s": round(costs[name][0], 1), "encode_stsb_s": round(hs_encode_seconds(recipe), 3),
                             "disk_bytes": costs[name][1]})
        best_static = max(dev_scores, key=dev_scores.get)
        rows.append({"row": "hs best static (reference-corpus statistics only)", "recipe": str(parse_recipe(best_static)),
                     "chosen": f"best of {len(dev_scores)} static recipes on {DEV}", "scores": scores(best_static),
                     "dev": dev_scores[best_static], "encode_stsb_s": round(hs_encode_seconds(best_static), 3)})
        rows.append({"row": "contextual model (its own recipe)", "recipe": CTX_RECIPE, "chosen": "the model's pipeline",
                     "scores": scores(CTX_RECIPE), "dev": round(dev(CTX_RECIPE), 2), "encode_stsb_s": round(t_ctx_enc, 2),
                     "disk_bytes": du(Path(model_dir))})
        for r in rows:
            r["avg"] = round(sum(r["scores"]) / len(r["scores"]), 2)
        out.update(rows=rows, dev_scores=dev_scores, b2s=b2s_measured, tokenize_stsb_s=round(t_tok, 3),
                   stsb_sentences=len(texts), torch_threads=1)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(markdown(out))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


def markdown(out: dict) -> str:
    """The side-by-side table of docs/results.md."""
    lines = ["| row | " + " | ".join(t.upper() for t in STS) + " | avg | STS-B dev | distil (s) | encode STS-B (s) | disk (MB) |",
             "| --- | " + " | ".join("---:" for _ in STS) + " | ---: | ---: | ---: | ---: | ---: |"]
    for r in out["rows"]:
        cells = [f"{s:.2f}" for s in r["scores"]] + [f"{r['avg']:.2f}", f"{r['dev']:.2f}" if "dev" in r else "",
                                                      str(r.get("distill_s", "")), str(r["encode_stsb_s"]),
                                                      f"{r['disk_bytes'] / 1e6:.1f}" if r.get("disk_bytes") else ""]
        lines.append(f"| {r['row']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
