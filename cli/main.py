"""The ``hs`` command group: thin commands over hsstore and analysis."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from hsstore import HsError, __version__
from hsstore.errors import os_error
from hsstore.presets import preset_help
from hsstore.templates import template_help

from .params import STORE


class HsGroup(click.Group):
    """Prints an HsError, or an OSError from the disk, as one line (no traceback) and exits with the
    error's status: 2 for a usage error, 1 for missing or corrupt data and a failing disk."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except HsError as exc:
            click.echo(f"hs: error: {exc}", err=True)
            sys.exit(exc.exit_status)
        except BrokenPipeError:  # the reader went away (hs info | head -1): stop quietly, as Unix tools do
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the final flush cannot fail
            sys.exit(0)
        except OSError as exc:
            click.echo(f"hs: error: {os_error(exc)}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("hs: interrupted; rerun the same command to resume", err=True)
            sys.exit(130)


@click.group(cls=HsGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="hs")
def hs():
    """Cached hidden states of transformers, and sentence embeddings made from them offline.

    \b
    Run the model once and store every layer of every token:
      hs dump --model minilm --task stsb --task sts12 --out runs/minilm
    Then recombine layers, pool tokens, post-process and evaluate on a CPU, without the model:
      hs eval runs/minilm --task stsb --layers last --pool mean
    Look inside a store:
      hs info runs/minilm;  hs show runs/minilm stsb 0
    """


@hs.command()
@click.option("--model", "-m", default="minilm", show_default=True,
              help="Short name (minilm), local model directory, or Hugging Face hub name (e.g. bert-base-uncased).")
@click.option("--task", "-t", "tasks", multiple=True, metavar="TASK",
              help="Benchmark task whose texts to dump (repeatable; `hs tasks` lists them).")
@click.option("--preset", metavar="NAME",
              help=f"Every corpus of a named set, instead of --task/--template ({preset_help()}).")
@click.option("--corpus-file", "files", multiple=True, type=click.Path(path_type=Path), metavar="FILE",
              help="Your own texts: one per line, or .csv/.tsv/.jsonl with --column (repeatable).")
@click.option("--corpus-name", help="Corpus name for a single --corpus-file (default: the file's stem).")
@click.option("--column", help="Column (CSV/TSV) or field (JSONL) holding the text [default: text].")
@click.option("--corpus-format", type=click.Choice(["auto", "lines", "wikitext"]), default="auto", show_default=True,
              help="auto: by extension (.csv/.tsv/.jsonl, else one text a line); wikitext: a WikiText raw file "
                   "(e.g. wiki.train.raw) split into sentences.")
@click.option("--encoding", default="utf-8", show_default=True, help="Encoding of --corpus-file.")
@click.option("--skip-empty", is_flag=True, help="Skip empty lines of --corpus-file instead of failing.")
@click.option("--out", "-o", required=True, type=STORE,
              help="Store directory (created if missing), or an object-storage URL such as s3://bucket/prefix.")
@click.option("--layers", default="all", show_default=True,
              help="Layers to store: all, last, or numbers and ranges like 0,6 or 1-3 (0 = embedding output).")
@click.option("--dtype", type=click.Choice(["float16", "float32"]), default="float16", show_default=True,
              help="Stored precision of the hidden states.")
@click.option("--max-length", type=int, help="Truncate texts to this many tokens [default: the model's limit].")
@click.option("--batch-tokens", type=int, default=8192, show_default=True,
              help="Padded tokens per batch (batches are length-sorted); fixed per store.")
@click.option("--chunk-tokens", type=click.IntRange(min=64),
              help="Tokens per stored chunk [default: about 8 MB of one layer]; fixed per store.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--precision", type=click.Choice(["auto", "fp32", "fp16", "bf16"]), default="auto", show_default=True,
              help="Autocast precision of the forward pass (auto: fp16 on CUDA, fp32 on CPU).")
@click.option("--template", "templates", multiple=True, metavar="NAME|STRING",
              help="Wrap every text in a prompt template and store it as corpus <name>~<template> (plus "
                   "<name>~<template>~empty for denoising; docs/prompts.md). Repeatable; `none` = the plain texts. "
                   f"Shipped: {template_help()}; or your own string with [X] and optionally [MASK].")
@click.option("--attention-diagonals", is_flag=True,
              help="Also store each token's self-attention weight a_ii for every layer and head (for "
                   "weights=ditto; runs eager attention).")
@click.option("--shard", metavar="K/N",
              help="Dump only part K of N (one process per GPU or machine, same command otherwise) into "
                   "OUT/shards/K-of-N; `hs merge OUT` joins the N parts (docs/scale.md).")
@click.option("--dask", "dask_address", metavar="ADDRESS",
              help="Run the shards as tasks on a Dask cluster (tcp://host:8786, or local:N for N local worker "
                   "processes), one per worker, then merge; OUT must be on a file system all workers share.")
@click.option("--shards", type=click.IntRange(min=1), help="With --dask: how many shards [default: one per worker].")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def dump(model, tasks, preset, files, corpus_name, column, corpus_format, encoding, skip_empty, out, layers, dtype,
         max_length, batch_tokens, chunk_tokens, device, precision, templates, attention_diagonals, shard,
         dask_address, shards, quiet):
    """Run a model once over corpora and store every layer's hidden state of every token.

    Resumable: if a dump is killed, run the same command again; it continues from the last
    committed batch and ends with the same bytes as an uninterrupted run.

    \b
    Examples:
      hs dump --task stsb --task sickr --out runs/minilm
      hs dump --model bert-base-uncased --task wikitext2 --layers 0,12 --out runs/bert
      hs dump --corpus-file my.txt --out runs/minilm
      hs dump --corpus-file wiki.train.raw --corpus-format wikitext --corpus-name wikitext2-train --out runs/minilm
      hs dump --task stsb --template promptbert --out runs/minilm        # corpora stsb~promptbert(~empty)
      hs dump --task stsb --attention-diagonals --out runs/minilm-ditto
      hs dump --preset study --out runs/study-minilm                     # the study's corpora (docs/study.md)
      hs dump --task stsb --out s3://my-bucket/runs/minilm             # object storage (docs/scale.md)
      CUDA_VISIBLE_DEVICES=0 hs dump --task stsb --shard 1/2 --out runs/minilm &   # one per GPU,
      CUDA_VISIBLE_DEVICES=1 hs dump --task stsb --shard 2/2 --out runs/minilm &   # then:
      wait; hs merge runs/minilm
      hs dump --task stsb --dask tcp://scheduler:8786 --out /shared/runs/minilm   # shards on Dask workers
    """
    from hsstore.corpusfile import read_corpus_file
    from hsstore.dump import CorpusSource, run_dump
    from hsstore.tasks import get_task
    from hsstore.writer import check_corpus_name
    from hsstore.templates import with_templates

    if preset and (tasks or templates):
        raise HsError("--preset names its own tasks and templates; leave out --task and --template")
    if not tasks and not files and not preset:
        raise HsError("nothing to dump: give --task TASK (see `hs tasks`), --corpus-file FILE or --preset NAME")
    if shard is not None:
        from hsstore.shards import parse_shard
        shard = parse_shard(shard)
    if dask_address and (shard or attention_diagonals):
        raise HsError("--dask runs every shard itself: drop --shard" if shard else
                      "--attention-diagonals cannot be combined with --dask; dump those corpora in one process")
    if shards and not dask_address:
        raise HsError("--shards N goes with --dask; to dump one shard yourself, use --shard K/N")
    if corpus_name and len(files) != 1:
        raise HsError("--corpus-name names a single --corpus-file")
    sources = []
    for name in tasks:
        task = get_task(name)
        sources.append(CorpusSource(task.id, task.texts(), {"task": task.id, "dataset": task.dataset,
                                                            "splits": list(task.splits)}))
    for f in files:
        texts = read_corpus_file(f, column=column, encoding=encoding, skip_empty=skip_empty, fmt=corpus_format)
        name = check_corpus_name(corpus_name or f.stem, user=True)
        sources.append(CorpusSource(name, texts, {"file": str(f), "column": column}))
    sources = with_templates(sources, list(templates)) if sources else []
    if preset:
        from hsstore.presets import preset_sources
        sources = preset_sources(preset) + sources
    if dask_address:
        from hsstore.dask_dump import dump_on_dask
        from hsstore.writer import check_output_path

        check_output_path(out)
        kwargs = {"model_name": model, "sources": sources, "out": out, "layers_spec": layers, "dtype": dtype,
                  "max_length": max_length, "batch_tokens": batch_tokens, "chunk_tokens": chunk_tokens,
                  "device": device, "precision": precision}
        summary = dump_on_dask(dask_address, shards, kwargs, log=lambda m: click.echo(m, err=True))
        click.echo(f"stored {len(summary)} corpora in {out}")
        _print_info(out)
        return
    summary = run_dump(model, sources, out, layers, dtype, max_length, batch_tokens, chunk_tokens=chunk_tokens,
                       device=device,
                       precision=precision, progress=not quiet, log=lambda m: click.echo(m, err=True),
                       attention_diagonals=attention_diagonals, shard=shard)
    if shard:
        click.echo(f"stored shard {shard[0]}/{shard[1]} of {len(summary)} corpora in {out}; once all {shard[1]} "
                   f"are done: hs merge {out}")
        return
    click.echo(f"stored {len(summary)} corpora in {out}")
    _print_info(out)


@hs.command()
@click.argument("store", type=STORE)
def merge(store):
    """Join the parts of a sharded dump (hs dump --shard K/N --out STORE) into STORE: the same files a
    dump in one process writes. Checks that all N parts are there, finished and made by the same
    command; moves their chunk files in (no copy) and removes STORE/shards. Resumable: if it is
    killed, run it again.

    \b
    Example:
      hs dump --task stsb --shard 1/2 --out runs/minilm & hs dump --task stsb --shard 2/2 --out runs/minilm
      wait; hs merge runs/minilm
    """
    from hsstore.shards import merge as run_merge

    merged = run_merge(store, log=lambda m: click.echo(m, err=True))
    click.echo(f"merged {len(merged)} corpora into {store}")
    _print_info(store)


@hs.command()
@click.option("--family", type=click.Choice(["sts", "classification", "pair-classification", "clustering", "corpus"]),
              help="Only tasks of this family.")
def tasks(family):
    """List the benchmark tasks, with their data's rows, source and licence."""
    from hsstore.tasks import TASKS

    rows = [("task", "family", "splits", "rows", "aliases", "source / licence")]
    for t in TASKS.values():
        if family and t.family != family:
            continue
        n = sum(t.info.rows.get(s, 0) for s in t.splits)
        rows.append((t.id, t.family, ",".join(t.splits), str(n), ",".join(t.aliases),
                     f"{t.info.source}; {t.info.licence}" + (f"; {t.info.note}" if t.info.note else "")))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[5])


def _print_info(path: Path) -> None:
    import hsstore

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


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


@hs.command()
@click.argument("store", type=STORE)
def info(store):
    """Show a store's model, settings and corpora (sizes, bytes per token)."""
    _print_info(store)


@hs.command()
@click.argument("store", type=STORE)
@click.argument("corpus")
@click.argument("index", type=int)
def show(store, corpus, index):
    """Show one stored sentence: its tokens, their kinds, and each layer's vector norm."""
    import numpy as np

    import hsstore

    st = hsstore.open(store)
    c = st.corpus(corpus)
    states = c.hidden(index)
    norms = np.linalg.norm(states, axis=2)  # (layers, tokens)
    header = ["token", "kind"] + [f"L{layer}" for layer in st.layers]
    rows = [header] + [[tok, kind] + [f"{v:.2f}" for v in norms[:, j]]
                       for j, (tok, kind) in enumerate(zip(c.tokens(index), c.token_kinds(index)))]
    click.echo(f"{corpus}[{index}]: {c.texts[index]}")  # after every read: an error prints alone
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for r in rows:
        click.echo("  ".join(v.ljust(w) if i < 2 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths))))


@hs.command()
@click.argument("store", type=STORE)
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--corpus", "-c", "corpora", multiple=True, metavar="NAME",
              help="Export only this corpus (repeatable) [default: every complete corpus].")
@click.option("--quiet", "-q", is_flag=True)
def export(store, out, corpora, quiet):
    """Write a store's complete corpora to one HDF5 file (hsstore.open reads it too), with HDF5
    dimension scales (layer numbers; token and feature labels)."""
    import hsstore
    from hsstore.export import export_hdf5

    export_hdf5(hsstore.open(store), out, progress=not quiet, corpora=list(corpora) or None)
    click.echo(f"wrote {out}")


@hs.command()
@click.argument("store", type=STORE)
@click.option("--corpus", "corpus_name", metavar="NAME", help="Check only this corpus.")
@click.option("--deep", is_flag=True, help="Also read every chunk and compare its CRC-32C with the stored one "
                                            "and the manifest's (reads the whole store).")
@click.option("--repair", is_flag=True, help="Remove the temporary files of killed runs (nothing else is changed).")
def verify(store, corpus_name, deep, repair):
    """Check a store: metadata, shapes, offsets, that every chunk file is there at full size, and
    (--deep) every chunk's checksum against the manifest. Prints each problem as
    `corpus NAME array ARRAY chunk KEY: what` and exits with status 1 if there is any.

    \b
    Examples:
      hs verify runs/minilm
      hs verify runs/minilm --corpus stsb --deep
    """
    from hsstore.verify import verify as run_verify

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


from cli.eval_cmd import eval_command  # noqa: E402

hs.add_command(eval_command, "eval")
hs.add_command(__import__("cli.steps_cmd", fromlist=["_"]).steps_command, "steps")
hs.add_command(__import__("cli.report_cmd", fromlist=["_"]).report_command, "report")

if __name__ == "__main__":
    hs()
