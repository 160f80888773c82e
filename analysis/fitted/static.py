"""A static linear recipe folded into one token table, for formats that average table rows (model2vec's
``StaticModel``, sentence-transformers' ``StaticEmbedding``; encoder/static_export.py writes them).

hs's vector of a text under such a recipe is ``post(sum_t w_t x_t / sum_t w_t)``: x the static
view's row of each token id, w its weight (the recipe's drop and weights steps, a function of the id),
post a chain of affine steps ``v @ A + b`` (zscore, whiten, ABTT, PCA), optionally ending with l2. Those
formats compute ``sum_t T[t] / n`` over the n tokens of the text. With ``T[id] = w_id (x_id @ A + b)``
that is ``(S / n) * post(v)`` (S = sum_t w_t): the same direction, so the same vector after a final
l2 (the format's ``normalize``) and the same cosine similarities without it. Anything else is refused
in one line naming the step: a view mix (each part is scaled to unit length first), a contextual view,
another pooling, a weight that is not a function of the id, a post-processor that is not affine in the
sentence vector, and the special tokens around a text kept with a weight (those formats tokenise
without them).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from hsstore.errors import HsError

from ..embedding import post as post_mod
from ..embedding.pooling import Pooler
from ..embedding.tokens import Stream, store_stream, token_weights
from .recipe import FittedRecipe


def _refuse(fmt: str, what: str) -> HsError:
    return HsError(f"--format {fmt} averages one token table; {what}")


def _table(fitted: FittedRecipe, fmt: str) -> np.ndarray:
    """The static view's (V, H) vectors per token id, the recipe's layers mixed as it mixes them."""
    recipe = fitted.recipe
    parts = [p for p in recipe.view if p.weight != 0]
    if len(parts) != 1:
        raise _refuse(fmt, f"view mix {'+'.join(map(str, parts))} scales each part to unit length before mixing, "
                           f"which no token table folds: give one view")
    view = parts[0].step.build()
    if not view.is_static():
        raise _refuse(fmt, f"view {parts[0].step} reads the model's states of each text: use a static view "
                           f"(re, input, avg)")
    if recipe.pool.name != "mean":
        raise _refuse(fmt, f"pool={recipe.pool} is not a mean of the tokens' vectors: use pool=mean")
    vkey = view.key(fitted.store)
    layers = Pooler(fitted.store, disk_cache=False).view_layers(recipe, parts[0].step)
    tables = [fitted.tables[(vkey, layer)] for layer in layers]
    if len(tables) == 1:
        return tables[0].astype(np.float64)
    if recipe.combine == "concat":
        return np.concatenate(tables, axis=1).astype(np.float64)
    return np.mean(np.stack(tables), axis=0, dtype=np.float64)


def _weights(fitted: FittedRecipe, fmt: str, frame_ids: list[int]) -> np.ndarray:
    """Each vocabulary id's weight under the recipe's drop and weights steps (drop=special aside: those
    formats never see the special tokens around a text)."""
    recipe = fitted.recipe
    for step in (*recipe.drop, recipe.weights):
        if step.name != "special" and not getattr(step.cls, "BY_ID", False):
            raise _refuse(fmt, f"{step.axis} {step} is not a function of the token id alone")
    vocab = tuple(fitted.store.vocab)
    ids = np.arange(len(vocab), dtype=np.int32)
    every_id = Stream("vocabulary", ids, np.array([0, len(ids)], dtype=np.int64), vocab,
                      special=np.zeros(len(ids), dtype=bool))
    refs = {name: store_stream(fitted.store.corpus(name)) for name in recipe.references}
    by_id = replace(recipe, drop=tuple(s for s in recipe.drop if s.name != "special"))
    w = token_weights(by_id, every_id, {"task": every_id, **refs})[0].astype(np.float64)
    if not any(s.name == "special" for s in recipe.drop):
        kept = [vocab[i] for i in dict.fromkeys(frame_ids) if w[i] != 0]
        if kept:
            raise _refuse(fmt, f"the recipe keeps the tokens the tokenizer adds around a text ({', '.join(kept)}) "
                               f"with a weight, and this format tokenises without them: add drop=special (or use "
                               f"weights that give them 0, as idf@REF does)")
    return w


def _affine(fitted: FittedRecipe, fmt: str, dim: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """(A, b, normalize): the post chain as v @ A + b, then unit length if it ends with l2."""
    A, b = np.eye(dim), np.zeros(dim)
    steps = list(zip(fitted.recipe.post, fitted.chain))
    normalize = bool(steps) and steps[-1][0].name == "l2"
    for step, fitted_step in steps[:-1] if normalize else steps:
        if not step.cls.AFFINE:
            later = " before the end" if step.name == "l2" else ""
            raise _refuse(fmt, f"post-processor {step}{later} is not affine in the sentence vector, so it does not "
                               f"fold into the token table")
        # the step's own transform of 0 and of the unit vectors gives its b and A (float32 rounding)
        probe = post_mod.apply([fitted_step], np.vstack([np.zeros(A.shape[1]), np.eye(A.shape[1])]).astype(np.float32))
        b_i = probe[0].astype(np.float64)
        A_i = probe[1:].astype(np.float64) - b_i
        A, b = A @ A_i, b @ A_i + b_i
    return A, b, normalize


def fold(fitted: FittedRecipe, fmt: str, frame_ids: list[int]) -> tuple[np.ndarray, bool]:
    """(table, normalize): the (V, D) float32 token table whose row mean is the recipe's vector's
    direction, and whether to scale the mean to unit length. ``frame_ids``: the ids of the special
    tokens the tokenizer adds around a text."""
    table = _table(fitted, fmt)
    w = _weights(fitted, fmt, frame_ids)
    A, b, normalize = _affine(fitted, fmt, table.shape[1])
    return np.ascontiguousarray(w[:, None] * (table @ A + b), dtype=np.float32), normalize
