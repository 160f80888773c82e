"""Per-token weights: which tokens a recipe keeps (filters) and how much each counts (idf, SIF).

A weight of 0 drops a token. Statistics (document frequency, term frequency, the most frequent
tokens) come from a reference corpus of the store: the task's own sentences or any other corpus,
usually ``wikitext2``. Only stored token ids are read, never hidden states.
"""
from __future__ import annotations

import hashlib
import unicodedata
from functools import lru_cache

import numpy as np

from hsstore.format import KIND_SPECIAL
from hsstore.store import Corpus

from .recipe import Recipe, Step


def _is_punct(token: str) -> bool:
    token = token[2:] if token.startswith("##") else token.lstrip("\u2581\u0120")
    return bool(token) and all(unicodedata.category(c)[0] in "PS" for c in token)


@lru_cache(maxsize=8)
def _vocab_masks(vocab: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(punctuation, subword-continuation) flags per vocabulary id."""
    punct = np.fromiter((_is_punct(t) for t in vocab), dtype=bool, count=len(vocab))
    if any(t.startswith("##") for t in vocab):  # WordPiece marks continuations
        sub = np.fromiter((t.startswith("##") for t in vocab), dtype=bool, count=len(vocab))
    else:  # SentencePiece / byte-level BPE mark word starts instead
        marks = ("\u2581", "\u0120")
        sub = np.fromiter((not t.startswith(marks) for t in vocab), dtype=bool, count=len(vocab))
    return punct, sub


_STATS: dict[str, tuple[np.ndarray, np.ndarray, int, np.ndarray]] = {}


def corpus_stats(corpus: Corpus, vocab_size: int) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
    """(document frequency, term frequency, number of sentences, is-special flag) per vocabulary id.

    Special tokens are counted like any other, so [CLS] and [SEP], present in every sentence, get
    an idf of 0 and a small SIF weight.
    """
    key = corpus.fingerprint
    if key not in _STATS:
        ids = corpus.all_token_ids.astype(np.int64)
        tf = np.bincount(ids, minlength=vocab_size)
        sent = np.repeat(np.arange(corpus.n_sentences), np.diff(corpus.offsets))
        pairs = np.unique(sent * vocab_size + ids)  # each (sentence, token) once
        df = np.bincount(pairs % vocab_size, minlength=vocab_size)
        special = np.zeros(vocab_size, dtype=bool)
        special[ids[corpus.all_token_kinds == KIND_SPECIAL]] = True
        _STATS[key] = (df, tf, corpus.n_sentences, special)
    return _STATS[key]


def most_frequent(ref: Corpus, vocab_size: int, n: int) -> np.ndarray:
    """The ``n`` most frequent non-special token ids of ``ref`` (ties broken by id)."""
    _, tf, _, special = corpus_stats(ref, vocab_size)
    return np.argsort(-np.where(special, -1, tf), kind="stable")[:n]


def vocab_weights(step: Step, ref: Corpus, vocab_size: int) -> np.ndarray:
    """Weight per vocabulary id for ``weights=idf|sif``."""
    df, tf, n, _ = corpus_stats(ref, vocab_size)
    if step.name == "idf":  # BERTScore's idf: log((M + 1) / (df + 1))
        return np.log((n + 1.0) / (df + 1.0)).astype(np.float32)
    if step.name == "sif":  # Arora et al. 2017: a / (a + p(t))
        a = float(step.param("a", 1e-3))
        p = tf / max(1, tf.sum())
        return (a / (a + p)).astype(np.float32)
    return np.ones(vocab_size, dtype=np.float32)


def token_weights(recipe: Recipe, corpus: Corpus, refs: dict[str, Corpus]) -> tuple[np.ndarray, str]:
    """Weights for every token of ``corpus`` and a key naming them (for caches).

    ``refs`` maps reference names (``task`` and others) to corpora.
    """
    if not recipe.drop and recipe.weights.name == "none":  # every token counts once: no statistics to read
        return np.ones(corpus.n_tokens, dtype=np.float32), "all-tokens"
    vocab = tuple(corpus.store.vocab)
    ids = corpus.all_token_ids
    w = vocab_weights(recipe.weights, refs[recipe.weights.ref], len(vocab))[ids]
    punct, sub = _vocab_masks(vocab)
    for drop in recipe.drop:
        if drop == "special":
            w = np.where(corpus.all_token_kinds == KIND_SPECIAL, 0.0, w)
        elif drop == "punct":
            w = np.where(punct[ids], 0.0, w)
        elif drop == "subword":
            w = np.where(sub[ids], 0.0, w)
        elif drop.startswith("freq"):
            top = most_frequent(refs["wikitext2"], len(vocab), int(drop[4:]))
            w = np.where(np.isin(ids, top), 0.0, w)
    # the corpus's own fingerprint keys the caches already; add those of the other references
    key = f"drop={'+'.join(recipe.drop)};weights={recipe.weights};" + ",".join(
        f"{r}:{refs[r].fingerprint}" for r in sorted(recipe.references))
    return np.ascontiguousarray(w, dtype=np.float32), hashlib.sha256(key.encode()).hexdigest()[:20]
