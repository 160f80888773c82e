"""Fitting a recipe once, from a store, into the parts a fitted folder saves (folder.py).

``hs eval`` refits a recipe's learned parts on every evaluation; a fitted recipe learns them once,
with the same engine, and keeps them:

- the token counts of every reference corpus (document and term frequencies, the special ids), from
  which idf, SIF and frequent-token lists are computed as in ``hs eval``, with each corpus's
  fingerprint and source;
- the static views' tables (Avg., input embeddings; the random table by its seed, size and digest);
- each post-processor's fitted attributes (means, whitening and ABTT matrices, quantiles);
- the recipe itself (layers, view mix), the model identity and the store's settings.

A step that takes statistics from the task's own sentences (no ``@REF``: ``post=whiten``,
``weights=idf``) has no task here; ``fit_on`` names the corpus it is fitted on instead, recorded in
the recipe (``whiten@wikitext2``).
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import replace

import numpy as np

from hsstore.errors import HsError
from hsstore.format.storage import is_remote
from hsstore.store import Store
from hsstore.tasks.templates import SEPARATOR

from ..embedding import post as post_mod
from ..embedding.tokens import corpus_stats, store_stream
from ..recipes.recipe import Part, Recipe
from ..runners.engine import Engine


def name_references(recipe: Recipe, fit_on: str | None) -> Recipe:
    """``recipe`` with every ``@task`` reference replaced by ``fit_on`` (required where there is one)."""
    uses = [s for s in recipe.steps if s.ref == "task"]
    if uses and not fit_on:
        names = ", ".join(dict.fromkeys(str(s) for s in uses))
        raise HsError(f"{names} {'is' if len(uses) == 1 else 'are'} fitted on the task's own sentences (no @REF), "
                      f"and a fitted recipe has no task: name the corpus with --fit-on CORPUS (e.g. --fit-on "
                      f"wikitext2), or write @CORPUS in the recipe")
    if fit_on and not uses:
        raise HsError(f"--fit-on names the corpus for steps without @REF, and recipe {recipe} has none; leave it out")

    def named(step):
        return replace(step, ref=fit_on) if step.ref == "task" else step

    return replace(recipe, view=tuple(Part(named(p.step), p.weight) for p in recipe.view), pool=named(recipe.pool),
                   drop=tuple(named(s) for s in recipe.drop), weights=named(recipe.weights),
                   post=tuple(named(s) for s in recipe.post))


def _corpus_info(corpus) -> dict:
    return {"fingerprint": corpus.fingerprint, "n_sentences": corpus.n_sentences, "n_tokens": corpus.n_tokens,
            "attrs": {"source": corpus.attrs.get("source")}}


def _template(store: Store, name: str) -> dict:
    """The template ``name`` as the store's templated corpora were dumped with it (name, text, readout)."""
    for corpus in store.corpora:
        if corpus.endswith(SEPARATOR + name):
            found = (store.corpus(corpus).attrs.get("source") or {}).get("template")
            if found:
                return dict(found)
    raise HsError(f"store {store.path} has no corpus dumped with template {name!r}; run hs dump --template {name}")


def fit(store: Store, recipe: Recipe, fit_on: str | None = None, engine: Engine | None = None) -> dict:
    """Fit ``recipe`` on ``store``; returns {"meta", "arrays", "vocab"} for folder.write (and
    FittedRecipe)."""
    recipe = name_references(recipe, fit_on)
    if fit_on and fit_on not in store.corpora:
        raise HsError(f"--fit-on {fit_on}: store {store.path} has no complete corpus {fit_on!r} "
                      f"(it has: {', '.join(store.corpora)})")
    for part in recipe.view:
        if part.step.name == "glove":
            raise HsError("view glove reads GloVe's own vocabulary, which a fitted recipe does not carry; fit "
                          "recipes on the model's views (ctx, prompt, re, input, avg)")
    engine = engine or Engine(store)
    engine.check([], [recipe])
    pooler, arrays = engine.pooler, {}
    meta: dict = {"recipe": str(recipe), "fit_on": fit_on, "model": store.model, "settings": store.settings,
                  "store": {"path": str(store.path if is_remote(store.path) else store.path.resolve()),
                            "identity": store.identity,
                            "format_version": store.attrs.get("format_version")},
                  "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "references": {}, "tables": {},
                  "random_tables": {}, "templates": {}, "post": []}

    def keep_counts(corpus, stream) -> None:
        if corpus.name not in meta["references"]:
            stats = corpus_stats(stream)
            meta["references"][corpus.name] = _corpus_info(corpus)
            arrays[f"stats/{corpus.name}/df"] = stats.df.astype(np.int64)
            arrays[f"stats/{corpus.name}/tf"] = stats.tf.astype(np.int64)
            arrays[f"stats/{corpus.name}/special"] = stats.special.astype(np.uint8)

    views = [p.step.build() for p in recipe.view if p.weight != 0]
    for view in views:
        if view.NAME == "prompt":
            meta["templates"][view.template] = _template(store, view.template)
    # the counts of every reference, and of each view's stream of it where that is another corpus (prompt:
    # the reference's templated variant)
    for name in sorted(recipe.references):
        corpus = store.corpus(name)
        keep_counts(corpus, store_stream(corpus))
        for view in views:
            stream = view.stream(corpus)
            keep_counts(stream.corpus, stream)

    for part, view in zip([p for p in recipe.view if p.weight != 0], views):
        if not view.is_static():
            continue
        vkey = view.key(store)
        for layer in pooler.view_layers(recipe, part.step):
            table = pooler.tables.get((vkey, layer))
            if table is None:
                table = pooler.tables[(vkey, layer)] = view.table(pooler, layer)
            if view.NAME == "re":  # a seeded draw: its seed and size, and a digest that checks the redraw
                meta["random_tables"][vkey] = {"step": str(part.step), "shape": list(table.shape),
                                               "sha256": hashlib.sha256(np.ascontiguousarray(table)).hexdigest()}
                continue
            name = f"table/{vkey}/{'none' if layer is None else f'L{layer}'}"
            arrays[name] = np.ascontiguousarray(table, dtype=np.float32)
            meta["tables"][name] = {"view": vkey, "layer": layer}

    for i, fitted in enumerate(engine.fit_post(None, recipe, None)):
        saved = post_mod.fitted_arrays(fitted)
        for attr, value in saved.items():
            arrays[f"post/{i}/{attr}"] = value
        meta["post"].append({"step": str(recipe.post[i]), "arrays": sorted(saved)})
    return {"meta": meta, "arrays": arrays, "vocab": list(store.vocab)}
