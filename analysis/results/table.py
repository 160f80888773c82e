"""Results as people read them: a table of recipes x tasks (the axes that vary or are not at their
default, then each task's main score and their average) and the same as a heatmap (``--plot``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hsstore.errors import HsError

from ..recipes.recipe import AXES, Recipe
from .result import Result


def varying_axes(recipes: list[Recipe]) -> list[str]:
    parts = [r.fields() for r in recipes]
    varying = [k for k in AXES if len({p[k] for p in parts}) > 1]
    return varying or ["layers", "pool"]


def shown_axes(recipes: list[Recipe]) -> list[str]:
    """The axes a table of these recipes must show: those that vary and those every recipe sets away
    from its default (a lone ``drop=special;post=l2`` recipe is not ``layers=last pool=mean``)."""
    default = Recipe().fields()
    parts = [r.fields() for r in recipes]
    shown = [k for k in AXES if len({p[k] for p in parts}) > 1 or any(p[k] != default[k] for p in parts)]
    return shown or ["layers", "pool"]


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
    """Recipes as rows (the axes that vary or are not at their default), tasks as columns, and their average."""
    recipes, columns, grid = _score_grid(results)
    axes = shown_axes(recipes)
    header = axes + columns
    rows = [header] + [label(recipe, axes) + [f"{v:.2f}" for v in values]
                       for recipe, values in zip(recipes, grid)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i < len(axes) else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in rows]
    return "\n".join(lines)


def recipe_line(results: list[Result]) -> str | None:
    """``recipe: ...`` (every axis, canonical) when all results share one recipe."""
    recipes = list(dict.fromkeys(r.recipe for r in results))
    return f"recipe: {recipes[0]}" if len(recipes) == 1 else None


def _column_scaled(grid: np.ndarray) -> np.ndarray:
    """Each column mapped to [0, 1] from its lowest to its highest score (0.5 where all are equal), so
    that one task's spread does not flatten another's."""
    low, high = grid.min(axis=0), grid.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    return np.where(high > low, (grid - low) / span, 0.5)


def _pyplot():
    try:
        import matplotlib  # an optional extra, and slow to import: only for --plot

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise HsError("--plot needs matplotlib: pip install matplotlib (or pip install -e '.[plot]')") from None
    return plt


def plot(results: list[Result], path: Path) -> None:
    """``heatmap`` saved to ``path`` (PNG, PDF or SVG by extension), cropped to what it draws."""
    fig = heatmap(results)
    fig.savefig(path, dpi=120, bbox_inches="tight")  # tight: nothing cut off, whatever the label lengths
    _pyplot().close(fig)


def heatmap(results: list[Result]):
    """A heatmap of main scores: recipes (the axes shown in the table) down, tasks across and their
    average in a panel of its own; colours are scaled per column (a cell's colour compares recipes on
    that task only) and each cell prints its score to the table's two decimals."""
    plt = _pyplot()
    recipes, columns, grid = _score_grid(results)
    axes = shown_axes(recipes)
    default = Recipe().fields()  # a row names its recipe by the shown axes, leaving out those at their default
    labels = [" ".join(f"{a}={v}" for a, v in zip(axes, label(rc, axes)) if a in ("layers", "pool") or v != default[a])
              for rc in recipes]
    has_avg = columns[-1] == "avg"
    n_tasks = len(columns) - has_avg
    cell_w, cell_h, label_w = 0.75, 0.34, 0.065 * max(map(len, labels))
    fig = plt.figure(figsize=(label_w + cell_w * (len(columns) + 0.6 * has_avg) + 1.6, 1.4 + cell_h * len(recipes)))
    ratios = [n_tasks, 1] if has_avg else [n_tasks]
    gs = fig.add_gridspec(1, len(ratios) + 1, width_ratios=[*ratios, 0.25], wspace=0.08 if not has_avg else 0.15)
    scaled = _column_scaled(grid)
    cmap = plt.get_cmap("viridis")
    panels = [(slice(0, n_tasks), columns[:n_tasks])] + ([(slice(n_tasks, None), ["avg"])] if has_avg else [])
    image = None
    for k, (cols, names) in enumerate(panels):
        ax = fig.add_subplot(gs[0, k])
        image = ax.imshow(scaled[:, cols], cmap=cmap, vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
        if k == 0:
            ax.set_yticks(range(len(recipes)), labels)
        else:
            ax.set_yticks([])
            ax.set_xlabel("mean over\nthe tasks", fontsize=8)
        for (i, j), v in np.ndenumerate(grid[:, cols]):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if scaled[:, cols][i, j] < 0.6 else "black")
    bar = fig.colorbar(image, cax=fig.add_subplot(gs[0, -1]), ticks=[0, 1])
    bar.ax.set_yticklabels(["lowest", "highest"], fontsize=8)
    bar.set_label("score within its column", fontsize=8)
    scale = "colours per column" if len(recipes) > 1 else "one recipe, so one colour"
    fig.suptitle(f"main scores (x100) of {len(recipes)} recipe(s) on {n_tasks} task(s); {scale}", fontsize=10)
    return fig
