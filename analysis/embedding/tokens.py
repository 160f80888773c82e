"""Per-token weights: which tokens a recipe keeps (drop steps) and how much each counts (weights steps).

A weight of 0 drops a token. Statistics (document frequency, term frequency, the most frequent
tokens) come from a reference corpus of the store: the task's own sentences or any other corpus,
usually ``wikitext2``. They are read from a token stream: the store's token ids, or for a
word-level view (GloVe) its word ids; never from hidden states.
"""
from __future__ import annotations

import hashlib
import unicodedata
import weakref
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from hsstore.errors import HsError
from hsstore.format.layout import KIND_SPECIAL
from hsstore.store import vocabulary

from ..recipes.recipe import Recipe
from ..recipes.steps import Param, StepType, register


@dataclass
class Stream:
    """The tokens of a corpus as a view sees them: ids into ``vocab``, per-sentence ``offsets``."""
    key: str  # names the stream in caches: the corpus fingerprint plus the tokenisation
    ids: np.ndarray  # (T,) int32
    offsets: np.ndarray  # (S+1,) int64
    vocab: tuple[str, ...]
    level: str = "subword"  # or "word"
    special: np.ndarray | None = None  # (T,) bool, the model's special tokens
    known: np.ndarray | None = None  # (T,) bool, False where a word is out of the view's vocabulary
    kinds: np.ndarray | None = None  # (T,) uint8 stored token kinds (hsstore.format), subword streams only
    corpus: object = None  # the hsstore Corpus it comes from (for steps that read more of it)
    stats: "Stats | None" = None  # a fitted reference's saved counts, which stand in for its tokens (fitted/)

    @property
    def n_sentences(self) -> int:
        return len(self.offsets) - 1


_STREAMS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # corpus -> its stored-token stream


def store_stream(corpus) -> Stream:
    """A corpus's stored token ids (made once per corpus object)."""
    if corpus not in _STREAMS:
        kinds = corpus.all_token_kinds
        _STREAMS[corpus] = Stream(corpus.fingerprint, corpus.all_token_ids, corpus.offsets, tuple(corpus.store.vocab),
                                  special=kinds == KIND_SPECIAL, kinds=kinds, corpus=corpus)
    return _STREAMS[corpus]


def stats_stream(corpus, stats: "Stats") -> Stream:
    """The stream of a reference known by its counts alone (a fitted recipe's, analysis/fitted): no
    tokens, and ``corpus_stats`` gives the saved counts. Kept for ``corpus`` like a stored stream."""
    _STREAMS[corpus] = Stream(corpus.fingerprint, np.zeros(0, dtype=np.int32), np.zeros(1, dtype=np.int64),
                              tuple(corpus.store.vocab), stats=stats, corpus=corpus)
    return _STREAMS[corpus]


def _is_punct(token: str) -> bool:
    token = token[2:] if token.startswith("##") else token.lstrip("\u2581\u0120")
    return bool(token) and all(unicodedata.category(c)[0] in "PS" for c in token)


@lru_cache(maxsize=8)
def _vocab_masks(vocab: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(punctuation, subword-continuation) flags per vocabulary id."""
    punct = np.fromiter((_is_punct(t) for t in vocab), dtype=bool, count=len(vocab))
    if _marks_continuations(vocab):  # WordPiece marks continuations
        sub = np.fromiter((t.startswith("##") for t in vocab), dtype=bool, count=len(vocab))
    else:  # SentencePiece / byte-level BPE mark word starts instead; a bare "." continues no word
        sub = np.fromiter((not t.startswith(WORD_START) for t in vocab), dtype=bool, count=len(vocab)) & ~punct
    return punct, sub


WORD_START = ("\u2581", "\u0120")  # SentencePiece's and byte-level BPE's mark of a piece after a space


def _marks_continuations(vocab: tuple[str, ...]) -> bool:
    """Whether the vocabulary marks continuations (WordPiece's ``##``) rather than word starts. A
    byte-level BPE vocabulary holds a few ``##`` tokens of its own (Markdown headings, C's token
    pasting) and thousands of word starts, so the more common mark decides, not the presence of one."""
    continuing = sum(t.startswith("##") for t in vocab)
    return continuing > sum(t.startswith(WORD_START) for t in vocab)


@dataclass
class Stats:
    df: np.ndarray  # documents (sentences) holding each id
    tf: np.ndarray  # occurrences of each id
    n: int  # sentences
    special: np.ndarray  # ids seen as special tokens


_STATS: dict[str, Stats] = {}


def corpus_stats(stream: Stream) -> Stats:
    """Document and term frequency per vocabulary id of a stream.

    Special tokens are counted like any other, so [CLS] and [SEP], present in every sentence, get
    an idf of 0 and a small SIF weight. Out-of-vocabulary words are not counted.
    """
    if stream.stats is not None:
        return stream.stats
    if stream.key not in _STATS:
        size = len(stream.vocab)
        ids = stream.ids.astype(np.int64)
        sent = np.repeat(np.arange(stream.n_sentences), np.diff(stream.offsets))
        if stream.known is not None:
            ids, sent = ids[stream.known], sent[stream.known]
        tf = np.bincount(ids, minlength=size)
        pairs = np.unique(sent * size + ids)  # each (sentence, token) once
        df = np.bincount(pairs % size, minlength=size)
        special = np.zeros(size, dtype=bool)
        if stream.special is not None:
            special[stream.ids[stream.special]] = True
        _STATS[stream.key] = Stats(df, tf, stream.n_sentences, special)
    return _STATS[stream.key]


def most_frequent(ref: Stream, n: int) -> np.ndarray:
    """The ``n`` most frequent non-special ids of ``ref`` (ties broken by id)."""
    s = corpus_stats(ref)
    return np.argsort(-np.where(s.special, -1, s.tf), kind="stable")[:n]


# ---- weights steps -------------------------------------------------------------------------------

class Weights(StepType):
    AXIS = "weights"
    BY_ID = True  # a function of the token id alone (a table per vocabulary id holds it: static exports)

    def vocab_weights(self, stats: Stats) -> np.ndarray:
        """A weight per vocabulary id from REF's statistics (most weights are one of these)."""
        raise NotImplementedError

    def token_weights(self, stream: Stream, refs: dict) -> np.ndarray:
        """A weight per token of ``stream``; override for weights that are not a function of the id."""
        return self.vocab_weights(corpus_stats(refs[self.ref or "task"]))[stream.ids]


@register
class NoWeights(Weights):
    NAME = "none"
    DESCRIPTION = "every kept token counts once"

    def vocab_weights(self, stats: Stats) -> np.ndarray:
        return np.ones(len(stats.tf), dtype=np.float32)


@register
class Idf(Weights):
    NAME, REF = "idf", "task"
    DESCRIPTION = "idf = log((M+1)/(df+1)) over the M sentences of REF (BERTScore)"

    def vocab_weights(self, stats: Stats) -> np.ndarray:
        return np.log((stats.n + 1.0) / (stats.df + 1.0)).astype(np.float32)


@register
class Sif(Weights):
    NAME, REF = "sif", "task"
    PARAMS = (Param("a", float, 0.001, low=0.0, help="smoothing"),)
    DESCRIPTION = "SIF weight a/(a+p(t)), p from the token counts of REF (Arora et al. 2017)"

    def __init__(self, a: float = 0.001):
        self.a = a

    def vocab_weights(self, stats: Stats) -> np.ndarray:
        p = stats.tf / max(1, stats.tf.sum())
        return (self.a / (self.a + p)).astype(np.float32)


@register
class Zipf(Weights):
    NAME, LEVELS = "zipf", ("subword",)
    PARAMS = (Param("a", float, 1e-4, low=0.0, help="smoothing"),)
    DESCRIPTION = ("SIF weight a/(a+p(t)) with p from Zipf's law of the token's vocabulary rank "
                   "(Model2Vec; ranks count the ids Model2Vec keeps)")

    def __init__(self, a: float = 1e-4):
        self.a = a

    def token_weights(self, stream: Stream, refs: dict) -> np.ndarray:
        return zipf_weights(stream.corpus.store, self.a)[stream.ids]


def zipf_weights(store, a: float) -> np.ndarray:
    """Per vocabulary id, a/(a + p) with p(rank) = (1/(rank + 2)) / sum of 1/(r + 2) over the kept ids'
    ranks r = 0..n-1 (Model2Vec's compute_weights); an id it leaves out takes the rank it would hold."""
    kept = vocabulary.table_vocabulary(store)
    rank = np.cumsum(kept) - kept  # kept ids before each id
    inv = 1.0 / (np.arange(int(kept.sum())) + 2.0)
    p = (1.0 / (rank + 2.0)) / inv.sum()
    return (a / (a + p)).astype(np.float32)


# ---- drop steps ----------------------------------------------------------------------------------

@register
class DropSpecial(StepType):
    AXIS, NAME, LEVELS = "drop", "special", ("subword",)
    BY_ID = False  # the tokens the tokenizer adds around a text, not ids (a "[SEP]" typed in a text stays)
    DESCRIPTION = "the model's special tokens ([CLS], [SEP], ...)"

    def dropped(self, stream: Stream, refs: dict) -> np.ndarray:
        return stream.special


@register
class DropPunct(StepType):
    AXIS, NAME, BY_ID = "drop", "punct", True
    DESCRIPTION = "tokens made only of punctuation and symbols"

    def dropped(self, stream: Stream, refs: dict) -> np.ndarray:
        return _vocab_masks(stream.vocab)[0][stream.ids]


@register
class DropSubword(StepType):
    # not by id alone: on a word-start vocabulary a text's first piece stays whatever its id (static
    # exports, which fold drops into a table per id, refuse it)
    AXIS, NAME, LEVELS, BY_ID = "drop", "subword", ("subword",), False
    DESCRIPTION = ("word pieces that continue a word (## in WordPiece; in byte-level BPE or SentencePiece, a piece "
                   "without the word-start mark that follows a piece of its own text)")

    def dropped(self, stream: Stream, refs: dict) -> np.ndarray:
        out = _vocab_masks(stream.vocab)[1][stream.ids]
        if not _marks_continuations(stream.vocab) and stream.kinds is not None:
            # a word-start vocabulary leaves unmarked what follows no space: a special token, and the
            # first token of a text or of a template's part (at the sentence's start, after a
            # special token, after a template's quote); none of them continues a word
            kinds = stream.kinds
            same = np.zeros(len(kinds), dtype=bool)  # the token before is of the same kind, same sentence
            same[1:] = kinds[1:] == kinds[:-1]
            starts = stream.offsets[:-1]
            same[starts[starts < len(kinds)]] = False
            out = out & same & (kinds != KIND_SPECIAL)
        return out


@register
class DropUnknown(StepType):
    AXIS, NAME, LEVELS = "drop", "unk", ("subword",)
    DESCRIPTION = "the tokenizer's unknown token ([UNK]), as Model2Vec leaves it out"

    def dropped(self, stream: Stream, refs: dict) -> np.ndarray:
        unk = vocabulary.special_tokens(stream.corpus.store)["roles"].get("unk")
        return stream.ids == unk if unk is not None else np.zeros(len(stream.ids), dtype=bool)


@register
class DropFrequent(StepType):
    AXIS, NAME, REF, BY_ID = "drop", "freq", "wikitext2", True
    PARAMS = (Param("n", int, 36, low=1, help="how many"),)
    DESCRIPTION = "the n most frequent non-special tokens of REF (`freq<N>` is short for `freq:n=N`)"

    def __init__(self, n: int = 36):
        self.n = n

    def dropped(self, stream: Stream, refs: dict) -> np.ndarray:
        return np.isin(stream.ids, most_frequent(refs[self.ref], self.n))


def check_level(recipe: Recipe, level: str, view: str) -> None:
    """Refuse drop/weights steps that have no meaning at the view's token level."""
    for step in (*recipe.drop, recipe.weights):
        if level not in step.cls.LEVELS:
            raise HsError(f"{step.name} has no meaning for view {view!r}, whose tokens are {level}s; "
                          f"leave it out of recipes on that view")


def token_weights(recipe: Recipe, stream: Stream, refs: dict[str, Stream]) -> tuple[np.ndarray, str]:
    """Weights for every token of ``stream`` and a key naming them (for caches).

    ``refs`` maps reference names (``task`` and others) to the same view's streams of those corpora.
    """
    keyed = f"drop={'+'.join(map(str, recipe.drop))};weights={recipe.weights};" + ",".join(
        f"{r}:{refs[r].key}" for r in sorted(recipe.references))
    if not recipe.drop and recipe.weights.name == "none" and stream.known is None:
        return np.ones(len(stream.ids), dtype=np.float32), "all-tokens"
    w = recipe.weights.build().token_weights(stream, refs)
    for step in recipe.drop:
        w = np.where(step.build().dropped(stream, refs), 0.0, w)
    if stream.known is not None:
        w = np.where(stream.known, w, 0.0)
    # the stream's own key keys the caches already; the other references' keys are in ``keyed``
    return np.ascontiguousarray(w, dtype=np.float32), hashlib.sha256(keyed.encode()).hexdigest()[:20]
