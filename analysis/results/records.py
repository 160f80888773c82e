"""hs's results files: one JSON record per (recipe, task) with MTEB's score keys plus hs's own fields
(``--json``), and one CSV row per run (``--csv``)."""
from __future__ import annotations

import contextlib
import csv
import json
import platform
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np

from hsstore.tasks import MTEB_NAMES
from hsstore.version import __version__

from ..evaluation.registry import family_of
from ..recipes.recipe import AXES
from .mteb import mteb_scores, plain, split_name
from .result import Result
from .table import label


def _versions() -> dict:
    # the installed distributions' versions: asking needs no import of scikit-learn (half a second)
    return {"hs": __version__, "numpy": np.__version__, "numba": version("numba"), "scikit-learn": version("scikit-learn"),
            "zarr": version("zarr"), "python": platform.python_version()}


def records(results: list[Result], store) -> list[dict]:
    """hs's JSON: one record per (recipe, task) with MTEB's score keys plus hs's own fields."""
    versions = _versions()
    out = []
    for r in results:
        mteb_keys = family_of(r.task).mteb_keys
        scores = {**mteb_scores(r), **{k: (v / 100 if isinstance(v, float) and k != "C" else v)
                                       for k, v in plain(r.scores).items()
                                       if k not in ("subsets", "main_score") and k not in mteb_keys}}
        if "subsets" in r.scores:
            scores["subsets"] = {k: v / 100 for k, v in plain(r.scores["subsets"]).items()}
        name, subset = MTEB_NAMES.get(r.task.id, (r.task.id, "default"))
        out.append({
            "task_name": name,
            "hs_task": r.task.id,
            "task": r.task.provenance(),  # family, identity (a content hash) and origin of the task's data
            "scores": {split_name(r): [{"hf_subset": subset, "languages": ["eng-Latn"], **scores}]},
            "evaluation_time": r.seconds,
            "recipe": str(r.recipe),
            "diagnostics": plain(r.diagnostics),
            **({"warnings": list(r.warnings)} if r.warnings else {}),
            "store": {"path": str(store.path), "identity": store.identity, "model": store.model["name"],
                      "weights": store.model.get("weights_sha256") or store.model.get("revision")},
            "versions": versions,
        })
    return out


def _open_out(path: Path):
    """A text file to write, or stdout for ``-``."""
    return contextlib.nullcontext(sys.stdout) if str(path) == "-" else open(path, "w", newline="")


def write_json(results, store, path: Path) -> None:
    with _open_out(path) as fh:
        fh.write(json.dumps(records(results, store), indent=1) + "\n")


def diagnostic_names(results: list[Result]) -> list[str]:
    """The diagnostics any of the results carry, in first-seen order."""
    return list(dict.fromkeys(k for r in results for k in r.diagnostics))


def write_csv(results: list[Result], path: Path) -> None:
    """One row per run: the recipe, each axis, the task, its main score and time, then the diagnostics
    when they were computed (an empty cell where a run lacks one, e.g. alignment off STS)."""
    diagnostics = diagnostic_names(results)
    with _open_out(path) as fh:
        w = csv.writer(fh)
        w.writerow(["recipe", *AXES, "task", "main_score", "seconds", *diagnostics])
        for r in results:
            w.writerow([str(r.recipe), *label(r.recipe, list(AXES)), r.task.id, f"{r.main_score:.4f}",
                        f"{r.seconds:.4f}", *(_cell(r.diagnostics.get(d)) for d in diagnostics)])


def _cell(value) -> str:
    if value is None:
        return ""
    return str(value) if isinstance(value, (int, np.integer)) else f"{value:.6g}"
