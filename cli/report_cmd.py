"""``hs report``: tables and figures from results files written by ``hs eval --json``."""
from __future__ import annotations

from pathlib import Path

import click

from analysis.report import write_report


@click.command()
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path, file_okay=False), metavar="DIR",
              help="Folder for report.md and its figures (made if missing; an earlier report there is replaced).")
@click.option("--mixed-stores", is_flag=True,
              help="Accept results of several stores (models or dumps): one section per store, never compared.")
@click.option("--svg", is_flag=True, help="Also write each figure as SVG beside its PNG.")
def report_command(results, out, mixed_stores, svg):
    """Summarise results files (hs eval --json FILE) as Markdown tables and matplotlib figures.

    report.md holds per-task scores, family means (STS, clustering, classification), the best
    recipe per family, and each axis's effect with the other axes fixed (pairs of recipes that
    differ on that axis only). The figures show score by layer, post-processing and WikiText-2
    use, views (contextual, RE, input, Avg., mixes), prompt read-outs and diagnostics vs score,
    each drawn only when the results hold what it compares. Needs matplotlib.

    \b
    Examples:
      hs eval runs/minilm --layers 1 --layers last --layers first-last --post none --post whiten@wikitext2 \\
          --diagnostics --json layers.json
      hs report layers.json --out report/
      hs report study.json more.json --out report/ --svg
    """
    written = write_report(list(results), out, mixed_stores=mixed_stores, svg=svg)
    click.echo(f"wrote {written[0]} and {len(written) - 1} figure file(s) in {out}", err=True)
