"""The task families, found in ``families/`` (one ``FAMILY`` declaration a module, family.py) on first use."""
from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from hsstore.errors import HsError
from hsstore.tasks import Task

from . import families as _package
from .family import Family, Option

_FAMILIES: dict[str, Family] = {}


def _load() -> dict[str, Family]:
    if not _FAMILIES:
        found = []
        for info in pkgutil.iter_modules(_package.__path__):
            found.append(importlib.import_module(f"{_package.__name__}.{info.name}").FAMILY)
        for family in sorted(found, key=lambda f: (f.position, f.name)):
            _FAMILIES[family.name] = family
    return _FAMILIES


def families() -> dict[str, Family]:
    """Every registered family by name, in table order."""
    return dict(_load())


def get_family(name: str) -> Family:
    try:
        return _load()[name]
    except KeyError:
        raise HsError(f"{name!r} is not a task family; families: {', '.join(_load())}") from None


def family_of(task: Task) -> Family:
    """The family that evaluates ``task``; a reference corpus (WikiText-2) is an error that says so."""
    if task.family not in _load():
        raise HsError(f"task {task.id} is a {task.family}, not an evaluation task; use it as a reference (@{task.id})")
    return _load()[task.family]


def groups() -> dict[str, Family]:
    """Report groups by name, each with the family that names and measures it, in table order."""
    return {f.report_group: _load()[f.report_group] for f in _load().values()}


def options() -> dict[str, Option]:
    """Every family's protocol options by name (families may share one), in table order."""
    out: dict[str, Option] = {}
    for family in _load().values():
        for option in family.options:
            if out.setdefault(option.name, option) is not option:
                raise RuntimeError(f"two families declare different options named {option.name!r}")
    return out


def default_options() -> dict[str, Any]:
    return {name: option.default for name, option in options().items()}
