"""How many epochs of BERT2Static over a small corpus: train ``hs b2s`` with each count and score
view=b2s on STS-B's dev split (no test set is looked at), plain and with the shaping the peers
benchmark uses; writes a JSON of the scores and training times.

    python scripts/b2s_epochs.py /work/stores/static-minilm --epochs 1 --epochs 5 --epochs 20 \\
        --json benchmarks/results/b2s-epochs-minilm.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

RECIPES = ["view=b2s", "view=b2s;weights=idf@wikitext2", "view=b2s;post=abtt:d=3@wikitext2",
           "view=b2s;weights=idf@wikitext2;post=abtt:d=3@wikitext2", "view=b2s;weights=idf@wikitext2;post=whiten@wikitext2"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("store")
    ap.add_argument("--ref", default="wikitext2")
    ap.add_argument("--epochs", type=int, action="append", required=True)
    ap.add_argument("--task", default="stsb-dev")
    ap.add_argument("--json")
    args = ap.parse_args()

    import hsstore
    from analysis.recipes.recipe import parse_recipe
    from analysis.runners.engine import Engine
    from hsstore.distil.b2s import Settings, run
    from hsstore.tasks import get_task

    out = []
    for epochs in args.epochs:
        measured = run(args.store, args.ref, Settings(epochs=epochs), progress=False, log=lambda m: print(m, file=sys.stderr))
        engine = Engine(hsstore.open(args.store))
        scores = {r: round(engine.evaluate(get_task(args.task), parse_recipe(r)).main_score, 2) for r in RECIPES}  # x100
        out.append({"epochs": epochs, "train_seconds": measured["seconds"], "loss": measured["epochs"][-1]["loss"],
                    "scores": scores})
        print(json.dumps(out[-1]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"store": args.store, "task": args.task, "runs": out}, indent=1) + "\n")


if __name__ == "__main__":
    main()
