"""Corpora held in memory, behind the reader's interface: what the embedding steps read of a store
(model, settings, vocabulary, layers; a corpus's texts, token ids and kinds, offsets, per-layer
states) without a store on disk.

A fitted recipe (analysis/fitted) encodes new texts through the same Pooler, views, token weights
and post-processing as ``hs eval``: the encoder (encoder/) runs the model the way ``hs dump`` does
and puts the texts it encoded here as a ``MemoryCorpus``. The corpora a recipe takes statistics
from are ``ReferenceCounts``: their name, fingerprint and token counts, saved when it was fitted
(never their tokens, which are not kept).
"""
from __future__ import annotations

import hashlib
from functools import cached_property

import numpy as np

from hsstore.errors import HsError
from hsstore.store import Corpus, Store

from .tokens import Stats, stats_stream


class MemoryStore:
    """The part of ``hsstore.Store`` the embedding steps read, over a fitted recipe's context: the
    model identity and settings of the store it was fitted on, its vocabulary, and its corpora by name
    (saved references, and the texts being encoded)."""

    is_zarr = False
    layer_position = Store.layer_position  # the reader's own check, over this store's layers
    # the reader's own properties, read from this store's model and settings
    layers, n_model_layers, hidden_size = Store.layers, Store.n_model_layers, Store.hidden_size

    def __init__(self, model: dict, settings: dict, vocab: list[str], identity: str, path: str,
                 input_embeddings: np.ndarray | None = None):
        self.model, self.settings, self.vocab, self.identity = model, settings, vocab, identity
        self.path = path  # where the recipe came from, for error messages
        self._input = input_embeddings
        self._corpora: dict[str, object] = {}

    @property
    def corpora(self) -> list[str]:
        return list(self._corpora)

    def corpus(self, name: str):
        if name not in self._corpora:
            raise HsError(f"the recipe fitted from {self.path} has no corpus {name!r} (it has: "
                          f"{', '.join(self._corpora) or 'none'})")
        return self._corpora[name]

    def add(self, corpus) -> None:
        self._corpora[corpus.name] = corpus

    def with_corpora(self, corpora: list) -> "MemoryStore":
        """This store's context and references plus ``corpora`` (texts being encoded), as a new store."""
        out = MemoryStore(self.model, self.settings, self.vocab, self.identity, self.path, self._input)
        out._corpora = dict(self._corpora)
        for corpus in corpora:
            corpus.store = out
            out.add(corpus)
        return out

    def input_embeddings(self) -> np.ndarray:
        if self._input is None:
            raise HsError(f"the recipe fitted from {self.path} kept no input-embedding matrix")
        return self._input


class MemoryCorpus:
    """Texts encoded in memory, in the reader's shape: ``texts``, ``offsets``, ``all_token_ids``,
    ``all_token_kinds`` and the states of some layers, ``states`` (K, T, H) for ``layers``; optional
    per-token arrays (``attention_diagonal``) in ``arrays``. Its ``fingerprint`` names its content."""

    complete = True
    ids_of = Corpus.ids_of  # the reader's own lookups, over these texts
    sentence_ids = Corpus.sentence_ids

    def __init__(self, name: str, texts: list[str], offsets: np.ndarray, token_ids: np.ndarray,
                 token_kinds: np.ndarray, layers: list[int], states: np.ndarray | None, attrs: dict | None = None,
                 arrays: dict[str, np.ndarray] | None = None):
        self.name, self.texts, self.store = name, texts, None
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.all_token_ids = np.asarray(token_ids, dtype=np.int32)
        self.all_token_kinds = np.asarray(token_kinds, dtype=np.uint8)
        self.layers, self.states = list(layers), states
        self.attrs = attrs or {}
        self.arrays = arrays or {}
        if states is not None and states.shape[:2] != (len(self.layers), len(self.all_token_ids)):
            raise ValueError(f"states {states.shape} do not match {len(self.layers)} layers of {len(token_ids)} tokens")

    @cached_property
    def fingerprint(self) -> str:
        h = hashlib.sha256(self.name.encode() + b"\0")
        for arr in (self.offsets, self.all_token_ids, self.all_token_kinds):
            h.update(arr.tobytes())
        h.update("\n".join(self.texts).encode("utf-8"))
        return "mem-" + h.hexdigest()[:28]

    @property
    def n_sentences(self) -> int:
        return len(self.texts)

    @property
    def n_tokens(self) -> int:
        return int(self.offsets[-1])

    def has(self, name: str) -> bool:
        return name in self.arrays

    def raw(self, name: str) -> np.ndarray:
        return self.arrays[name]

    def read(self, name: str, position: int) -> np.ndarray:
        """Row ``position`` of a per-token array (the stored corpus's checked read, here in memory)."""
        return self.arrays[name][position]

    def _position(self, layer: int) -> int:
        if self.states is None or layer not in self.layers:
            raise HsError(f"{self.name!r}: layer {layer} was not computed for these texts (layers {self.layers})")
        return self.layers.index(layer)

    def layer(self, layer: int, dtype=None) -> np.ndarray:
        out = self.states[self._position(layer)]
        return out if dtype is None else out.astype(dtype, copy=False)

    def layer_rows(self, layer: int, start: int, stop: int) -> np.ndarray:
        return self.states[self._position(layer), start:stop]


class ReferenceCounts:
    """A corpus a fitted recipe took statistics from: its name, fingerprint and source, and its token
    counts (document and term frequencies, which ids were special) in place of its tokens."""

    complete = True

    def __init__(self, store: MemoryStore, name: str, fingerprint: str, n_sentences: int, attrs: dict,
                 stats: Stats):
        self.store, self.name, self.fingerprint, self.attrs = store, name, fingerprint, attrs
        self._n = n_sentences
        stats_stream(self, stats)  # what a view's stream of this corpus is: its counts

    @property
    def n_sentences(self) -> int:
        return self._n

    def _gone(self, what: str):
        raise HsError(f"the recipe fitted from {self.store.path} keeps the token counts of {self.name!r}, not "
                      f"its {what}; this step needs the store itself (hs eval)")

    @property
    def texts(self):
        self._gone("texts")

    @property
    def all_token_ids(self):
        self._gone("tokens")

    @property
    def all_token_kinds(self):
        self._gone("tokens")

    def layer_rows(self, layer: int, start: int, stop: int):
        self._gone("states")

    def layer(self, layer: int, dtype=None):
        self._gone("states")
