"""Pooled sentence vectors against a plain numpy computation from hsstore's arrays."""
from __future__ import annotations

import collections
import math
import string

import numpy as np
import pytest

import hsstore
from analysis.embedding.kernels import pool_states
from analysis.embedding.pooling import Pooler
from analysis.recipes.recipe import parse_recipe
from hsstore.layers import parse_layers


def _reference_stats(corpus, skip_special=False):
    tf, df = collections.Counter(), collections.Counter()
    for i in range(corpus.n_sentences):
        ids = [t for t, k in zip(corpus.token_ids(i).tolist(), corpus.token_kinds(i))
               if not (skip_special and k == "special")]
        tf.update(ids)
        df.update(set(ids))
    return tf, df, corpus.n_sentences


def reference_vectors(store, corpus, recipe_text, sentences):
    """Straight from the definitions: per sentence, weight/filter tokens, mix layers, pool."""
    recipe = parse_recipe(recipe_text)
    layers = parse_layers(recipe.layers, store.n_model_layers)
    wiki = store.corpus("wikitext2")
    tf, df, n = _reference_stats(wiki) if recipe.references or recipe.weights.name != "none" else (None, None, 0)
    if recipe.weights.ref == "task":
        tf, df, n = _reference_stats(corpus)
    top = set()
    drops = {d.name for d in recipe.drop}
    for d in recipe.drop:
        if d.name == "freq":
            wtf, _, _ = _reference_stats(wiki, skip_special=True)
            top = {t for t, _ in sorted(wtf.items(), key=lambda kv: (-kv[1], kv[0]))[:d.kwargs["n"]]}
    out = []
    for i in sentences:
        ids, toks, kinds = corpus.token_ids(i).tolist(), corpus.tokens(i), corpus.token_kinds(i)
        w = []
        for t, tok, kind in zip(ids, toks, kinds):
            weight = 1.0
            if recipe.weights.name == "idf":
                weight = math.log((n + 1) / (df.get(t, 0) + 1))
            elif recipe.weights.name == "sif":
                weight = 1e-3 / (1e-3 + tf.get(t, 0) / sum(tf.values()))
            body = tok[2:] if tok.startswith("##") else tok
            if ("special" in drops and kind == "special") or \
               ("punct" in drops and body and all(c in string.punctuation for c in body)) or \
               ("subword" in drops and tok.startswith("##")) or t in top:
                weight = 0.0
            w.append(weight)
        w = np.array(w)
        states = corpus.hidden(i, layers=layers).astype(np.float64)  # (K, n, H)
        views = [states.mean(axis=0)] if recipe.combine == "mean" else list(states)
        pooled = []
        for v in views:
            kept = np.flatnonzero(w)
            if len(kept) == 0:
                pooled.append(np.zeros(v.shape[1]))
            elif recipe.pool.name == "mean":
                pooled.append((w[:, None] * v).sum(axis=0) / w.sum())
            elif recipe.pool.name == "max":
                pooled.append(v[kept].max(axis=0))
            else:
                pooled.append(v[kept[0] if recipe.pool.name == "first" else kept[-1]])
        out.append(np.concatenate(pooled))
    return np.array(out)


RECIPES = [
    "layers=last;pool=mean",
    "layers=all;pool=mean;drop=special",
    "layers=first-last;pool=max",
    "layers=emb-last;combine=concat;pool=max;drop=special+punct",
    "layers=1;pool=first",
    "layers=2,3;pool=last;drop=special",
    "layers=last;pool=mean;weights=idf@wikitext2",
    "layers=last;pool=mean;weights=idf;drop=special",
    "layers=first-last;pool=mean;weights=sif@wikitext2;drop=special+subword",
    "layers=last;pool=mean;drop=special+freq20",
    "layers=0;pool=max;drop=special+punct+subword",
]


@pytest.mark.parametrize("recipe", RECIPES)
def test_pooled_vectors_equal_numpy(tiny_store, recipe):
    store = hsstore.open(tiny_store)
    corpus = store.corpus("sts17")
    pooler = Pooler(store, disk_cache=False)
    got = pooler.embed(corpus, parse_recipe(recipe))
    rows = [0, 1, 17, 250, corpus.n_sentences - 1]
    expected = reference_vectors(store, corpus, recipe, rows)
    assert np.max(np.abs(got[rows] - expected)) <= 1e-5


def test_disk_cache_gives_the_same_matrix(tiny_store):
    store = hsstore.open(tiny_store)
    corpus = store.corpus("biosses")
    recipe = parse_recipe("layers=all;pool=mean;weights=idf@wikitext2")
    first = Pooler(store).embed(corpus, recipe)
    again = Pooler(store)
    second = again.embed(corpus, recipe)
    assert again.stats["disk"] == 4 and again.stats["computed"] == 0
    np.testing.assert_array_equal(first, second)


def test_kernel_on_float32_and_float16_agrees_with_numpy():
    rng = np.random.default_rng(0)
    states = rng.standard_normal((2, 50, 8)).astype(np.float16)
    offsets = np.array([0, 3, 3, 20, 50])  # one empty sentence
    weights = rng.random(50).astype(np.float32)
    weights[5:8] = 0
    for dtype in (np.float16, np.float32):
        got = pool_states(states.astype(dtype), [0.25, 0.75], offsets, weights, "mean")
        mix = 0.25 * states[0].astype(np.float64) + 0.75 * states[1].astype(np.float64)
        for s in range(4):
            a, b = offsets[s], offsets[s + 1]
            expected = (weights[a:b, None] * mix[a:b]).sum(0) / weights[a:b].sum() if b > a else np.zeros(8)
            assert np.max(np.abs(got[s] - expected)) <= 1e-5


def test_float16_decode_is_exact_for_every_finite_half():
    halves = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
    finite = np.isfinite(halves)
    n = int(finite.sum())
    got = pool_states(halves[finite].reshape(1, n, 1), [1.0], np.arange(n + 1), np.ones(n, np.float32), "first")
    expected = halves[finite].astype(np.float32)
    assert np.array_equal(got[:, 0], expected)


def test_subword_drop_on_a_word_start_vocabulary():
    """Byte-level BPE marks word starts (Ġ), not continuations: a few '##' tokens in its vocabulary
    (Markdown headings) do not make it WordPiece; a text's first word, which has no space before it,
    and bare punctuation are no continuations."""
    from analysis.embedding.tokens import DropSubword, Stream
    from hsstore.format.layout import KIND_SPECIAL, KIND_TEMPLATE, KIND_TEXT

    vocab = ("##", "###", "<s>", "This", 'Ġ"', "The", "Ġcat", "Ġwalk", "s", ".", "some", "one")
    # "The cat walks." plain, then "someone." after a template ('<s>This "'), each token with its kind
    # and whether it continues a word
    tokens = [("The", KIND_TEXT, False), ("Ġcat", KIND_TEXT, False), ("Ġwalk", KIND_TEXT, False),
              ("s", KIND_TEXT, True), (".", KIND_TEXT, False),
              ("<s>", KIND_SPECIAL, False), ("This", KIND_TEMPLATE, False), ('Ġ"', KIND_TEMPLATE, False),
              ("some", KIND_TEXT, False), ("one", KIND_TEXT, True), (".", KIND_TEXT, False)]
    stream = Stream("t", np.array([vocab.index(t) for t, _, _ in tokens], np.int32), np.array([0, 5, 11]), vocab,
                    kinds=np.array([k for _, k, _ in tokens], np.uint8))
    assert DropSubword().dropped(stream, {}).tolist() == [w for _, _, w in tokens]
    wordpiece = ("[CLS]", "the", "cat", "walk", "##s", ".")
    stream = Stream("w", np.arange(1, 6, dtype=np.int32), np.array([0, 5]), wordpiece,
                    kinds=np.full(5, KIND_TEXT, np.uint8))
    assert DropSubword().dropped(stream, {}).tolist() == [False, False, False, True, False]
