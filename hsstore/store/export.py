"""``hs export``: the same layout written to one HDF5 file, readable by ``hsstore.open``."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
from tqdm import tqdm

from hsstore.errors import EnvError, HsError, StoreError
from hsstore.format.layout import encode_strings

from . import attention, statics
from .reader import Store


def export_hdf5(store: Store, out: Path, progress: bool = True, corpora: list[str] | None = None) -> None:
    """Every complete corpus (or those named in ``corpora``), each array read with its chunks checked;
    written to ``OUT.partial`` and renamed at the end, so ``out`` appears only whole. A failed export
    removes its partial file, and one left by a killed export is replaced."""
    if out.exists():
        raise HsError(f"{out} exists; remove it or give another file name")
    if not out.parent.is_dir():
        raise HsError(f"{out.parent} is not a directory; give an output file in an existing directory")
    missing = [c for c in corpora or [] if c not in store.corpora]
    if missing:
        raise StoreError(f"store {store.path} has no complete corpus {', '.join(missing)}; it has "
                      f"{', '.join(store.corpora) or 'none'}")
    corpora = list(corpora or store.corpora)
    tmp = out.with_name(out.name + ".partial")
    tmp.unlink(missing_ok=True)  # a killed export's remains
    need, free = _bytes_needed(store, corpora), shutil.disk_usage(out.parent).free
    if need > free:  # HDF5 copes badly with a disk that fills up under it: check first
        raise EnvError(f"the export needs about {need / 1e6:.1f} MB, {out.parent} has {free / 1e6:.1f} MB free: "
                       f"free space or export elsewhere")
    try:
        _write(store, corpora, tmp, progress)
        tmp.rename(out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


_SMALL = ("offsets", "token_ids", "token_kind", "batch_ends", "sentence_length",  # a corpus's 1-D arrays
          "source_position")


def _bytes_needed(store: Store, corpora: list[str]) -> int:
    total = 0
    for name in corpora:
        corpus = store.corpus(name)
        for parts in (("hidden",), *((p,) for p in _SMALL if corpus.has(p)), ("text", "bytes"), ("text", "offsets")):
            array = corpus.raw(*parts)
            total += array.size * array.dtype.itemsize
    return int(total * 1.02) + (1 << 20)


def write_attrs(node, meta: dict) -> None:
    """``meta`` as HDF5 attributes a person reads in h5py or HDFView: one per key, nested dicts
    flattened with dots (``model.name``), lists of numbers or of strings as arrays, None as an empty
    attribute, anything else as JSON text; and all of it as JSON in ``json``, which hsstore.open reads
    back exactly. The zarr chunk manifest is left out of the attributes (it describes zarr's files)."""
    node.attrs["json"] = json.dumps(meta)
    for key, value in _flat({k: v for k, v in meta.items() if k != "manifest"}):
        node.attrs[key] = _attr_value(value)


def _flat(meta: dict, prefix: str = ""):
    for key, value in meta.items():
        if isinstance(value, dict) and value:
            yield from _flat(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _attr_value(value):
    if value is None:
        return h5py.Empty("f")
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return np.asarray(value, dtype=h5py.string_dtype())
    if isinstance(value, list) and value and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return np.asarray(value)
    return json.dumps(value)


def _write(store: Store, corpora: list[str], tmp: Path, progress: bool) -> None:
    with h5py.File(tmp, "w") as h5:
        write_attrs(h5, store.attrs)
        vocab = h5.create_group("vocab")
        for part, data in zip(("bytes", "offsets"), encode_strings(store.vocab)):
            vocab.create_dataset(part, data=data)
        statics.export_hdf5(store, h5)
        group = h5.create_group("corpora")
        for name in corpora:
            corpus = store.corpus(name)
            g = group.create_group(name)
            write_attrs(g, corpus.attrs)
            text = g.create_group("text")
            for part in ("bytes", "offsets"):
                text.create_dataset(part, data=corpus.small("text", part))
            for part in _SMALL:
                if corpus.has(part):  # sentence_length, source_position: not in stores made before them
                    g.create_dataset(part, data=corpus.small(part))
            if corpus.has("task"):  # a user's task definition (docs/tasks.md)
                task = g.create_group("task")
                for part in ("bytes", "offsets"):
                    task.create_dataset(part, data=corpus.small("task", part))
            if corpus.has("position_ids"):  # template-only corpora (docs/prompts.md)
                g.create_dataset("position_ids", data=corpus.small("position_ids"), fletcher32=True)
            if attention.has_diagonals(corpus):
                g.create_dataset(attention.ARRAY, data=attention.read_checked(corpus), fletcher32=True)
            hidden = corpus.raw("hidden")
            n_layers, n_tokens, size = hidden.shape
            dset = g.create_dataset("hidden", shape=hidden.shape, dtype=hidden.dtype,
                                    chunks=(1, min(n_tokens, max(1, (1 << 22) // (size * hidden.dtype.itemsize))), size),
                                    fletcher32=True)
            for p in tqdm(range(n_layers), desc=f"export {name}", disable=None if progress else True, unit="layer"):
                dset[p] = corpus.layer(store.layers[p])
            _label_dimensions(g, store.layers)


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
    if "sentence_length" in g:
        g["sentence_length"].dims[0].label = "sentence"
