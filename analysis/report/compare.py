"""Paired comparisons of recipes: what changing one thing does with everything else fixed.

Every effect here is a mean of score differences between two runs on the same task whose recipes
differ in exactly one place: one axis's value (``axis_effects``), one step's reference corpus
(``reference_effects``: @wikitext2 against the task's own sentences), or a prompt read-out against
the plain recipe it reads out of (``prompt_effects``). ``sweeps`` gives the absolute scores the
figures draw: family means over the tasks every value of an axis was run on.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..recipes.recipe import AXES, Part, Recipe
from ..recipes.steps import Step
from .load import FAMILIES, Run, canonical

DEFAULTS = Recipe().fields()


@dataclass
class Effect:
    """Score differences (changed minus baseline) of one comparison, by family."""
    label: str
    deltas: dict[str, list[float]] = field(default_factory=lambda: {f: [] for f in FAMILIES})

    def add(self, family: str, delta: float) -> None:
        self.deltas[family].append(delta)

    def values(self, family: str | None = None) -> list[float]:
        return self.deltas[family] if family else [d for f in FAMILIES for d in self.deltas[f]]

    def n(self, family: str | None = None) -> int:
        return len(self.values(family))

    def mean(self, family: str | None = None) -> float | None:
        values = self.values(family)
        return float(np.mean(values)) if values else None


def index(runs: list[Run]) -> dict[tuple[str, str], Run]:
    """Runs by (canonical recipe, task)."""
    return {(r.key, r.task): r for r in runs}


def rest(recipe: Recipe, axis: str) -> tuple[tuple[str, str], ...]:
    """The recipe's values on every axis but ``axis``."""
    return tuple((k, v) for k, v in recipe.fields().items() if k != axis)


def describe(fixed: tuple[tuple[str, str], ...]) -> str:
    """Fixed axes as text, naming only what differs from the default recipe."""
    changed = [f"{k}={v}" for k, v in fixed if v != DEFAULTS[k]]
    return ";".join(changed) or "the default recipe"


@dataclass
class AxisEffects:
    axis: str
    baseline: str
    effects: list[Effect]
    unpaired: list[str]  # values never run beside the baseline with the rest fixed


def axis_effects(runs: list[Run], axis: str, baseline: str | None = None) -> AxisEffects | None:
    """For each value of ``axis``: its score minus the baseline value's, over every (task, rest of the
    recipe) where both were run. The baseline is ``baseline`` if given, else the default recipe's value
    when it has pairs, else the value run beside others most often. None when the axis has one value."""
    values = list(dict.fromkeys(r.recipe.fields()[axis] for r in runs))
    if len(values) < 2:
        return None
    groups: dict[tuple, dict[str, Run]] = {}
    for r in runs:
        groups.setdefault((r.task, rest(r.recipe, axis)), {})[r.recipe.fields()[axis]] = r
    paired = [g for g in groups.values() if len(g) > 1]
    counts = {v: sum(v in g for g in paired) for v in values}
    if not paired:
        return AxisEffects(axis, DEFAULTS[axis] if DEFAULTS[axis] in values else values[0], [], values)
    if baseline is None:
        baseline = DEFAULTS[axis] if counts.get(DEFAULTS[axis]) else max(values, key=lambda v: counts[v])
    effects, unpaired = [], []
    for value in values:
        if value == baseline:
            continue
        effect = Effect(value)
        for g in paired:
            if value in g and baseline in g:
                effect.add(g[value].family, g[value].score - g[baseline].score)
        if effect.n():
            effects.append(effect)
        else:
            unpaired.append(value)
    return AxisEffects(axis, baseline, effects, unpaired)


@dataclass
class SplitEffects:
    """An axis's effects computed separately for each value of another axis (``by``), because their
    means differ in sign there: one mean over all pairs would hide that."""
    axis: str
    by: str
    parts: dict[str, AxisEffects]  # value of ``by`` -> the effects among runs with that value


def split_effects(runs: list[Run], axis: str) -> SplitEffects | None:
    """The other axis along which ``axis``'s effects (against one baseline) differ in sign the most,
    with the effects per value of it; None when no axis splits them into means of opposite signs.
    A pair of runs differs on ``axis`` only, so each pair falls in exactly one part."""
    whole = axis_effects(runs, axis)
    if whole is None or not whole.effects:
        return None
    best, best_spread = None, 0.0
    for by in AXES:
        if by == axis or len({r.recipe.fields()[by] for r in runs}) < 2:
            continue
        parts = {}
        for value in dict.fromkeys(r.recipe.fields()[by] for r in runs):
            part = axis_effects([r for r in runs if r.recipe.fields()[by] == value], axis, whole.baseline)
            if part is not None and part.effects:
                parts[value] = part
        spread = 0.0  # the widest gap between a positive and a negative mean of one effect
        for label in {e.label for p in parts.values() for e in p.effects}:
            means = [e.mean() for p in parts.values() for e in p.effects if e.label == label]
            if min(means) < 0 < max(means):
                spread = max(spread, max(means) - min(means))
        if spread > best_spread:
            best, best_spread = SplitEffects(axis, by, parts), spread
    return best


def located_steps(recipe: Recipe):
    """(axis, position, step) of every step of a recipe."""
    for i, part in enumerate(recipe.view):
        yield "view", i, part.step
    yield "pool", 0, recipe.pool
    for i, step in enumerate(recipe.drop):
        yield "drop", i, step
    yield "weights", 0, recipe.weights
    for i, step in enumerate(recipe.post):
        yield "post", i, step


def with_step(recipe: Recipe, axis: str, i: int, step: Step) -> Recipe:
    """The recipe with its step at (axis, i) replaced, in canonical form."""
    if axis == "view":
        parts = list(recipe.view)
        parts[i] = Part(step, parts[i].weight)
        changed = replace(recipe, view=tuple(parts))
    elif axis in ("pool", "weights"):
        changed = replace(recipe, **{axis: step})
    else:
        seq = list(getattr(recipe, axis))
        seq[i] = step
        changed = replace(recipe, **{axis: tuple(seq)})
    return canonical(str(changed))  # canonical: drop steps sort by name


def reference_effects(runs: list[Run]) -> list[Effect]:
    """For each step that took its statistics from another corpus (``@wikitext2``): its score minus
    the same recipe's with that step fitted on the task's own sentences (``@task``)."""
    by_key = index(runs)
    effects: dict[str, Effect] = {}
    for r in runs:
        for axis, i, step in located_steps(r.recipe):
            if not step.ref or step.ref == "task":
                continue
            other = by_key.get((str(with_step(r.recipe, axis, i, replace(step, ref="task"))), r.task))
            if other is not None:
                label = f"{axis}={replace(step, ref=None)}: @{step.ref} vs @task"
                effects.setdefault(label, Effect(label)).add(r.family, r.score - other.score)
    return list(effects.values())


def is_prompt(recipe: Recipe) -> bool:
    return any(p.step.name == "prompt" for p in recipe.view)


def plain_recipe(recipe: Recipe) -> Recipe:
    """What a prompt recipe reads out of, without the template: view ctx (same layers), pool=mask
    becomes mean, and the template filter goes."""
    view = tuple(Part(Step("view", "ctx", tuple((k, v) for k, v in p.step.params if k == "layers")), p.weight)
                 if p.step.name == "prompt" else p for p in recipe.view)
    pool = Step("pool", "mean") if recipe.pool.name == "mask" else recipe.pool
    drop = tuple(s for s in recipe.drop if s.name != "template")
    return canonical(str(replace(recipe, view=view, pool=pool, drop=drop)))


def difference(recipe: Recipe, other: Recipe) -> str:
    """The axes where ``recipe`` differs from ``other``, as recipe text."""
    theirs = other.fields()
    return ";".join(f"{k}={v}" for k, v in recipe.fields().items() if theirs[k] != v)


def prompt_effects(runs: list[Run]) -> list[Effect]:
    """Each prompt read-out's score minus its plain recipe's, labelled by what the read-out changes."""
    by_key = index(runs)
    effects: dict[str, Effect] = {}
    for r in runs:
        if not is_prompt(r.recipe):
            continue
        plain = plain_recipe(r.recipe)
        other = by_key.get((str(plain), r.task))
        if other is not None:
            label = difference(r.recipe, plain)
            effects.setdefault(label, Effect(label)).add(r.family, r.score - other.score)
    return list(effects.values())


@dataclass
class Sweep:
    """Family means of the values of one axis with every other axis fixed (``fixed``), over the
    tasks that every value was run on."""
    fixed: tuple[tuple[str, str], ...]
    tasks: list[str]
    means: dict[str, float]  # value -> mean score over ``tasks``


def sweeps(runs: list[Run], axis: str, family: str) -> list[Sweep]:
    """Every sweep of ``axis`` on ``family`` with at least two values, the widest first."""
    cells: dict[tuple, dict[str, dict[str, float]]] = {}
    for r in runs:
        if r.family == family:
            cells.setdefault(rest(r.recipe, axis), {}).setdefault(r.recipe.fields()[axis], {})[r.task] = r.score
    out = []
    for fixed, by_value in cells.items():
        tasks = sorted(set.intersection(*(set(t) for t in by_value.values())))
        if len(by_value) > 1 and tasks:
            out.append(Sweep(fixed, tasks, {v: float(np.mean([s[t] for t in tasks])) for v, s in by_value.items()}))
    return sorted(out, key=lambda s: (-len(s.means), -len(s.tasks)))

