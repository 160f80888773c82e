"""``hs eval``: recipes x tasks from a store, on the CPU, without the model."""
from __future__ import annotations

import json
from pathlib import Path

import click

from analysis.steps import help_line
from hsstore import HsError

from .params import STORE


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
    from analysis.recipe import Recipe, grid, parse_recipe

    strings, file_axes = _read_grid(grid_file) if grid_file else ([], {})
    bases = [parse_recipe(s) for s in (*recipe_strings, *strings)] or [Recipe()]
    axes = {**file_axes, **{k: list(v) for k, v in axis_values.items() if v}}
    recipes = [r for base in bases for r in (grid(axes, base) if axes else [base])]
    return list(dict.fromkeys(recipes))


@click.command()
@click.argument("store", type=STORE)
@click.option("--task", "-t", "tasks", multiple=True, metavar="TASK",
              help="Task to evaluate (repeatable) [default: every evaluation task in the store].")
@click.option("--preset", metavar="NAME",
              help="Run a preset's grid (study: the reference study's, docs/study.md) on its tasks instead of "
                   "--task/--recipe/--grid; with --json FILE an interrupted run continues where it stopped. "
                   "Caches pooled matrices in memory only, one task at a time.")
@click.option("--recipe", "-r", "recipes", multiple=True, metavar="RECIPE",
              help="A whole recipe, e.g. 'layers=first-last;pool=mean;post=whiten@wikitext2' (repeatable); "
                   "'model' is the model's own sentence-transformers pooling and normalisation.")
@click.option("--grid", "grid_file", type=click.Path(path_type=Path),
              help="File of recipes (one a line) or a JSON object of axis -> list of values.")
@click.option("--view", multiple=True,
              help=f"Where token vectors come from: {help_line('view')}; mix as ctx*0.8+avg*0.2.")
@click.option("--layers", multiple=True, help="last | first-last | emb-last | all | 0,4-6 (repeatable: a grid axis).")
@click.option("--combine", multiple=True, help="How several layers combine: mean | concat.")
@click.option("--pool", multiple=True, help=f"{help_line('pool')}.")
@click.option("--drop", multiple=True, help=f"Tokens to drop, joined by +: none | {help_line('drop')}.")
@click.option("--weights", multiple=True, help=f"Token weights: {help_line('weights')}.")
@click.option("--post", multiple=True,
              help=f"Post-processing chain, joined by + and applied in order: none | {help_line('post')}.")
@click.option("--sts-aggregate", type=click.Choice(["all", "mean", "wmean"]), default="all", show_default=True,
              help="Main STS12-16 score: subsets concatenated (all), their mean, or pair-weighted mean.")
@click.option("--clustering", type=click.Choice(["kmeans", "mteb"]), default="kmeans", show_default=True,
              help="k-means over --seeds seeds, or MTEB's MiniBatchKMeans protocol with each task's own settings.")
@click.option("--seeds", type=click.IntRange(min=1), default=None,
              help="k-means runs per recipe and clustering task [default: 5; 3 with --preset].")
@click.option("--classification", type=click.Choice(["senteval", "probe", "mteb"]), default=None,
              help="[default: senteval; probe with --preset] senteval: logistic regression, C by SentEval's CV; "
                   "probe: ridge on one-hot labels with "
                   "closed-form CV (fast, for grids); mteb: MTEB's few-shot protocol with each task's own settings.")
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
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def eval_command(store, tasks, preset, recipes, grid_file, view, layers, combine, pool, drop, weights, post,
                 sts_aggregate, clustering, seeds, classification, jobs, scheduler, diagnostics, json_out, csv_out,
                 mteb_dir, plot_out, no_cache, quiet):
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
    """
    import hsstore
    from analysis.engine import Engine, resolve_tasks
    from analysis.recipe import AXES
    from analysis.results import plot, recipe_line, table, write_csv, write_json, write_mteb_dir
    from hsstore.pipeline import model_recipe

    to_stdout = [o for o in (json_out, csv_out) if o is not None and str(o) == "-"]
    if len(to_stdout) > 1:
        raise HsError("only one of --json and --csv can write to stdout ('-')")
    if scheduler and jobs:
        raise HsError("--jobs and --scheduler do not combine: the scheduler's workers set the parallelism")
    st = hsstore.open(store)
    if preset:
        from cli.preset_cmd import run_preset_command

        given = [o for o, v in (("--task", tasks), ("--recipe", recipes), ("--grid", grid_file), ("--view", view),
                                ("--layers", layers), ("--combine", combine), ("--pool", pool), ("--drop", drop),
                                ("--weights", weights), ("--post", post), ("--csv", csv_out),
                                ("--mteb-dir", mteb_dir), ("--plot", plot_out), ("--scheduler", scheduler)) if v]
        if given:
            raise HsError(f"--preset runs its own tasks and grid; leave out {', '.join(given)} "
                          f"(tables and figures: hs report)")
        options = {"sts_aggregate": sts_aggregate, "clustering": clustering, "seeds": seeds or 3,
                   "classification": classification or "probe"}
        # no disk cache: each pooled matrix serves one task's grid, and all of them would fill gigabytes
        return run_preset_command(st, preset, options, json_out, jobs, False, not quiet)
    classification, seeds = classification or "senteval", seeds or 5
    axis_values = dict(zip(AXES, (view, layers, combine, pool, drop, weights, post)))
    # -r model: the model's own sentence-transformers pipeline, as stored with the dump
    recipes = [model_recipe(st.model.get("pipeline"), st.model["name"]) if r.strip() == "model" else r
               for r in recipes]
    recipe_list = build_recipes(recipes, grid_file, axis_values)
    task_list = resolve_tasks(st, list(tasks))
    options = {"sts_aggregate": sts_aggregate, "clustering": clustering, "seeds": seeds,
               "classification": classification}
    engine = Engine(st, options, disk_cache=not no_cache)
    results = engine.run(task_list, recipe_list, diagnostics=diagnostics, progress=not quiet, jobs=jobs,
                         scheduler=scheduler)
    # the table goes to stdout unless a data file does; notes always go to stderr, so stdout parses as-is
    if recipe_line(results):
        click.echo(recipe_line(results), err=True)
    click.echo(table(results), err=bool(to_stdout))
    if diagnostics:
        for r in results:
            click.echo(f"{r.task.id:12s} {r.recipe}  " + "  ".join(f"{k}={v:.4g}" for k, v in r.diagnostics.items()),
                       err=bool(to_stdout))
    if json_out:
        write_json(results, st, json_out)
        if str(json_out) != "-":
            click.echo(f"wrote {json_out}", err=True)
    if csv_out:
        write_csv(results, csv_out)
        if str(csv_out) != "-":
            click.echo(f"wrote {csv_out}", err=True)
    if mteb_dir:
        written, skipped = write_mteb_dir(results, st, mteb_dir, options)
        click.echo(f"wrote {len(written)} MTEB result files under {mteb_dir / 'results'}"
                   + (f"; left out (not MTEB's data or protocol): {', '.join(skipped)}" if skipped else ""), err=True)
    if plot_out:
        plot(results, plot_out)
        click.echo(f"wrote {plot_out}", err=True)
