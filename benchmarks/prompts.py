"""What a template and attention diagonals cost ``hs dump``: throughput as ratios to a plain dump.

Three dumps of the same texts with the same model, alternating in rounds so all see the same
machine: plain; wrapped in a template (more tokens per text); plain with ``--attention-diagonals``
(eager attention, attention weights returned, one more array written). Each runs ``hs dump``'s loop
(forward, gather, queue, writer thread, chunk writes, watermark) into a fresh store. The ratios are
the medians of the per-round ratios of sentences per second (a template's extra tokens are its cost).

    python benchmarks/prompts.py --task stsb --repeats 3 --json benchmarks/results/prompts-cpu-minilm.json
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from hsstore.dump import model as model_mod
from hsstore.store.attention import ARRAY
from hsstore.dump.attention import shape
from hsstore.dump.sources import CorpusSource
from hsstore.dump.forward import Forward, pick_device
from hsstore.dump.run import dump_corpus
from hsstore.format.layout import default_chunk_tokens
from hsstore.tasks import get_task
from hsstore.tasks.templates import parse_template
from hsstore.dump.templated import plan_source
from hsstore.store.writer import StoreWriter
from common import report  # noqa: E402


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--task", action="append", default=None)
    ap.add_argument("--template", default="promptbert")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--json", type=Path, help="write the figures here too")
    args = ap.parse_args()

    device, precision = pick_device(args.device, args.precision)
    loaded = model_mod.load(args.model)
    layers = list(range(loaded.n_layers + 1))
    tasks = args.task or ["stsb"]
    texts = [t for task in tasks for t in get_task(task).texts()]
    plain_src = CorpusSource("bench", texts, {})
    templated_src = CorpusSource("bench", texts, {}, template=parse_template(args.template))
    plans = {"plain": plan_source(loaded, plain_src, 512, 8192, 256),
             "template": plan_source(loaded, templated_src, 512, 8192, 256),
             "diagonals": plan_source(loaded, plain_src, 512, 8192, 256)}
    plans["diagonals"].attention_shape = shape(loaded.model)
    settings = {"dtype": "float16", "layers": layers, "max_length": 512, "batch_tokens": 8192, "max_batch": 256,
                "chunk_tokens": default_chunk_tokens(loaded.identity["hidden_size"], "float16")}
    vocab = loaded.tokenizer.convert_ids_to_tokens(list(range(len(loaded.tokenizer))))
    forwards = {"plain": Forward(loaded, layers, device, precision, "float16")}
    forwards["template"] = forwards["plain"]
    scratch = Path(tempfile.mkdtemp())
    times: dict[str, list[float]] = {k: [] for k in plans}
    sizes: dict[str, dict] = {}
    try:
        for r in range(args.repeats):
            for mode, plan in plans.items():
                if mode == "diagonals" and mode not in forwards:  # eager from here on: build it last
                    forwards[mode] = Forward(model_mod.load(args.model), layers, device, precision, "float16",
                                             attention_diagonals=True)
                out = scratch / f"{mode}{r}"
                with StoreWriter(out, loaded.identity, settings, vocab) as store:
                    fp = plan.fingerprint(store.identity)
                    writer = store.open_corpus(plan, fp, store.corpus_status("bench", fp))
                    t0 = time.perf_counter()
                    dump_corpus(forwards[mode], writer, plan, progress=False, log=lambda m: None)
                    times[mode].append(time.perf_counter() - t0)
                corpus = out / "corpora/bench"
                sizes[mode] = {"hidden": dir_bytes(corpus / "hidden"),
                               "diagonals": dir_bytes(corpus / ARRAY) if (corpus / ARRAY).exists() else 0}
                shutil.rmtree(out)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    n = plans["plain"].n_sentences
    per_round = {m: [t_plain / t for t_plain, t in zip(times["plain"], times[m])] for m in ("template", "diagonals")}
    figures = {
        "model": args.model, "device": device, "precision": precision, "tasks": tasks, "template": args.template,
        "sentences": n, "tokens": {m: p.n_tokens for m, p in plans.items()},
        "median_s": {m: statistics.median(t) for m, t in times.items()},
        "sentences_per_s": {m: n / statistics.median(t) for m, t in times.items()},
        "template_over_plain": statistics.median(per_round["template"]),
        "diagonals_over_plain": statistics.median(per_round["diagonals"]),
        "ratios_per_round": per_round,
        "diagonal_bytes_per_token": sizes["diagonals"]["diagonals"] / plans["diagonals"].n_tokens,
        "diagonal_values_per_token": shape(loaded.model)[0] * shape(loaded.model)[1],
        "hidden_bytes_per_token": sizes["plain"]["hidden"] / plans["plain"].n_tokens,
        "runs_s": times,
    }
    report(figures, args.json)


if __name__ == "__main__":
    main()
