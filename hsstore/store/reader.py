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
from functools import cached_property
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from hsstore.errors import HsError, StoreError
from hsstore.format import storage
from hsstore.format.chunks import check_present, chunk_nbytes, expected_keys, list_files
from hsstore.format.layout import FORMAT_NAME, KIND_NAMES, READ_VERSIONS, decode_strings

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
    """``array[selection]`` as numpy, with a checksum failure or unreadable file as a one-line error."""
    try:
        return np.asarray(array[selection])
    except (ValueError, OSError) as exc:
        if "checksum" in str(exc).lower():
            raise StoreError(f"{where} has a corrupt chunk (checksum mismatch): its bytes on disk changed after "
                             f"it was written; run `hs verify --deep` on the store, and dump the corpus again "
                             f"into a new store") from None
        raise StoreError(f"{where} cannot be read ({exc}); run `hs verify` on the store") from None


def open(path: str | Path) -> "Store":  # noqa: A001 - mirrors zarr.open and h5py.File
    """Open a store read-only: ``hsstore.open("runs/minilm").corpus("stsb").hidden(0)``; ``path`` may
    be an fsspec URL such as ``s3://bucket/prefix`` (storage.py)."""
    return Store(storage.location(path))


class Store:
    """A store, opened read-only: ``hsstore.open(path)`` (a directory, an ``s3://`` URL or an HDF5
    export). ``store.corpus(name)`` gives a complete corpus; ``store.model``, ``store.settings`` and
    ``store.layers`` say what was dumped; ``store.identity`` names the states (model, weights,
    tokenizer, precision, layers) in every cache key and results record."""

    def __init__(self, path: Path):
        self.path = path = storage.location(path)
        if not path.exists():
            raise StoreError(f"no store at {path}; create one with `hs dump --out {path}`")
        self._root = _open_root(path)
        attrs = self._root.attrs
        if attrs.get("format") != FORMAT_NAME:
            raise HsError(f"{path} is a Zarr/HDF5 file but not an hs store (format={attrs.get('format')!r})")
        if attrs.get("format_version", 0) > max(READ_VERSIONS):
            raise HsError(f"{path} uses store format {attrs['format_version']}, newer than this hs "
                          f"understands ({max(READ_VERSIONS)}); upgrade hs")
        self.attrs = attrs
        self._opened: dict[str, Corpus] = {}

    def __repr__(self) -> str:
        s = self.settings
        return (f"<hs Store {self.path}: {self.model['name']}, layers {_layer_text(self.layers)} in {s['dtype']}, "
                f"hidden {self.hidden_size}; corpora {', '.join(self.corpora) or 'none complete'}>")

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
        """Whether the store records each chunk's CRC-32C (format 2; format 1 stores do not)."""
        return "manifest" in self.attrs

    @property
    def is_zarr(self) -> bool:
        return self._root._backend == "zarr"

    def read_checked(self, array, rel: tuple[str, ...], group_dir: Path, where: str) -> np.ndarray:
        """A whole small array of the store (``rel``: its path under ``group_dir``), every chunk
        checked present and its checksum verified."""
        if self.is_zarr:
            files = list_files(group_dir.joinpath(*rel))
            check_present(files, expected_keys(array.shape, array.chunks), chunk_nbytes(array.chunks, array.dtype),
                          where)
        return checked_read(array, slice(None), where)

    @cached_property
    def vocab(self) -> list[str]:
        parts = [self.read_checked(self.raw("vocab", p), ("vocab", p), self.path,
                                    f"store {self.path}, array vocab/{p}") for p in ("bytes", "offsets")]
        return decode_strings(*parts)

    def input_embeddings(self) -> np.ndarray:
        """The model's input word-embedding matrix (vocab x hidden, float32), if ``hs dump`` stored it;
        a store without it is a one-line error."""
        root = self._root
        if not (root.has(statics.GROUP) and root.child(statics.GROUP).attrs.get(statics.COMPLETE)):
            raise HsError(f"store {self.path} has no input-embedding matrix (made before hs stored it); add it by "
                          f"rerunning its hs dump command, e.g. hs dump --model {self.model['name']} --out {self.path} "
                          f"--task <a task it holds>")
        array = root.child(statics.GROUP).array(statics.INPUT)
        return np.asarray(self.read_checked(array, (statics.GROUP, statics.INPUT), self.path,
                                            f"store {self.path}, array {statics.GROUP}/{statics.INPUT}"), dtype=np.float32)

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


class Corpus:
    """One stored corpus: ``texts`` (in stored order, sorted by token count), ``offsets`` into the flat
    token axis, ``all_token_ids`` and ``all_token_kinds``, and the hidden states: ``hidden(i)`` of one
    sentence, ``layer(n)`` or ``layer_rows(n, a, b)`` of every token, ``dask_layer(n)`` lazily.
    ``fingerprint`` names its plan (texts, tokens, batches) in cache keys."""

    def __init__(self, store: Store, name: str, node: _Node):
        self.store, self.name, self._node = store, name, node
        self.attrs = node.attrs
        self.dir = store.path / "corpora" / name
        self._files: dict[str, dict] = {}

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

    def small(self, *parts: str) -> np.ndarray:
        """A 1-D array of the corpus (offsets, token_ids, ...), every chunk checked present and verified."""
        return self.store.read_checked(self._node.path(*parts), parts, self.dir, self._where("/".join(parts)))

    @cached_property
    def texts(self) -> list[str]:
        return decode_strings(self.small("text", "bytes"), self.small("text", "offsets"))

    def task_lines(self) -> list[str] | None:
        """The task definition stored with the corpus of a user's task (JSON lines,
        hsstore/tasks/usertask.py), every chunk checked; None for other corpora."""
        if not self.has("task"):
            return None
        return decode_strings(self.small("task", "bytes"), self.small("task", "offsets"))

    @cached_property
    def offsets(self) -> np.ndarray:
        return np.asarray(self.small("offsets"), dtype=np.int64)

    @cached_property
    def all_token_ids(self) -> np.ndarray:
        return np.asarray(self.small("token_ids"), dtype=np.int32)

    @cached_property
    def all_token_kinds(self) -> np.ndarray:
        return np.asarray(self.small("token_kind"), dtype=np.uint8)

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
        return [KIND_NAMES[k] for k in self.all_token_kinds[self._span(i)]]

    def hidden_files(self, position: int) -> dict[str, tuple[int, int]]:
        """``{key: (size, mtime_ns)}`` of one stored layer's chunk files, all checked present at full
        size (listed once per corpus and layer)."""
        key = f"hidden/{position}"
        if key not in self._files:
            array = self._node.array("hidden")
            files = list_files(self.dir / "hidden", f"c/{position}")
            check_present(files, expected_keys(array.shape, array.chunks, first=position),
                          chunk_nbytes(array.chunks, array.dtype), self._where("hidden", self.store.layers[position]))
            self._files[key] = files
        return self._files[key]

    def signature(self, layer: int | None) -> str:
        """A hash of the names, sizes and modification times of the files one layer's pooled matrix
        is computed from (that layer's chunks, the corpus's other arrays and metadata; with ``None``,
        the token arrays and metadata only, what static views read): any rewrite of them changes
        it. Caches outside the store keep it beside what they computed."""
        h = hashlib.sha256()
        if not self.store.is_zarr:  # an HDF5 export: the file itself
            st = self.store.path.stat()
            return hashlib.sha256(f"{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:20]
        if layer is not None:
            for key, (size, mtime) in sorted(self.hidden_files(self.store.layer_position(layer)).items()):
                h.update(f"{key}:{size}:{mtime}\n".encode())
        for part in ("offsets", "token_ids", "token_kind", "text/bytes", "text/offsets"):
            for key, (size, mtime) in sorted(list_files(self.dir / part).items()):
                h.update(f"{part}/{key}:{size}:{mtime}\n".encode())
        meta = (self.dir / "zarr.json").stat()
        h.update(f"zarr.json:{meta.st_size}:{meta.st_mtime_ns}".encode())
        return h.hexdigest()[:20]

    def _positions(self, layers: Sequence[int] | None) -> list[int]:
        if layers is None:
            return list(range(len(self.store.layers)))
        return [self.store.layer_position(int(layer)) for layer in layers]

    def _read_hidden(self, position: int, span: slice = slice(None)) -> np.ndarray:
        if self.store.is_zarr:
            self.hidden_files(position)  # a missing chunk is an error, not zeros
        return checked_read(self._node.array("hidden"), (position, span),
                            self._where("hidden", self.store.layers[position]))

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
