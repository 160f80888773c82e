"""Results as a pandas DataFrame: one row per (recipe, task), one column per recipe axis.

``Results.to_frame()`` (what ``Engine.run`` returns) and ``analysis.report.read_frame(paths)`` (``hs
eval --json`` files read back) build the same columns from ``row``, so a frame of a run in Python and
one of its results file compare column by column. Scores are x100, as hs's tables print them.
"""
from __future__ import annotations

from hsstore.errors import HsError
from hsstore.tasks import TASKS

from ..recipes.recipe import AXES, Recipe
from .result import Result

FIXED = ("model", "store", "recipe", *AXES, "task", "family", "main_score", "seconds")  # then the diagnostics


def row(model: str | None, store: str | None, recipe: Recipe, task: str, score: float, seconds: float | None,
        diagnostics: dict) -> dict:
    """One run as a frame row: the store's model and identity, the recipe and each of its axes, the
    task and its family, the main score x100, the evaluation's seconds and its diagnostics."""
    return {"model": model, "store": store, "recipe": str(recipe), **recipe.fields(), "task": task,
            "family": TASKS[task].family, "main_score": score, "seconds": seconds, **diagnostics}


def frame(rows: list[dict]):
    """A DataFrame of ``row`` dicts: the fixed columns first, then every diagnostic any row has."""
    try:
        import pandas as pd  # an optional extra: only for frames
    except ImportError:
        raise HsError("results as a DataFrame need pandas: pip install pandas (or pip install -e '.[frame]')") from None
    extra = list(dict.fromkeys(k for r in rows for k in r if k not in FIXED))
    return pd.DataFrame(rows, columns=[*FIXED, *extra])


class Results(list):
    """The results of ``Engine.run``: a list of ``Result`` in recipe-major order, with the store they
    came from and ``to_frame()``."""

    def __init__(self, items=(), store=None):
        super().__init__(items)
        self.store = store

    def to_frame(self):
        """A pandas DataFrame, one row per result (module docstring)."""
        model = self.store.model["name"] if self.store is not None else None
        identity = self.store.identity if self.store is not None else None
        return frame([row(model, identity, r.recipe, r.task.id, r.main_score, r.seconds, r.diagnostics)
                      for r in self])

    def __repr__(self) -> str:
        recipes, tasks = len({r.recipe for r in self}), len({r.task.id for r in self})
        where = f" from {self.store.path}" if self.store is not None else ""
        return f"<Results: {len(self)} runs, {recipes} recipe(s) x {tasks} task(s){where}; .to_frame() for a DataFrame>"


def to_frame(results: list[Result], store=None):
    """A DataFrame of any list of results (``store``: what they were evaluated on, for its columns)."""
    return Results(results, store).to_frame()
