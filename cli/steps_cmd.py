"""``hs steps``: every registered recipe step, from the registry that parses recipes."""
from __future__ import annotations

import click

from analysis.recipes import steps


@click.command()
@click.option("--markdown", is_flag=True, help="Print the table of docs/recipes.md instead.")
def steps_command(markdown):
    """List the steps of every recipe axis: views, pooling, token filters and weights, post-processing."""
    click.echo(steps.table_markdown() if markdown else steps.listing())
