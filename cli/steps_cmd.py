"""``hs steps``: every registered recipe step, from the registry that parses recipes."""
from __future__ import annotations

import click

from analysis.recipes import steps


@click.command()
@click.option("--markdown", is_flag=True, help="Print the table of docs/recipes.md instead.")
def steps_command(markdown):
    """List the steps of every recipe axis: views, pooling, token filters and weights, post-processing.

    Each line is a step's synopsis (name[:param=default]...[@REF]) and what it does; a recipe joins
    one choice per axis, e.g. 'layers=first-last;drop=special;weights=idf@wikitext2;post=whiten+l2'
    (docs/recipes.md).

    \b
    Examples:
      hs steps
      hs steps | sed -n '/^post/,$p'    # the post-processing steps
      hs steps --markdown               # the table of docs/recipes.md
    """
    click.echo(steps.table_markdown() if markdown else steps.listing())
