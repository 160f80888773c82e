"""Results as a table (recipes x tasks), MTEB-shaped JSON records, and CSV."""
from __future__ import annotations

import csv
import json
import platform
from pathlib import Path

import numpy as np

from .engine import Result
from .recipe import AXES, Recipe


def _versions() -> dict:
    import numba
    import sklearn
    import zarr

    import hsstore

    return {"hs": hsstore.__version__, "numpy": np.__version__, "numba": numba.__version__,
            "scikit-learn": sklearn.__version__, "zarr": zarr.__version__, "python": platform.python_version()}


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


def records(results: list[Result], store) -> list[dict]:
    """One record per (recipe, task), in MTEB's TaskResult shape (scores on its 0-1 scale)."""
    versions = _versions()
    out = []
    for r in results:
        scores = {k: (v / 100 if isinstance(v, float) and k != "C" else v)
                  for k, v in _plain(r.scores).items() if k != "subsets"}
        if "subsets" in r.scores:
            scores["subsets"] = {k: v / 100 for k, v in _plain(r.scores["subsets"]).items()}
        split = "all" if r.task.protocol == "cv" else "test"
        out.append({
            "task_name": r.task.aliases[0] if r.task.aliases else r.task.id,
            "hs_task": r.task.id,
            "scores": {split: [{"hf_subset": "default", "languages": ["eng-Latn"], **scores}]},
            "evaluation_time": r.seconds,
            "recipe": str(r.recipe),
            "diagnostics": _plain(r.diagnostics),
            "store": {"path": str(store.path), "identity": store.identity, "model": store.model["name"],
                      "weights": store.model.get("weights_sha256") or store.model.get("revision")},
            "versions": versions,
        })
    return out


def write_json(results, store, path: Path) -> None:
    path.write_text(json.dumps(records(results, store), indent=1))


def _varying_axes(recipes: list[Recipe]) -> list[str]:
    parts = [r.fields() for r in recipes]
    varying = [k for k in AXES if len({p[k] for p in parts}) > 1]
    return varying or ["layers", "pool"]


def _label(recipe: Recipe, axes: list[str]) -> list[str]:
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
    axes = _varying_axes(recipes)
    header = axes + columns
    rows = [header] + [_label(recipe, axes) + [f"{v:.2f}" for v in values]
                       for recipe, values in zip(recipes, grid)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i < len(axes) else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in rows]
    fixed = str(recipes[0]) if len(recipes) == 1 else None
    return (f"recipe: {fixed}\n" if fixed else "") + "\n".join(lines)


def write_csv(results: list[Result], path: Path) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["recipe", *AXES, "task", "main_score", "seconds"])
        for r in results:
            w.writerow([str(r.recipe), *_label(r.recipe, list(AXES)), r.task.id, f"{r.main_score:.4f}",
                        f"{r.seconds:.4f}"])


def plot(results: list[Result], path: Path) -> None:
    """A heatmap of main scores: recipes (the axes that vary) down, tasks and their average across."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        from hsstore.errors import HsError

        raise HsError("--plot needs matplotlib: pip install matplotlib (or pip install -e '.[plot]')") from None
    recipes, columns, grid = _score_grid(results)
    axes = _varying_axes(recipes)
    labels = [" ".join(f"{a}={v}" for a, v in zip(axes, _label(rc, axes))) for rc in recipes]
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
    fig.savefig(path, dpi=120)
    plt.close(fig)
