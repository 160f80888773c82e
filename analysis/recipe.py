"""Recipes: one choice on each axis of sentence-embedding extraction, and grids of them.

Compact form (docs/recipes.md), ``;``-separated ``key=value`` pairs, every key optional::

    layers=first-last;combine=mean;pool=mean;drop=special;weights=idf@wikitext2;post=whiten:k=128@wikitext2+l2

- layers:  last | first-last (1,L) | emb-last (0,L) | all | numbers and ranges: 0,4-6 | -1
- combine: mean | concat
- pool:    mean | max | first (alias cls) | last
- drop:    none | special | freq<N> (N most frequent tokens of Wikitext; freq = freq36) | punct | subword,
           joined with ``+``; ``keep`` is an alias of none
- weights: none | idf | sif[:a=0.001], with ``@REF`` for where statistics come from (default @task)
- post:    none | zscore | quantile | whiten[:mode=pca|zca][:k=N] | abtt[:d=N] | l2 | pca[:k=N], joined
           with ``+`` and applied in order; each may end with ``@REF`` (default @task)

REF is ``task`` (the task's own sentences) or the name of any corpus in the store, e.g. ``wikitext2``.
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, replace

from hsstore.errors import HsError
from hsstore.layers import check_syntax

POOLS = {"mean": "mean", "max": "max", "first": "first", "cls": "first", "last": "last"}
COMBINES = ("mean", "concat")
DROPS = ("special", "punct", "subword", "freq")
WEIGHTS = ("none", "idf", "sif")
POSTS = ("zscore", "quantile", "whiten", "abtt", "l2", "pca")
DEFAULT_FREQ = 36
AXES = ("layers", "combine", "pool", "drop", "weights", "post")  # the fields of a Recipe, in order


@dataclass(frozen=True)
class Step:
    """A named operation with parameters and the corpus its statistics come from."""
    name: str
    params: tuple[tuple[str, str], ...] = ()
    ref: str = "task"

    def param(self, key: str, default=None):
        return dict(self.params).get(key, default)

    def __str__(self) -> str:
        text = self.name + "".join(f":{k}={v}" for k, v in self.params)
        return text + (f"@{self.ref}" if self.ref != "task" else "")


def parse_step(text: str, allowed: tuple[str, ...], axis: str) -> Step:
    body, _, ref = text.partition("@")
    name, *args = body.split(":")
    if name not in allowed:
        raise HsError(f"unknown {axis} {name!r}; choose from {', '.join(allowed)}")
    params = []
    for arg in args:
        key, eq, value = arg.partition("=")
        if not eq or not value:
            raise HsError(f"cannot read {arg!r} in {axis} {text!r}; parameters look like k=128")
        params.append((key, value))
    return Step(name, tuple(params), ref or "task")


@dataclass(frozen=True)
class Recipe:
    layers: str = "last"
    combine: str = "mean"
    pool: str = "mean"
    drop: tuple[str, ...] = ()
    weights: Step = Step("none")
    post: tuple[Step, ...] = ()

    def __str__(self) -> str:
        return ";".join([f"layers={self.layers}", f"combine={self.combine}", f"pool={self.pool}",
                         f"drop={'+'.join(self.drop) or 'none'}", f"weights={self.weights}",
                         f"post={'+'.join(map(str, self.post)) or 'none'}"])

    @property
    def references(self) -> set[str]:
        """Corpora other than the task's own whose statistics this recipe needs."""
        refs = {s.ref for s in (self.weights, *self.post)}
        if any(d.startswith("freq") for d in self.drop):
            refs.add("wikitext2")
        return refs - {"task"}


def _parse_drop(value: str) -> tuple[str, ...]:
    if value in ("none", "keep", ""):
        return ()
    out = []
    for part in value.split("+"):
        name = "freq" if re.fullmatch(r"freq\d*", part) else part
        if name not in DROPS:
            raise HsError(f"unknown drop {part!r}; choose from special, punct, subword, freq<N> or none")
        out.append(f"freq{DEFAULT_FREQ}" if part == "freq" else part)
    return tuple(sorted(set(out)))


def parse_value(key: str, value: str):
    """One axis value from its text form."""
    value = value.strip()
    if key == "layers":
        return check_syntax(value)
    if key == "combine":
        if value not in COMBINES:
            raise HsError(f"unknown combine {value!r}; choose mean or concat")
        return value
    if key == "pool":
        if value not in POOLS:
            raise HsError(f"unknown pool {value!r}; choose from {', '.join(POOLS)}")
        return POOLS[value]
    if key == "drop":
        return _parse_drop(value)
    if key == "weights":
        step = parse_step(value, WEIGHTS, "weights")
        extra = [k for k, _ in step.params if not (step.name == "sif" and k == "a")]
        if extra:
            raise HsError(f"weights={step.name} takes {'a=<float>' if step.name == 'sif' else 'no parameters'}, "
                          f"not {', '.join(extra)}")
        try:
            float(step.param("a", 0.001))
        except ValueError:
            raise HsError(f"sif:a= needs a number such as 0.001, not {step.param('a')!r}") from None
        return step
    if key == "post":
        if value in ("none", ""):
            return ()
        return tuple(parse_step(p, POSTS, "post-processing") for p in value.split("+"))
    raise HsError(f"unknown recipe key {key!r}; keys are {', '.join(AXES)}")


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

