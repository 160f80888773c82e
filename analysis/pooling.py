"""Sentence matrices of a recipe, with per-layer results cached in memory and on disk.

Mean pooling (weighted or not) and first/last-token picks are linear in the layer states, so the
pooled matrix of a layer mix is the same mix of per-layer pooled matrices: those are computed once
per (corpus, layer, pooling, token weights) and cached outside the store, keyed by the store's
identity and the corpus fingerprint. Max pooling over a mean of several layers is not linear and
reads the tokens of all its layers at once.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from hsstore.layers import parse_layers
from hsstore.store import Corpus, Store

from .diskcache import DiskCache
from .kernels import pool_states
from .recipe import Recipe
from .tokens import token_weights


class LayerCache:
    """Recently read layers (n_tokens, hidden) in their stored dtype, within a byte budget."""

    def __init__(self, budget_bytes: int):
        self.budget, self.items = budget_bytes, OrderedDict()

    def get(self, corpus: Corpus, layer: int) -> np.ndarray:
        key = (corpus.fingerprint, layer)
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        arr = corpus.layer(layer)
        self.items[key] = arr
        while sum(a.nbytes for a in self.items.values()) > self.budget and len(self.items) > 1:
            self.items.popitem(last=False)
        return arr


class Pooler:
    def __init__(self, store: Store, disk_cache: bool = True, layer_budget_bytes: int = 4 << 30):
        self.store = store
        self.disk_cache = disk_cache
        self.disk = DiskCache("pooled") if disk_cache else None
        self.layers = LayerCache(layer_budget_bytes)
        self.pooled: dict[tuple, np.ndarray] = {}
        self.weights: dict[tuple, tuple[np.ndarray, str]] = {}
        self.stats = {"computed": 0, "disk": 0, "memory": 0}

    def refs(self, corpus: Corpus, recipe: Recipe) -> dict[str, Corpus]:
        out = {"task": corpus}
        for name in recipe.references:
            out[name] = self.store.corpus(name)
        return out

    def embed(self, corpus: Corpus, recipe: Recipe) -> np.ndarray:
        """(n_sentences, dim) float32 sentence matrix of ``corpus`` under ``recipe`` (no post-processing)."""
        layers = parse_layers(recipe.layers, self.store.n_model_layers)
        for layer in layers:
            self.store.layer_position(layer)  # a clear error for a layer the store lacks
        tkey = (corpus.fingerprint, recipe.drop, str(recipe.weights))
        if tkey not in self.weights:
            self.weights[tkey] = token_weights(recipe, corpus, self.refs(corpus, recipe))
        weights, wkey = self.weights[tkey]
        if recipe.pool == "max" and recipe.combine == "mean" and len(layers) > 1:
            key = (corpus.fingerprint, tuple(layers), "max-mix", wkey)
            if key not in self.pooled:
                states = np.stack([self.layers.get(corpus, layer) for layer in layers])
                self.pooled[key] = pool_states(states, np.full(len(layers), 1 / len(layers)), corpus.offsets,
                                               weights, "max")
                self.stats["computed"] += 1
            return self.pooled[key]
        per_layer = [self._layer(corpus, layer, recipe.pool, weights, wkey) for layer in layers]
        if len(per_layer) == 1:
            return per_layer[0]
        if recipe.combine == "concat":
            return np.concatenate(per_layer, axis=1)
        total = per_layer[0] + per_layer[1]
        for more in per_layer[2:]:
            total += more
        total *= np.float32(1 / len(per_layer))
        return total

    def _layer(self, corpus: Corpus, layer: int, pool: str, weights: np.ndarray, wkey: str) -> np.ndarray:
        key = (corpus.fingerprint, layer, pool, wkey)
        if key in self.pooled:
            self.stats["memory"] += 1
            return self.pooled[key]
        path = None
        if self.disk is not None:  # the corpus's file signature: a changed store misses the cache
            path = self.disk.path(self.store.identity, corpus.fingerprint,
                                  f"L{layer}-{pool}-{wkey}-{corpus.signature(layer)}.npy")
            cached = self.disk.load(path)
            if cached is not None:
                self.stats["disk"] += 1
                self.pooled[key] = cached
                return cached
        out = pool_states(self.layers.get(corpus, layer), [1.0], corpus.offsets, weights, pool)
        self.stats["computed"] += 1
        if self.disk is not None:
            self.disk.save(path, out)
        self.pooled[key] = out
        return out
