"""The Markdown tables of a report: scores per task, family means, the best recipe per family and
the paired effects of compare.py. A family mean is given only for a recipe run on every task of that
family in the input; otherwise the cell says how many tasks it has, so no mean is over a subset."""
from __future__ import annotations

import numpy as np

from hsstore.tasks import TASKS

from ..evaluation.sts import rankdata
from ..results.table import label, varying_axes
from .compare import AxisEffects, Effect, SplitEffects
from .load import FAMILIES, SHORT_MEASURES, Run

DIAGNOSTICS = ("isotropy", "uniformity", "avg_cosine", "alignment")


def markdown(header: list[str], rows: list[list[str]], right_from: int) -> str:
    """A Markdown table; columns from ``right_from`` on are right-aligned (numbers)."""
    rule = ["---" if i < right_from else "---:" for i in range(len(header))]
    return "\n".join("| " + " | ".join(r) + " |" for r in [header, rule, *rows])


def fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}"


def fmt_delta(x: float | None, n: int) -> str:
    return "—" if x is None else f"{x:+.2f} (n={n})"


def family_tasks(runs: list[Run]) -> dict[str, list[str]]:
    """The tasks of each family present, in the task registry's order (the user's own after them, as read)."""
    present = {f: list(dict.fromkeys(r.task for r in runs if r.family == f)) for f in FAMILIES}
    return {f: [t for t in TASKS if t in present[f]] + [t for t in present[f] if t not in TASKS]
            for f in FAMILIES if present[f]}


def recipes(runs: list[Run]) -> list:
    return list(dict.fromkeys(r.recipe for r in runs))


def scores(runs: list[Run]) -> dict[tuple[str, str], float]:
    return {(r.key, r.task): r.score for r in runs}


def family_mean(score: dict, recipe: str, tasks: list[str]) -> tuple[float | None, int]:
    """The recipe's mean over ``tasks`` when it has them all (else None), and how many it has."""
    have = [score[(recipe, t)] for t in tasks if (recipe, t) in score]
    return (float(np.mean(have)) if len(have) == len(tasks) else None), len(have)


def _mean_cell(mean: float | None, have: int, total: int) -> str:
    return fmt(mean) if mean is not None else ("" if have == 0 else f"{have}/{total} tasks")


def family_means_table(runs: list[Run]) -> str:
    tasks, score, rs = family_tasks(runs), scores(runs), recipes(runs)
    axes = varying_axes(rs)
    header = axes + [f"{f} ({len(t)} tasks)" for f, t in tasks.items()]
    rows = [label(rc, axes) + [_mean_cell(*family_mean(score, str(rc), t), len(t)) for t in tasks.values()]
            for rc in rs]
    return markdown(header, rows, len(axes))


def best_per_family(runs: list[Run]) -> dict[str, tuple[str, float, int] | None]:
    """family -> (best recipe, its mean, recipes compared) among recipes run on all its tasks."""
    tasks, score = family_tasks(runs), scores(runs)
    out = {}
    for family, ts in tasks.items():
        complete = [(str(rc), m) for rc in recipes(runs) if (m := family_mean(score, str(rc), ts)[0]) is not None]
        best = max(complete, key=lambda c: c[1], default=None)  # the first seen wins a tie
        out[family] = (best[0], best[1], len(complete)) if best else None
    return out


def best_table(runs: list[Run]) -> str:
    tasks = family_tasks(runs)
    rows = []
    for family, best in best_per_family(runs).items():
        if best is None:
            rows.append([family, SHORT_MEASURES[family], "no recipe was run on all its tasks", "—",
                         str(len(tasks[family])), "0"])
        else:
            rows.append([family, SHORT_MEASURES[family], f"`{best[0]}`", fmt(best[1]), str(len(tasks[family])),
                         str(best[2])])
    return markdown(["family", "score", "best recipe", "mean", "tasks", "recipes on all tasks"], rows, 3)


def task_table(runs: list[Run], family: str) -> str:
    """Recipes (the axes that vary among them) by the family's tasks and their mean, best mean first."""
    tasks = family_tasks(runs)[family]
    mine = [r for r in runs if r.family == family]
    score, rs = scores(mine), recipes(mine)
    axes = varying_axes(rs)
    means = {str(rc): family_mean(score, str(rc), tasks) for rc in rs}
    rs.sort(key=lambda rc: (means[str(rc)][0] is None, -(means[str(rc)][0] or 0)))
    rows = [label(rc, axes) + [fmt(score.get((str(rc), t))) for t in tasks]
            + [_mean_cell(*means[str(rc)], len(tasks))] for rc in rs]
    return markdown(axes + tasks + ["mean"], rows, len(axes))


def effect_table(first: str, effects: list[Effect], families: list[str]) -> str:
    rows = [[f"`{e.label}`"] + [fmt_delta(e.mean(f), e.n(f)) for f in families]
            + [fmt_delta(e.mean(), e.n())] for e in effects]
    return markdown([first, *families, "all families"], rows, 1)


def axis_section(ax: AxisEffects, families: list[str], heading: str) -> str:
    text = [f"{heading} {ax.axis} (baseline `{ax.baseline}`)", ""]
    if ax.effects:
        text.append(effect_table(ax.axis, ax.effects, families))
    if ax.unpaired:
        text.append("")
        text.append("Never run beside the baseline with the other axes fixed: "
                    + ", ".join(f"`{v}`" for v in ax.unpaired) + ".")
    return "\n".join(text)


def split_table(split: SplitEffects, families: list[str]) -> str:
    """An axis's effects per value of the axis that changes their sign (compare.split_effects)."""
    order = list(dict.fromkeys(e.label for p in split.parts.values() for e in p.effects))
    cells = [(order.index(e.label), k, [f"`{e.label}`", f"`{split.by}={value}`"]
              + [fmt_delta(e.mean(f), e.n(f)) for f in families] + [fmt_delta(e.mean(), e.n())])
             for k, (value, part) in enumerate(split.parts.items()) for e in part.effects]
    rows = [row for _, _, row in sorted(cells, key=lambda c: c[:2])]  # by value of the axis, then of the split
    return markdown([split.axis, split.by, *families, "all families"], rows, 2)


def spearman(x: list[float], y: list[float]) -> float:
    rx, ry = rankdata(np.asarray(x)), rankdata(np.asarray(y))
    return float(np.corrcoef(rx, ry)[0, 1])


def diagnostics_table(runs: list[Run]) -> str | None:
    """Per task: Spearman's rho between each diagnostic and the score across the recipes that have it."""
    names = [d for d in DIAGNOSTICS if any(d in r.diagnostics for r in runs)]
    if not names:
        return None
    rows = []
    for family, tasks in family_tasks(runs).items():
        for task in tasks:
            mine = [r for r in runs if r.task == task]
            cells = []
            for d in names:
                pts = [(r.diagnostics[d], r.score) for r in mine if d in r.diagnostics]
                ok = len(pts) >= 3 and len({p[0] for p in pts}) > 1 and len({p[1] for p in pts}) > 1
                cells.append(f"{spearman(*zip(*pts)):+.2f} (n={len(pts)})" if ok else "—")
            rows.append([task, family, *cells])
    return markdown(["task", "family", *[f"rho({d}, score)" for d in names]], rows, 2)

