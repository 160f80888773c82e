"""The registry of recipe steps: every choice on the view, pool, drop, weights and post axes.

Each step is a class registered under its name. It declares its parameters (type, default, allowed
range), whether it is linear in the token vectors, whether it takes statistics from a reference
corpus (``@REF``), which token level it has a meaning at, and a one-line description. Recipe
parsing and validation (recipe.py), ``hs eval --help``, ``hs steps`` and the table in
docs/recipes.md (checked by tests/test_steps.py) all read this registry.

Adding a step is one class in the module of its axis, decorated with ``@register``:

- post (analysis/embedding/post.py): ``fit(X)`` / ``transform(X)``; the parameters arrive as keyword arguments.
- weights (analysis/embedding/tokens.py, subclass ``Weights``): ``vocab_weights(stats)`` returns a weight per
  vocabulary id from REF's counts, or ``token_weights(stream, refs)`` one per token (the stream
  carries ids, offsets, stored kinds and its corpus, for weights read from elsewhere in the store).
- drop (analysis/embedding/tokens.py): ``dropped(stream, refs)`` returns a bool per token (True = leave out).
- pool (analysis/embedding/pooling.py, subclass ``Pooling``): ``KERNEL`` (mean, max, first or last) and
  optionally ``prepare(weights, stream)`` (e.g. keep only one token kind) and
  ``finish(X, weights, stream)`` around the numba kernel.
- view (analysis/embedding/views.py, subclass ``View``): ``key(store)``, ``table(pooler, layer)`` (V, H) for a
  static view, optionally ``stream(corpus)`` (the token ids it is indexed by) and ``unseen``.
- table (analysis/embedding/tables.py, subclass ``TableStep``): ``apply(table, store)`` returns a static view's
  table transformed (fitted on the table itself, before any pooling); written after the view, ``alone>tablepca``.

A step that changes numbers must be fully named by its name and parameters (``str(step)``): that
string keys the pooled-matrix cache.

then run ``hs steps --markdown`` and paste its table into docs/recipes.md (a test compares them).
"""
from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

from hsstore.errors import HsError

AXIS_NAMES = {"view": "view", "table": "token-table step", "pool": "pooling", "drop": "token filter",
              "weights": "token weights", "post": "post-processing"}
# modules whose classes register themselves; imported on first use of the registry
_STEP_MODULES = tuple(f"analysis.embedding.{m}" for m in ("views", "tables", "pooling", "tokens", "post", "prompts"))
_REGISTRY: dict[str, dict[str, type]] = {axis: {} for axis in AXIS_NAMES}
_ALIASES: dict[str, dict[str, str]] = {axis: {} for axis in AXIS_NAMES}
_loaded = False


def closest(word: str, choices) -> str:
    """' (did you mean X?)' for the nearest valid name, or ''."""
    near = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return f" (did you mean {near[0]!r}?)" if near else ""


@dataclass(frozen=True)
class Param:
    """One parameter of a step: ``name=value`` in a recipe."""
    name: str
    type: type = int  # int, float or str
    default: Any = None
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    help: str = ""
    check: Callable[[str], Any] | None = None  # a validator for str parameters (e.g. a layer spec)

    def convert(self, text: str, where: str):
        if self.choices:
            if text not in self.choices:
                raise HsError(f"{where}: {self.name}= must be one of {', '.join(self.choices)}, not {text!r}"
                              + closest(text, self.choices))
            return text
        if self.type is str:
            return self.check(text) if self.check else text
        try:
            value = self.type(text)
        except ValueError:
            kind = "a whole number" if self.type is int else "a number"
            raise HsError(f"{where}: {self.name}= needs {kind}, not {text!r}") from None
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            raise HsError(f"{where}: {self.name}={text} is out of range (must be {self.range_text()})")
        return value

    def range_text(self) -> str:
        if self.choices:
            return "|".join(self.choices)
        if self.low is not None and self.high is not None:
            return f"{self.low:g}..{self.high:g}"
        if self.low is not None:
            return f">= {self.low:g}"
        return "" if self.high is None else f"<= {self.high:g}"

    def synopsis(self) -> str:
        shown = self.range_text() if self.choices else (self.default if self.default is not None else "N")
        return f"[:{self.name}={shown}]"


class StepType:
    """Base of every registered step; subclasses set the class attributes below."""
    AXIS: ClassVar[str] = ""
    NAME: ClassVar[str] = ""
    ALIASES: ClassVar[tuple[str, ...]] = ()
    PARAMS: ClassVar[tuple[Param, ...]] = ()
    LINEAR: ClassVar[bool] = True  # linear in the token vectors: layer mixes reuse per-layer results
    REF: ClassVar[str | None] = None  # default reference corpus if the step takes @REF, else None
    LEVELS: ClassVar[tuple[str, ...]] = ("subword", "word")  # token levels the step has a meaning at
    DESCRIPTION: ClassVar[str] = ""

    @classmethod
    def synopsis(cls) -> str:
        text = cls.NAME + "".join(p.synopsis() for p in cls.PARAMS)
        return text + (f"[@{cls.REF}]" if cls.REF else "")


def register(cls):
    """Class decorator: adds a step to the registry under its NAME and ALIASES."""
    assert cls.AXIS in _REGISTRY and cls.NAME and cls.DESCRIPTION, cls
    _REGISTRY[cls.AXIS][cls.NAME] = cls
    for alias in cls.ALIASES:
        _ALIASES[cls.AXIS][alias] = cls.NAME
    return cls


def _load() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in _STEP_MODULES:
            importlib.import_module(module)


def steps(axis: str) -> dict[str, type]:
    """Registered steps of an axis, by name, in registration order."""
    _load()
    return _REGISTRY[axis]


def aliases(axis: str) -> dict[str, str]:
    _load()
    return _ALIASES[axis]


def lookup(axis: str, name: str) -> type:
    """The step class of ``name`` (or an alias of it) on ``axis``; an unknown name is an error."""
    table, alias = steps(axis), aliases(axis)
    if name in alias:
        name = alias[name]
    if name not in table:
        raise HsError(f"unknown {AXIS_NAMES[axis]} {name!r}{closest(name, [*table, *alias])}; "
                      f"choose from {', '.join(table)} (hs steps lists them)")
    return table[name]


@dataclass(frozen=True)
class Step:
    """A parsed step: canonical name, parameters given (typed, in declaration order) and reference."""
    axis: str
    name: str
    params: tuple[tuple[str, Any], ...] = ()
    ref: str | None = None

    @property
    def cls(self) -> type:
        return lookup(self.axis, self.name)

    @property
    def kwargs(self) -> dict:
        """Every declared parameter, the given value or its default."""
        given = dict(self.params)
        return {p.name: given.get(p.name, p.default) for p in self.cls.PARAMS}

    def param(self, key: str, default=None):
        return dict(self.params).get(key, default)

    def build(self):
        """An instance of the step class with this step's parameters (and ``ref``, its reference)."""
        obj = self.cls(**self.kwargs)
        obj.ref = self.ref
        return obj

    def __str__(self) -> str:
        text = self.name + "".join(f":{k}={v:g}" if isinstance(v, float) else f":{k}={v}" for k, v in self.params)
        return text + (f"@{self.ref}" if self.ref and self.ref != self.cls.REF else "")


def parse_step(text: str, axis: str) -> Step:
    """``name[:key=value]...[@REF]`` on ``axis``, checked against the registry."""
    body, at, ref = text.strip().partition("@")
    name, *args = body.split(":")
    cls = lookup(axis, name)
    if at and not cls.REF:
        raise HsError(f"{AXIS_NAMES[axis]} {cls.NAME!r} takes no @REF (it uses no corpus statistics)")
    if at and not ref:
        raise HsError(f"{text!r}: @ needs a corpus name after it, e.g. @wikitext2")
    declared = {p.name: p for p in cls.PARAMS}
    given = {}
    for arg in args:
        key, eq, value = arg.partition("=")
        if not eq or not value:
            raise HsError(f"cannot read {arg!r} in {AXIS_NAMES[axis]} {text!r}; parameters look like k=128")
        if key not in declared:
            takes = ", ".join(declared) or "no parameters"
            raise HsError(f"{AXIS_NAMES[axis]} {cls.NAME!r} has no parameter {key!r}{closest(key, declared)}; "
                          f"it takes {takes}")
        given[key] = declared[key].convert(value, f"{cls.NAME}")
    params = tuple((p.name, given[p.name]) for p in cls.PARAMS if p.name in given)
    return Step(axis, cls.NAME, params, (ref or cls.REF) if cls.REF else None)


def table_markdown() -> str:
    """The step table of docs/recipes.md, generated from the registry."""
    lines = ["| axis | step | parameters | @REF | linear | meaning |", "| --- | --- | --- | --- | --- | --- |"]
    for axis in AXIS_NAMES:
        alias = aliases(axis)
        for name, cls in steps(axis).items():
            names = f"`{name}`" + "".join(f", `{a}`" for a, n in alias.items() if n == name)
            params = "; ".join(f"`{p.name}` {p.type.__name__} {p.range_text()}".rstrip()
                               + ("" if p.default is None else f" default {p.default}")
                               + (f": {p.help}" if p.help else "") for p in cls.PARAMS).replace("|", "\\|")
            ref = f"default `{cls.REF}`" if cls.REF else ""
            levels = "" if len(cls.LEVELS) > 1 else f" ({cls.LEVELS[0]} level only)"
            lines.append(f"| {axis} | {names} | {params} | {ref} | {'yes' if cls.LINEAR else 'no'} | "
                         f"{cls.DESCRIPTION}{levels} |")
    return "\n".join(lines)


def listing() -> str:
    """Plain-text listing for ``hs steps``."""
    out = []
    for axis in AXIS_NAMES:
        out.append(f"{axis} ({AXIS_NAMES[axis]}):")
        alias = aliases(axis)
        for name, cls in steps(axis).items():
            also = [a for a, n in alias.items() if n == name]
            out.append(f"  {cls.synopsis():42s} {cls.DESCRIPTION}" + (f" (alias: {', '.join(also)})" if also else ""))
    return "\n".join(out)


def help_line(axis: str) -> str:
    """The choices of an axis for a ``--help`` line."""
    return " | ".join(cls.synopsis() for cls in steps(axis).values())
