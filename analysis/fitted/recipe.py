"""A fitted recipe, loaded: the recipe and what it learned, applied to corpora held in memory.

``FittedRecipe.embed(corpus)`` computes a ``MemoryCorpus``'s sentence matrix with the Pooler and
post-processing ``hs eval`` uses (embedding/pooling.py, embedding/post.py): the references are
their saved counts, the static views' tables the saved tables, the post-processors their saved
fitted attributes. Nothing is refitted.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hsstore.errors import HsError, StoreError

from ..embedding import post as post_mod
from ..embedding.memory import MemoryCorpus, MemoryStore, ReferenceCounts
from ..embedding.pooling import Pooler
from ..embedding.tokens import Stats, store_stream, token_weights
from ..recipes.recipe import Recipe, parse_recipe
from ..recipes.steps import parse_step
from . import folder


@dataclass
class ContextualPart:
    """A view part that reads the model's states: which corpus of the encoded texts, which layers."""
    template: str | None  # None: the plain texts (ctx); else the template of a prompt view
    layers: list[int]


class FittedRecipe:
    """``FittedRecipe.load(DIR)`` (or ``FittedRecipe(fit(...))``): ``embed(corpus)`` for corpora of
    ``store.with_corpora(...)``."""

    def __init__(self, parts: dict, where: str | None = None):
        meta, arrays, vocab = parts["meta"], parts["arrays"], parts["vocab"]
        self.meta, self.arrays = meta, arrays
        self.where = where or meta["store"]["path"]
        self.recipe: Recipe = parse_recipe(meta["recipe"])
        self.store = MemoryStore(meta["model"], meta["settings"], vocab, meta["store"]["identity"], self.where)
        try:
            for name, info in meta["references"].items():
                stats = Stats(arrays[f"stats/{name}/df"], arrays[f"stats/{name}/tf"], int(info["n_sentences"]),
                              arrays[f"stats/{name}/special"].astype(bool))
                self.store.add(ReferenceCounts(self.store, name, info["fingerprint"], int(info["n_sentences"]),
                                               info["attrs"], stats))
            self.tables = self._tables(meta, arrays)
            self.chain = [post_mod.restore(parse_step(p["step"], "post"),
                                           {a: arrays[f"post/{i}/{a}"] for a in p["arrays"]})
                          for i, p in enumerate(meta["post"])]
        except KeyError as exc:
            raise StoreError(f"the recipe fitted from {self.where} lacks array {exc}: fit it again") from None
        if [str(s) for s in self.recipe.post] != [p["step"] for p in meta["post"]]:
            raise StoreError(f"the recipe fitted from {self.where} disagrees with its post-processing; fit it again")

    @classmethod
    def load(cls, path: str | Path) -> "FittedRecipe":
        meta, arrays, vocab = folder.read(Path(path))
        return cls({"meta": meta, "arrays": arrays, "vocab": vocab}, where=str(path))

    def _tables(self, meta: dict, arrays: dict) -> dict:
        """The static views' tables by (view key, layer), as the Pooler looks them up; the random table
        drawn again from its seed and checked against the digest taken when it was fitted."""
        tables = {(info["view"], info["layer"]): arrays[name] for name, info in meta["tables"].items()}
        pooler = Pooler(self.store, disk_cache=False)
        for info in meta["random_tables"].values():
            view = parse_step(info["step"], "view").build()
            table = view.table(pooler, None)
            if hashlib.sha256(np.ascontiguousarray(table)).hexdigest() != info["sha256"]:
                raise HsError(f"view {info['step']}: this numpy ({np.__version__}) draws another random table than the "
                              f"one the recipe was fitted with; fit it again here")
            tables[(view.key(self.store), None)] = table
        return tables

    @property
    def contextual(self) -> list[ContextualPart]:
        """The view parts that need the model, with their layers (none: a static recipe)."""
        pooler = Pooler(self.store, disk_cache=False)
        out = []
        for part in self.recipe.view:
            view = part.step.build()
            if part.weight != 0 and not view.is_static():
                out.append(ContextualPart(getattr(view, "template", None), pooler.view_layers(self.recipe, part.step)))
        return out

    def embed(self, corpus: MemoryCorpus, weights: np.ndarray | None = None) -> np.ndarray:
        """(n_sentences, dim) float32 sentence matrix of ``corpus`` (rows in its order), post-processed;
        ``weights``: token weights of ``corpus``'s own stream computed by the caller (token_weights)."""
        pooler = Pooler(corpus.store, disk_cache=False, tables=self.tables)
        if weights is not None:
            pooler.use_weights(corpus, weights)
        return post_mod.apply(self.chain, pooler.embed(corpus, self.recipe))

    def token_weights(self, corpus: MemoryCorpus) -> np.ndarray:
        """Every token's weight in ``corpus``'s own stream, as the Pooler computes it (drop and weights steps)."""
        view = self.recipe.view[0].step.build()
        streams = Pooler(corpus.store, disk_cache=False).streams(view, corpus, self.recipe)
        if streams["task"] is not store_stream(corpus):
            raise HsError(f"view {view.NAME} does not read the texts' own tokens")
        return token_weights(self.recipe, streams["task"], streams)[0]
