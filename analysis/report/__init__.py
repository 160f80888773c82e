"""``hs report``: Markdown tables and matplotlib figures from ``hs eval --json`` results files.

    write_report([Path("study.json")], Path("report"))   # report/report.md and its PNG figures
    read_frame(["study.json"])                            # the records as a pandas DataFrame

load.py reads and checks the records, compare.py pairs recipes that differ in one place,
tables.py and figures.py render them.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from ..evaluation.registry import get_family
from ..recipes.recipe import AXES
from .compare import axis_effects, prompt_effects, reference_effects, split_effects
from .figures import FIGURES, Drawn, pyplot
from .load import MEASURES, Run, load, read_frame, stores  # noqa: F401 - read_frame: a public entry point
from .tables import (axis_section, best_table, diagnostics_table, effect_table, family_means_table, family_tasks,
                     split_table, task_table)

REPORT = "report.md"


def _atomic_write(path: Path, write) -> None:
    """``write(tmp_path)``, then rename over ``path``: a crash never leaves half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def _header(runs: list[Run], paths: list[Path]) -> list[str]:
    shown = {r.family for r in runs}
    present = dict.fromkeys(get_family(r.task_family) for r in runs)
    merged = [f for f in present if f.report_group != f.name]  # families shown under another's heading
    versions = sorted({r.hs_version for r in runs if r.hs_version})
    options = sorted({r.options for r in runs if r.options})
    models = list(dict.fromkeys(r.model for r in runs))
    lines = [f"# hs report: {', '.join(models)}", "",
             f"From {', '.join(f'`{p}`' for p in paths)}: {len(runs)} results of "
             f"{len({r.key for r in runs})} recipes on {len({r.task for r in runs})} tasks"
             + (f", written by hs {', '.join(versions)}" if versions else "") + ".",
             "Protocol options: " + ("; ".join(f"`{o}`" for o in options) if options else
                                     "not recorded in the files (hs eval's options at the time)") + ".", "",
             "Scores are each task's main score: " + "; ".join(f"{f}: {m}" for f, m in MEASURES.items() if f in shown)
             + "".join(f" ({f.name} counts as {f.group})" for f in merged) + ". A family mean is shown only for a "
               "recipe run on every task of that family here; otherwise the cell says how many tasks it has.", ""]
    return lines


def _section(runs: list[Run], out: Path, prefix: str, h: str, svg: bool) -> tuple[list[str], list[Path]]:
    """One store's tables and figures; ``h`` is the heading prefix of its sections (## or ###)."""
    families = list(family_tasks(runs))
    text = [f"{h} Best recipe per family", "", best_table(runs), "",
            f"{h} Family means", "", family_means_table(runs), "", f"{h} Per task", ""]
    for family in families:
        text += [f"{h}# {family} ({MEASURES[family]})", "", task_table(runs, family), ""]
    text += [f"{h} Effect of each axis, the others fixed", "",
             "Each row: the mean score change from the baseline value to this value over pairs of runs on the "
             "same task whose recipes differ on this axis only (n = pairs), by family and over all pairs.", ""]
    fixed = []
    for axis in AXES:
        effects = axis_effects(runs, axis)
        if effects is None:
            fixed.append(f"{axis}={runs[0].recipe.fields()[axis]}")
        else:
            text += [axis_section(effects, families, f"{h}#"), ""]
            split = split_effects(runs, axis)
            if split is not None:
                text += [f"{h}# {axis} by {split.by}", "",
                         f"The effects of {axis} differ in sign across values of {split.by}, so the means above "
                         f"average opposite changes; here they are per {split.by}:", "",
                         split_table(split, families), ""]
    if fixed:
        text += ["The same in every result: " + ", ".join(f"`{f}`" for f in fixed) + ".", ""]
    extra = [("WikiText-2 (or another corpus) vs the task's own statistics", "step", reference_effects(runs),
              "Score with the step's statistics from the named corpus minus the score with them from the task's "
              "own sentences, the rest of the recipe fixed.", "no step was run both ways"),
             ("Prompt read-outs vs the plain recipe", "read-out", prompt_effects(runs),
              "Score of the prompt recipe minus its plain recipe's (view ctx with the same layers, pool=mean, "
              "no template filter); the first column names what the prompt recipe changes.",
              "no prompt read-out was run beside its plain recipe")]
    for title, first, effects, what, none in extra:
        text += [f"{h} {title}", "", (what + "\n\n" + effect_table(first, effects, families)) if effects
                 else f"None in the input: {none}.", ""]
    diag = diagnostics_table(runs)
    text += [f"{h} Diagnostics vs score", "",
             ("Spearman's rho across the recipes run on each task, between a diagnostic of the task's sentence "
              "vectors and the score.\n\n" + diag) if diag else
             "None in the input: run hs eval with --diagnostics.", ""]
    text += [f"{h} Figures", ""]
    written = []
    plt = pyplot()
    model = runs[0].model
    for stem, (title, draw) in FIGURES.items():
        result = draw(runs, model)
        if isinstance(result, Drawn):
            names = [f"{prefix}{stem}.{fmt}" for fmt in ("png", "svg") if fmt == "png" or svg]
            for name in names:
                _atomic_write(out / name, lambda tmp, fig=result.figure, fmt=Path(name).suffix[1:]:
                              fig.savefig(tmp, format=fmt, dpi=110, bbox_inches="tight"))
                written.append(out / name)
            plt.close(result.figure)
            text += [f"{h}# {title}", "", f"![{title}]({names[0]})", "", result.caption, ""]
        else:
            text += [f"{h}# {title}", "", f"Not drawn: {result.reason}.", ""]
    return text, written


def _remove_stale(out: Path, written: list[Path]) -> None:
    """Figures of an earlier report in ``out`` that this one did not draw would pass for its own."""
    pattern = re.compile(rf"(store\d+-)?({'|'.join(FIGURES)})\.(png|svg)")
    for path in out.iterdir():
        if pattern.fullmatch(path.name) and path not in written:
            path.unlink()


def write_report(paths: list[Path], out: Path, mixed_stores: bool = False, svg: bool = False) -> list[Path]:
    """report.md and its figures in ``out``; returns the files written (report.md first)."""
    pyplot()  # before any work: without matplotlib there is no report
    runs = load([Path(p) for p in paths], mixed_stores)
    out.mkdir(parents=True, exist_ok=True)
    text = _header(runs, paths)
    written: list[Path] = []
    found = stores(runs)
    for k, (identity, model, path) in enumerate(found, 1):
        mine = [r for r in runs if r.store == identity]
        if len(found) > 1:
            text += [f"## Store {k}: {model}", "", f"`{path}` (identity {identity}), {len(mine)} results.", ""]
        body, figs = _section(mine, out, f"store{k}-" if len(found) > 1 else "", "###" if len(found) > 1 else "##",
                              svg)
        text += body
        written += figs
    _remove_stale(out, written)
    report = out / REPORT
    _atomic_write(report, lambda tmp: tmp.write_text("\n".join(text).rstrip() + "\n"))
    return [report, *written]
