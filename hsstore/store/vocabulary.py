"""The vocabulary table: every vocabulary id run alone through the model, and the tokenizer's special tokens.

``hs dump --vocabulary-states`` runs each id ``i`` of the vocabulary as its own input, wrapped in the
special tokens the tokenizer adds to any text (``[CLS] i [SEP]`` for BERT, ``<s> i`` for Llama,
``i`` alone for GPT-2), and stores, for every stored layer, the mean of the input's states over its
positions: what Model2Vec's distillation takes (``model2vec.distill``, mean pooling). The group
``vocabulary`` holds it as ``states`` (layer, vocab, feature) in the store's dtype, chunked
``(1, R, H)`` like ``hidden`` (R rows of one layer a chunk, a CRC-32C in every chunk), with the
CRC-32C of each chunk in the group's ``manifest`` and the commit watermark ``rows_done`` (whole
chunk columns, every layer) moved after the chunks it covers are on disk; ``complete`` is set last.
A killed dump resumes at the watermark, after checking that the committed chunks are all there.

Every dump by this hs also records the tokenizer's special tokens in the group's attributes
(``special_tokens``: role -> id, ``special_ids``, and the ``prefix``/``suffix`` ids it wraps a
text in), with no forward pass: ``drop=unk`` and the Model2Vec-style steps read them.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np

from hsstore.errors import HsError, StoreError
from hsstore.format import storage
from hsstore.format.atomic import fault_point, read_group_attrs, write_bytes, write_group_attrs
from hsstore.format.chunks import (ChunkFiles, Layout, check_present, chunk_key, expected_keys, list_files, read_rows,
                                   whole_columns)
from hsstore.format.layout import DTYPES, corpus_chunk_tokens


GROUP = "vocabulary"
ARRAY = "states"
OPTION = "--vocabulary-states"
DIMENSIONS = ("layer", "vocab", "feature")
PLACEHOLDER = re.compile(r"\[unused\d+\]")  # BERT's reserved vocabulary slots: no text produces them


def _dump_hint(store) -> str:
    return f"hs dump --model {store.model['name']} {OPTION} --out {store.path}"


# ---- writing (hs dump) ---------------------------------------------------------------------------

def record_special_tokens(root, path, record: dict) -> None:
    """Write the tokenizer's special tokens into the group's attributes (every dump; no forward pass)."""
    group = root.require_group(GROUP)
    attrs = dict(group.attrs)
    if all(attrs.get(k) == v for k, v in record.items()):
        return
    write_group_attrs(storage.location(path) / GROUP, {**attrs, **record}, "special-tokens-written")


def copy_record(src: Path, out: Path) -> None:
    """A shard's special-token record into the merged store (``hs merge``), as a dump in one process
    writes it (a sharded dump has no vocabulary table: --vocabulary-states is refused with --shard)."""
    marker = Path(src) / GROUP / "zarr.json"
    if marker.exists() and not (Path(out) / GROUP / "zarr.json").exists():
        (Path(out) / GROUP).mkdir(parents=True, exist_ok=True)
        write_bytes(Path(out) / GROUP / "zarr.json", marker.read_bytes(), sync=True)


class StatesWriter:
    """Writes the vocabulary table chunk column by chunk column (all layers), resumably."""

    def __init__(self, root, path, layers: list[int], dtype: str, hidden: int, vocab_size: int, chunk_tokens: int):
        from zarr.codecs import Crc32cCodec  # zarr loads with the first write, not with hsstore

        self.dir = storage.location(path) / GROUP
        group = root.require_group(GROUP)
        self.attrs = read_group_attrs(self.dir)
        self.rows = corpus_chunk_tokens(chunk_tokens, vocab_size)
        shape = (len(layers), vocab_size, hidden)
        plan = {"states_layers": list(layers), "states_shape": list(shape), "states_dtype": dtype,
                "states_chunk_rows": self.rows}
        if any(self.attrs.get(k) != v for k, v in plan.items()) or ARRAY not in group.array_keys():
            group.create_array(ARRAY, shape=shape, dtype=DTYPES[dtype], chunks=(1, self.rows, hidden),
                               compressors=[Crc32cCodec()], fill_value=0, dimension_names=DIMENSIONS, overwrite=True)
            self.attrs = {k: v for k, v in self.attrs.items() if not k.startswith("states_")}
            self.attrs.update(plan, states_rows_done=0, states_manifest=[], states_complete=False)
            write_group_attrs(self.dir, self.attrs, "vocabulary-created")
        self.array = group[ARRAY]
        self.files = ChunkFiles(self.array, self.dir)
        self.n_layers, self.vocab_size = len(layers), vocab_size
        self.size = self.rows * hidden * np.dtype(DTYPES[dtype]).itemsize + 4
        self.manifest = [list(col) for col in self.attrs.get("states_manifest", [])]
        # the committed columns that are all on disk at full size (a rerun rewrites from the first gap)
        cols = len(self.manifest)
        good = whole_columns(self.dir / ARRAY, 0, cols, self.n_layers, self.size,
                             table=np.asarray(self.manifest, dtype=np.int64) if cols else None)
        self.manifest = self.manifest[:good]
        self.rows_done = min(vocab_size, good * self.rows)
        self.buf: list[np.ndarray] = []

    @property
    def complete(self) -> bool:
        return bool(self.attrs.get("states_complete")) and self.rows_done == self.vocab_size

    def add(self, states: np.ndarray) -> None:
        """The next rows' states, (layers, rows, hidden) in the stored dtype; writes every full chunk."""
        self.buf.append(states)
        pending = sum(b.shape[1] for b in self.buf)
        if pending >= self.rows or self.rows_done + pending == self.vocab_size:
            self._flush()

    def _flush(self) -> None:
        data = np.concatenate(self.buf, axis=1) if len(self.buf) > 1 else self.buf[0]
        n = data.shape[1] if self.rows_done + data.shape[1] == self.vocab_size else data.shape[1] - data.shape[1] % self.rows
        for start in range(0, n, self.rows):
            col = (self.rows_done + start) // self.rows
            jobs = [(data[layer, start:start + self.rows][None], (layer, col, 0)) for layer in range(self.n_layers)]
            self.manifest.append(self.files.write_many(jobs))
        fault_point("vocabulary-chunks-written")
        self.rows_done += n
        self.buf = [data[:, n:]] if n < data.shape[1] else []
        complete = self.rows_done == self.vocab_size
        if complete:
            check_present(list_files(self.dir / ARRAY), expected_keys(self.array.shape, self.array.chunks), self.size,
                          f"{GROUP}/{ARRAY}")
        self.attrs.update(states_rows_done=self.rows_done, states_manifest=self.manifest, states_complete=complete)
        write_group_attrs(self.dir, self.attrs, "vocabulary-complete" if complete else "vocabulary-commit")


# ---- reading -------------------------------------------------------------------------------------

def record(store) -> dict:
    """The group's attributes ({} where the store has none)."""
    return store.group_attrs(GROUP) or {}


def special_tokens(store) -> dict:
    """The tokenizer's special tokens as recorded by ``hs dump``: ``{"roles": {role: id}, "ids": [...]}``."""
    rec = record(store)
    if "special_tokens" not in rec:
        raise HsError(f"store {store.path} does not record its tokenizer's special tokens (made by an older hs); "
                      f"rerun its hs dump command to add them (no forward pass), e.g. hs dump --model "
                      f"{store.model['name']} --out {store.path} --task <a task it holds>")
    return {"roles": rec["special_tokens"], "ids": rec["special_ids"]}


def table_vocabulary(store) -> np.ndarray:
    """Per vocabulary id, whether Model2Vec's distillation keeps it in its vocabulary: every id but the
    placeholder slots (``[unused0]``...) and the special tokens other than the unknown and padding
    tokens. Zipf ranks count the kept ids, and the token-table PCA is fitted on their rows."""
    vocab = store.vocab
    keep = np.fromiter((not PLACEHOLDER.fullmatch(t) for t in vocab), dtype=bool, count=len(vocab))
    specials = special_tokens(store)
    spare = {specials["roles"].get(r) for r in ("unk", "pad")}
    for i in specials["ids"]:
        if i not in spare and 0 <= i < len(keep):
            keep[i] = False
    return keep


def _array(store):
    rec = record(store)
    if not rec.get("states_complete"):
        state = "is incomplete: rerun the same command to finish it" if "states_shape" in rec else "is missing"
        raise HsError(f"store {store.path} has no vocabulary table (each id run alone through the model); it {state}: "
                      f"{_dump_hint(store)}")
    if not store.is_zarr:
        raise HsError(f"{store.path} is an HDF5 export, which does not carry the vocabulary table; read the Zarr store")
    return rec, store.raw(GROUP, ARRAY)


def states(store, layer: int) -> np.ndarray:
    """The vocabulary table of model layer ``layer``: (vocab, hidden) float32, every chunk checked present
    at full size and its checksum verified."""
    rec, array = _array(store)
    layers = rec["states_layers"]
    wanted = layer + store.n_model_layers + 1 if layer < 0 else layer
    if wanted not in layers:
        raise HsError(f"layer {layer} is not in the vocabulary table of {store.path} (it holds layers {layers})")
    pos = layers.index(wanted)
    where = f"store {store.path}, array {GROUP}/{ARRAY} (layer {layers[pos]})"
    manifest = rec["states_manifest"]
    layout = Layout.of(array, where, axis=1)
    if len(manifest) != layout.n_chunks:
        raise StoreError(f"{where}: its manifest records {len(manifest)} chunks of the {layout.n_chunks} its shape "
                         f"needs: its metadata was changed; run `hs verify` on the store, then {_dump_hint(store)}")
    # every chunk against its own CRC-32C and the one the manifest recorded when it was written
    rows = read_rows(storage.location(store.path) / GROUP / ARRAY, layout, (pos,), 0, layout.shape[1],
                     lambda col: manifest[col][pos])
    return np.asarray(rows, dtype=np.float32)


def key(store) -> str:
    """Names the table's contents in cache keys: a digest of its chunks' CRC-32C."""
    rec, _ = _array(store)
    return hashlib.sha256(json.dumps(rec["states_manifest"]).encode()).hexdigest()[:16]


def signature(store, layer: int | None) -> str:
    """Names, sizes and modification times of the table's files (see Corpus.signature)."""
    _array(store)
    base = storage.location(store.path) / GROUP
    h = hashlib.sha256()
    for key_, (size, mtime) in sorted(list_files(base / ARRAY).items()):
        h.update(f"{key_}:{size}:{mtime}\n".encode())
    meta = list_files(base, under="")  # the group's and the array's zarr.json
    h.update(json.dumps(sorted((k, v) for k, v in meta.items() if k.endswith("zarr.json"))).encode())
    return h.hexdigest()[:20]


def verify_targets(store) -> list[tuple[str, object, Path, list[str], object]]:
    """What ``hs verify`` checks of the table: (where, array, its directory, chunk keys, crc_of(key))."""
    rec = record(store)
    if "states_shape" not in rec:
        return []
    array = store.raw(GROUP, ARRAY)
    cols = len(rec.get("states_manifest", []))
    keys = [chunk_key((layer, col, 0)) for layer in range(array.shape[0]) for col in range(cols)]

    def crc_of(k):
        _, layer, col, _ = k.split("/")
        return rec["states_manifest"][int(col)][int(layer)]

    return [(f"store {GROUP}/{ARRAY}", array, storage.location(store.path) / GROUP / ARRAY, keys, crc_of)]


def incomplete_note(store) -> str | None:
    rec = record(store)
    if "states_shape" in rec and not rec.get("states_complete"):
        return (f"vocabulary table: incomplete ({rec.get('states_rows_done', 0)}/{rec['states_shape'][1]} ids); "
                f"rerun {_dump_hint(store)} to finish it")
    return None

