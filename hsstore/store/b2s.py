"""Stored BERT2Static tables: the token vectors ``hs b2s`` trains from a reference corpus (hsstore/distil/b2s.py).

Group ``b2s/<REF>`` holds ``vectors`` (vocab, hidden) float32 in chunks of up to 4 MiB, each with its
CRC-32C, listed in the group's ``manifest``. Its attributes say what made it: the store's
``identity`` (a table is refused in a store of another model), the reference corpus and its
``fingerprint``, the training settings and what the training measured. ``complete`` is set after
the data; retraining first clears it, so a killed run never leaves a table that reads as finished.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from hsstore.errors import HsError, StoreError
from hsstore.format import storage
from hsstore.format.atomic import write_group_attrs
from hsstore.format.chunks import (Layout, ChunkFiles, check_present, chunk_key, chunk_nbytes, expected_keys, list_files,
                                   read_rows)


GROUP = "b2s"
ARRAY = "vectors"
DIMENSIONS = ("vocab", "feature")


def write_table(root, path, ref: str, table: np.ndarray, info: dict) -> None:
    """Store ``table`` (vocab, hidden) as ``b2s/<ref>`` in the open zarr ``root`` (the caller holds the lock)."""
    from zarr.codecs import Crc32cCodec  # zarr loads with the first write, not with hsstore

    gdir = storage.location(path) / GROUP / ref
    group = root.require_group(GROUP).require_group(ref)
    write_group_attrs(gdir, {"complete": False}, "b2s-cleared")
    rows = max(1, min(len(table), (4 << 20) // (table.shape[1] * 4)))
    array = group.create_array(ARRAY, shape=table.shape, dtype=np.float32, chunks=(rows, table.shape[1]),
                               compressors=[Crc32cCodec()], fill_value=0, dimension_names=DIMENSIONS, overwrite=True)
    files = ChunkFiles(array, gdir)
    crcs = [files.write(table[start:start + rows], (start // rows, 0)) for start in range(0, len(table), rows)]
    check_present(list_files(gdir / ARRAY), expected_keys(table.shape, (rows, table.shape[1])),
                  chunk_nbytes((rows, table.shape[1]), np.float32), f"{GROUP}/{ref}/{ARRAY}")
    write_group_attrs(gdir, {**info, "ref": ref, "manifest": crcs, "complete": True}, "b2s-complete")


def _hint(store, ref: str) -> str:
    return f"hs b2s {store.path} --ref {ref}"


def record(store, ref: str) -> dict:
    """The attributes of a finished table that belongs to this store's model, else a one-line error."""
    attrs = store.group_attrs(f"{GROUP}/{ref}")
    if not attrs:
        raise HsError(f"store {store.path} has no BERT2Static table trained on {ref!r}; train one: {_hint(store, ref)}")
    if not attrs.get("complete"):
        raise HsError(f"the BERT2Static table on {ref!r} in {store.path} is incomplete (its training was cut off); "
                      f"rerun {_hint(store, ref)}")
    if attrs.get("identity") != store.identity:
        raise HsError(f"the BERT2Static table on {ref!r} in {store.path} was trained from another model's states "
                      f"(identity {attrs.get('identity')}, the store's is {store.identity}); retrain it: "
                      f"{_hint(store, ref)}")
    corpus = store.corpus(ref)
    if attrs.get("ref_fingerprint") != corpus.fingerprint:
        raise HsError(f"the BERT2Static table on {ref!r} in {store.path} was trained on other texts than the "
                      f"corpus {ref!r} now holds; retrain it: {_hint(store, ref)}")
    return attrs


def table(store, ref: str) -> np.ndarray:
    """The table (vocab, hidden) float32, every chunk checked against its own CRC-32C and the one the
    table's manifest recorded when it was written."""
    attrs = record(store, ref)
    if not store.is_zarr:
        raise HsError(f"{store.path} is an HDF5 export, which does not carry BERT2Static tables; read the Zarr store")
    where = f"store {store.path}, array {GROUP}/{ref}/{ARRAY}"
    layout = Layout.of(store.raw(GROUP, ref, ARRAY), where)
    crcs = attrs["manifest"]
    if len(crcs) != layout.n_chunks:
        raise StoreError(f"{where}: its manifest records {len(crcs)} chunks of the {layout.n_chunks} its shape needs: "
                         f"its metadata was changed; retrain it: {_hint(store, ref)}")
    rows = read_rows(storage.location(store.path) / GROUP / ref / ARRAY, layout, (), 0, layout.shape[0],
                     crcs.__getitem__)
    return np.asarray(rows, dtype=np.float32)


def key(store, ref: str) -> str:
    """Names the table's contents in cache keys: its chunks' CRC-32C and its training settings."""
    attrs = record(store, ref)
    return hashlib.sha256(json.dumps([attrs["manifest"], attrs.get("settings")], sort_keys=True).encode()).hexdigest()[:16]


def signature(store, ref: str) -> str:
    """Names, sizes and modification times of the table's files (see Corpus.signature)."""
    base = storage.location(store.path) / GROUP / ref
    h = hashlib.sha256()
    for k, (size, mtime) in sorted(list_files(base / ARRAY).items()):
        h.update(f"{k}:{size}:{mtime}\n".encode())
    h.update(json.dumps(sorted((k, v) for k, v in list_files(base, under="").items() if k.endswith("zarr.json"))).encode())
    return h.hexdigest()[:20]


def refs(store) -> list[str]:
    """The reference corpora the store holds a table group of (finished or not)."""
    base = storage.location(store.path) / GROUP
    if store.group_attrs(GROUP) is None or not store.is_zarr or storage.is_remote(base):
        return []
    return sorted(p.name for p in base.iterdir() if p.is_dir())


def verify_targets(store) -> list[tuple[str, object, Path, list[str], object]]:
    """What ``hs verify`` checks of every table: (where, array, its directory, chunk keys, crc_of(key))."""
    out = []
    base = storage.location(store.path) / GROUP
    for ref in refs(store):
        attrs = store.group_attrs(f"{GROUP}/{ref}") or {}
        if not attrs.get("complete"):
            continue
        array = store.raw(GROUP, ref, ARRAY)
        crcs = attrs["manifest"]
        keys = [chunk_key((i, 0)) for i in range(len(crcs))]
        out.append((f"store {GROUP}/{ref}/{ARRAY}", array, base / ref / ARRAY, keys,
                    lambda k, crcs=crcs: crcs[int(k.split("/")[1])]))
    return out

