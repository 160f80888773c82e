"""Dump throughput against a bare forward loop over the same batches (same model, same run).

The bare loop runs only the model over the planned batches (hidden states computed, not kept);
the dump runs the same batches through ``hs dump``'s loop (forward, gather of the real tokens,
float16 copy to host, queue, writer thread, chunked Zarr writes, watermark). Runs alternate in
pairs, so both see the same machine; the figure is the median of the per-pair ratios.

    python benchmarks/dump.py --model minilm --task stsb --repeats 3
    python benchmarks/dump.py --random-bert-base --device cuda --precision fp16   # on a GPU box
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from hsstore.dump import model as model_mod
from hsstore.dump.sources import CorpusSource
from hsstore.dump.forward import Forward, pick_device
from hsstore.dump.run import dump_corpus
from hsstore.dump.plan import plan_corpus
from hsstore.format.layout import default_chunk_tokens
from hsstore.tasks import get_task
from hsstore.store.writer import StoreWriter
from common import report  # noqa: E402


def random_bert_base(path: Path) -> str:
    """bert-base-sized BERT with random weights (no download), saved with the MiniLM's tokenizer."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    AutoTokenizer.from_pretrained(model_mod.resolve_model_path("minilm")).save_pretrained(path)
    BertModel(BertConfig()).save_pretrained(path)
    return str(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--random-bert-base", action="store_true", help="use a random bert-base-sized model")
    ap.add_argument("--task", action="append", default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-tokens", type=int, default=8192)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--json", type=Path, help="write the figures here too")
    args = ap.parse_args()

    scratch = Path(tempfile.mkdtemp())
    try:
        name = random_bert_base(scratch / "model") if args.random_bert_base else args.model
        device, precision = pick_device(args.device, args.precision)
        loaded = model_mod.load(name)
        layers = list(range(loaded.n_layers + 1))
        tasks = args.task or ["stsb"]
        texts = [t for task in tasks for t in get_task(task).texts()]
        plan = plan_corpus(loaded.tokenizer, CorpusSource("bench", texts, {}), 512, args.batch_tokens, 256)
        forward = Forward(loaded, layers, device, precision, "float16")
        settings = {"dtype": "float16", "layers": layers, "max_length": 512, "precision": precision,
                    "batch_tokens": args.batch_tokens,
                    "max_batch": 256, "chunk_tokens": default_chunk_tokens(loaded.identity["hidden_size"], "float16")}
        vocab = loaded.tokenizer.convert_ids_to_tokens(list(range(len(loaded.tokenizer))))
        sync = (lambda: __import__("torch").cuda.synchronize()) if device == "cuda" else (lambda: None)
        for b in range(min(3, len(plan.batch_ends))):  # warm-up
            forward(plan, b)
        bare, dumped, write_bytes = [], [], 0
        for r in range(args.repeats):
            sync()
            t0 = time.perf_counter()
            for b in range(len(plan.batch_ends)):
                forward.model_states(*forward.inputs(plan, b))
            sync()
            bare.append(time.perf_counter() - t0)
            out = scratch / f"store{r}"
            with StoreWriter(out, loaded.identity, settings, vocab) as store:
                fp = plan.fingerprint(store.identity)
                writer = store.open_corpus(plan, fp, store.corpus_status("bench", fp))
                t0 = time.perf_counter()
                dump_corpus(forward, writer, plan, progress=False, log=lambda m: None)
                dumped.append(time.perf_counter() - t0)
            write_bytes = sum(f.stat().st_size for f in (out / "corpora/bench/hidden").rglob("*") if f.is_file())
            shutil.rmtree(out)
        tb, td = statistics.median(bare), statistics.median(dumped)
        ratios = [b / d for b, d in zip(bare, dumped)]
        figures = {
            "model": name if not args.random_bert_base else "random bert-base", "device": device,
            "precision": precision, "tasks": tasks, "sentences": plan.n_sentences, "tokens": plan.n_tokens,
            "layers": len(layers), "batches": len(plan.batch_ends), "bare_forward_s": tb, "dump_s": td,
            "dump_over_bare": statistics.median(ratios), "ratio_per_pair": ratios, "tokens_per_s_dump": plan.n_tokens / td,
            "bytes_on_disk_per_token": write_bytes / plan.n_tokens, "write_GB_per_s_of_dump": write_bytes / td / 1e9,
            "bare_runs_s": bare, "dump_runs_s": dumped,
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report(figures, args.json)


if __name__ == "__main__":
    main()
