"""``hs eval``: recipes x tasks from a store, on the CPU, without the model.

Its flags are read from two declarations: the recipe axes (analysis/recipes/recipe.py, with the
step registry's choices) and the task families' protocol options (analysis/evaluation/families/).
"""
from __future__ import annotations

import json
from pathlib import Path

import click

import hsstore
from analysis.evaluation.registry import options as family_options
from analysis.recipes.recipe import AXES, Recipe, grid, parse_recipe
from analysis.recipes.steps import help_line
from hsstore.dump.st_modules import model_recipe
from hsstore.errors import HsError
from hsstore.tasks.presets import PRESETS, get_preset

from .params import STORE
from .preset_cmd import run_preset_command

# each recipe axis's flag help (the registry supplies the steps); every axis is a repeatable flag
AXIS_HELP = {
    "view": lambda: f"Where token vectors come from: {help_line('view')}; mix as ctx*0.8+avg*0.2.",
    "layers": lambda: "last | first-last | emb-last | all | 0,4-6 (repeatable: a grid axis).",
    "combine": lambda: "How several layers combine: mean | concat.",
    "pool": lambda: f"{help_line('pool')}.",
    "drop": lambda: f"Tokens to drop, joined by +: none | {help_line('drop')}.",
    "weights": lambda: f"Token weights: {help_line('weights')}.",
    "post": lambda: f"Post-processing chain, joined by + and applied in order: none | {help_line('post')}.",
}


def _default_text(option) -> str:
    """``[default: 5; 3 with --preset study]``: the option's default, and the presets that set their own."""
    overrides = [f"{p.options[option.name]} with --preset {p.name}" for p in PRESETS.values() if option.name in p.options]
    return f" [default: {'; '.join([str(option.default), *overrides])}]"


def _with_declared_options(command):
    """The recipe-axis flags and the task families' protocol flags, in that order, on ``command``."""
    for option in reversed(list(family_options().values())):
        kind = click.Choice(option.choices) if option.choices else click.IntRange(min=option.minimum)
        command = click.option(option.flag, option.name, type=kind, default=None,
                               help=option.help + _default_text(option))(command)
    for axis in reversed(AXES):
        command = click.option(f"--{axis}", axis, multiple=True, help=AXIS_HELP[axis]())(command)
    return command


def _read_grid(path: Path) -> tuple[list[str], dict[str, list[str]]]:
    """A grid file: JSON ``{"pool": ["mean", "max"], ...}`` (axes) or text, one recipe a line."""
    if not path.exists():
        raise HsError(f"grid file {path} does not exist")
    text = path.read_text()
    if path.suffix == ".json":
        try:
            axes = json.loads(text)
        except ValueError as exc:
            raise HsError(f"grid file {path} is not valid JSON ({exc})") from None
        if not isinstance(axes, dict) or not all(isinstance(v, list) for v in axes.values()):
            raise HsError(f'grid file {path} must map axes to lists, e.g. {{"pool": ["mean", "max"]}}')
        return [], {k: [str(x) for x in v] for k, v in axes.items()}
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")], {}


def build_recipes(recipe_strings, grid_file, axis_values: dict[str, tuple[str, ...]]):
    """The recipes of ``-r``, the grid file and the axis flags: each base recipe times the axes' grid."""
    strings, file_axes = _read_grid(grid_file) if grid_file else ([], {})
    bases = [parse_recipe(s) for s in (*recipe_strings, *strings)] or [Recipe()]
    axes = {**file_axes, **{k: list(v) for k, v in axis_values.items() if v}}
    recipes = [r for base in bases for r in (grid(axes, base) if axes else [base])]
    return list(dict.fromkeys(recipes))


@click.command()
@click.argument("store", type=STORE)
@click.option("--task", "-t", "tasks", multiple=True, metavar="TASK",
              help="Task to evaluate, a benchmark task or the store's own (`hs tasks STORE` lists both; "
                   "repeatable) [default: every evaluation task in the store].")
@click.option("--preset", metavar="NAME",
              help="Run a preset's grid (study: the reference study's, docs/study.md) on its tasks instead of "
                   "--task/--recipe/--grid; with --json FILE an interrupted run continues where it stopped. "
                   "Caches pooled matrices in memory only, one task at a time.")
@click.option("--family", "families", multiple=True, metavar="FAMILY",
              help="With --preset: only this family of its grid (repeatable), e.g. --family sts --family clustering "
                   "for a store without the classification corpora.")
@click.option("--recipe", "-r", "recipes", multiple=True, metavar="RECIPE",
              help="A whole recipe, e.g. 'layers=first-last;pool=mean;post=whiten@wikitext2' (repeatable); "
                   "'model' is the model's own sentence-transformers pooling and normalisation.")
@click.option("--grid", "grid_file", type=click.Path(path_type=Path),
              help="File of recipes (one a line) or a JSON object of axis -> list of values.")
@_with_declared_options
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
              help="Evaluations run at once, each single-threaded [default: all cores]. Results do not depend on it.")
@click.option("--scheduler", metavar="ADDRESS",
              help="Run the evaluations on dask.distributed workers: local:N (N worker processes here) or a "
                   "scheduler's address (tcp://host:8786; workers open the store from its path). Same scores.")
@click.option("--diagnostics", is_flag=True, help="Also report isotropy, alignment and uniformity (--preset always does).")
@click.option("--json", "json_out", type=click.Path(path_type=Path), metavar="FILE",
              help="Write hs's JSON: one record per run, MTEB score keys plus recipe, store and versions ('-': stdout).")
@click.option("--csv", "csv_out", type=click.Path(path_type=Path), metavar="FILE",
              help="Write one CSV row per run ('-': stdout).")
@click.option("--mteb-dir", type=click.Path(path_type=Path, file_okay=False), metavar="DIR",
              help="Write MTEB's results layout (DIR/results/<model>/<revision>/<Task>.json and model_meta.json), "
                   "which mteb.ResultCache(DIR) loads; tasks that are not MTEB's are left out.")
@click.option("--plot", "plot_out", type=click.Path(path_type=Path),
              help="Draw the table as a heatmap (PNG, PDF or SVG by extension; needs matplotlib).")
@click.option("--no-cache", is_flag=True, help="Do not read or write the on-disk pooled-matrix cache.")
@click.option("--quiet", "-q", is_flag=True,
              help="No progress bar and no informational lines (wrote FILE, notes); the table, warnings and errors still print.")
def eval_command(store, tasks, preset, families, recipes, grid_file, jobs, scheduler, diagnostics, json_out, csv_out,
                 mteb_dir, plot_out, no_cache, quiet, **declared):
    """Evaluate recipes on tasks from a store, without the model.

    A recipe fixes view, layers, token filter, weights, pooling and post-processing
    (docs/recipes.md; `hs steps` lists every step). Options given several times form a grid
    (their cartesian product).

    \b
    Examples:
      hs eval runs/minilm --task stsb --layers last --pool mean
      hs eval runs/minilm --layers last --layers first-last --pool mean --pool max
      hs eval runs/minilm -r 'layers=all;weights=idf@wikitext2;post=whiten@wikitext2+l2' --json out.json
      hs eval runs/minilm --layers all --pool mean --pool max --scheduler local:2
      hs eval runs/study-minilm --preset study --json study.json     # the study's grid, resumable
      hs eval runs/study-smollm2 --preset study --family sts --family clustering --json study.json
    """
    axis_values = {axis: declared.pop(axis) for axis in AXES}
    given = declared  # the families' protocol options, None where not given
    to_stdout = [o for o in (json_out, csv_out) if o is not None and str(o) == "-"]
    if len(to_stdout) > 1:
        raise HsError("only one of --json and --csv can write to stdout ('-')")
    if scheduler and jobs:
        raise HsError("--jobs and --scheduler do not combine: the scheduler's workers set the parallelism")
    st = hsstore.open(store)
    if preset:
        flags = {"--task": tasks, "--recipe": recipes, "--grid": grid_file, **{f"--{a}": v for a, v in axis_values.items()},
                 "--csv": csv_out, "--mteb-dir": mteb_dir, "--plot": plot_out, "--scheduler": scheduler}
        return _run_preset(st, preset, families, given, [flag for flag, value in flags.items() if value], json_out,
                           jobs, quiet)
    if families:
        raise HsError("--family chooses families of a preset's grid; give --preset too, or use --task")
    options = {name: option.default if given[name] is None else given[name] for name, option in family_options().items()}
    results = _run_grid(st, tasks, recipes, grid_file, axis_values, options, diagnostics, jobs, scheduler, no_cache,
                        quiet)
    _write_outputs(results, st, options, diagnostics, bool(to_stdout), json_out, csv_out, mteb_dir, plot_out, quiet)


def _run_preset(st, preset: str, families: tuple[str, ...], given: dict, conflicting: list[str], json_out, jobs,
                quiet) -> None:

    if conflicting:
        raise HsError(f"--preset runs its own tasks and grid; leave out {', '.join(conflicting)} "
                      f"(tables and figures: hs report)")
    declared = get_preset(preset).options
    options = {name: declared.get(name, option.default) if given[name] is None else given[name]
               for name, option in family_options().items()}
    # no disk cache: each pooled matrix serves one task's grid, and all of them would fill gigabytes
    run_preset_command(st, preset, options, json_out, jobs, False, not quiet, quiet, families=families or None)


def _run_grid(st, tasks, recipes, grid_file, axis_values, options, diagnostics, jobs, scheduler, no_cache, quiet):
    """The grid of the recipes, the grid file and the axis flags, on the tasks (or every task the store has)."""
    from analysis.runners.engine import Engine, resolve_tasks  # numba, scikit-learn: only when evaluating

    # -r model: the model's own sentence-transformers pipeline, as stored with the dump
    recipes = [model_recipe(st.model.get("pipeline"), st.model["name"]) if r.strip() == "model" else r
               for r in recipes]
    recipe_list = build_recipes(recipes, grid_file, axis_values)
    task_list = resolve_tasks(st, list(tasks))
    engine = Engine(st, options, disk_cache=not no_cache)
    return engine.run(task_list, recipe_list, diagnostics=diagnostics, progress=not quiet, jobs=jobs,
                      scheduler=scheduler)


def _write_outputs(results, st, options, diagnostics, to_stdout, json_out, csv_out, mteb_dir, plot_out,
                   quiet=False) -> None:
    """The table (stdout unless a data file goes there), then the files asked for; notes go to stderr
    (none with ``quiet``), and so do warnings (always)."""
    from analysis.results.mteb import write_mteb_dir  # with the engine, after an evaluation
    from analysis.results.records import write_csv, write_json
    from analysis.results.table import plot, recipe_line, table

    if recipe_line(results):
        click.echo(recipe_line(results), err=True)
    click.echo(table(results), err=to_stdout)
    if diagnostics:
        for r in results:
            click.echo(f"{r.task.id:12s} {r.recipe}  " + "  ".join(f"{k}={v:.4g}" for k, v in r.diagnostics.items()),
                       err=to_stdout)
    for warning in dict.fromkeys(w for r in results for w in r.warnings):
        click.echo(f"hs: warning: {warning}", err=True)
    for out, write in ((json_out, lambda path: write_json(results, st, path)), (csv_out, lambda path: write_csv(results, path))):
        if out:
            write(out)
            if str(out) != "-" and not quiet:
                click.echo(f"wrote {out}", err=True)
    if mteb_dir:
        written, skipped = write_mteb_dir(results, st, mteb_dir, options)
        if not quiet:
            click.echo(f"wrote {len(written)} MTEB result files under {mteb_dir / 'results'}"
                       + (f"; left out (not MTEB's data or protocol): {', '.join(skipped)}" if skipped else ""), err=True)
    if plot_out:
        plot(results, plot_out)
        if not quiet:
            click.echo(f"wrote {plot_out}", err=True)
