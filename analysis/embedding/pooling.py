"""Sentence matrices of a recipe, with per-layer results cached in memory and on disk.

Mean pooling (weighted or not) and first/last-token picks are linear in the token vectors, so the
pooled matrix of a layer mix is the same mix of per-layer pooled matrices: those are computed once
per (view, corpus, layer, pooling, token weights) and cached outside the store, keyed by the
store's identity and the corpus fingerprint. Max pooling over a mean of several layers is not
linear and reads the tokens of all its layers together.

Stored states are read a block of whole sentences at a time (about ``BLOCK_CHUNKS`` stored chunks
per layer): memory holds one block and the pooled output, never a whole layer, whatever the size
of the corpus. Each sentence is pooled by the same kernel over the same tokens as from a whole
layer, so the numbers are identical.

A view mix (``ctx*0.8+avg*0.2``) is the weighted sum of its parts' sentence vectors, each scaled
to unit length first; a part of weight 0 is left out, and a mix with one part left is that part
unchanged (views.py, docs/recipes.md).
"""
from __future__ import annotations

import hashlib

import numpy as np

from hsstore.layers import parse_layers
from hsstore.store import Corpus, Store

from ..recipes.recipe import Recipe
from ..recipes.steps import Step, StepType, register
from ..vectors import unit_rows
from .diskcache import DiskCache
from .tokens import Stream, check_level, token_weights


class StoredStates:
    """Stored states of some layers of a corpus, read a block of tokens at a time (never whole)."""

    def __init__(self, corpus: Corpus, layers: list[int], block_tokens: int | None = None, progress=None):
        self.corpus, self.layers, self.progress = corpus, layers, progress  # progress(tokens) after each block
        self.block_tokens = block_tokens or BLOCK_CHUNKS * int(corpus.store.settings["chunk_tokens"])

    def rows(self, start: int, stop: int) -> np.ndarray:
        """(K, stop - start, hidden) in the stored dtype."""
        blocks = [self.corpus.layer_rows(layer, start, stop) for layer in self.layers]
        return blocks[0][None] if len(blocks) == 1 else np.stack(blocks)


BLOCK_CHUNKS = 4  # stored chunks read at once: memory holds this many (per layer mixed), never a corpus


def sentence_blocks(offsets: np.ndarray, block_tokens: int) -> list[tuple[int, int]]:
    """Runs of whole sentences (s0, s1) of at most ``block_tokens`` tokens (a longer sentence alone)."""
    out, s0, n = [], 0, len(offsets) - 1
    while s0 < n:
        s1 = int(np.searchsorted(offsets, offsets[s0] + block_tokens, side="right")) - 1
        s1 = min(max(s1, s0 + 1), n)
        out.append((s0, s1))
        s0 = s1
    return out


def pool_streamed(states: StoredStates, layer_weights, offsets: np.ndarray, token_weights: np.ndarray,
                  mode: str) -> np.ndarray:
    """``pool_states`` over stored states read block by block: each sentence is pooled by the same
    kernel over the same tokens, so the result is identical to pooling the whole layer at once."""
    from .kernels import pool_states  # numba loads only when needed (not for `hs --help`)

    blocks = sentence_blocks(offsets, states.block_tokens)
    if not blocks:  # no sentences: the kernel's empty result
        return pool_states(states.rows(0, 0), layer_weights, offsets, token_weights, mode)
    parts = []
    for s0, s1 in blocks:
        t0, t1 = int(offsets[s0]), int(offsets[s1])
        parts.append(pool_states(states.rows(t0, t1), layer_weights, offsets[s0:s1 + 1] - t0,
                                 token_weights[t0:t1], mode))
        if states.progress is not None:
            states.progress((t1 - t0) * len(states.layers))
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


# ---- pooling steps -------------------------------------------------------------------------------

class Pooling(StepType):
    AXIS = "pool"
    KERNEL = "mean"  # the numba kernel: mean, max, first or last

    def prepare(self, weights: np.ndarray, stream: Stream) -> np.ndarray:
        """Token weights as the kernel should see them (0 leaves a token out)."""
        return weights

    def finish(self, X: np.ndarray, weights: np.ndarray, stream: Stream) -> np.ndarray:
        """The kernel's output as the step defines it."""
        return X


@register
class Mean(Pooling):
    NAME = "mean"
    DESCRIPTION = "mean of the kept tokens (weighted mean with weights)"


@register
class Max(Pooling):
    NAME, KERNEL, LINEAR = "max", "max", False
    DESCRIPTION = "element-wise maximum over the kept tokens"


@register
class First(Pooling):
    NAME, KERNEL, ALIASES = "first", "first", ("cls",)
    DESCRIPTION = "the first kept token ([CLS] with special tokens kept)"


@register
class Last(Pooling):
    NAME, KERNEL, ALIASES = "last", "last", ("lasttoken",)
    DESCRIPTION = "the last kept token ([SEP] with special tokens kept)"


def _positions(offsets: np.ndarray) -> np.ndarray:
    """1-based position of every token within its sentence."""
    lengths = np.diff(offsets)
    return (np.arange(offsets[-1]) - np.repeat(offsets[:-1], lengths) + 1).astype(np.float32)


@register
class WeightedMean(Pooling):
    NAME = "weightedmean"
    DESCRIPTION = "mean with weights growing with position 1, 2, ..., n (sentence-transformers' weightedmean)"

    def prepare(self, weights, stream):
        return weights * _positions(stream.offsets)


@register
class MeanSqrtLen(Pooling):
    NAME = "mean_sqrt_len_tokens"
    DESCRIPTION = "sum of the kept tokens over sqrt of their (weight) total (sentence-transformers' mean_sqrt_len_tokens)"

    def finish(self, X, weights, stream):
        running = np.concatenate([[0.0], np.cumsum(weights, dtype=np.float64)])
        totals = running[stream.offsets[1:]] - running[stream.offsets[:-1]]
        return (X * np.sqrt(totals)[:, None]).astype(np.float32)


def pool(states, layer_weights, stream: Stream, weights, step: Step, rows=None, layer=None) -> np.ndarray:
    """Pool with a registered pooling step (its kernel plus what it does around it). ``states``: an
    array (a static view's table, with ``rows``) or ``StoredStates`` (streamed). ``layer``: the
    model layer pooled, for steps that read more of it (denoising the read-out slot: prompts.py)."""
    from .kernels import pool_states  # numba loads only when needed (not for `hs --help`)

    p = step.build()
    p.layer = layer
    w = np.asarray(p.prepare(weights, stream), dtype=np.float32)
    if isinstance(states, StoredStates):
        X = pool_streamed(states, layer_weights, np.asarray(stream.offsets, dtype=np.int64), w, p.KERNEL)
    else:
        X = pool_states(states, layer_weights, stream.offsets, w, p.KERNEL, rows)
    return p.finish(X, weights, stream)


# ---- the pooler ----------------------------------------------------------------------------------

class Pooler:
    """Sentence matrices of recipes over the corpora of ``store``: a stored one (``hsstore.open``), or
    one held in memory (memory.py: texts encoded for a fitted recipe), which has the same interface.

    ``tables``: the static views' tables by (view key, layer), shared between poolers (a fitted
    recipe brings its own); ``given_weights`` (``use_weights``): token weights computed by the caller."""

    def __init__(self, store: Store, disk_cache: bool = True, tables: dict | None = None):
        self.store = store
        self.disk = DiskCache("matrices") if disk_cache else None
        self.pooled: dict[tuple, np.ndarray] = {}
        self.weights: dict[tuple, tuple[np.ndarray, str]] = {}
        self.tables: dict[tuple, np.ndarray] = {} if tables is None else tables
        self.given_weights: dict[str, tuple[np.ndarray, str]] = {}
        self.progress = None  # called with the token states read after each block (hs embed's bar)
        self.stats = {"computed": 0, "disk": 0, "memory": 0}

    def use_weights(self, corpus, weights: np.ndarray) -> None:
        """Pool ``corpus``'s own token stream with these weights (one per token) instead of computing them:
        the sentence-transformers weights module (encoder/st_modules.py) computes them with
        ``tokens.token_weights``, as ``token_weights`` below does."""
        weights = np.ascontiguousarray(weights, dtype=np.float32)
        self.given_weights[corpus.fingerprint] = weights, "given-" + hashlib.sha256(weights.tobytes()).hexdigest()[:20]

    def cached_array(self, where: tuple[str, ...], name: str, signature, compute) -> np.ndarray:
        """``compute()``, or its result saved earlier under the disk cache's ``where``/``name``: the one
        place this module reads and writes the disk cache. ``signature()`` names the state of the store
        files the result is computed from (``Corpus.signature``), so a rewritten store misses; it is
        only asked for with the disk cache on (a corpus in memory has no files)."""
        path = self.disk.path(*where, f"{name}-{signature()}.npy") if self.disk is not None else None
        out = self.disk.load(path) if path is not None else None
        if out is not None:
            self.stats["disk"] += 1
            return out
        out = compute()
        self.stats["computed"] += 1
        if path is not None:
            self.disk.save(path, out)
        return out

    def streams(self, view, corpus: Corpus, recipe: Recipe) -> dict:
        """The view's token streams of the task corpus and of every reference the recipe names."""
        out = {"task": view.stream(corpus)}
        for name in recipe.references:
            out[name] = view.stream(self.store.corpus(name))
        return out

    def embed(self, corpus: Corpus, recipe: Recipe) -> np.ndarray:
        """(n_sentences, dim) float32 sentence matrix of ``corpus`` under ``recipe`` (no post-processing)."""
        parts = [p for p in recipe.view if p.weight != 0]
        if len(parts) == 1:
            return self.embed_view(corpus, recipe, parts[0].step, parts[0].table)
        total = None
        for part in parts:
            X = unit_rows(self.embed_view(corpus, recipe, part.step, part.table)) * np.float32(part.weight)
            total = X if total is None else total + X
        return total.astype(np.float32, copy=False)

    def view_layers(self, recipe: Recipe, vstep: Step) -> list[int | None]:
        """The layers a view part reads: its own ``layers=``, else the recipe's; [None] for unlayered views."""
        if not vstep.cls.LAYERED:
            return [None]
        layers = parse_layers(vstep.kwargs.get("layers") or recipe.layers, self.store.n_model_layers)
        for layer in layers:
            self.store.layer_position(layer)  # a clear error for a layer the store lacks
        return layers

    def token_weights(self, view, corpus: Corpus, recipe: Recipe):
        """Weights of every token of the view's stream of ``corpus``, and their cache key."""
        check_level(recipe, view.LEVEL, view.NAME)
        streams = self.streams(view, corpus, recipe)
        tkey = (streams["task"].key, tuple(map(str, recipe.drop)), str(recipe.weights))
        if streams["task"].key in self.given_weights:  # the caller's, for the corpus's own stream (use_weights)
            return streams["task"], *self.given_weights[streams["task"].key]
        if tkey not in self.weights:
            self.weights[tkey] = token_weights(recipe, streams["task"], streams)
        return streams["task"], *self.weights[tkey]

    def source(self, view, vkey: str, corpus: Corpus, layers: list[int | None], table_steps: tuple = ()):
        """(states, rows) for the kernels: stored states of ``layers`` of the corpus the view reads,
        streamed, or the view's tables of them (K, V, H), gathered by token id, after its table steps."""
        read = view.states_corpus(corpus)
        if read is not None:
            return StoredStates(read, layers, progress=self.progress), None
        for layer in layers:
            if (vkey, layer) not in self.tables:
                table = view.table(self, layer)
                for step in table_steps:
                    table = step.build().apply(table, self.store)
                self.tables[(vkey, layer)] = table
        tables = [self.tables[(vkey, layer)] for layer in layers]
        return tables[0] if len(tables) == 1 else np.stack(tables), view.stream(corpus).ids

    def embed_view(self, corpus: Corpus, recipe: Recipe, vstep: Step, table_steps: tuple = ()) -> np.ndarray:
        view = vstep.build()
        vkey = view.corpus_key(corpus) + "".join(f">{t}" for t in table_steps)  # the table steps name the vectors too
        layers = self.view_layers(recipe, vstep)
        stream, weights, wkey = self.token_weights(view, corpus, recipe)
        if not recipe.pool.cls.LINEAR and recipe.combine == "mean" and len(layers) > 1:
            key = (vkey, stream.key, tuple(layers), str(recipe.pool), "mix", wkey)
            if key not in self.pooled:
                states, rows = self.source(view, vkey, corpus, layers, table_steps)
                self.pooled[key] = view.align(pool(states, np.full(len(layers), 1 / len(layers)), stream, weights,
                                                   recipe.pool, rows), corpus)
                self.stats["computed"] += 1
            return self.pooled[key]
        per_layer = [self._layer(view, vkey, corpus, stream, layer, recipe.pool, weights, wkey, table_steps)
                     for layer in layers]
        if len(per_layer) == 1:
            return per_layer[0]
        if recipe.combine == "concat":
            return np.concatenate(per_layer, axis=1)
        total = per_layer[0] + per_layer[1]
        for more in per_layer[2:]:
            total += more
        total *= np.float32(1 / len(per_layer))
        return total

    def _layer(self, view, vkey, corpus, stream, layer, pool_step: Step, weights, wkey, table_steps=()) -> np.ndarray:
        key = (vkey, stream.key, layer, str(pool_step), wkey)
        if key in self.pooled:
            self.stats["memory"] += 1
            return self.pooled[key]

        def compute():
            states, rows = self.source(view, vkey, corpus, [layer], table_steps)
            X = pool(states, [1.0], stream, weights, pool_step, rows, layer)
            return view.align(X, corpus)  # rows in the task corpus's order

        name = f"{'' if vkey == 'ctx' else vkey + '-'}L{layer}-{pool_step}-{wkey}"

        def signature():
            # the state of the store files the matrix is computed from: the layer's chunks of the corpus whose
            # states are read (the task's, or its templated variant), else its token arrays; plus the view's own
            read = view.states_corpus(corpus)
            return (corpus.signature(None) if read is None else read.signature(layer)) + \
                view.signature(self.store, layer, corpus)

        self.pooled[key] = self.cached_array(("pooled", self.store.identity, corpus.fingerprint), name, signature,
                                             compute)
        return self.pooled[key]

    def unseen(self, corpus: Corpus, recipe: Recipe) -> dict[str, float]:
        """Per static view part, the share of the corpus's tokens it has no vector of its own for."""
        out = {}
        for part in recipe.view:
            view = part.step.build()
            share = view.unseen(self, view.stream(corpus))
            if share is not None:
                out[f"unseen_{view.NAME}"] = share
        return out
