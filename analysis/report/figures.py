"""The report's figures. Each function returns a ``Drawn`` (a matplotlib figure and its caption) or,
when the input holds nothing to draw, a ``Skipped`` with the reason the report prints instead; no
figure is ever drawn empty. Every figure names the model and, on its value axis, the score measure."""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from hsstore.errors import EnvError

from ..recipes.recipe import parse_recipe, parse_value
from ..results.table import label as recipe_label, varying_axes
from .compare import (SplitEffects, Sweep, axis_effects, describe, difference, is_prompt, plain_recipe,
                      prompt_effects, reference_effects, split_effects, sweeps)
from .load import SHORT_MEASURES, Run
from .tables import family_tasks

MAX_LINES = 6  # sweeps drawn per panel, the widest first


@dataclass
class Drawn:
    figure: object
    caption: str


@dataclass
class Skipped:
    reason: str


def pyplot():
    """matplotlib.pyplot on the Agg backend (files only), or a one-line error saying how to get it."""
    try:
        import matplotlib  # an optional extra, and slow to import: only when drawing

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise EnvError("hs report draws its figures with matplotlib, which is not installed: "
                       "pip install matplotlib (or pip install -e '.[plot]')") from None
    return plt


def _panels(n: int, title: str, width: float = 5.4, height: float = 4.4):
    plt = pyplot()
    fig, axes = plt.subplots(1, n, figsize=(width * n, height), squeeze=False)
    fig.suptitle(title)
    return fig, list(axes[0])


def _sweep_labels(chosen: list[Sweep]) -> list[str]:
    """Each sweep's label: the fixed axes that differ among the sweeps drawn together."""
    if len(chosen) == 1:
        return [describe(chosen[0].fixed)]
    keys = [k for k, _ in chosen[0].fixed if len({dict(s.fixed)[k] for s in chosen}) > 1]
    return [";".join(f"{k}={dict(s.fixed)[k]}" for k in keys) for s in chosen]


def _tasks(n: int) -> str:
    return f"{n} task" + ("" if n == 1 else "s")


# ---- score by layer -------------------------------------------------------------------------------

def _single_layer(value: str) -> bool:
    return value == "last" or re.fullmatch(r"\d+", value) is not None


def _layer_order(values: list[str]) -> list[str]:
    """Single layers by number, then ``last``, then sets of layers in first-seen order."""
    singles = sorted((v for v in values if v.isdigit()), key=int) + (["last"] if "last" in values else [])
    return singles + [v for v in values if not _single_layer(v)]


def layers_figure(runs: list[Run], model: str) -> Drawn | Skipped:
    every = {f: s for f in family_tasks(runs) if (s := sweeps(runs, "layers", f))}
    found = {f: s[:MAX_LINES] for f, s in every.items()}
    left_out = sum(len(every[f]) - len(found[f]) for f in found)
    if not found:
        return Skipped("no two layer choices were run on the same tasks with every other axis fixed")
    fig, axes = _panels(len(found), f"{model}: score by layer choice (other axes fixed)")
    for ax, (family, chosen) in zip(axes, found.items()):
        order = _layer_order(list(dict.fromkeys(v for s in chosen for v in s.means)))
        pos = {v: i for i, v in enumerate(order)}
        for sweep, label in zip(chosen, _sweep_labels(chosen)):
            singles = [v for v in order if v in sweep.means and _single_layer(v)]
            sets = [v for v in order if v in sweep.means and not _single_layer(v)]
            line, = ax.plot([pos[v] for v in singles], [sweep.means[v] for v in singles], marker="o",
                            label=f"{label} (mean of {_tasks(len(sweep.tasks))})")
            ax.plot([pos[v] for v in sets], [sweep.means[v] for v in sets], marker="s", linestyle="none",
                    color=line.get_color())
        n_single = sum(_single_layer(v) for v in order)
        if 0 < n_single < len(order):
            ax.axvline(n_single - 0.5, color="grey", linestyle=":", linewidth=1)
        ax.set_xticks(range(len(order)), order, rotation=30, ha="right")
        ax.set_xlabel("layers (single layers joined; sets of layers, averaged, to the right)")
        ax.set_ylabel(f"mean {SHORT_MEASURES[family]}")
        ax.set_title(family)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return Drawn(fig, "Mean score over the family's tasks for each layer choice, each line one setting of the "
                      "other axes; layer 0 is the embedding output, `last` the top layer."
                 + (f" {left_out} narrower settings of the other axes are not drawn (the tables have them)."
                    if left_out else ""))


# ---- paired effects as bars -----------------------------------------------------------------------

def _delta_bars(effects, title: str, ylabel: str, xlabel: str):
    families = [f for f in SHORT_MEASURES if any(e.n(f) for e in effects)]
    fig, (ax,) = _panels(1, title, width=max(6.0, 1.1 * len(effects) * max(1, len(families)) ** 0.5 + 2.5),
                         height=5.2)
    width = 0.8 / len(families)
    for j, family in enumerate(families):
        xs = [i + (j - (len(families) - 1) / 2) * width for i in range(len(effects))]
        heights = [e.mean(family) if e.n(family) else np.nan for e in effects]
        bars = ax.bar(xs, heights, width, label=f"{family} ({SHORT_MEASURES[family]})")
        ax.bar_label(bars, labels=[f"n={e.n(family)}" if e.n(family) else "" for e in effects], fontsize=7)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xlim(-0.75, len(effects) - 0.25)  # a lone comparison keeps a bar's width, not the panel's
    ax.set_xticks(range(len(effects)), [e.label for e in effects], rotation=30, ha="right")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _split_bars(split: SplitEffects, title: str, xlabel: str):
    """One panel per family, stacked: for each value of the axis, one bar per value of ``split.by``
    that has pairs in that family."""
    labels = list(dict.fromkeys(e.label for p in split.parts.values() for e in p.effects))
    families = [f for f in SHORT_MEASURES if any(e.n(f) for p in split.parts.values() for e in p.effects)]
    present = {f: [v for v, p in split.parts.items() if any(e.n(f) for e in p.effects)] for f in families}
    widest = max(len(v) for v in present.values())
    plt = pyplot()
    fig, axes = plt.subplots(len(families), 1, squeeze=False,
                             figsize=(max(7.0, 0.32 * len(labels) * widest + 3.5), 3.6 * len(families) + 0.8))
    fig.suptitle(title)
    colours = dict(zip(split.parts, plt.rcParams["axes.prop_cycle"].by_key()["color"] * 3))
    for ax, family in zip(axes[:, 0], families):
        values = present[family]
        width = 0.8 / len(values)
        for j, value in enumerate(values):
            by_label = {e.label: e for e in split.parts[value].effects if e.n(family)}
            xs = [i + (j - (len(values) - 1) / 2) * width for i in range(len(labels))]
            bars = ax.bar(xs, [by_label[lb].mean(family) if lb in by_label else np.nan for lb in labels], width,
                          label=f"{split.by}={value}", color=colours[value])
            ax.bar_label(bars, labels=[f"n={by_label[lb].n(family)}" if lb in by_label else "" for lb in labels],
                         fontsize=7)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xlim(-0.75, len(labels) - 0.25)
        ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"mean change in {SHORT_MEASURES[family]}")
        ax.set_title(f"{family}, by {split.by}")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8, title=split.by, title_fontsize=8)
    fig.tight_layout()
    return fig


def post_figure(runs: list[Run], model: str) -> Drawn | Skipped:
    ax = axis_effects(runs, "post")
    if ax is None:
        return Skipped("one post-processing setting only")
    if not ax.effects:
        return Skipped(f"no post-processing was run beside post={ax.baseline} with the other axes fixed")
    what = ("over pairs of runs on the same task that differ only in post-processing (n pairs on each bar); "
            "`@wikitext2` fits on WikiText-2, no suffix on the task's own sentences.")
    split = split_effects(runs, "post")
    if split is not None:
        fig = _split_bars(split, f"{model}: effect of post-processing against post={ax.baseline}, by {split.by}",
                          "post-processing (applied in order)")
        return Drawn(fig, f"Mean change in score from post={ax.baseline} to each post-processing, separately for "
                          f"each {split.by} (its effects differ in sign across them, so one mean over all pairs "
                          f"would hide them), {what}")
    fig = _delta_bars(ax.effects, f"{model}: effect of post-processing against post={ax.baseline}",
                      "mean score change (x100 points)", "post-processing (applied in order)")
    return Drawn(fig, f"Mean change in score from post={ax.baseline} to each post-processing, {what} Split by any "
                      "other axis, no effect's means take opposite signs, so each is drawn as one mean.")


def wikitext_figure(runs: list[Run], model: str) -> Drawn | Skipped:
    effects = reference_effects(runs)
    if not effects:
        return Skipped("no step was run both with statistics from another corpus (@wikitext2) and fitted on "
                       "the task, with the rest of the recipe fixed")
    fig = _delta_bars(effects, f"{model}: statistics from another corpus vs the task's own sentences",
                      "mean score change (x100 points)", "step: corpus vs @task")
    return Drawn(fig, "Mean change in score when one step (idf, sif, frequent-token filter, Avg. view or a "
                      "post-processing) takes its statistics from the named corpus instead of the task's own "
                      "sentences, over pairs that differ only there (n pairs on each bar).")


# ---- absolute scores of one sweep per family --------------------------------------------------------

VIEW_KINDS = {"contextual": ("ctx",), "static": ("re", "input", "avg", "glove"), "templated": ("prompt",)}


def _view_kind(value: str) -> str:
    names = {p.step.name for p in parse_value("view", value)}
    if len(names) > 1:
        return "mix of views"
    (name,) = names
    return next((k for k, ns in VIEW_KINDS.items() if name in ns), "other")


def _view_order(value: str):
    """ctx, then ctx+avg mixes by Avg.'s weight, then static views, then the rest."""
    parts = parse_value("view", value)
    weights = {p.step.name: p.weight for p in parts}
    if len(parts) > 1:
        return (1, weights.get("avg", 0) / sum(weights.values()), value)
    rank = ["ctx", "avg", "re", "input", "glove", "prompt"]
    name = parts[0].step.name
    return (0 if name == "ctx" else 2, rank.index(name) if name in rank else len(rank), value)


def views_figure(runs: list[Run], model: str) -> Drawn | Skipped:
    found = {f: s[0] for f in family_tasks(runs) if (s := sweeps(runs, "view", f))}
    if not found:
        return Skipped("no two views were run on the same tasks with every other axis fixed")
    plt = pyplot()
    colours = dict(zip(["contextual", "mix of views", "static", "templated", "other"],
                       plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    widest = max(len(s.means) for s in found.values())
    fig, axes = _panels(len(found), f"{model}: where token vectors come from (view), other axes fixed",
                        width=max(5.0, 0.55 * widest + 2.5))
    for ax, (family, sweep) in zip(axes, found.items()):
        values = sorted(sweep.means, key=_view_order)
        kinds = [_view_kind(v) for v in values]
        for kind in dict.fromkeys(kinds):
            idx = [i for i, k in enumerate(kinds) if k == kind]
            ax.bar(idx, [sweep.means[values[i]] for i in idx], color=colours[kind], label=kind)
        ax.set_xticks(range(len(values)), values, rotation=35, ha="right")
        ax.set_xlabel("view (ctx*a+avg*b: mix of contextual and Avg. vectors)")
        ax.set_ylabel(f"mean {SHORT_MEASURES[family]} over {_tasks(len(sweep.tasks))}")
        ax.set_title(f"{family}; {describe(sweep.fixed)}", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return Drawn(fig, "Mean score over the family's tasks for each view with the other axes fixed (the widest such "
                      "comparison in the input): contextual states (ctx), Avg. (avg), random embeddings (re), the "
                      "input embeddings (input), GloVe, and contextual + Avg. mixes ordered by Avg.'s weight.")


def _prompt_name(recipe, plain) -> str:
    """What a prompt recipe reads, in words, and its recipe text where it differs from the plain one."""
    if recipe.pool.name == "mask":
        what = "read-out slot" + (", denoised" if recipe.pool.param("denoise") == "yes" else "")
    elif any(s.name == "template" for s in recipe.drop):
        what = "sentence's tokens in the template"
    else:
        what = "average of all templated tokens"
    return f"{what} ({difference(recipe, plain)})"


def prompt_figure(runs: list[Run], model: str) -> Drawn | Skipped:
    if not any(is_prompt(r.recipe) for r in runs):
        return Skipped("no prompt read-out (view=prompt) in the input")
    by_plain: dict[tuple[str, str], dict[str, dict[str, float]]] = {}
    for r in runs:
        plain = plain_recipe(r.recipe)
        label = _prompt_name(r.recipe, plain) if is_prompt(r.recipe) else "plain recipe"
        by_plain.setdefault((r.family, str(plain)), {}).setdefault(label, {})[r.task] = r.score
    found: dict[str, tuple[str, dict, list[str]]] = {}  # family -> the comparison with the most bars
    for (family, plain), bars in by_plain.items():
        tasks = sorted(set.intersection(*(set(s) for s in bars.values())))
        comparable = len(bars) > 1 and tasks and any(b != "plain recipe" for b in bars)
        if comparable and (family not in found or len(bars) > len(found[family][1])):
            found[family] = (plain, bars, tasks)
    if not found:
        return Skipped("no prompt read-out was run beside its plain recipe or another read-out on the same tasks")
    fig, axes = _panels(len(found), f"{model}: prompt read-outs vs the plain recipe",
                        width=max(5.5, 1.0 * max(len(t) + 1 for _, _, t in found.values()) + 3))
    for ax, (family, (plain, bars, tasks)) in zip(axes, found.items()):
        labels = sorted(bars, key=lambda b: b != "plain recipe")
        columns = [*tasks, "mean"]
        width = 0.8 / len(labels)
        for j, label in enumerate(labels):
            heights = [bars[label][t] for t in tasks] + [float(np.mean([bars[label][t] for t in tasks]))]
            ax.bar([i + (j - (len(labels) - 1) / 2) * width for i in range(len(columns))], heights, width,
                   label=label)
        ax.set_xticks(range(len(columns)), columns, rotation=30, ha="right")
        ax.set_xlabel("task")
        ax.set_ylabel(SHORT_MEASURES[family])
        ax.set_title(f"{family}; plain recipe: {describe(tuple(parse_recipe(plain).fields().items()))}", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.3))  # below: the bars fill the panel
    fig.tight_layout()
    effects = prompt_effects(runs)
    return Drawn(fig, "Scores of prompt read-outs (the templated text's read-out slot `pool=mask`, with "
                      "`denoise=yes` PromptBERT's template denoising, or an average of the templated tokens) "
                      "beside the plain recipe: ctx view, mean pooling, no template"
                      + (f"; {sum(e.n() for e in effects)} pairs in the table above." if effects else "."))


DIAGNOSTIC_AXES = {"isotropy": "isotropy I(W) of the unit vectors (Mu & Viswanath; 1 = isotropic)",
                   "uniformity": "uniformity (log mean exp(-2|x-y|²); lower = more uniform)"}
MARKERS = "osD^vP*X<>ph"
MAX_COLOURS = 10  # recipes told apart by colour; with more, the colour follows one axis


def _colour_key(runs: list[Run]) -> tuple[str, dict]:
    """What a point's colour says: its recipe (the axes that vary) when there are few, else the value
    of the first varying axis of post, view, layers, ... with few enough values; legend title and
    run -> label."""
    rs = list(dict.fromkeys(r.recipe for r in runs))
    axes = varying_axes(rs)
    if len(rs) <= MAX_COLOURS:
        return "recipe", {r: " ".join(f"{a}={v}" for a, v in zip(axes, recipe_label(r.recipe, axes))) for r in runs}
    for axis in ("post", "view", "layers", "pool", "weights", "drop", "combine"):
        values = {r.recipe.fields()[axis] for r in runs}
        if axis in axes and len(values) <= MAX_COLOURS:
            return axis, {r: r.recipe.fields()[axis] for r in runs}
    return "recipe", {r: "every recipe" for r in runs}


def diagnostics_figure(runs: list[Run], model: str) -> Drawn | Skipped:
    names = [d for d in DIAGNOSTIC_AXES if any(d in r.diagnostics for r in runs)]
    if not names:
        return Skipped("the results hold no diagnostics (run hs eval with --diagnostics)")
    tasks = family_tasks(runs)
    plt = pyplot()
    key, colour_of = _colour_key([r for r in runs if any(d in r.diagnostics for d in names)])
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colours = {v: palette[i % len(palette)] for i, v in enumerate(dict.fromkeys(colour_of.values()))}
    fig, grid = plt.subplots(len(tasks), len(names), figsize=(5.6 * len(names), 4.2 * len(tasks)), squeeze=False)
    fig.suptitle(f"{model}: isotropy and uniformity of the sentence vectors vs score (one point per recipe and task)")
    for row, (family, ts) in zip(grid, tasks.items()):
        for ax, name in zip(row, names):
            for t, task in enumerate(ts):
                pts = [r for r in runs if r.task == task and name in r.diagnostics]
                for r in pts:
                    ax.scatter(r.diagnostics[name], r.score, s=24, color=colours[colour_of[r]],
                               marker=MARKERS[t % len(MARKERS)], edgecolors="black", linewidths=0.3)
            ax.set_xlabel(DIAGNOSTIC_AXES[name])
            ax.set_ylabel(SHORT_MEASURES[family])
            ax.set_title(f"{family}: {name}")
            ax.grid(alpha=0.3)
            # two keys: colour = recipe (or one axis of it), marker = task
            handles = [plt.Line2D([], [], linestyle="none", marker="o", color=c, label=v) for v, c in colours.items()]
            handles += [plt.Line2D([], [], linestyle="none", marker=MARKERS[t % len(MARKERS)], color="grey",
                                   label=f"task {task}") for t, task in enumerate(ts)]
            ax.legend(handles=handles, fontsize=7, title=f"colour: {key}; marker: task", title_fontsize=7,
                      loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return Drawn(fig, "Each point is one recipe on one task: its colour gives "
                 + ("the recipe (the axes that vary among them)" if key == "recipe" else
                    f"the recipe's {key} (there are too many recipes for a colour each)")
                 + ", its marker the task. Isotropy is Mu & Viswanath's I(W) = min Z(c) / max Z(c) over the "
                   "unit-length sentence vectors (docs/recipes.md); the table above gives Spearman's rho per task.")


FIGURES = {  # file stem -> (heading, function), in the report's order
    "layers": ("Score by layer", layers_figure),
    "post": ("Post-processing", post_figure),
    "wikitext": ("WikiText-2 statistics vs the task's own", wikitext_figure),
    "views": ("Contextual, RE, input, Avg. and BERT + Avg.", views_figure),
    "prompts": ("Prompt read-outs", prompt_figure),
    "diagnostics": ("Isotropy and uniformity vs score", diagnostics_figure),
}
