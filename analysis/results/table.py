"""Results as people read them: a table of recipes x tasks (the axes that vary, then each task's main
score and their average) and the same as a heatmap (``--plot``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hsstore.errors import HsError
from hsstore.format.atomic import replace_file

from ..recipes.recipe import AXES, Recipe
from .result import Result


def varying_axes(recipes: list[Recipe]) -> list[str]:
    parts = [r.fields() for r in recipes]
    varying = [k for k in AXES if len({p[k] for p in parts}) > 1]
    return varying or ["layers", "pool"]


def label(recipe: Recipe, axes: list[str]) -> list[str]:
    parts = recipe.fields()
    return [parts[a] for a in axes]


def _score_grid(results: list[Result]) -> tuple[list[Recipe], list[str], np.ndarray]:
    """Recipes and task columns in first-seen order, and the main scores, with an ``avg`` column
    when there are several tasks."""
    recipes = list(dict.fromkeys(r.recipe for r in results))
    tasks = list(dict.fromkeys(r.task.id for r in results))
    score = {(r.recipe, r.task.id): r.main_score for r in results}
    grid = np.array([[score[(rc, t)] for t in tasks] for rc in recipes])
    if len(tasks) > 1:
        return recipes, tasks + ["avg"], np.hstack([grid, grid.mean(axis=1, keepdims=True)])
    return recipes, tasks, grid


def table(results: list[Result]) -> str:
    """Recipes as rows (only the axes that vary), tasks as columns, and their average."""
    recipes, columns, grid = _score_grid(results)
    axes = varying_axes(recipes)
    header = axes + columns
    rows = [header] + [label(recipe, axes) + [f"{v:.2f}" for v in values]
                       for recipe, values in zip(recipes, grid)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i < len(axes) else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in rows]
    return "\n".join(lines)


def recipe_line(results: list[Result]) -> str | None:
    """``recipe: ...`` when all results share one recipe (the table then shows only the default axes)."""
    recipes = list(dict.fromkeys(r.recipe for r in results))
    return f"recipe: {recipes[0]}" if len(recipes) == 1 else None


def plot(results: list[Result], path: Path) -> None:
    """A heatmap of main scores: recipes (the axes that vary) down, tasks and their average across."""
    try:
        import matplotlib  # an optional extra, and slow to import: only for --plot

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise HsError("--plot needs matplotlib: pip install matplotlib (or pip install -e '.[plot]')") from None
    recipes, columns, grid = _score_grid(results)
    axes = varying_axes(recipes)
    labels = [" ".join(f"{a}={v}" for a, v in zip(axes, label(rc, axes))) for rc in recipes]
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(columns) + 0.07 * max(map(len, labels)), 0.8 + 0.35 * len(recipes)))
    im = ax.imshow(grid, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(columns)), columns, rotation=45, ha="right")
    ax.set_yticks(range(len(recipes)), labels)
    for (i, j), v in np.ndenumerate(grid):
        ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=8,
                color="white" if v < grid.min() + 0.6 * (grid.max() - grid.min()) else "black")
    fig.colorbar(im, ax=ax, label="main score (x100)")
    n_tasks = len(columns) - (len(columns) > 1)
    ax.set_title(f"main scores of {len(recipes)} recipes on {n_tasks} task(s)")
    fig.tight_layout()
    # whole, by rename: a full disk leaves an earlier figure as it was
    replace_file(Path(path), lambda tmp: fig.savefig(tmp, format=Path(path).suffix[1:].lower() or "png", dpi=120))
    plt.close(fig)
