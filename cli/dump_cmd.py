"""``hs dump`` and ``hs merge``: run a model into a store, and join a sharded dump's parts."""
from __future__ import annotations

from pathlib import Path

import click

from hsstore.dump.sources import CorpusSource, task_file_source, task_source, with_templates
from hsstore.errors import HsError
from hsstore.tasks import get_task
from hsstore.tasks.corpusfile import read_corpus_file
from hsstore.tasks.presets import preset_help
from hsstore.tasks.taskfile import FAMILIES as TASK_FILE_FAMILIES, read_task_file
from hsstore.tasks.templates import template_help

from .params import STORE
from .store_cmds import print_info


def _log(message: str) -> None:
    click.echo(message, err=True)


@click.command()
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
@click.option("--task-file", "task_files", multiple=True, type=click.Path(path_type=Path), metavar="PATH",
              help="Your own task: a .tsv/.csv/.jsonl table whose columns say the family (text1,text2,score: STS; "
                   "text,label[,split]: classification; text1,text2,label: pair classification), or a BEIR folder "
                   "(corpus.jsonl, queries.jsonl, qrels/<split>.tsv: retrieval). Its texts and its definition are "
                   "stored; hs eval then needs only the store (repeatable; docs/tasks.md).")
@click.option("--task-family", type=click.Choice(TASK_FILE_FAMILIES),
              help="The family of every --task-file, where its columns do not say it (text,label: classification "
                   "or clustering).")
@click.option("--task-name", help="Task (and corpus) name for a single --task-file [default: the file's stem, a BEIR "
                                  "folder's name].")
@click.option("--encoding", default="utf-8", show_default=True, help="Encoding of --corpus-file and --task-file.")
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
@click.option("--vocabulary-states", is_flag=True,
              help="Also run every vocabulary id alone through the model (with its special tokens) and store the "
                   "mean of each stored layer's states as the vocabulary table (for view=alone, Model2Vec-style; "
                   "about 160 MB for MiniLM in float16). Alone, it adds the table to an existing store.")
@click.option("--shard", metavar="K/N",
              help="Dump only part K of N (one process per GPU or machine, same command otherwise) into "
                   "OUT/shards/K-of-N; `hs merge OUT` joins the N parts (docs/scale.md).")
@click.option("--dask", "dask_address", metavar="ADDRESS",
              help="Run the shards as tasks on a Dask cluster (tcp://host:8786, or local:N for N local worker "
                   "processes), one per worker, then merge; OUT must be on a file system all workers share.")
@click.option("--shards", type=click.IntRange(min=1), help="With --dask: how many shards [default: one per worker].")
@click.option("--quiet", "-q", is_flag=True,
              help="No progress bar and no informational lines (per-corpus times, the summary); errors still print.")
def dump(model, tasks, preset, files, corpus_name, column, corpus_format, task_files, task_family, task_name, encoding,
         skip_empty, out, layers, dtype, max_length, batch_tokens, chunk_tokens, device, precision, templates,
         attention_diagonals, vocabulary_states, shard, dask_address, shards, quiet):
    """Run a model once over corpora and store every layer's hidden state of every token.

    Resumable: if a dump is killed, run the same command again; it continues from the last
    committed batch and ends with the same bytes as an uninterrupted run.

    \b
    Examples:
      hs dump --task stsb --task sickr --out runs/minilm
      hs dump --model bert-base-uncased --task wikitext2 --layers 0,12 --out runs/bert
      hs dump --corpus-file my.txt --out runs/minilm
      hs dump --task-file pairs.tsv --out runs/minilm                     # your STS pairs: hs eval -t pairs
      hs dump --task-file scifact/ --template 'query : [X]' --out runs/minilm   # a BEIR folder, query template
      hs dump --corpus-file wiki.train.raw --corpus-format wikitext --corpus-name wikitext2-train --out runs/minilm
      hs dump --task stsb --template promptbert --out runs/minilm        # corpora stsb~promptbert(~empty)
      hs dump --task stsb --attention-diagonals --out runs/minilm-ditto
      hs dump --vocabulary-states --out runs/minilm                      # every id alone: view=alone
      hs dump --preset study --out runs/study-minilm                     # the study's corpora (docs/study.md)
      hs dump --task stsb --out s3://my-bucket/runs/minilm             # object storage (docs/scale.md)
      CUDA_VISIBLE_DEVICES=0 hs dump --task stsb --shard 1/2 --out runs/minilm &   # one per GPU,
      CUDA_VISIBLE_DEVICES=1 hs dump --task stsb --shard 2/2 --out runs/minilm &   # then:
      wait; hs merge runs/minilm
      hs dump --task stsb --dask tcp://scheduler:8786 --out /shared/runs/minilm   # shards on Dask workers
    """
    shard = _parse_shard(shard)
    _check_options(tasks, preset, files, templates, corpus_name, shard, dask_address, shards, attention_diagonals,
                   vocabulary_states, task_files, task_family, task_name)
    sources = _sources(tasks, files, templates, corpus_name, column, encoding, skip_empty, corpus_format)
    sources = _task_file_sources(task_files, task_family, task_name, encoding, templates) + sources
    settings = {"layers_spec": layers, "dtype": dtype, "max_length": max_length, "batch_tokens": batch_tokens,
                "chunk_tokens": chunk_tokens, "device": device, "precision": precision}
    log = (lambda m: None) if quiet else _log  # `hs info` still shows what was stored
    if dask_address:
        from hsstore.dump.on_dask import dump_on_dask  # the optional extra dask
        from hsstore.store.writer import check_output_path

        check_output_path(out)
        summary = dump_on_dask(dask_address, shards, {"model_name": model, "sources": sources, "out": out,
                                                      "preset": preset, **settings}, log=log)
    else:
        from hsstore.dump.run import run_dump  # torch and transformers: only once the input is read and checked

        summary = run_dump(model, sources, out, **settings, progress=not quiet, log=log,
                           attention_diagonals=attention_diagonals, shard=shard, preset=preset,
                           vocabulary_states=vocabulary_states)
    if quiet:
        return
    if shard:
        click.echo(f"stored shard {shard[0]}/{shard[1]} of {len(summary)} corpora in {out}; once all {shard[1]} "
                   f"are done: hs merge {out}")
        return
    table = summary.pop("vocabulary", None)
    click.echo(f"stored {len(summary)} corpora" + (" and the vocabulary table" if table else "") + f" in {out}")
    print_info(out)


def _check_options(tasks, preset, files, templates, corpus_name, shard, dask_address, shards, attention_diagonals,
                   vocabulary_states=False, task_files=(), task_family=None, task_name=None):
    """Option combinations that make no dump, refused before anything is read or loaded."""
    if preset and (tasks or templates):
        raise HsError("--preset names its own tasks and templates; leave out --task and --template")
    if not tasks and not files and not preset and not task_files and not vocabulary_states:
        raise HsError("nothing to dump: give --task TASK (see `hs tasks`), --task-file PATH, --corpus-file FILE, "
                      "--preset NAME or --vocabulary-states")
    if task_name and len(task_files) != 1:
        raise HsError("--task-name names a single --task-file")
    if task_family and not task_files:
        raise HsError("--task-family goes with --task-file")
    if dask_address and (shard or attention_diagonals or vocabulary_states):
        raise HsError("--dask runs every shard itself: drop --shard" if shard else
                      f"--{'attention-diagonals' if attention_diagonals else 'vocabulary-states'} cannot be combined "
                      f"with --dask; dump those corpora in one process")
    if shards and not dask_address:
        raise HsError("--shards N goes with --dask; to dump one shard yourself, use --shard K/N")
    if corpus_name and len(files) != 1:
        raise HsError("--corpus-name names a single --corpus-file")


def _parse_shard(shard: str | None) -> tuple[int, int] | None:
    from hsstore.store.shards import parse_shard  # zarr: only when a dump runs

    return None if shard is None else parse_shard(shard)


def _sources(tasks, files, templates, corpus_name, column, encoding, skip_empty, corpus_format) -> list:
    """What the dump reads besides a preset's corpora (which depend on the model: run_dump adds them):
    the tasks' and files' texts, each wrapped in the templates."""
    from hsstore.store.writer import check_corpus_name  # zarr: only when a dump runs

    sources = [task_source(get_task(name).id) for name in tasks]
    for f in files:
        texts = read_corpus_file(f, column=column, encoding=encoding, skip_empty=skip_empty, fmt=corpus_format)
        name = check_corpus_name(corpus_name or f.stem, user=True)
        # how the file was read, so that hs embed can read it again the same way (its original order)
        sources.append(CorpusSource(name, texts, {"file": str(f.resolve()), "column": column, "encoding": encoding,
                                                  "skip_empty": skip_empty, "format": corpus_format}))
    return with_templates(sources, list(templates)) if sources else []


def _task_file_sources(paths, family, name, encoding, templates) -> list:
    """The corpora of the user's task files, each read and checked before the model loads."""
    from hsstore.store.writer import check_corpus_name  # zarr: only when a dump runs

    sources = []
    for path in paths:
        task = read_task_file(path, family=family, name=name, encoding=encoding)
        try:
            check_corpus_name(task.id, user=True)
        except HsError:
            raise HsError(f"task name {task.id[:40]!r} (of {path}) is not allowed: use up to 100 letters, digits and "
                          f". _ + - (not first), e.g. --task-name my-task") from None
        sources.append(task_file_source(task))
    return with_templates(sources, list(templates)) if sources else []


@click.command()
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
    from hsstore.store.shards import merge as run_merge  # zarr: only when merging

    merged = run_merge(store, log=_log)
    click.echo(f"merged {len(merged)} corpora into {store}")
    print_info(store)
