"""A dump to object storage (a local moto S3 server) against the same dump to a local directory.

Both dumps run the same model over the same corpus in one process, alternating, so they see the
same machine; the figures are medians over ``--repeats`` pairs. It also counts the requests the
S3 dump makes by kind (what a real endpoint's latency multiplies), and times reading every layer
of the corpus back from each store. moto runs in this process, on the same CPUs, with sub-
millisecond latency: a real S3 endpoint adds its round-trip time to each sequential request.

    python benchmarks/object_storage.py --model minilm --task sts17 --repeats 3
"""
from __future__ import annotations

import argparse
import collections
import logging
import os
import re
import socket
import statistics
import tempfile
import time
from pathlib import Path

import hsstore
from hsstore.dump.sources import CorpusSource
from hsstore.dump.run import run_dump
from hsstore.tasks import get_task
from common import report  # noqa: E402


class RequestCounter(logging.Handler):
    """Counts the moto server's requests by method and kind of key (from its access log)."""

    def __init__(self):
        super().__init__()
        self.counts = collections.Counter()

    def emit(self, record):
        line = re.sub(r"\x1b\[[0-9;]*m", "", record.getMessage())  # werkzeug colours non-200 lines
        match = re.search(r'"(\w+) (\S+)', line)
        if match:
            key = match.group(2)
            kind = ("list" if "list-type" in key else "zarr.json" if key.endswith("zarr.json") else
                    "lock" if ".hs-lock" in key else "hidden chunk" if "/hidden/c/" in key else
                    "manifest block" if "/hidden_crc32c/c/" in key else "other")
            self.counts[f"{match.group(1)} {kind}"] += 1


def start_server() -> tuple[object, RequestCounter]:
    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
                      AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    counter = RequestCounter()
    log = logging.getLogger("werkzeug")
    log.addHandler(counter)
    log.setLevel(logging.INFO)
    log.propagate = False
    import s3fs
    s3fs.S3FileSystem().mkdir("bench")
    return server, counter


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--task", default="sts17")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    server, counter = start_server()
    texts = get_task(args.task).texts()
    src = [CorpusSource(args.task, texts, {"task": args.task})]
    times = {"local": [], "s3": []}
    cpu = {"local": [], "s3": []}
    reads = {"local": [], "s3": []}
    requests = None
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            for kind in ("local", "s3"):
                out = f"s3://bench/run{i}" if kind == "s3" else Path(tmp, f"run{i}")
                counter.counts.clear()
                c0, t0 = time.process_time(), time.perf_counter()
                run_dump(args.model, src, out, progress=False, log=lambda m: None)
                times[kind].append(time.perf_counter() - t0)
                cpu[kind].append(time.process_time() - c0)
                if kind == "s3":
                    requests = dict(counter.counts)
                corpus = hsstore.open(out).corpus(args.task)
                t0 = time.perf_counter()
                for layer in corpus.store.layers:
                    corpus.layer(layer)
                reads[kind].append(time.perf_counter() - t0)
        corpus = hsstore.open(Path(tmp, "run0")).corpus(args.task)
        size = corpus.nbytes_on_disk()
    server.stop()
    med = {k: statistics.median(v) for k, v in times.items()}
    figures = {"task": args.task, "sentences": corpus.n_sentences, "tokens": corpus.n_tokens,
               "store MB": round(size / 2**20, 1), "repeats": args.repeats,
               "dump local s": med["local"], "dump s3 s": med["s3"],
               "dump s3/local": statistics.median(s / loc for s, loc in zip(times["s3"], times["local"])),
               "dump CPU s local": statistics.median(cpu["local"]), "dump CPU s s3": statistics.median(cpu["s3"]),
               "read all layers local s": statistics.median(reads["local"]),
               "read all layers s3 s": statistics.median(reads["s3"]),
               "s3 requests": sum(requests.values()), **{f"  {k}": v for k, v in sorted(requests.items())},
               "load (1 min)": os.getloadavg()[0]}
    report(figures, args.json)


if __name__ == "__main__":
    main()
