"""The reference study's claims, checked on a results file of `hs eval --preset study`.

    python scripts/study_claims.py benchmarks/results/study-minilm.json

Prints, per task family, the mean main score (x100) of the recipes each claim compares: the base
recipe against one change (stage 1), and the stage-2 combinations and shaped static views. These
are the figures docs/study.md quotes.
"""
from __future__ import annotations

import json
import sys
from collections import defaultdict

from analysis.evaluation.registry import family_of
from analysis.recipes.recipe import parse_recipe
from analysis.runners.study import BASE
from hsstore.tasks import get_task

CLAIMS = {
    "first+last vs last layer": ["", "layers=first-last", "layers=emb-last", "layers=all",
                                 *(f"layers={n}" for n in range(13))],
    "idf weighting and its corpus": ["", "weights=idf", "weights=idf@wikitext2", "weights=sif", "weights=sif@wikitext2"],
    "quantile-u and whitening": ["", "post=quantile", "post=quantile@wikitext2", "post=whiten",
                                 "post=whiten@wikitext2", "post=zscore", "post=zscore@wikitext2", "post=abtt",
                                 "post=abtt@wikitext2", "post=l2"],
    "removing frequent / punctuation / subword tokens": ["", "drop=freq", "drop=punct", "drop=subword", "drop=special"],
    "static views and BERT + Avg. (unshaped)": ["", "view=re", "view=input", "view=avg", "view=ctx*0.9+avg*0.1",
                                                "view=ctx*0.7+avg*0.3", "view=ctx*0.5+avg*0.5"],
    "prompt read-out vs templated average (STS)": ["", "view=prompt:template=promptbert;pool=mask",
                                                   "view=prompt:template=promptbert;pool=mask:denoise=yes",
                                                   "view=prompt:template=promptbert;pool=mean",
                                                   "view=prompt:template=promptbert;drop=special+template"],
}


def family(task: str) -> str:
    return family_of(get_task(task)).report_group


def main(path: str) -> None:
    records = json.loads(open(path).read())
    # a task counts once all its family's stage-1 recipes are done (a stopped run leaves one task partial)
    stage1: dict[str, int] = defaultdict(int)
    for r in records:
        stage1[r["hs_task"]] += r["study"]["stage"] == 1
    full = {f: max(n for t, n in stage1.items() if family(t) == f) for f in {family(t) for t in stage1}}
    left = sorted(t for t, n in stage1.items() if n < full[family(t)])
    records = [r for r in records if r["hs_task"] not in left]
    if left:
        print(f"left out (stage 1 unfinished): {', '.join(left)}")
    scores: dict[tuple[str, str], list[float]] = defaultdict(list)
    axis = {}
    for r in records:
        main_score = next(iter(r["scores"].values()))[0]["main_score"]
        scores[(family(r["hs_task"]), r["recipe"])].append(100 * main_score)
        axis[r["recipe"]] = (r["study"]["stage"], r["study"]["axis"])
    families = list(dict.fromkeys(f for f, _ in scores))
    tasks = {f: len({r["hs_task"] for r in records if family(r["hs_task"]) == f}) for f in families}
    print("families: " + ", ".join(f"{f} ({tasks[f]} tasks)" for f in families))

    def row(label: str, recipe: str) -> str:
        cells = []
        for f in families:
            s = scores.get((f, recipe))
            cells.append(f"{sum(s) / len(s):7.2f}" if s and len(s) == tasks[f] else "      -")
        return f"  {label:58s}" + " ".join(cells)

    for claim, changes in CLAIMS.items():
        print(f"\n{claim}:" + " " * (58 - len(claim)) + " ".join(f"{f[:7]:>7s}" for f in families))
        for change in changes:
            recipe = str(parse_recipe(";".join(filter(None, [BASE, change]))))
            if any((f, recipe) in scores for f in families):
                print(row(change or "base (ctx, last layer, mean)", recipe))
    print("\nstage 2 (per family: the best of each axis combined, then that shaping on other views):")
    for f in families:
        print(f"  {f}:")
        for (fam, recipe), s in scores.items():
            if fam == f and axis[recipe][0] == 2 and len(s) == tasks[f]:
                print(f"    {sum(s) / len(s):7.2f}  {axis[recipe][1]:12s} {recipe}")


if __name__ == "__main__":
    main(sys.argv[1])
