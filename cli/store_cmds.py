"""Commands that look at a store: ``hs info``, ``hs show``, ``hs export`` and ``hs verify``."""
from __future__ import annotations

import sys
from pathlib import Path

import click
import numpy as np

import hsstore
from hsstore.errors import HsError

from .params import STORE


def print_info(path: Path) -> None:
    """The store's model, settings and corpora, as ``hs info`` prints them."""
    store = hsstore.open(path)
    m = store.model
    click.echo(f"store   {path}  (format {store.attrs['format_version']}, hs {store.attrs['hs_version']})")
    click.echo(f"model   {m['name']}  {m['architecture']}, {m['n_layers']} layers, hidden {m['hidden_size']}, "
               f"vocab {m['vocab_size']}  weights {(m.get('weights_sha256') or m.get('revision') or '?')[:16]}")
    s = store.settings
    click.echo(f"stored  layers {s['layers']}  dtype {s['dtype']}  max_length {s['max_length']}  "
               f"precision {s.get('precision', 'not recorded')}  chunks of up to {s['chunk_tokens']} tokens")
    if store.is_zarr and not store.has_manifest:
        click.echo("note    made by an older hs (format 1): readable, but without a chunk manifest; "
                   "new corpora go into a new store")
    for line in _table_lines(store):
        click.echo(line)
    rows = [("corpus", "sentences", "tokens", "truncated", "on disk", "bytes/token", "state")]
    for name in store.all_corpora:
        try:
            c = store.corpus(name, allow_incomplete=True)
        except HsError as exc:  # the remains of a dump killed while it set the corpus up, or damage
            rows.append((name, "-", "-", "-", "-", "-", f"unusable: {exc}"))
            continue
        size = c.nbytes_on_disk()
        state = "complete" if c.complete else f"incomplete {c.committed_sentences}/{c.n_sentences}"
        rows.append((name, str(c.n_sentences), str(c.n_tokens), str(c.attrs.get("truncated", 0)),
                     _human(size) if size is not None else "-",
                     f"{size / max(1, c.n_tokens):.0f}" if size is not None else "-", state))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))))


def _table_lines(store) -> list[str]:
    """The vocabulary table and the BERT2Static tables, if the store has them."""
    from hsstore.store import b2s, vocabulary

    out = []
    rec = vocabulary.record(store)
    if "states_shape" in rec:
        state = "complete" if rec.get("states_complete") else \
            f"incomplete {rec.get('states_rows_done', 0)}/{rec['states_shape'][1]} ids"
        size = _human(float(np.prod(rec["states_shape"])) * np.dtype(rec["states_dtype"]).itemsize)
        out.append(f"tables  vocabulary (every id alone: view=alone), layers {rec['states_layers']}, {size}, {state}")
    for ref in b2s.refs(store):
        attrs = store.group_attrs(f"{b2s.GROUP}/{ref}") or {}
        done = "complete" if attrs.get("complete") else "incomplete (rerun hs b2s)"
        out.append(f"tables  b2s@{ref} (BERT2Static), layer {attrs.get('settings', {}).get('layer', '?')}, "
                   f"{attrs.get('settings', {}).get('epochs', '?')} epochs, {done}")
    return out


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


@click.command()
@click.argument("store", type=STORE)
def info(store):
    """Show a store's model, settings and corpora (sizes, bytes per token, complete or not), or what a
    fitted recipe (hs fit --out DIR) holds, every file's checksum checked.

    \b
    Examples:
      hs info runs/minilm
      hs info s3://my-bucket/runs/minilm      # object storage (docs/scale.md)
      hs info runs/minilm.h5                  # an hs export
      hs info fitted/                         # a folder of hs fit (docs/encoders.md)
    """
    from analysis.fitted.folder import is_folder

    if not isinstance(store, str) and is_folder(store):
        from .vectors_cmd import print_fitted

        return print_fitted(store)
    print_info(store)


@click.command()
@click.argument("store", type=STORE)
@click.argument("corpus")
@click.argument("index", type=int)
def show(store, corpus, index):
    """Show one stored sentence: its tokens, their kinds, and each layer's vector norm.

    INDEX counts sentences in stored order, which is not the order of the task's file: a dump
    stores each corpus deduplicated and sorted by token count (0 is the shortest), as
    `store.corpus(NAME).texts` lists them; negative INDEX counts from the longest.

    \b
    Examples:
      hs show runs/minilm stsb 0          # the shortest sentence of stsb
      hs show runs/minilm stsb -- -1      # the longest (-- before a negative INDEX)
      hs show runs/minilm wikitext2 100
    """
    st = hsstore.open(store)
    c = st.corpus(corpus)
    if not -c.n_sentences <= index < c.n_sentences:
        raise HsError(f"index {index} is out of range: corpus {corpus!r} has {c.n_sentences} sentences; give an index "
                      f"from 0 to {c.n_sentences - 1} (or -{c.n_sentences} to -1)")
    index %= c.n_sentences
    states = c.hidden(index)
    norms = np.linalg.norm(states, axis=2)  # (layers, tokens)
    header = ["token", "kind"] + [f"L{layer}" for layer in st.layers]
    rows = [header] + [[tok, kind] + [f"{v:.2f}" for v in norms[:, j]]
                       for j, (tok, kind) in enumerate(zip(c.tokens(index), c.token_kinds(index)))]
    # after every read: an error prints alone
    click.echo(f"{corpus}[{index}] (of {c.n_sentences}, in stored order: by token count): {c.texts[index]}")
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for r in rows:
        click.echo("  ".join(v.ljust(w) if i < 2 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths))))


@click.command()
@click.argument("store", type=STORE)
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--corpus", "-c", "corpora", multiple=True, metavar="NAME",
              help="Export only this corpus (repeatable) [default: every complete corpus].")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no 'wrote' line; errors still print.")
def export(store, out, corpora, quiet):
    """Write a store's complete corpora to one HDF5 file (hsstore.open reads it too), with HDF5
    dimension scales (layer numbers; token and feature labels) and the store's and each corpus's
    metadata as HDF5 attributes (docs/store-format.md).

    \b
    Examples:
      hs export runs/minilm runs/minilm.h5                        # every complete corpus
      hs export runs/minilm stsb.h5 --corpus stsb --corpus sickr  # some of them
      hs info stsb.h5; hs eval stsb.h5 -t stsb                    # read like the store itself
    """
    from hsstore.store.export import export_hdf5  # h5py: only for an export

    export_hdf5(hsstore.open(store), out, progress=not quiet, corpora=list(corpora) or None)
    if not quiet:
        click.echo(f"wrote {out}")


@click.command()
@click.argument("store", type=STORE)
@click.option("--corpus", "corpus_name", metavar="NAME", help="Check only this corpus.")
@click.option("--deep", is_flag=True, help="Also read every chunk and compare its CRC-32C with the stored one "
                                            "and the manifest's (reads the whole store).")
@click.option("--repair", is_flag=True,
              help="Take the writer's lock, remove the temporary files of killed runs, and mark what is damaged for "
                   "the next hs dump to write again (a corpus's watermark moves back before its first damaged "
                   "chunk); nothing is deleted.")
def verify(store, corpus_name, deep, repair):
    """Check a store: metadata (digests, shapes, offsets, fingerprints), that every chunk file of
    every array is there at full size, and (--deep) every chunk's checksum against the manifest.
    Prints each problem as `corpus NAME array ARRAY chunk KEY: what` and exits with status 1 if
    there is any.

    \b
    Examples:
      hs verify runs/minilm
      hs verify runs/minilm --corpus stsb --deep
      hs verify runs/minilm --deep --repair   # marks damage; the same hs dump command recomputes it
    """
    from hsstore.store.verify import verify as run_verify  # zarr: only when checking

    report = run_verify(store, corpus_name, deep=deep, repair=repair)
    for note in report.notes:
        click.echo(f"note: {note}")
    for problem in report.problems:
        click.echo(problem)
    checked = "every chunk's checksum, " if deep else ""
    if report.problems:
        click.echo(f"{len(report.problems)} problems in {store}", err=True)
        sys.exit(1)
    click.echo(f"{store}: ok (metadata, shapes, offsets, {checked}chunk files present)")
