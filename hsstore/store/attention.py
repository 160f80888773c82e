"""The stored attention diagonals: each token's self-attention weight a_ii, per layer and head (Ditto,
Chen et al. 2023); the model side (eager attention, taking the diagonals) is hsstore/dump/attention.py.

``hs dump --attention-diagonals`` stores them in a corpus's ``attention_diagonal`` array, float16,
dimensions (attention_layer, token, head): not ``layer``, whose length is hidden's (one more, the
embedding output), so xarray can open both; chunked along tokens like ``hidden`` (one layer a chunk) with a
CRC-32C per chunk, and ``attention_diagonal_crc32c`` its manifest, as ``hidden_crc32c`` is hidden's
(a reader compares every chunk with it). Layer l (1..L) is the attention inside transformer block l, the block whose
output is hidden layer l; Ditto's "layer 0" is layer 1 here. The weights come from eager attention
(the model's plain softmax(QK^T) path), which such a dump switches the model to.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from hsstore.errors import HsError
from hsstore.format.chunks import ChunkFiles, Layout, read_rows, whole_columns
from hsstore.format.layout import MANIFEST_ROWS

from .reader import checked_read

ARRAY = "attention_diagonal"
MANIFEST = f"{ARRAY}_crc32c"  # CRC-32C of chunk (attention layer l, token chunk i) at row i, column l
OPTION = "--attention-diagonals"


def create_array(group, plan, chunk: int) -> dict:
    """The empty diagonals array of a new corpus and its manifest; returns the attributes the corpus
    records for them."""
    from zarr.codecs import Crc32cCodec  # zarr loads with the first write, not with hsstore

    layers, heads = plan.attention_shape
    group.create_array(ARRAY, shape=(layers, plan.n_tokens, heads), dtype=np.float16, chunks=(1, chunk, heads),
                       compressors=[Crc32cCodec()], fill_value=0, dimension_names=("attention_layer", "token", "head"))
    group.create_array(MANIFEST, shape=(math.ceil(plan.n_tokens / chunk), layers), dtype=np.uint32,
                       chunks=(MANIFEST_ROWS, layers), compressors=[Crc32cCodec()], fill_value=0,
                       dimension_names=("hidden_chunk", "attention_layer"))
    return {"attention_layers": list(range(1, layers + 1)), "attention_heads": heads}


class SideArrays:
    """Per-token arrays written beside ``hidden`` in the same chunk-aligned flushes (see writer.py):
    each flush writes their chunks and their manifest rows before hidden's, so the watermark covers
    both. A corpus made before the diagonals had a manifest has none (its chunks carry their own
    CRC-32C only)."""

    def __init__(self, group, corpus_dir: Path, chunk: int):
        self.dir, self.chunk = corpus_dir, chunk
        keys = set(group.array_keys())
        self.arrays = {ARRAY: group[ARRAY]} if ARRAY in keys else {}
        self.files = {name: ChunkFiles(array, corpus_dir) for name, array in self.arrays.items()}
        self.tables = {name: group[f"{name}_crc32c"] for name in self.arrays if f"{name}_crc32c" in keys}
        self.crc_files = {name: ChunkFiles(t, corpus_dir) for name, t in self.tables.items()}
        self.manifests = {name: np.zeros(t.shape, dtype=np.uint32) for name, t in self.tables.items()}
        self.bufs = {name: [] for name in self.arrays}

    def resume_columns(self, cols: int) -> int:
        """How many of the first ``cols`` token chunks every array holds intact (present, full size,
        carrying the manifest's CRC-32C), the manifests' rows read on the way."""
        for name, array in self.arrays.items():
            table = None
            if name in self.tables:
                table = read_rows(self.dir / f"{name}_crc32c", Layout.of(self.tables[name], f"{name}_crc32c"), (), 0, cols)
                self.manifests[name][:cols] = table
            size = int(np.prod(array.chunks)) * array.dtype.itemsize + 4
            cols = whole_columns(self.dir / name, 0, cols, array.shape[0], size, table)
        return cols

    def committed_head(self, chunk_start: int, start: int) -> dict | None:
        """Each array's committed tokens of the chunk that later batches complete (None if missing or
        damaged, so the corpus starts over)."""
        out = {}
        for name, array in self.arrays.items():
            layout = Layout.of(array, name, axis=1)
            manifest = self.manifests.get(name)
            try:
                out[name] = np.stack([read_rows(self.dir / name, layout, (layer,), chunk_start, start,
                                                None if manifest is None else lambda c, i=layer, m=manifest: m[c, i])
                                      for layer in range(array.shape[0])])
            except (HsError, ValueError, OSError):
                return None
        return out

    def start_with(self, heads: dict) -> None:
        for name, head in heads.items():
            self.bufs[name] = [head]

    def add(self, extras: dict | None) -> None:
        for name in self.files:
            if not extras or name not in extras:
                raise RuntimeError(f"a batch arrived without its {name}")
            self.bufs[name].append(extras[name])

    def write(self, first_col: int, n: int) -> None:
        """Write the buffered arrays' first ``n`` tokens as whole chunks from token chunk ``first_col``,
        then the manifest rows that cover them."""
        for name, files in self.files.items():
            buf = self.bufs[name]
            data = np.concatenate(buf, axis=1) if len(buf) > 1 else buf[0]
            for offset in range(0, n, self.chunk):
                for layer in range(data.shape[0]):
                    crc = files.write(data[layer, offset:offset + self.chunk][None],
                                      (layer, first_col + offset // self.chunk, 0))
                    if name in self.manifests:
                        self.manifests[name][first_col + offset // self.chunk, layer] = crc
            self.bufs[name] = [data[:, n:]] if n < data.shape[1] else []
            if name in self.manifests:
                last = first_col + (n - 1) // self.chunk
                manifest = self.manifests[name]
                for row in range(first_col // MANIFEST_ROWS, last // MANIFEST_ROWS + 1):
                    self.crc_files[name].write(manifest[row * MANIFEST_ROWS:(row + 1) * MANIFEST_ROWS], (row, 0))


def has_diagonals(corpus) -> bool:
    return "attention_layers" in corpus.attrs


def read_diagonal(corpus, layer: int, head: int) -> np.ndarray:
    """a_ii of every token of ``corpus`` at attention layer ``layer`` (1..L) and head ``head``, float32."""
    if not has_diagonals(corpus):
        raise HsError(f"corpus {corpus.name!r} of {corpus.store.path} has no attention diagonals; dump it with "
                      f"`hs dump {OPTION}` (into a new store or under another name)")
    layers, heads = corpus.attrs["attention_layers"], int(corpus.attrs["attention_heads"])
    if layer not in layers:
        raise HsError(f"attention layer {layer} does not exist: layers are {layers[0]}..{layers[-1]} "
                      f"(layer l is the attention of transformer block l)")
    if not 0 <= head < heads:
        raise HsError(f"attention head {head} does not exist: heads are 0..{heads - 1}")
    return np.asarray(corpus.read(ARRAY, layers.index(layer))[:, head], dtype=np.float32)


def read_checked(corpus) -> np.ndarray:
    """Every attention layer's diagonals of ``corpus``, each chunk checked and compared with the manifest."""
    if not corpus.store.is_zarr:
        return checked_read(corpus.raw(ARRAY), slice(None), f"corpus {corpus.name!r} of {corpus.store.path}, "
                                                            f"array {ARRAY}")
    return np.stack([corpus.read(ARRAY, p) for p in range(corpus.raw(ARRAY).shape[0])])
