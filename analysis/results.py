"""Results as a table (recipes x tasks), MTEB-shaped JSON records, and CSV."""
from __future__ import annotations

import contextlib
import csv
import functools
import hashlib
import json
import platform
import re
import sys
from pathlib import Path

import numpy as np

from hsstore.paths import data_dir
from hsstore.tasks import MTEB_NAMES

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


# hs score key -> MTEB's (cosine similarity is hs's only STS similarity, so MTEB's model-similarity
# ``spearman``/``pearson`` equal the cosine ones); scores go on MTEB's 0-1 scale
MTEB_KEYS = {"sts": {"spearman_all": ("cosine_spearman", "spearman"), "pearson_all": ("cosine_pearson", "pearson")},
             "classification": {"accuracy": ("accuracy",), "f1": ("f1",)},
             "clustering": {"v_measure": ("v_measure",)}}


def mteb_scores(r: Result) -> dict:
    """The scores MTEB reports for this result, under MTEB's key names and on its 0-1 scale."""
    scores = _plain(r.scores)
    out = {mteb: scores[hs] / 100 for hs, names in MTEB_KEYS.get(r.task.family, {}).items() if hs in scores
           for mteb in names}
    out["main_score"] = out["cosine_spearman"] if r.task.family == "sts" else scores["main_score"] / 100
    return out


def mteb_name(r: Result, options: dict) -> tuple[str, str] | None:
    """MTEB's (task name, subset) when both the data and the protocol are MTEB's, else None."""
    name = MTEB_NAMES.get(r.task.id)
    if name is None:
        return None
    if r.task.family == "classification" and options.get("classification") != "mteb":
        return None  # SentEval's protocol on MTEB's data: not MTEB's figure
    return name


def records(results: list[Result], store) -> list[dict]:
    """hs's JSON: one record per (recipe, task) with MTEB's score keys plus hs's own fields."""
    versions = _versions()
    out = []
    for r in results:
        scores = {**mteb_scores(r), **{k: (v / 100 if isinstance(v, float) and k != "C" else v)
                                       for k, v in _plain(r.scores).items()
                                       if k not in ("subsets", "main_score") and k not in MTEB_KEYS.get(r.task.family, {})}}
        if "subsets" in r.scores:
            scores["subsets"] = {k: v / 100 for k, v in _plain(r.scores["subsets"]).items()}
        name, subset = MTEB_NAMES.get(r.task.id, (r.task.id, "default"))
        out.append({
            "task_name": name,
            "hs_task": r.task.id,
            "scores": {_split(r): [{"hf_subset": subset, "languages": ["eng-Latn"], **scores}]},
            "evaluation_time": r.seconds,
            "recipe": str(r.recipe),
            "diagnostics": _plain(r.diagnostics),
            "store": {"path": str(store.path), "identity": store.identity, "model": store.model["name"],
                      "weights": store.model.get("weights_sha256") or store.model.get("revision")},
            "versions": versions,
        })
    return out


def _split(r: Result) -> str:
    return "all" if r.task.protocol == "cv" else "test"


def _open_out(path: Path):
    """A text file to write, or stdout for ``-``."""
    return contextlib.nullcontext(sys.stdout) if str(path) == "-" else open(path, "w", newline="")


def write_json(results, store, path: Path) -> None:
    with _open_out(path) as fh:
        fh.write(json.dumps(records(results, store), indent=1) + "\n")


@functools.lru_cache(maxsize=None)
def task_data_digest(dataset: str) -> str:
    """A short SHA-256 of the task's data file: the dataset revision hs evaluated."""
    return hashlib.sha256((data_dir() / f"{dataset}.jsonl.gz").read_bytes()).hexdigest()[:16]


def _slug(text: str) -> str:
    """A folder-safe, readable form of a model name or recipe."""
    return re.sub(r"[^A-Za-z0-9.+=,_-]+", "-", text.replace(";", ",")).strip("-")


def mteb_model_meta(store, recipe: Recipe) -> dict:
    """model_meta.json: the model named from the store's model and the recipe; the revision is the store's identity."""
    model = store.model
    return {
        "name": f"hs/{_slug(Path(model['name']).name)}__{_slug(str(recipe))}",
        "revision": store.identity,
        "release_date": None, "languages": ["eng-Latn"], "n_parameters": None, "memory_usage_mb": None,
        "max_tokens": store.settings.get("max_length"), "embed_dim": None, "license": None, "open_weights": None,
        "public_training_code": None, "public_training_data": None, "framework": ["PyTorch"],
        "reference": None, "similarity_fn_name": "cosine", "use_instructions": False, "training_datasets": None,
        "adapted_from": model.get("path") or model["name"], "modalities": ["text"], "model_type": ["dense"],
        "loader": None, "loader_kwargs": {},
    }


def write_mteb_dir(results: list[Result], store, root: Path, options: dict) -> tuple[list[Path], list[str]]:
    """MTEB's results layout under ``root`` (a ``mteb.ResultCache`` folder):
    ``results/<model>/<revision>/<TaskName>.json`` plus ``model_meta.json``, one folder per recipe.

    Returns the files written and the hs tasks left out (not MTEB's data or protocol)."""
    written, skipped = [], []
    for r in results:
        name = mteb_name(r, options)
        if name is None:
            skipped.append(r.task.id)
            continue
        meta = mteb_model_meta(store, r.recipe)
        folder = root / "results" / meta["name"].replace("/", "__") / meta["revision"]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "model_meta.json").write_text(json.dumps(meta, indent=2))
        record = {"dataset_revision": f"hs-data:{task_data_digest(r.task.dataset)}", "task_name": name[0],
                  "mteb_version": None, "scores": {_split(r): [{"hf_subset": name[1], "languages": ["eng-Latn"],
                                                                **mteb_scores(r)}]},
                  "evaluation_time": r.seconds, "kg_co2_emissions": None}
        path = folder / f"{name[0]}.json"
        path.write_text(json.dumps(record, indent=2))
        written.append(path)
    return written, sorted(set(skipped))


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
    return "\n".join(lines)


def recipe_line(results: list[Result]) -> str | None:
    """``recipe: ...`` when all results share one recipe (the table then shows only the default axes)."""
    recipes = list(dict.fromkeys(r.recipe for r in results))
    return f"recipe: {recipes[0]}" if len(recipes) == 1 else None


def write_csv(results: list[Result], path: Path) -> None:
    with _open_out(path) as fh:
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
