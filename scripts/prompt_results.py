"""Prompt read-outs and Ditto weighting on the STS tasks of a store (the tables of docs/results.md).

Needs a store holding, for each task C: the plain corpus C dumped with ``--attention-diagonals``,
and C~T with C~T~empty from ``--template T``:

    T="-t sts12 -t sts13 -t sts14 -t sts15 -t sts16 -t stsb -t sickr"
    hs dump --model minilm $T --attention-diagonals --out runs/prompts-minilm
    hs dump --model minilm $T --template promptbert --out runs/prompts-minilm
    python scripts/prompt_results.py runs/prompts-minilm --template promptbert

Every number is Spearman x100 of cosine similarity (STS12-16 over all subsets concatenated), the
same evaluator as ``hs eval``; the read-outs come from analysis/prompts.py.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import hsstore
from analysis.evaluators import STS
from analysis.kernels import pool_states
from analysis.post import QuantileUniform
from analysis.prompts import denoise, ditto_weights, kind_weights, slot_weights
from hsstore.format import KIND_TEXT
from hsstore.tasks import get_task
from hsstore.templates import empty_name, variant_name

TASKS = ["sts12", "sts13", "sts14", "sts15", "sts16", "stsb", "sickr"]


def idf_weights(corpus) -> np.ndarray:
    """BERTScore's idf over the corpus's own sentences, per token (as weights=idf@task)."""
    ids = corpus.all_token_ids.astype(np.int64)
    sent = np.repeat(np.arange(corpus.n_sentences), np.diff(corpus.offsets))
    size = int(ids.max()) + 1
    df = np.bincount(np.unique(sent * size + ids) % size, minlength=size)
    return np.log((corpus.n_sentences + 1.0) / (df + 1.0)).astype(np.float32)[ids]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("store", type=Path)
    ap.add_argument("--template", default="promptbert")
    ap.add_argument("--layer", type=int, default=-1, help="hidden layer pooled (default: the last)")
    ap.add_argument("--task", action="append", default=None)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    store = hsstore.open(args.store)
    layer = args.layer if args.layer >= 0 else store.n_model_layers
    tasks = args.task or TASKS
    rows: dict[str, dict[str, float]] = {}
    ditto: dict[tuple[int, int], dict[str, float]] = {}

    def score(label, task, corpus, X, quantile=(False, True)):
        ev = STS(get_task(task), corpus)
        for q in quantile:
            Y = QuantileUniform().fit(X).transform(X) if q else X
            rows.setdefault(label + (" + quantile" if q else ""), {})[task] = ev(Y)["spearman_all"]

    for task in tasks:
        plain = store.corpus(task)
        templated = store.corpus(variant_name(task, _template_name(args.template)))
        states = plain.layer(layer)
        ones = np.ones(plain.n_tokens, dtype=np.float32)
        score("plain mean", task, plain, pool_states(states, [1.0], plain.offsets, ones, "mean"))
        score("plain mean, idf", task, plain, pool_states(states, [1.0], plain.offsets, idf_weights(plain), "mean"))
        t_states = templated.layer(layer)
        mask = pool_states(t_states, [1.0], templated.offsets, slot_weights(templated), "mean")
        score("mask read-out", task, templated, mask)
        empty = store.corpus(empty_name(templated.name))
        score("mask read-out, denoised", task, templated, denoise(mask, templated, empty.layer(layer)))
        every = np.ones(templated.n_tokens, dtype=np.float32)
        score("templated average", task, templated, pool_states(t_states, [1.0], templated.offsets, every, "mean"))
        score("templated average, idf", task, templated,
              pool_states(t_states, [1.0], templated.offsets, idf_weights(templated), "mean"))
        only = kind_weights(templated, (KIND_TEXT,))
        score("templated, sentence tokens", task, templated, pool_states(t_states, [1.0], templated.offsets, only, "mean"))
        layers = plain.attrs.get("attention_layers", [])
        for a_layer in layers:
            for head in range(int(plain.attrs["attention_heads"])):
                w = ditto_weights(plain, a_layer, head)
                X = pool_states(states, [1.0], plain.offsets, w, "mean")
                ditto[(a_layer, head)] = ditto.get((a_layer, head), {}) | {task: STS(get_task(task), plain)(X)["spearman_all"]}
    if ditto:
        best = max(ditto, key=lambda k: np.mean(list(ditto[k].values())))
        for (a_layer, head) in sorted({best, (1, 9) if (1, 9) in ditto else best}):
            w_label = f"ditto:layer={a_layer}:head={head}"
            for task in tasks:
                plain = store.corpus(task)
                X = pool_states(plain.layer(layer), [1.0], plain.offsets, ditto_weights(plain, a_layer, head), "mean")
                score(w_label, task, plain, X)
    _print(rows, tasks)
    if ditto:
        print(f"\nDitto, layer {layer} states weighted by a_ii: average over the tasks per attention layer (rows) "
              f"and head (columns)")
        heads = sorted({h for _, h in ditto})
        print("| layer | " + " | ".join(str(h) for h in heads) + " |")
        print("| --- |" + " --- |" * len(heads))
        for a_layer in sorted({a for a, _ in ditto}):
            print(f"| {a_layer} | " + " | ".join(f"{np.mean(list(ditto[(a_layer, h)].values())):.2f}" for h in heads) + " |")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "ditto": {f"{a}:{h}": v for (a, h), v in ditto.items()}},
                                        indent=1))


def _template_name(spec: str) -> str:
    from hsstore.templates import parse_template
    return parse_template(spec).name


def _print(rows: dict, tasks: list[str]) -> None:
    print("| read-out | " + " | ".join(tasks) + " | avg |")
    print("| --- |" + " ---: |" * (len(tasks) + 1))
    for label, scores in rows.items():
        vals = [scores[t] for t in tasks]
        print(f"| {label} | " + " | ".join(f"{v:.2f}" for v in vals) + f" | {np.mean(vals):.2f} |")


if __name__ == "__main__":
    main()
