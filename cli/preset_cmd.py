"""``hs eval --preset NAME``: a preset's grid into a resumable results file, and a short summary."""
from __future__ import annotations

import json
import signal
from collections import defaultdict
from pathlib import Path

import click
import numpy as np

from analysis.evaluation.registry import family_of
from hsstore.tasks import get_task


def _main_score(record: dict) -> float:
    return next(iter(record["scores"].values()))[0]["main_score"]


def summary(records: list[dict], walls: dict[str, float]) -> str:
    """Recipes, evaluations and wall time per family and stage, and each family's best recipe by mean score."""
    by_family: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    counts: dict[tuple[str, int], set] = defaultdict(set)
    evals: dict[tuple[str, int], int] = defaultdict(int)
    for r in records:
        fam = family_of(get_task(r["hs_task"])).report_group  # the preset's families are report groups
        by_family[fam][r["recipe"]].append(_main_score(r))
        counts[(fam, r["study"]["stage"])].add(r["recipe"])
        evals[(fam, r["study"]["stage"])] += 1
    lines = [f"{'family':15s} stage  recipes  evaluations  wall (this run)"]
    for (fam, stage), recipes in sorted(counts.items()):
        wall = walls.get(f"{fam} stage {stage}")
        lines.append(f"{fam:15s} {stage:5d}  {len(recipes):7d}  {evals[(fam, stage)]:11d}  "
                     + (f"{wall:.0f} s" if wall is not None else "-"))
    lines.append(f"{'total':15s} {'':5s}  {len({r['recipe'] for r in records}):7d}  {len(records):11d}  "
                 f"{sum(walls.values()):.0f} s")
    for fam, scores in by_family.items():
        best = max(scores, key=lambda k: np.mean(scores[k]))
        lines.append(f"best {fam}: {100 * np.mean(scores[best]):.2f}  {best}")
    return "\n".join(lines)


def run_preset_command(store, preset: str, options: dict, json_out: Path | None, jobs, disk_cache: bool,
                       progress: bool, quiet: bool = False, families: tuple[str, ...] | None = None) -> None:
    from analysis.runners.study_run import run_preset  # the engine: numba, scikit-learn

    def say(message: str) -> None:  # -q: no notes, no 'wrote' line
        if not quiet:
            click.echo(message, err=True)

    if json_out is None or str(json_out) == "-":
        say("hs: note: without --json FILE the results are not kept and a stopped run starts over")

    def stop(signum, frame):  # a kill (SIGTERM) stops like Ctrl-C: finished evaluations are written first
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:  # the run's own lines say what it drops or skips: they print with -q too
        records, walls = run_preset(store, preset, json_out, options, jobs=jobs, disk_cache=disk_cache,
                                    progress=progress, log=lambda m: click.echo(m, err=True), families=families)
    finally:
        signal.signal(signal.SIGTERM, previous)
    click.echo(summary(records, walls), err=str(json_out) == "-")
    if json_out is not None and str(json_out) == "-":
        click.echo(json.dumps(records, indent=1))
    elif json_out is not None:
        say(f"wrote {len(records)} records to {json_out}")
