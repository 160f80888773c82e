"""Reading ``hs eval --json`` files back: one ``Run`` per record, checked before anything is drawn.

A report compares recipes, so it refuses what would make a comparison wrong: a file that is not hs
results, a record it cannot read, two records of one recipe on one task with different scores, one
task evaluated under different protocol options, and (unless asked for) results of several stores.
"""
from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from hsstore.errors import HsError, StoreError
from hsstore.tasks import TASKS

from ..evaluation.family import Family
from ..evaluation.registry import families, family_of, get_family, groups
from ..recipes.recipe import Recipe, parse_recipe
from ..results.frame import frame, row

canonical = functools.lru_cache(maxsize=None)(parse_recipe)  # recipes repeat over tasks; Recipe is immutable

# the report's families are the task families' report groups (a family may be shown with another:
# trained pair classification with classification), in the registry's order
FAMILIES = tuple(groups())
MEASURES = {name: family.measure for name, family in groups().items()}
SHORT_MEASURES = {name: family.short_measure for name, family in groups().items()}
REQUIRED = ("hs_task", "scores", "recipe", "store")
OPTION_KEYS = ("options", "protocol")  # where a results file may record its evaluation protocol


def _task(path: Path, i: int, rec: dict) -> tuple[Family, str]:
    """The record's task family and identity: a benchmark task's family from the registry, a user's
    task's (dumped from a task file) from the record's ``task``, which hs eval writes."""
    task, about = rec["hs_task"], rec.get("task")
    about = about if isinstance(about, dict) else {}
    if task in TASKS and TASKS[task].family != "corpus":
        return family_of(TASKS[task]), str(about.get("identity", ""))
    bundled = str(about.get("origin", "")).startswith("data/")  # a benchmark task this hs does not know
    if isinstance(task, str) and about.get("family") in families() and about.get("identity") and not bundled:
        return get_family(about["family"]), str(about["identity"])
    raise HsError(f"{path} record {i}: {task!r} is not an evaluation task of this hs (`hs tasks` lists them), and "
                  f"the record names no task family of a task of your own")


@dataclass(frozen=True)
class Run:
    """One (recipe, task) evaluation as a report sees it; ``score`` is the main score x100."""
    task: str
    family: str
    recipe: Recipe
    score: float
    store: str  # the store's identity
    model: str
    path: str  # the store's path when it was evaluated
    options: str = ""  # the protocol options as canonical JSON, "" when the file does not record them
    diagnostics: dict = field(default_factory=dict, compare=False)
    where: str = ""  # FILE record N, for messages
    hs_version: str = ""
    task_family: str = ""  # the task's own family (``family`` is its report group)
    task_identity: str = ""  # the task data's identity, "" in files written before hs recorded it
    seconds: float | None = field(default=None, compare=False)  # the record's evaluation_time

    @property
    def key(self) -> str:
        return str(self.recipe)


def _not_results(path: Path, why: str) -> HsError:
    return HsError(f"{path} is not an hs results file ({why}); give files written by `hs eval --json FILE`")


def _main_score(path: Path, i: int, scores) -> float:
    if not isinstance(scores, dict) or len(scores) != 1:
        raise _not_results(path, f"record {i}: 'scores' must hold one split")
    (entries,) = scores.values()
    if not isinstance(entries, list) or not entries or not isinstance(entries[0], dict):
        raise _not_results(path, f"record {i}: its split holds no score list")
    value = entries[0].get("main_score")
    # hs writes MTEB's 0-1 scale: a value outside [-1, 1] is another scale or another tool's file
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or abs(value) > 1:
        raise _not_results(path, f"record {i}: main_score {value!r} is not a number on the 0-1 scale")
    return 100 * float(value)


def _run(path: Path, i: int, rec) -> Run:
    if not isinstance(rec, dict):
        raise _not_results(path, f"record {i} is not an object")
    missing = [k for k in REQUIRED if k not in rec]
    if missing:
        raise _not_results(path, f"record {i} has no {', '.join(map(repr, missing))}")
    task = rec["hs_task"]
    family, identity = _task(path, i, rec)
    store = rec["store"]
    if not isinstance(store, dict) or not {"identity", "model"} <= store.keys():
        raise _not_results(path, f"record {i}: 'store' lacks identity and model")
    try:
        recipe = canonical(str(rec["recipe"]))
    except HsError as exc:
        raise HsError(f"{path} record {i}: cannot read its recipe: {exc}") from None
    options = next((rec[k] for k in OPTION_KEYS if k in rec), None)
    diagnostics = {k: float(v) for k, v in (rec.get("diagnostics") or {}).items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
    return Run(task, family.report_group, recipe, _main_score(path, i, rec["scores"]), str(store["identity"]),
               str(store["model"]), str(store.get("path", "")),
               json.dumps(options, sort_keys=True) if options is not None else "", diagnostics, f"{path} record {i}",
               str((rec.get("versions") or {}).get("hs", "")), family.name, identity,
               _seconds(rec.get("evaluation_time")))


def _seconds(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def read_file(path: Path) -> list[Run]:
    if not path.is_file():
        raise StoreError(f"results file {path} does not exist")
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise _not_results(path, f"not JSON: {exc}") from None
    if not isinstance(data, list) or not data:
        raise _not_results(path, "expected a non-empty JSON array of records")
    return [_run(path, i, rec) for i, rec in enumerate(data)]


def _check_options(runs: list[Run]) -> None:
    seen: dict[tuple[str, str], Run] = {}
    for r in runs:
        first = seen.setdefault((r.store, r.task), r)
        if first.options != r.options:
            raise HsError(f"task {r.task} was evaluated under different protocol options ({first.where}: "
                          f"{first.options or 'none recorded'}; {r.where}: {r.options or 'none recorded'}); "
                          "report them separately")
        if first.task_identity and r.task_identity and first.task_identity != r.task_identity:
            raise HsError(f"task {r.task} was evaluated on different data ({first.where}: task identity "
                          f"{first.task_identity}; {r.where}: {r.task_identity}); report them separately")


def _deduplicate(runs: list[Run]) -> list[Run]:
    """One run per (store, recipe, task); the same run twice (overlapping files) counts once."""
    seen: dict[tuple[str, str, str], Run] = {}
    for r in runs:
        first = seen.setdefault((r.store, r.key, r.task), r)
        if first is not r and abs(first.score - r.score) > 1e-9:
            raise HsError(f"{first.where} and {r.where} give recipe {r.key} on {r.task} different scores "
                          f"({first.score:.4f} and {r.score:.4f}); keep one of them")
    return list(seen.values())


def stores(runs: list[Run]) -> list[tuple[str, str, str]]:
    """(identity, model, path) of each store, in first-seen order (a store moved since counts once)."""
    seen: dict[str, tuple[str, str, str]] = {}
    for r in runs:
        seen.setdefault(r.store, (r.store, r.model, r.path))
    return list(seen.values())


def load(paths: list[Path], mixed_stores: bool = False) -> list[Run]:
    """Every run of the files, checked; several stores only with ``mixed_stores``."""
    if not paths:
        raise HsError("give at least one results file (hs eval --json FILE writes one)")
    runs = [r for p in paths for r in read_file(Path(p))]
    found = list(dict.fromkeys((r.store, r.model) for r in runs))
    if len(found) > 1 and not mixed_stores:
        names = "; ".join(f"{model} (store identity {identity})" for identity, model in found)
        raise HsError(f"the results come from {len(found)} stores: {names}; report each store separately, "
                      "or pass --mixed-stores for one section per store")
    _check_options(runs)
    return _deduplicate(runs)


def read_frame(paths: list[Path]):
    """``hs eval --json`` files as the pandas DataFrame of ``Results.to_frame()`` (results/frame.py):
    checked as a report checks them (the same run twice counts once), several stores allowed (the
    ``store`` column tells them apart)."""
    return frame([row(r.model, r.store, r.recipe, r.task, r.score, r.seconds, r.diagnostics)
                  for r in load([Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)],
                                mixed_stores=True)])
