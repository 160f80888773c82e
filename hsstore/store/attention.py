"""The stored attention diagonals: each token's self-attention weight a_ii, per layer and head (Ditto,
Chen et al. 2023); the model side (eager attention, taking the diagonals) is hsstore/dump/attention.py.

``hs dump --attention-diagonals`` stores them in a corpus's ``attention_diagonal`` array, float16,
dimensions (attention_layer, token, head): not ``layer``, whose length is hidden's (one more, the
embedding output), so xarray can open both; chunked along tokens like ``hidden`` (one layer a chunk) with a
CRC-32C per chunk. Layer l (1..L) is the attention inside transformer block l, the block whose
output is hidden layer l; Ditto's "layer 0" is layer 1 here. The weights come from eager attention
(the model's plain softmax(QK^T) path), which such a dump switches the model to.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hsstore.errors import HsError
from hsstore.format.chunks import ChunkFiles, check_present, chunk_nbytes, expected_keys, list_files

from .reader import checked_read

ARRAY = "attention_diagonal"
OPTION = "--attention-diagonals"


def create_array(group, plan, chunk: int) -> dict:
    """The empty diagonals array of a new corpus; returns the attributes the corpus records for it."""
    from zarr.codecs import Crc32cCodec  # zarr loads with the first write, not with hsstore

    layers, heads = plan.attention_shape
    group.create_array(ARRAY, shape=(layers, plan.n_tokens, heads), dtype=np.float16, chunks=(1, chunk, heads),
                       compressors=[Crc32cCodec()], fill_value=0, dimension_names=("attention_layer", "token", "head"))
    return {"attention_layers": list(range(1, layers + 1)), "attention_heads": heads}


def _check_present(corpus_dir: Path, array, where: str, col: int | None = None) -> None:
    """Every chunk of ``array`` (or of token chunk ``col``) on disk at full size, else a one-line error."""
    keys = expected_keys(array.shape, array.chunks)
    if col is not None:
        keys = [k for k in keys if k.split("/")[2] == str(col)]
    check_present(list_files(corpus_dir / array.basename), keys, chunk_nbytes(array.chunks, array.dtype), where)


class SideArrays:
    """Per-token arrays written beside ``hidden`` in the same chunk-aligned flushes (see writer.py):
    each flush writes their chunks before hidden's, so the watermark covers both."""

    def __init__(self, group, corpus_dir: Path, chunk: int):
        self.dir, self.chunk = corpus_dir, chunk
        self.arrays = {ARRAY: group[ARRAY]} if ARRAY in group.array_keys() else {}
        self.files = {name: ChunkFiles(array, corpus_dir) for name, array in self.arrays.items()}
        self.bufs = {name: [] for name in self.arrays}

    def committed_head(self, chunk_start: int, start: int) -> dict | None:
        """Each array's committed tokens of the chunk that later batches complete (None if missing or
        damaged, so the corpus starts over)."""
        out = {}
        for name, array in self.arrays.items():
            try:
                _check_present(self.dir, array, name, chunk_start // self.chunk)
                out[name] = np.asarray(array[:, chunk_start:start])
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
        """Write the buffered arrays' first ``n`` tokens as whole chunks from token chunk ``first_col``."""
        for name, files in self.files.items():
            buf = self.bufs[name]
            data = np.concatenate(buf, axis=1) if len(buf) > 1 else buf[0]
            for offset in range(0, n, self.chunk):
                for layer in range(data.shape[0]):
                    files.write(data[layer, offset:offset + self.chunk][None], (layer, first_col + offset // self.chunk, 0))
            self.bufs[name] = [data[:, n:]] if n < data.shape[1] else []


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
    return np.asarray(read_checked(corpus, (layers.index(layer), slice(None), head)), dtype=np.float32)


def read_checked(corpus, selection=slice(None)) -> np.ndarray:
    """``attention_diagonal[selection]``, every chunk checked present and its checksum verified."""
    array = corpus.raw(ARRAY)
    where = f"corpus {corpus.name!r} of {corpus.store.path}, array {ARRAY}"
    if corpus.store.is_zarr:  # a missing chunk is an error, never zeros
        _check_present(corpus.dir, array, where)
    return checked_read(array, selection, where)
