"""Chunk length, compression and sharding of the ``hidden`` array: write/read speed and size.

Writes real hidden states (one corpus of an existing store, e.g. the demo's) with each layout, in
the dump's pattern (whole chunks, in token order), through zarr's ``array[...] = x`` and, for the
store's layout, through hs's own chunk encoder (what ``hs dump`` uses); then reads one layer back. All layouts are run
in one process, interleaved over repeats, so the ratios are comparable on a noisy machine.

    python benchmarks/store_layout.py runs/minilm --corpus stsb
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import zarr
from zarr.codecs import BloscCodec, Crc32cCodec, ZstdCodec

import hsstore
from hsstore.format.chunks import ChunkFiles


def layouts(hidden: int):
    per_token = hidden * 2
    out = {}
    for mb in (1, 4, 8, 16):
        tokens = 1 << int(np.log2(mb * (1 << 20) // per_token))
        out[f"chunk {mb}MB, crc32c"] = dict(chunks=tokens, compressors=[Crc32cCodec()])
    eight = 1 << int(np.log2(8 * (1 << 20) // per_token))
    out["chunk 8MB, zstd-1, crc32c"] = dict(chunks=eight, compressors=[ZstdCodec(level=1), Crc32cCodec()])
    out["chunk 8MB, blosc-lz4 shuffle, crc32c"] = dict(
        chunks=eight, compressors=[BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle", typesize=2), Crc32cCodec()])
    out["chunk 1MB in 16MB shards, crc32c"] = dict(chunks=eight // 8, shards=eight * 2, compressors=[Crc32cCodec()])
    out["chunk 8MB, crc32c, hs chunk encoder"] = dict(chunks=eight, compressors=[Crc32cCodec()], direct=True)
    return out


def write(path: Path, data: np.ndarray, spec: dict) -> float:
    g = zarr.open_group(str(path), mode="w")
    n_layers, n_tokens, hidden = data.shape
    kw = dict(chunks=(1, spec["chunks"], hidden), compressors=spec["compressors"], fill_value=0)
    if "shards" in spec:
        kw["shards"] = (1, spec["shards"], hidden)
    arr = g.create_array("hidden", shape=data.shape, dtype=data.dtype, **kw)
    step = spec.get("shards", spec["chunks"])
    files = ChunkFiles(arr, path) if spec.get("direct") else None
    t0 = time.perf_counter()
    for a in range(0, n_tokens, step):
        if files:
            files.write(data[:, a:a + step], a)
        else:
            arr[:, a:a + step] = data[:, a:a + step]
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("store")
    ap.add_argument("--corpus", default="stsb")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tmp", default=None, help="scratch directory (default: system temp)")
    args = ap.parse_args()
    corpus = hsstore.open(args.store).corpus(args.corpus)
    data = np.asarray(corpus.raw("hidden")[:])
    specs = layouts(data.shape[2])
    times = {k: [] for k in specs}
    reads = {k: [] for k in specs}
    sizes = {}
    scratch = Path(tempfile.mkdtemp(dir=args.tmp))
    try:
        for _ in range(args.repeats):
            for name, spec in specs.items():
                path = scratch / "s"
                shutil.rmtree(path, ignore_errors=True)
                times[name].append(write(path, data, spec))
                sizes[name] = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
                arr = zarr.open_group(str(path), mode="r")["hidden"]
                t0 = time.perf_counter()
                np.asarray(arr[data.shape[0] - 1])
                reads[name].append(time.perf_counter() - t0)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    raw = data.nbytes
    base = statistics.median(times["chunk 8MB, crc32c"])
    print(f"corpus {args.corpus}: {data.shape[1]} tokens x {data.shape[0]} layers x {data.shape[2]}, "
          f"{raw / 1e6:.0f} MB of float16; median of {args.repeats}")
    print(f"{'layout':38s} {'write GB/s':>10s} {'vs 8MB':>7s} {'read 1 layer GB/s':>18s} {'size/raw':>9s}")
    for name in specs:
        w = statistics.median(times[name])
        r = statistics.median(reads[name])
        print(f"{name:38s} {raw / w / 1e9:10.2f} {base / w:7.2f} {raw / data.shape[0] / r / 1e9:18.2f} "
              f"{sizes[name] / raw:9.3f}")


if __name__ == "__main__":
    main()
