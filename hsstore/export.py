"""``hs export``: the same layout written to one HDF5 file, readable by ``hsstore.open``."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .errors import HsError
from .store import Store


def export_hdf5(store: Store, out: Path, progress: bool = True, corpora: list[str] | None = None) -> None:
    import h5py
    from tqdm import tqdm

    if out.exists():
        raise HsError(f"{out} exists; remove it or give another file name")
    missing = [c for c in corpora or [] if c not in store.corpora]
    if missing:
        raise HsError(f"store {store.path} has no complete corpus {', '.join(missing)}; it has "
                      f"{', '.join(store.corpora) or 'none'}")
    tmp = out.with_name(out.name + ".partial")
    with h5py.File(tmp, "w") as h5:
        h5.attrs["json"] = json.dumps(store.attrs)
        vocab = h5.create_group("vocab")
        for part in ("bytes", "offsets"):
            vocab.create_dataset(part, data=store.raw("vocab", part)[:])
        group = h5.create_group("corpora")
        for name in corpora or store.corpora:
            corpus = store.corpus(name)
            g = group.create_group(name)
            g.attrs["json"] = json.dumps(corpus.attrs)
            text = g.create_group("text")
            for part in ("bytes", "offsets"):
                text.create_dataset(part, data=corpus.raw("text", part)[:])
            for part in ("offsets", "token_ids", "token_kind", "batch_ends"):
                g.create_dataset(part, data=corpus.raw(part)[:])
            hidden = corpus.raw("hidden")
            n_layers, n_tokens, size = hidden.shape
            dset = g.create_dataset("hidden", shape=hidden.shape, dtype=hidden.dtype,
                                    chunks=(1, min(n_tokens, max(1, (1 << 22) // (size * hidden.dtype.itemsize))), size),
                                    fletcher32=True)
            for p in tqdm(range(n_layers), desc=f"export {name}", disable=None if progress else True, unit="layer"):
                dset[p] = np.asarray(hidden[p])
            _label_dimensions(g, store.layers)
    tmp.rename(out)


def _label_dimensions(g, layers: list[int]) -> None:
    """HDF5 dimension scales: ``layer`` holds the stored layer numbers; the other axes are labelled."""
    scale = g.create_dataset("layer", data=np.asarray(layers, dtype=np.int32))
    scale.make_scale("layer")
    hidden = g["hidden"]
    hidden.dims[0].attach_scale(scale)
    for axis, label in enumerate(("layer", "token", "feature")):
        hidden.dims[axis].label = label
    for part in ("token_ids", "token_kind"):
        g[part].dims[0].label = "token"
