"""Stored layers as dask arrays, one dask chunk per stored chunk of tokens.

Each block is read by whichever process computes it (a dask worker opens the store itself from
its path, with the class that opened it in the client), through the store's checked reads: a
missing, truncated or corrupt chunk raises the same one-line ``StoreError`` as an eager read, never
zeros. The graph holds only the store's path and class, the corpus name and the layer number, so it
is small and pickles to remote workers.
"""
from __future__ import annotations

import threading

import numpy as np

from hsstore.errors import EnvError
from hsstore.format import storage

_OPEN: dict[str, object] = {}  # stores opened in this process, by path
_LOCK = threading.Lock()


def _store(path: str, opener):
    """The store at ``path``, opened once per process with ``opener`` (the client's ``Store`` class)."""
    with _LOCK:
        if path not in _OPEN:
            _OPEN[path] = opener(storage.location(path))
        return _OPEN[path]


class LayerRows:
    """The rows of one stored layer, read on demand: what ``dask.array.from_array`` slices."""

    def __init__(self, path: str, opener, corpus: str, layer: int, shape: tuple[int, int], dtype):
        self.path, self.opener, self.corpus, self.layer = path, opener, corpus, layer
        self.shape, self.dtype, self.ndim = shape, np.dtype(dtype), 2

    def __getitem__(self, key) -> np.ndarray:
        rows, cols = key if isinstance(key, tuple) else (key, slice(None))
        start, stop, step = rows.indices(self.shape[0])
        corpus = _store(self.path, self.opener).corpus(self.corpus)
        return corpus.layer_rows(self.layer, start, stop)[::step, cols]


def layer_array(corpus, layer: int):
    """Layer ``layer`` of every token of ``corpus`` as a lazy dask array (n_tokens, hidden), stored dtype."""
    try:
        import dask.array as da  # an optional extra, and slow to import: only when asked for
    except ImportError:
        raise EnvError("dask arrays need dask: pip install 'hs[dask]'") from None
    store = corpus.store
    position = store.layer_position(layer)
    number = store.layers[position]
    if store.is_zarr:
        corpus.hidden_files(position)  # a missing or short chunk fails now, as an eager read would
    hidden = corpus.raw("hidden")
    shape = (corpus.n_tokens, store.hidden_size)
    reader = LayerRows(str(store.path), type(store), corpus.name, number, shape, hidden.dtype)
    name = f"hs-{store.identity}-{corpus.name}-{corpus.fingerprint}-L{number}"
    rows = int((hidden.chunks or (1, store.settings["chunk_tokens"]))[1])  # an HDF5 export may be contiguous
    return da.from_array(reader, chunks=(rows, shape[1]), name=name, asarray=False, fancy=False,
                         meta=np.empty((0, 0), dtype=hidden.dtype))
