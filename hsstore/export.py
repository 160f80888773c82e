"""``hs export``: the same layout written to one HDF5 file, readable by ``hsstore.open``."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import statics
from .errors import HsError
from .store import Store


def export_hdf5(store: Store, out: Path, progress: bool = True) -> None:
    import h5py
    from tqdm import tqdm

    if out.exists():
        raise HsError(f"{out} exists; remove it or give another file name")
    tmp = out.with_name(out.name + ".partial")
    with h5py.File(tmp, "w") as h5:
        h5.attrs["json"] = json.dumps(store.attrs)
        vocab = h5.create_group("vocab")
        for part in ("bytes", "offsets"):
            vocab.create_dataset(part, data=store.raw("vocab", part)[:])
        statics.export_hdf5(store, h5)
        corpora = h5.create_group("corpora")
        for name in store.corpora:
            corpus = store.corpus(name)
            g = corpora.create_group(name)
            g.attrs["json"] = json.dumps(corpus.attrs)
            text = g.create_group("text")
            for part in ("bytes", "offsets"):
                text.create_dataset(part, data=corpus.raw("text", part)[:])
            for part in ("offsets", "token_ids", "token_kind", "batch_ends"):
                g.create_dataset(part, data=corpus.raw(part)[:])
            for part in ("position_ids", "attention_diagonal"):  # present in templated / --attention-diagonals corpora
                if corpus.has(part):
                    g.create_dataset(part, data=np.asarray(corpus.raw(part)[:]), fletcher32=True)
            hidden = corpus.raw("hidden")
            n_layers, n_tokens, size = hidden.shape
            dset = g.create_dataset("hidden", shape=hidden.shape, dtype=hidden.dtype,
                                    chunks=(1, min(n_tokens, max(1, (1 << 22) // (size * hidden.dtype.itemsize))), size),
                                    fletcher32=True)
            for p in tqdm(range(n_layers), desc=f"export {name}", disable=not progress, unit="layer"):
                dset[p] = np.asarray(hidden[p])
    tmp.rename(out)
