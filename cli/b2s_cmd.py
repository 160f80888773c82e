"""``hs b2s``: train a BERT2Static token table from a reference corpus of a store, on the CPU."""
from __future__ import annotations

import click

from .params import STORE


@click.command("b2s")
@click.argument("store", type=STORE)
@click.option("--ref", default="wikitext2", show_default=True, help="The store's corpus to train on.")
@click.option("--layer", default=-1, show_default=True, help="Layer whose states give the context (-1: the last).")
@click.option("--epochs", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-3, show_default=True,
              help="SparseAdam's learning rate.")
@click.option("--batch", type=click.IntRange(min=1), default=128, show_default=True, help="Sentences per step.")
@click.option("--negatives", type=click.IntRange(min=1), default=10, show_default=True,
              help="Negative samples per target (drawn by sqrt of the token count).")
@click.option("--t", "t", type=click.FloatRange(min=0, min_open=True), default=5e-6, show_default=True,
              help="Subsampling threshold: a target is kept with probability min(1, sqrt(t/f) + t/f).")
@click.option("--min-count", type=click.IntRange(min=1), default=10, show_default=True,
              help="Tokens seen fewer times in the corpus get no vector.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no informational lines; errors still print.")
def b2s_command(store, ref, layer, epochs, lr, batch, negatives, t, min_count, seed, quiet):
    """Train BERT2Static (Gupta & Jaggi 2021, X2Static_sent) on a corpus's stored states and store the
    token table in the store as b2s/REF, for recipes with view=b2s@REF. No model is needed: the
    context of each sentence is the mean of its stored last-layer states. The defaults are the
    authors' published hyper-parameters (one epoch over a Wikipedia dump); a small corpus such as
    WikiText-2 may want more epochs. Rerunning replaces the table (cached results follow it).

    \b
    Examples:
      hs b2s runs/minilm                                  # on WikiText-2, the published settings
      hs b2s runs/minilm --epochs 20                      # more passes over a small corpus
      hs dump --corpus-file wiki.train.raw --corpus-format wikitext --corpus-name wikitext103 --out runs/minilm
      hs b2s runs/minilm --ref wikitext103                # then: hs eval runs/minilm --view b2s@wikitext103
    """
    from hsstore.distil.b2s import Settings, run  # torch and zarr: only when training

    run(store, ref, Settings(layer=layer, epochs=epochs, lr=lr, batch=batch, negatives=negatives, t=t,
                             min_count=min_count, seed=seed), progress=not quiet,
        log=(lambda m: None) if quiet else (lambda m: click.echo(m, err=True)))
