"""Recipes: one choice on each axis of sentence-embedding extraction, and grids of them.

Compact form (docs/recipes.md), ``;``-separated ``key=value`` pairs, every key optional::

    view=ctx;layers=first-last;combine=mean;pool=mean;drop=special;weights=idf@wikitext2;post=whiten:k=128@wikitext2+l2

- view:    where token vectors come from: ``ctx`` (the stored layer states, default), ``re``, ``input``,
           ``avg@REF``, ``glove``; a mix of views is ``ctx*0.8+avg*0.2`` (views.py)
- layers:  last | first-last (1,L) | emb-last (0,L) | all | numbers and ranges: 0,4-6 | -1
- combine: mean | concat
- pool, drop (joined with ``+``), weights, post (joined with ``+``, applied in order): the steps of
  the registry (steps.py; ``hs steps`` lists them), each ``name[:key=value]...[@REF]``

REF is ``task`` (the task's own sentences) or the name of any corpus in the store, e.g. ``wikitext2``.
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, fields, replace

from hsstore.errors import HsError
from hsstore.layers import check_syntax

from .steps import Step, closest, parse_step

COMBINES = ("mean", "concat")


@dataclass(frozen=True)
class Part:
    """One view of a mix and its weight."""
    step: Step
    weight: float = 1.0

    def __str__(self) -> str:
        return str(self.step) if self.weight == 1.0 else f"{self.step}*{self.weight:g}"


def _step(axis: str, text: str) -> Step:
    return parse_step(text, axis)


@dataclass(frozen=True)
class Recipe:
    """One choice on every axis of sentence-embedding extraction; immutable and hashable.

    ``parse_recipe("layers=first-last;post=whiten@wikitext2")`` makes one (axes left out keep their
    defaults), ``str(recipe)`` writes every axis back in canonical form (what results files and
    cache keys record), ``recipe.fields()`` gives each axis's text and ``recipe.references`` the
    corpora other than the task's own whose statistics it needs."""

    view: tuple[Part, ...] = (Part(Step("view", "ctx")),)
    layers: str = "last"
    combine: str = "mean"
    pool: Step = Step("pool", "mean")
    drop: tuple[Step, ...] = ()
    weights: Step = Step("weights", "none")
    post: tuple[Step, ...] = ()

    def fields(self) -> dict[str, str]:
        """Each axis's value in its text form, keyed by axis name (the order of AXES)."""
        text = {"view": "+".join(map(str, self.view)), "layers": self.layers, "combine": self.combine,
                "pool": str(self.pool), "drop": "+".join(map(str, self.drop)) or "none",
                "weights": str(self.weights), "post": "+".join(map(str, self.post)) or "none"}
        return {k: text[k] for k in AXES}

    def __str__(self) -> str:
        return ";".join(f"{k}={v}" for k, v in self.fields().items())

    def __repr__(self) -> str:
        return f"<Recipe {self}>"

    @property
    def steps(self) -> list[Step]:
        return [*(p.step for p in self.view), self.pool, *self.drop, self.weights, *self.post]

    @property
    def references(self) -> set[str]:
        """Corpora other than the task's own whose statistics this recipe needs."""
        return {s.ref for s in self.steps if s.ref} - {"task"}


AXES = tuple(f.name for f in fields(Recipe))  # the fields of a Recipe, in order


def _parse_view(value: str) -> tuple[Part, ...]:
    parts = []
    for text in value.split("+"):
        body, star, weight = text.rpartition("*")
        if not star:
            body, weight = text, "1"
        try:
            w = float(weight)
        except ValueError:
            raise HsError(f"cannot read weight {weight!r} in view {text!r}; mix views like ctx*0.8+avg*0.2") from None
        if not 0 <= w:
            raise HsError(f"view weight {w:g} in {text!r} must not be negative")
        parts.append(Part(parse_step(body, "view"), w))
    if len(parts) > 1 and sum(p.weight for p in parts) == 0:
        raise HsError(f"view mix {value!r} has every weight 0")
    return tuple(parts)


def _parse_drop(value: str) -> tuple[Step, ...]:
    if value in ("none", "keep", ""):
        return ()
    # freq<N> is shorthand for freq:n=N
    steps = [parse_step(re.sub(r"^freq(\d+)", r"freq:n=\1", part), "drop") for part in value.split("+")]
    return tuple(sorted(set(steps), key=str))


def parse_value(key: str, value: str):
    """One axis value from its text form."""
    value = value.strip()
    if key == "view":
        return _parse_view(value)
    if key == "layers":
        return check_syntax(value)
    if key == "combine":
        if value not in COMBINES:
            raise HsError(f"unknown combine {value!r}{closest(value, COMBINES)}; choose mean or concat")
        return value
    if key in ("pool", "weights"):
        return parse_step(value, key)
    if key == "drop":
        return _parse_drop(value)
    if key == "post":
        if value in ("none", ""):
            return ()
        return tuple(parse_step(p, "post") for p in value.split("+"))
    raise HsError(f"unknown recipe key {key!r}{closest(key, AXES)}; keys are {', '.join(AXES)}")


def parse_recipe(text: str, base: Recipe | None = None) -> Recipe:
    """``layers=last;pool=mean`` -> Recipe; keys left out keep ``base``'s (or the default) value."""
    changes = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        key, eq, value = part.partition("=")
        if not eq:
            raise HsError(f"cannot read {part!r} in recipe {text!r}; write key=value pairs joined by ';'")
        changes[key.strip()] = parse_value(key.strip(), value)
    return replace(base or Recipe(), **changes)


def grid(axes: dict[str, list[str]], base: Recipe | None = None) -> list[Recipe]:
    """Cartesian product of the text values given per axis."""
    keys = [k for k, v in axes.items() if v]
    parsed = [[parse_value(k, v) for v in axes[k]] for k in keys]
    return [replace(base or Recipe(), **dict(zip(keys, combo))) for combo in itertools.product(*parsed)]
