"""``hs tasks``: the benchmark tasks, with their family, data rows, source and licence, and a store's own."""
from __future__ import annotations

import click

from analysis.evaluation.registry import families
from hsstore.tasks import TASKS

from .params import STORE

REFERENCE = "corpus"  # the task registry's name for reference corpora (WikiText-2): used as @REF, not evaluated


def _family_help() -> str:
    described = [f"{name}: {family.description}" for name, family in families().items()]
    return "Only tasks of this family (" + "; ".join(described) + f"; {REFERENCE}: a reference corpus for @REF)."


@click.command()
@click.argument("store", type=STORE, required=False)
@click.option("--family", type=click.Choice([*families(), REFERENCE]), help=_family_help())
def tasks(store, family):
    """List the benchmark tasks, with their family, data's rows, source and licence; with STORE, also
    the store's own tasks (dumped with hs dump --task-file), with their file and identity.

    \b
    Examples:
      hs tasks
      hs tasks --family clustering
      hs tasks runs/minilm              # the benchmark tasks and runs/minilm's own
    """
    listed = list(TASKS.values())
    if store is not None:
        import hsstore
        from analysis.runners.engine import store_tasks  # numpy and the engine: only with a store

        listed += store_tasks(hsstore.open(store))
    rows = [("task", "family", "splits", "rows", "aliases", "source / licence")]
    for t in listed:
        if family and t.family != family:
            continue
        n = sum(t.info.rows.get(s, 0) for s in t.splits)
        rows.append((t.id, t.family, ",".join(t.splits), str(n), ",".join(t.aliases),
                     f"{t.info.source}; {t.info.licence}" + (f"; {t.info.note}" if t.info.note else "")))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[5])
