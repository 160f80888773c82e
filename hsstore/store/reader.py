"""Read-only access to a store, whether a Zarr v3 directory or an HDF5 export of one.

``Store`` is a store's root (model, settings, vocabulary, the static arrays, its corpora by name);
``Corpus`` is one corpus (texts, token ids and kinds, offsets, and its hidden states by layer).
Every read checks that the chunk files it needs are all there at full size and verifies their
checksums, so a partial copy or a damaged file is a one-line ``StoreError``, never zeros.
zarr and h5py load on the first open, not when hs starts (``hs --help``).
"""
from __future__ import annotations

import hashlib
import json
import math
from functools import cached_property
from pathlib import Path
from typing import Iterable, NamedTuple, Sequence

import numpy as np

from hsstore.errors import HsError, StoreError
from hsstore.format import storage
from hsstore.format.chunks import (REPAIR_HINT, Layout, check_present, expected_keys, list_files, read_rows,
                                   trailer)
from hsstore.format.digests import DIGEST, WATERMARK, digest_matches, plan_fingerprint, store_identity
from hsstore.format.layout import (ARRAY_DTYPES, DTYPES, FORMAT_NAME, KIND_NAMES, READ_VERSIONS, corpus_shapes,
                                   decode_strings, empty_label)

from . import statics
from .daskarray import layer_array


class _Node:
    """A group of either backend: attributes as a dict, arrays by name, child groups by name."""

    def __init__(self, group, backend: str):
        self._g, self._backend = group, backend

    @cached_property
    def attrs(self) -> dict:
        if self._backend == "h5":
            raw = self._g.attrs.get("json")
            return json.loads(raw) if raw is not None else {}
        return dict(self._g.attrs)

    def array(self, name: str):
        return self._g[name]

    def has(self, name: str) -> bool:
        return name in self._g

    def child(self, name: str) -> "_Node":
        return _Node(self._g[name], self._backend)

    def path(self, *parts: str):
        """The backend array at a path of group names ending in an array name."""
        node = self
        for part in parts[:-1]:
            node = node.child(part)
        return node.array(parts[-1])

    def children(self) -> list[str]:
        if self._backend == "h5":
            import h5py  # h5py and zarr load with the first open, not with hsstore
            return sorted(k for k, v in self._g.items() if isinstance(v, h5py.Group))
        return sorted(name for name, _ in self._g.groups())


def _open_root(path: Path) -> _Node:
    if path.is_file() and storage.is_remote(path):
        raise HsError(f"{path} is one object (an HDF5 export?); hs reads HDF5 exports from a local file: copy it")
    if path.is_file():
        import h5py
        try:
            return _Node(h5py.File(path, "r"), "h5")
        except OSError as exc:
            raise HsError(f"{path} is a file but not an HDF5 store export ({exc})") from None
    if not (path / "zarr.json").exists():
        raise HsError(f"{path} is not an hs store (no zarr.json); create one with `hs dump --out {path}`")
    import zarr
    try:
        group = zarr.open_group(storage.zarr_store(path, "r"), mode="r")
        group.attrs.asdict()
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StoreError(f"{path}/zarr.json is unreadable ({type(exc).__name__}); the store's root metadata is "
                         f"damaged: restore it from a copy, or dump again into a new store") from None
    return _Node(group, "zarr")


def _layer_text(layers: list[int]) -> str:
    """``0-6`` for a run of layers, else ``0,3,6``."""
    if len(layers) > 2 and layers == list(range(layers[0], layers[-1] + 1)):
        return f"{layers[0]}-{layers[-1]}"
    return ",".join(map(str, layers))


def checked_read(array, selection, where: str):
    """``array[selection]`` as numpy (an HDF5 export's dataset, which h5py checks), with a checksum
    failure or an unreadable file as a one-line error. Zarr stores are read by ``read_rows``."""
    try:
        return np.asarray(array[selection])
    except (ValueError, OSError) as exc:
        if "checksum" in str(exc).lower() or "fletcher" in str(exc).lower():
            raise StoreError(f"{where} has a corrupt chunk (checksum mismatch): its bytes on disk changed after "
                             f"it was written; export the store again") from None
        raise StoreError(f"{where} cannot be read ({exc}); run `hs verify` on the store") from None


def changed(where: str, what: str) -> StoreError:
    """The error for metadata that no longer describes the data (an edit, a tool, a partial copy)."""
    return StoreError(f"{where}: {what}; its metadata was changed after hs wrote it: run `hs verify` on the store, "
                      f"and restore it from a copy or dump it again into a new store")


def open(path: str | Path) -> "Store":  # noqa: A001 - mirrors zarr.open and h5py.File
    """Open a store read-only: ``hsstore.open("runs/minilm").corpus("stsb").hidden(0)``; ``path`` may
    be an fsspec URL such as ``s3://bucket/prefix`` (storage.py)."""
    return Store(storage.location(path))


class Store:
    """A store, opened read-only: ``hsstore.open(path)`` (a directory, an ``s3://`` URL or an HDF5
    export). ``store.corpus(name)`` gives a complete corpus; ``store.model``, ``store.settings`` and
    ``store.layers`` say what was dumped; ``store.identity`` names the states (model, weights,
    tokenizer, precision, layers) in every cache key and results record. The root's metadata is
    checked on open (its digest, or for a format 2 store its identity, against the rest)."""

    def __init__(self, path: Path):
        self.path = path = storage.location(path)
        if not path.exists():
            raise StoreError(f"no store at {path}; create one with `hs dump --out {path}`")
        self._root = _open_root(path)
        attrs = self._root.attrs
        if attrs.get("format") != FORMAT_NAME:
            raise HsError(f"{path} is a Zarr/HDF5 file but not an hs store (format={attrs.get('format')!r})")
        version = attrs.get("format_version", 0)
        if not isinstance(version, int) or version > max(READ_VERSIONS):
            raise HsError(f"{path} uses store format {version}, newer than this hs understands "
                          f"({max(READ_VERSIONS)}); upgrade hs")
        self.attrs = attrs
        self.format_version = version
        self._check_root()
        self._opened: dict[str, Corpus] = {}

    def __repr__(self) -> str:
        s = self.settings
        return (f"<hs Store {self.path}: {self.model['name']}, layers {_layer_text(self.layers)} in {s['dtype']}, "
                f"hidden {self.hidden_size}; corpora {', '.join(self.corpora) or 'none complete'}>")

    def _check_root(self) -> None:
        """The root's metadata describes one model and one set of settings, as hs wrote them."""
        where, attrs = f"store {self.path} (zarr.json)", self.attrs
        if self.format_version >= 3 and not digest_matches(attrs):
            raise changed(where, "its attributes do not match their digest")
        try:
            settings, model = attrs["settings"], attrs["model"]
            layers, n_layers = settings["layers"], int(model["n_layers"])
            if self.format_version == 2 and store_identity(model, settings) != attrs["identity"]:
                raise changed(where, "its identity does not match its model and settings")
            fine = (isinstance(layers, list) and layers and all(isinstance(x, int) for x in layers)
                    and layers == sorted(set(layers)) and 0 <= layers[0] and layers[-1] <= n_layers
                    and settings["dtype"] in DTYPES and int(model["hidden_size"]) > 0)
        except (KeyError, TypeError, ValueError):
            raise changed(where, "its model or settings are unreadable") from None
        if not fine:
            raise changed(where, f"settings layers={layers!r}, dtype={settings.get('dtype')!r} are not a store's")

    @property
    def model(self) -> dict:
        return self.attrs["model"]

    @property
    def settings(self) -> dict:
        return self.attrs["settings"]

    @property
    def layers(self) -> list[int]:
        """Model layer numbers held in the store (0 = embedding output)."""
        return list(self.settings["layers"])

    @property
    def n_model_layers(self) -> int:
        """Transformer layers of the model; layer numbers run 0..n_model_layers."""
        return int(self.model["n_layers"])

    @property
    def hidden_size(self) -> int:
        return int(self.model["hidden_size"])

    def raw(self, *parts: str):
        """A backend (zarr or h5py) array by path, e.g. ``raw("vocab", "bytes")``; for exports and tools."""
        return self._root.path(*parts)

    @property
    def identity(self) -> str:
        return self.attrs["identity"]

    @property
    def has_manifest(self) -> bool:
        """Whether the store records each chunk's CRC-32C (format 2 on; format 1 stores do not)."""
        return "manifest" in self.attrs

    @property
    def is_zarr(self) -> bool:
        return self._root._backend == "zarr"

    def read_array(self, array, rel: tuple[str, ...], group_dir: Path, where: str, crcs: list[int] | None,
                   dtype, shape: tuple[int, ...] | None = None) -> np.ndarray:
        """A whole array of the store chunked along its first axis (``rel``: its path under
        ``group_dir``): its metadata checked (``dtype``, and ``shape`` where given), every chunk present,
        matching its own CRC-32C and the manifest's ``crcs`` (None where none is recorded)."""
        if shape is not None and tuple(array.shape) != tuple(shape):
            raise changed(where, f"shape {tuple(array.shape)}, expected {tuple(shape)}")
        if np.dtype(array.dtype) != np.dtype(dtype):
            raise changed(where, f"data type {np.dtype(array.dtype)}, expected {np.dtype(dtype)}")
        if not self.is_zarr:
            return checked_read(array, slice(None), where)
        layout = Layout.of(array, where)
        if crcs is not None and len(crcs) != layout.n_chunks:
            raise changed(where, f"{layout.n_chunks} chunks, the manifest lists {len(crcs)}")
        directory = group_dir.joinpath(*rel)
        check_present(list_files(directory), expected_keys(layout.shape, layout.chunks), layout.nbytes, where)
        return read_rows(directory, layout, (), 0, layout.shape[0], crcs.__getitem__ if crcs is not None else None)

    @cached_property
    def vocab(self) -> list[str]:
        manifest = self.attrs.get("manifest") or {}
        parts = [self.read_array(self.raw("vocab", p), ("vocab", p), self.path, f"store {self.path}, array vocab/{p}",
                                 manifest.get(f"vocab/{p}") if self.has_manifest else None, dtype)
                 for p, dtype in (("bytes", np.uint8), ("offsets", np.int64))]
        vocab = _decode(*parts, f"store {self.path}, array vocab")
        if len(vocab) != self.model.get("vocab_size", len(vocab)):
            raise changed(f"store {self.path}, array vocab", f"{len(vocab)} tokens, the model has "
                                                             f"{self.model.get('vocab_size')}")
        return vocab

    def input_embeddings(self) -> np.ndarray:
        """The model's input word-embedding matrix (vocab x hidden, float32), if ``hs dump`` stored it;
        a store without it is a one-line error."""
        root = self._root
        group = root.child(statics.GROUP) if root.has(statics.GROUP) else None
        if group is None or not group.attrs.get(statics.COMPLETE) or not group.has(statics.INPUT):
            raise HsError(f"store {self.path} has no input-embedding matrix (made before hs stored it); add it by "
                          f"rerunning its hs dump command, e.g. hs dump --model {self.model['name']} --out {self.path} "
                          f"--task <a task it holds>")
        where = f"store {self.path}, array {statics.GROUP}/{statics.INPUT}"
        attrs = self.statics_attrs
        if DIGEST in attrs or self.format_version >= 3:
            if not digest_matches(attrs):
                raise changed(where, "the statics group's attributes do not match their digest")
            if attrs.get("identity") != self.identity:
                raise changed(where, "it was written for another store (its identity is not this store's)")
        array = group.array(statics.INPUT)
        if len(array.shape) != 2 or array.shape[1] != self.hidden_size:
            raise changed(where, f"shape {tuple(array.shape)}, expected (vocabulary, {self.hidden_size})")
        return self.read_array(array, (statics.GROUP, statics.INPUT), self.path, where,
                               attrs.get(statics.MANIFEST), np.float32)

    @property
    def statics_attrs(self) -> dict:
        """The attributes of the store's statics group (complete flag, manifest, identity, digest)."""
        return self._root.child(statics.GROUP).attrs if self._root.has(statics.GROUP) else {}

    def group_attrs(self, name: str) -> dict | None:
        """The attributes of a group at the store's root (``statics``, ``vocabulary``, ``b2s/REF``), or None."""
        node = self._root
        for part in name.split("/"):
            if not node.has(part):
                return None
            node = node.child(part)
        return dict(node.attrs)

    @cached_property
    def _corpora_node(self) -> _Node | None:
        return self._root.child("corpora") if self._root.has("corpora") else None

    @property
    def all_corpora(self) -> list[str]:
        """Every corpus group, complete or not (``hs info`` shows both)."""
        if self.is_zarr:  # by directory: one corpus with broken metadata must not hide the others
            base = self.path / "corpora"
            return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
        return self._corpora_node.children() if self._corpora_node else []

    @property
    def corpora(self) -> list[str]:
        """Names of the complete corpora."""
        return [n for n in self.all_corpora if self._complete(n)]

    def _complete(self, name: str) -> bool:
        try:
            return bool(self._corpora_node.child(name).attrs.get("complete"))
        except (OSError, ValueError, KeyError, TypeError):
            return False

    def corpus(self, name: str, allow_incomplete: bool = False) -> "Corpus":
        if name in self._opened:
            return self._opened[name]
        if name not in self.all_corpora:
            raise StoreError(f"store {self.path} has no corpus {name!r} (it has: {', '.join(self.all_corpora) or 'none'}); "
                          f"add it with `hs dump --model {self.model['name']} --task {name} --out {self.path}`")
        try:
            corpus = Corpus(self, name, self._corpora_node.child(name))
            corpus.attrs  # noqa: B018 - parse the metadata now
        except (OSError, ValueError, KeyError, TypeError):
            raise StoreError(f"corpus {name!r} of {self.path} has unreadable metadata; "
                             f"run `hs verify {self.path}`") from None
        if not corpus.set_up:
            raise StoreError(f"corpus {name!r} in {self.path} was cut off while being set up; rerun the `hs dump` "
                          f"command that made it (it starts the corpus over)")
        corpus.check_attrs()
        if corpus.complete:  # only finished corpora are immutable, so only they are kept
            self._opened[name] = corpus
        if not corpus.complete and not allow_incomplete:
            raise StoreError(f"corpus {name!r} in {self.path} is incomplete ({corpus.committed_sentences}/"
                          f"{corpus.n_sentences} sentences); rerun the same `hs dump` command to finish it")
        return corpus

    def layer_position(self, layer: int) -> int:
        """Index along the stored layer axis of model layer ``layer`` (negative counts from the last)."""
        if layer < 0:
            layer += self.n_model_layers + 1
        try:
            return self.layers.index(layer)
        except ValueError:
            raise HsError(f"layer {layer} is not in store {self.path} (it holds layers {self.layers}); "
                          f"dump it with `hs dump --layers all`") from None


def _decode(flat: np.ndarray, offsets: np.ndarray, where: str) -> list[str]:
    """Ragged UTF-8 strings, their offsets checked against the bytes."""
    if not len(offsets) or offsets[0] != 0 or offsets[-1] != len(flat) or np.any(np.diff(offsets) < 0):
        raise changed(where, f"offsets that do not run from 0 to its {len(flat)} bytes")
    try:
        return decode_strings(flat, offsets)
    except UnicodeDecodeError:
        raise changed(where, "bytes that are not UTF-8") from None


class _Plan(NamedTuple):
    texts: list[str]
    offsets: np.ndarray
    token_ids: np.ndarray
    token_kinds: np.ndarray
    task_lines: list[str] | None  # a user's task definition (hsstore/tasks/usertask.py), else None


# arrays of a corpus chunked along tokens after one index of their first axis (a layer, an attention layer)
_LAYERED = ("hidden", "attention_diagonal")


class Corpus:
    """One stored corpus: ``texts`` (in stored order, sorted by token count), ``offsets`` into the flat
    token axis, ``all_token_ids`` and ``all_token_kinds``, and the hidden states: ``hidden(i)`` of one
    sentence, ``layer(n)`` or ``layer_rows(n, a, b)`` of every token, ``dask_layer(n)`` lazily.
    ``fingerprint`` names its plan (texts, tokens, batches) in cache keys. Its metadata is checked
    when it is opened (digest, layers), each array's shape and type when it is first read, and the
    plan's arrays against the fingerprint when they are first read."""

    def __init__(self, store: Store, name: str, node: _Node):
        self.store, self.name, self._node = store, name, node
        self.attrs = node.attrs
        self.dir = store.path / "corpora" / name
        self._files: dict[str, dict] = {}
        self._layouts: dict[str, Layout | None] = {}

    def __repr__(self) -> str:
        state = "complete" if self.complete else f"incomplete ({self.committed_sentences} sentences committed)"
        return (f"<hs Corpus {self.name!r} of {self.store.path}: {self.n_sentences} sentences, {self.n_tokens} tokens, "
                f"{state}; texts in stored order (by token count)>")

    def raw(self, *parts: str):
        """A backend array of this corpus by path, e.g. ``raw("text", "offsets")`` or ``raw("hidden")``."""
        return self._node.path(*parts)

    def has(self, name: str) -> bool:
        """Whether the corpus holds an optional array (``position_ids``, ``attention_diagonal``)."""
        return self._node.has(name)

    @property
    def set_up(self) -> bool:
        """False for the remains of a dump killed while it wrote the corpus's plan."""
        return "fingerprint" in self.attrs

    def check_attrs(self) -> None:
        """The corpus's attributes are the ones hs wrote (digest; a format 2 corpus has none) and
        describe this store's layers."""
        where, attrs = f"corpus {self.name!r} of {self.store.path} (zarr.json)", self.attrs
        if (DIGEST in attrs or self.store.format_version >= 3) and not digest_matches(attrs, WATERMARK):
            raise changed(where, "its attributes do not match their digest")
        try:
            sizes_ok = int(attrs["n_sentences"]) >= 1 and int(attrs["n_tokens"]) >= 1 and int(attrs["n_batches"]) >= 1
        except (KeyError, TypeError, ValueError):
            sizes_ok = False
        if not sizes_ok:
            raise changed(where, "its sizes (n_sentences, n_tokens, n_batches) are unreadable")
        if attrs.get("layers", self.store.layers) != self.store.layers:
            raise changed(where, f"layers {attrs.get('layers')} are not the store's {self.store.layers}")

    @property
    def n_sentences(self) -> int:
        return int(self.attrs["n_sentences"])

    @property
    def n_tokens(self) -> int:
        return int(self.attrs["n_tokens"])

    @property
    def complete(self) -> bool:
        return bool(self.attrs.get("complete"))

    @property
    def committed_sentences(self) -> int:
        return int(self.attrs.get("committed_sentences", 0))

    @property
    def fingerprint(self) -> str:
        return self.attrs["fingerprint"]

    def _where(self, array: str, layer: int | None = None) -> str:
        return f"corpus {self.name!r} of {self.store.path}, array {array}" + (
            f" (layer {layer})" if layer is not None else "")

    @property
    def chunk_tokens(self) -> int:
        """Tokens per chunk of ``hidden`` (and of the arrays chunked like it)."""
        return int(self.raw("hidden").chunks[1])

    def layout(self, name: str) -> Layout | None:
        """The chunk layout of array ``name`` (None for an HDF5 export), its shape and data type
        checked against the corpus's attributes and the store's settings, once."""
        if name not in self._layouts:
            array, where = self._node.path(*name.split("/")), self._where(name)
            want = corpus_shapes(self.attrs, self.store.layers, self.store.hidden_size,
                                 self.chunk_tokens if name != "hidden" else 0).get(name)
            dtype = DTYPES[self.store.settings["dtype"]] if name == "hidden" else ARRAY_DTYPES.get(name)
            if want is not None and tuple(array.shape) != want:
                raise changed(where, f"shape {tuple(array.shape)}, expected {want} (from the corpus's sizes)")
            if dtype is not None and np.dtype(array.dtype) != np.dtype(dtype):
                raise changed(where, f"data type {np.dtype(array.dtype)}, expected {np.dtype(dtype)}")
            self._layouts[name] = Layout.of(array, where, 1 if name in _LAYERED else 0) if self.store.is_zarr else None
        return self._layouts[name]

    def small(self, *parts: str) -> np.ndarray:
        """A 1-D array of the corpus (offsets, token_ids, ...), every chunk checked present, verified
        and compared with the manifest."""
        name = "/".join(parts)
        self.layout(name)
        crcs = None
        if self.store.has_manifest:
            crcs = (self.attrs.get("manifest") or {}).get(name)
            if crcs is None:
                raise changed(self._where(name), "the corpus's manifest has no entry for it")
        return self.store.read_array(self._node.path(*parts), parts, self.dir, self._where(name), crcs,
                                     ARRAY_DTYPES[name])

    def manifest_table(self, name: str) -> np.ndarray | None:
        """The CRC-32C of each chunk of a token-chunked array (``name``: hidden, attention_diagonal),
        row = token chunk, column = layer, from ``NAME_crc32c``; None where the store records none."""
        key = f"table/{name}"
        if key not in self._files:
            table = None
            if self.store.is_zarr and self.store.has_manifest and self.has(f"{name}_crc32c"):
                layout = self.layout(f"{name}_crc32c")
                directory = self.dir / f"{name}_crc32c"
                rows = layout.shape[0] if self.complete else min(layout.shape[0], int(self.attrs.get("hidden_chunks", 0)))
                blocks = math.ceil(rows / layout.rows)
                check_present(list_files(directory), [layout.key((), b) for b in range(blocks)], layout.nbytes,
                              layout.where)
                table = read_rows(directory, layout, (), 0, rows)  # an unfinished corpus: its committed rows
            elif self.store.is_zarr and self.store.has_manifest and (name == "hidden" or self.store.format_version >= 3):
                raise changed(self._where(f"{name}_crc32c"), f"the manifest of {name} is missing")
            self._files[key] = table
        return self._files[key]

    def read(self, name: str, position: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Tokens ``[start, stop)`` of one layer ``position`` of a token-chunked array (hidden,
        attention_diagonal), in the stored dtype, each chunk checked and compared with the manifest."""
        stop = self.n_tokens if stop is None else stop
        layer = self.store.layers[position] if name == "hidden" else position + 1
        where = self._where(name, layer)
        layout = self.layout(name)
        if layout is None:  # an HDF5 export
            return checked_read(self._node.array(name), (position, slice(start, stop)), where)
        self.chunk_files(name, position)  # a missing chunk anywhere in the layer is an error, not zeros
        table = self.manifest_table(name)
        at = Layout(layout.shape, layout.chunks, layout.dtype, where, layout.axis)
        return read_rows(self.dir / name, at, (position,), start, stop,
                         None if table is None else (lambda col: table[col, position]))

    def chunk_files(self, name: str, position: int) -> dict[str, tuple[int, int]]:
        """``{key: (size, mtime_ns)}`` of one layer's chunk files of a token-chunked array, all checked
        present at full size (listed once per corpus and layer)."""
        key = f"{name}/{position}"
        if key not in self._files:
            layout = self.layout(name)
            files = list_files(self.dir / name, f"c/{position}")
            where = self._where(name, self.store.layers[position] if name == "hidden" else position + 1)
            check_present(files, expected_keys(layout.shape, layout.chunks, first=position), layout.nbytes, where)
            self._files[key] = files
        return self._files[key]

    def hidden_files(self, position: int) -> dict[str, tuple[int, int]]:
        """``{key: (size, mtime_ns)}`` of one stored layer's chunk files, all checked present at full
        size (listed once per corpus and layer)."""
        return self.chunk_files("hidden", position)

    @cached_property
    def _plan(self) -> _Plan:
        """The plan's arrays, read once, checked against each other and the fingerprint."""
        where = self._where("offsets")
        texts = _decode(self.small("text", "bytes"), self.small("text", "offsets"), self._where("text"))
        offsets = np.asarray(self.small("offsets"), dtype=np.int64)
        if offsets[0] != 0 or offsets[-1] != self.n_tokens or np.any(np.diff(offsets) <= 0):
            raise changed(where, f"offsets that do not rise from 0 to its {self.n_tokens} tokens")
        ids, kinds = self.small("token_ids"), self.small("token_kind")
        ends = self.small("batch_ends")
        if ends[-1] != self.n_sentences or np.any(np.diff(ends) <= 0) or ends[0] <= 0:
            raise changed(self._where("batch_ends"), "batch ends that do not rise to its last sentence")
        source = self.attrs.get("source") or {}
        if "sentence_lengths" in source:  # template-only rows (docs/prompts.md): their lengths name their texts
            lengths, template = source["sentence_lengths"], (source.get("template") or {}).get("text")
            if not (isinstance(lengths, list) and isinstance(template, str) and len(lengths) == len(texts) and all(
                    isinstance(k, int) and t == empty_label(template, k) for k, t in zip(lengths, texts))):
                raise changed(self._where("text"), "its template-only rows' sentence lengths are not the ones their "
                                                   "texts name")
        positions = self.small("position_ids") if self.has("position_ids") else None
        attention = ((len(self.attrs["attention_layers"]), int(self.attrs["attention_heads"]))
                     if "attention_layers" in self.attrs else None)
        task = _decode(self.small("task", "bytes"), self.small("task", "offsets"), self._where("task")) \
            if self.has("task") else None
        if plan_fingerprint(self.store.identity, texts, offsets, ids, kinds, ends, positions, attention, task) != \
                self.fingerprint:
            raise StoreError(f"corpus {self.name!r} of {self.store.path}: its texts, token ids, kinds, offsets or "
                             f"batches are not the ones it was dumped with (its fingerprint does not match); run "
                             f"`hs verify` on the store, then rerun the `hs dump` command that made it (it rewrites "
                             f"them)")
        return _Plan(texts, offsets, np.asarray(ids, dtype=np.int32), np.asarray(kinds, dtype=np.uint8), task)

    @property
    def texts(self) -> list[str]:
        return self._plan.texts

    def task_lines(self) -> list[str] | None:
        """The task definition stored with the corpus of a user's task (JSON lines,
        hsstore/tasks/usertask.py), every chunk checked (and against the fingerprint); None for other
        corpora."""
        return self._plan.task_lines

    @property
    def offsets(self) -> np.ndarray:
        return self._plan.offsets

    @property
    def all_token_ids(self) -> np.ndarray:
        return self._plan.token_ids

    @property
    def all_token_kinds(self) -> np.ndarray:
        return self._plan.token_kinds

    @cached_property
    def source_positions(self) -> np.ndarray | None:
        """Each stored sentence's first position in the texts it was dumped from (int64), or None for
        a corpus dumped before hs recorded it."""
        return np.asarray(self.small("source_position"), dtype=np.int64) if self.has("source_position") else None

    @cached_property
    def sentence_ids(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.texts)}

    def ids_of(self, texts: Iterable[str]) -> np.ndarray:
        """Sentence ids of the given texts; a text not in the corpus is an error."""
        index = self.sentence_ids
        try:
            return np.fromiter((index[t] for t in texts), dtype=np.int64)
        except KeyError as exc:
            raise HsError(f"corpus {self.name!r} lacks the text {str(exc)[:80]}; it was dumped from other "
                          f"data: dump it again into a new store") from None

    def _span(self, i: int) -> slice:
        if not 0 <= i < self.n_sentences:
            raise HsError(f"sentence index {i} is out of range for corpus {self.name!r} (0..{self.n_sentences - 1})")
        return slice(int(self.offsets[i]), int(self.offsets[i + 1]))

    def token_ids(self, i: int) -> np.ndarray:
        return self.all_token_ids[self._span(i)]

    def tokens(self, i: int) -> list[str]:
        vocab = self.store.vocab
        return [vocab[t] for t in self.token_ids(i)]

    def token_kinds(self, i: int) -> list[str]:
        return [KIND_NAMES.get(int(k), "?") for k in self.all_token_kinds[self._span(i)]]

    def signature(self, layer: int | None) -> str:
        """A hash of what one layer's pooled matrix is computed from: that layer's chunk files (name,
        size, modification time, and the CRC-32C each carries, checked against the manifest, so a chunk
        from elsewhere copied in with its old time is seen), the corpus's other arrays and metadata, and
        the store's root and vocabulary; with ``None``, the token arrays and metadata only (what static
        views read). Caches outside the store keep it beside what they computed."""
        h = hashlib.sha256(self.fingerprint.encode())
        if not self.store.is_zarr:  # an HDF5 export: the file itself
            st = self.store.path.stat()
            return hashlib.sha256(f"{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:20]
        if layer is not None:
            position = self.store.layer_position(layer)
            files = self.hidden_files(position)
            table = self.manifest_table("hidden")
            local = not storage.is_remote(self.dir)
            for key, (size, mtime) in sorted(files.items()):
                crc = trailer(self.dir / "hidden" / key) if local else None
                col = int(key.split("/")[2])
                if local and table is not None and col < len(table) and crc != table[col, position]:
                    raise StoreError(f"{self._where('hidden', layer)}: chunk {key} is not the chunk hs wrote there "
                                     f"(its CRC-32C is not the manifest's); {REPAIR_HINT}")
                h.update(f"{key}:{size}:{mtime}:{crc}\n".encode())
        for part in ("offsets", "token_ids", "token_kind", "text/bytes", "text/offsets"):
            for key, (size, mtime) in sorted(list_files(self.dir / part).items()):
                h.update(f"{part}/{key}:{size}:{mtime}\n".encode())
        for meta in (self.dir / "zarr.json", self.dir / "hidden" / "zarr.json", self.store.path / "zarr.json"):
            st = meta.stat()
            h.update(f"{meta}:{st.st_size}:{st.st_mtime_ns}\n".encode())
        for part in ("bytes", "offsets"):
            for key, (size, mtime) in sorted(list_files(self.store.path / "vocab" / part).items()):
                h.update(f"vocab/{part}/{key}:{size}:{mtime}\n".encode())
        return h.hexdigest()[:20]

    def _positions(self, layers: Sequence[int] | None) -> list[int]:
        if layers is None:
            return list(range(len(self.store.layers)))
        return [self.store.layer_position(int(layer)) for layer in layers]

    def _read_hidden(self, position: int, span: slice = slice(None)) -> np.ndarray:
        start, stop, _ = span.indices(self.n_tokens)
        return self.read("hidden", position, start, stop)

    def hidden(self, i: int, layers: Sequence[int] | None = None) -> np.ndarray:
        """Hidden states of sentence ``i``: float32 array (n_layers, n_tokens, hidden)."""
        span = self._span(i)
        return np.stack([self._read_hidden(p, span).astype(np.float32) for p in self._positions(layers)])

    def layer(self, layer: int, dtype=None) -> np.ndarray:
        """One layer for every token of the corpus, (n_tokens, hidden), in the stored dtype by default."""
        out = self._read_hidden(self.store.layer_position(layer))
        return out if dtype is None else out.astype(dtype, copy=False)

    def layer_rows(self, layer: int, start: int, stop: int) -> np.ndarray:
        """Tokens start..stop of one layer (stop - start, hidden), stored dtype: to stream a corpus."""
        return self._read_hidden(self.store.layer_position(layer), slice(start, stop))

    def dask_layer(self, layer: int):
        """One layer as a lazy dask array (n_tokens, hidden), chunked like the store, read with the
        same checks as ``layer`` (needs ``pip install 'hs[dask]'``)."""
        return layer_array(self, layer)

    @property
    def stored_dtype(self) -> np.dtype:
        return np.dtype(self._node.array("hidden").dtype)

    def nbytes_on_disk(self) -> int | None:
        """Bytes the corpus takes on disk (Zarr directories only)."""
        path = self.store.path / "corpora" / self.name
        if storage.is_remote(path):
            return storage.total_bytes(path)
        if not path.is_dir():
            return None
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
