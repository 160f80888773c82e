"""The chunk writer alone against the disk's sequential write rate, side by side in one run.

Random float16 hidden states of a realistic shape (bert-base: 13 layers x 768, 4,096-token chunks
of 6 MiB) go through ``hs dump``'s own writer (``CorpusWriter``: chunk encoding, CRC-32C, files
written by rename, manifest, watermark commits) batch by batch, with 1 thread and with
``--threads``; the baseline writes the same number of bytes to one file in 64 MiB writes. Every run
ends with a ``syncfs`` of the file system it wrote to (what the kernel's write-back does during a
long dump), so the figures are disk rates, not page-cache rates; the cache-only time is reported
too. Runs alternate, so each sees the same machine; figures are medians over ``--repeats``.

    python benchmarks/writer.py                       # ~1.3 GB per run, in the system's temp dir
    python benchmarks/writer.py --gb 0.5 --repeats 3 --dir /mnt/fast
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

from hsstore.dump.plan import cut_batches
from hsstore.store.writer import CorpusPlan, StoreWriter
from hsstore.format.chunks import write_threads
from common import report  # noqa: E402

LAYERS, HIDDEN, CHUNK, SENTENCE = 13, 768, 4096, 128


def fake_store(path: Path, tokens: int, batch_tokens: int):
    """A store of a made-up bert-base-shaped model, and a plan of ``tokens`` tokens in 128-token sentences."""
    model = {"name": "bench", "architecture": "BertModel", "n_layers": LAYERS - 1, "hidden_size": HIDDEN,
             "vocab_size": 5, "config_sha256": "x", "tokenizer_sha256": "x", "weights_sha256": "x"}
    settings = {"dtype": "float16", "layers": list(range(LAYERS)), "max_length": 512, "precision": "fp16",
                "chunk_tokens": CHUNK, "batch_tokens": batch_tokens, "max_batch": 256}
    n = tokens // SENTENCE
    offsets = np.arange(n + 1, dtype=np.int64) * SENTENCE
    plan = CorpusPlan("bench", [str(i) for i in range(n)], offsets, np.zeros(tokens, np.int32),
                      np.zeros(tokens, np.uint8), cut_batches(np.full(n, SENTENCE), batch_tokens, 256), 0, {})
    return StoreWriter(path, model, settings, ["[PAD]", "a", "b", "c", "d"]), plan


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gb", type=float, default=1.3, help="GB of hidden states per run (default 1.3)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-tokens", type=int, default=8192)
    ap.add_argument("--threads", type=int, default=max(2, write_threads()),
                    help="threads of the parallel run (default: hs's default, at least 2)")
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    ap.add_argument("--json", type=Path, help="write the figures here too")
    args = ap.parse_args()
    tokens = int(args.gb * 1e9 / (LAYERS * HIDDEN * 2)) // CHUNK * CHUNK
    rng = np.random.default_rng(0)
    # one batch of states, reused: the writer's cost does not depend on the values
    states = rng.standard_normal((LAYERS, args.batch_tokens // SENTENCE * SENTENCE, HIDDEN)).astype(np.float16)
    scratch = Path(tempfile.mkdtemp(dir=args.dir, prefix="hs-writer-bench-"))
    nbytes = tokens * LAYERS * HIDDEN * 2
    runs: dict[str, list[tuple[float, float]]] = {"sequential": [], "serial": [], "parallel": []}
    try:
        for _ in range(args.repeats):
            runs["sequential"].append(sequential(scratch / "seq.bin", nbytes))
            runs["serial"].append(corpus(scratch / "serial", tokens, args.batch_tokens, states, 1))
            runs["parallel"].append(corpus(scratch / "parallel", tokens, args.batch_tokens, states, args.threads))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    med = {k: (statistics.median(a for a, _ in v), statistics.median(b for _, b in v)) for k, v in runs.items()}
    figures = {"bytes_per_run": nbytes, "tokens": tokens, "layers": LAYERS, "hidden": HIDDEN, "chunk_tokens": CHUNK,
               "threads": args.threads, "cpus": os.cpu_count(), "load_avg": os.getloadavg(),
               **{f"{k}_GB_per_s_synced": nbytes / v[1] / 1e9 for k, v in med.items()},
               **{f"{k}_GB_per_s_cached": nbytes / v[0] / 1e9 for k, v in med.items()},
               # per repetition (the three runs side by side), then the median and the range over repetitions
               **{f"{k}_over_disk": pair_ratios(runs["sequential"], runs[k]) for k in ("serial", "parallel")},
               "runs_s": {k: v for k, v in runs.items()}}
    report(figures, args.json)


def pair_ratios(disk: list[tuple[float, float]], writer: list[tuple[float, float]]) -> dict:
    """The writer's rate over the disk's, synced, in each repetition: median, min, max."""
    r = [d[1] / w[1] for d, w in zip(disk, writer)]
    return {"median": round(statistics.median(r), 3), "min": round(min(r), 3), "max": round(max(r), 3)}


def sync_fs(directory: Path) -> None:
    """Flush the file system that holds ``directory`` to disk (Linux ``syncfs``; else ``sync``)."""
    import ctypes

    fd = os.open(directory, os.O_RDONLY)
    try:
        if ctypes.CDLL(None, use_errno=True).syncfs(fd) != 0:
            os.sync()
    except AttributeError:
        os.sync()
    finally:
        os.close(fd)


def sequential(path: Path, nbytes: int) -> tuple[float, float]:
    """The disk's sequential rate: ``nbytes`` in 64 MiB writes to one file, then fsync."""
    block = np.random.default_rng(1).integers(0, 255, 64 << 20, dtype=np.uint8)
    t0 = time.perf_counter()
    with open(path, "wb") as fh:
        left = nbytes
        while left > 0:
            fh.write(block[:min(left, len(block))])
            left -= len(block)
        cached = time.perf_counter() - t0
    sync_fs(path.parent)
    synced = time.perf_counter() - t0
    path.unlink()
    return cached, synced


def corpus(path: Path, tokens: int, batch_tokens: int, states: np.ndarray, threads: int) -> tuple[float, float]:
    """``hs dump``'s writer on a plan of ``tokens`` tokens; (seconds to the last commit, + fsync of the chunks)."""
    os.environ["HS_WRITE_THREADS"] = str(threads)
    store, plan = fake_store(path, tokens, batch_tokens)
    with store:
        fp = plan.fingerprint(store.identity)
        writer = store.open_corpus(plan, fp, "new")
        ends = plan.offsets[plan.batch_ends]
        t0 = time.perf_counter()
        for b in range(len(plan.batch_ends)):
            n = int(ends[b]) - (int(ends[b - 1]) if b else 0)
            writer.add(b, states[:, :n])
        writer.finish()
        cached = time.perf_counter() - t0
        sync_fs(path)
        synced = time.perf_counter() - t0
    shutil.rmtree(path)
    return cached, synced


if __name__ == "__main__":
    main()
