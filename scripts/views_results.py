"""The views table of docs/results.md: static token models and BERT + Avg. on the 7 classic STS sets.

Each view (RE over 5 seeds, the input embeddings, Avg. over WikiText-2, GloVe if installed, the
contextual last layer and mixes of it with Avg.) with and without idf weights from WikiText-2, and
with no post-processing, whitening or quantile-uniform fitted on WikiText-2; mean pooling of the
last layer. Prints a markdown table (RE: mean ± standard deviation over the seeds).

    python scripts/views_results.py runs/minilm      # a store with wikitext2 and the 7 STS tasks
"""
from __future__ import annotations

import argparse
import statistics

STS = ["sts12", "sts13", "sts14", "sts15", "sts16", "stsb", "sickr"]
SEEDS = range(5)
VIEWS = [("ctx (last layer)", ["ctx"]), ("RE, 5 seeds", [f"re:seed={s}" for s in SEEDS]), ("input", ["input"]),
         ("Avg. (WikiText-2)", ["avg"]), ("ctx*0.8+avg*0.2", ["ctx*0.8+avg*0.2"]),
         ("ctx*0.5+avg*0.5", ["ctx*0.5+avg*0.5"]), ("ctx*0.2+avg*0.8", ["ctx*0.2+avg*0.8"]), ("GloVe 6B 50d", ["glove"])]
WEIGHTS = ["none", "idf@wikitext2"]
POSTS = ["none", "whiten@wikitext2", "quantile@wikitext2"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("store")
    ap.add_argument("--no-glove", action="store_true")
    args = ap.parse_args()
    import hsstore
    from analysis.runners.engine import Engine
    from analysis.recipes.recipe import parse_recipe
    from hsstore.tasks import get_task

    store = hsstore.open(args.store)
    engine = Engine(store)
    tasks = [get_task(t) for t in STS]
    views = [v for v in VIEWS if not (args.no_glove and v[1] == ["glove"])]
    print("| view | weights | post | " + " | ".join(t.upper() for t in STS) + " | avg |")
    print("| --- | --- | --- | " + " | ".join("---:" for _ in STS) + " | ---: |")
    for label, variants in views:
        for weights in WEIGHTS:
            for post in POSTS:
                runs = []
                for view in variants:
                    recipe = parse_recipe(f"view={view};layers=last;pool=mean;weights={weights};post={post}")
                    engine.check(tasks, [recipe])
                    scores = [engine.evaluate(t, recipe).main_score for t in tasks]  # x100 already
                    runs.append(scores + [sum(scores) / len(scores)])
                cells = []
                for column in zip(*runs):
                    mean = statistics.fmean(column)
                    cells.append(f"{mean:.2f} ± {statistics.stdev(column):.2f}" if len(column) > 1 else f"{mean:.2f}")
                print(f"| {label} | {weights} | {post} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
