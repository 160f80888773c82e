"""Print the study's stage-1 grid for a store, one recipe a line, for `hs eval --grid`.

For a store the whole preset cannot run on yet: `--without wikitext2` leaves out every recipe that
reads that reference corpus (idf/SIF/frequent tokens from WikiText-2, post-processors fitted on it,
Avg. and the BERT + Avg. mixes), so the axes fitted on the task itself can be looked at while the
reference corpus is still being dumped. The records are plain `hs eval` records (no `study` key).

    python scripts/study_grid.py runs/study-smollm2 --family sts --without wikitext2 > grid.txt
    hs eval runs/study-smollm2 --task sts12 ... --grid grid.txt --diagnostics --json out.json
"""
from __future__ import annotations

import argparse

import hsstore
from analysis.runners import study
from hsstore.tasks.presets import get_preset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store")
    parser.add_argument("--preset", default="study")
    parser.add_argument("--family", default="sts")
    parser.add_argument("--without", action="append", default=[], metavar="CORPUS",
                        help="leave out the recipes that read this reference corpus (repeatable)")
    args = parser.parse_args()
    store = hsstore.open(args.store)
    preset = get_preset(args.preset)
    preset.check_families((args.family,))
    kind = preset.kind(bool(store.model.get("causal")))
    template = study.family_template(preset, args.family, kind)
    if template and any(f"{t}~{template}" not in store.corpora for t in preset.families[args.family]):
        template = None  # the prompt read-outs need the templated variants
    entries = study.stage1(args.family, store.layers, store.n_model_layers, template, study.glove_available(), kind)
    for e in entries:
        if not set(e.recipe.references) & set(args.without):
            print(e.recipe)


if __name__ == "__main__":
    main()
