"""How closely a fitted recipe's encoder reproduces hs eval, on a real store (the figures of docs/encoders.md).

For each recipe: ``hs fit`` on the store, ``Encoder.encode`` of every text of the task's corpus (the
model run again, float32), and ``hs eval``'s engine on the stored float16 states; prints the smallest
and median cosine between the two vectors of each text, the largest absolute difference, and the
task's main score both ways.

    python scripts/encoder_agreement.py /work/stores/ref --task stsb --json benchmarks/results/encoder-agreement-minilm.json
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

import hsstore
from analysis.recipes.recipe import parse_recipe
from analysis.runners.engine import Engine
from encoder import Encoder
from encoder.fit import fit_folder
from hsstore.tasks import get_task

RECIPES = [
    "layers=first-last;drop=special;weights=idf@wikitext2;post=whiten@wikitext2",  # contextual, fitted parts
    "view=avg;drop=special;weights=idf@wikitext2",  # static
    "view=ctx*0.8+avg*0.2;drop=special;weights=sif@wikitext2;post=abtt:d=1@wikitext2",  # a mix
    "layers=last;pool=mean;post=l2",  # the model's own pipeline (-r model)
    "view=prompt;pool=mask",  # PromptBERT's read-out (needs <task>~promptbert)
    "view=prompt;pool=mask:denoise=yes",  # and its denoising
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("store", type=Path)
    ap.add_argument("--task", default="stsb")
    ap.add_argument("--recipe", "-r", action="append", help="recipes [default: the list above]")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    store = hsstore.open(args.store)
    task = get_task(args.task)
    corpus = store.corpus(task.id)
    engine = Engine(store)
    evaluator = engine.evaluator(task)
    out = []
    scratch = Path(tempfile.mkdtemp())
    try:
        for i, text in enumerate(args.recipe or RECIPES):
            meta = fit_folder(store, parse_recipe(text), scratch / f"r{i}")
            X = Encoder.load(scratch / f"r{i}").encode(corpus.texts, batch_size=64)
            Y = engine.embed(task.id, parse_recipe(meta["recipe"]))
            cos = (X * Y).sum(1) / np.linalg.norm(X, axis=1) / np.linalg.norm(Y, axis=1)
            row = {"recipe": meta["recipe"], "texts": len(X), "min_cosine": float(cos.min()),
                   "median_cosine": float(np.median(cos)), "max_abs_diff": float(np.abs(X - Y).max()),
                   "score_encoder": evaluator(X)["main_score"], "score_eval": evaluator(Y)["main_score"]}
            out.append(row)
            print(f"{row['min_cosine']:.7f}  {row['median_cosine']:.7f}  {row['max_abs_diff']:.2e}  "
                  f"{row['score_encoder']:.4f}  {row['score_eval']:.4f}  {text}", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps({"store": str(args.store), "task": task.id, "runs": out}, indent=1))


if __name__ == "__main__":
    main()
