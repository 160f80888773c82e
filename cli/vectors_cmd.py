"""Commands that take findings out of hs: ``hs embed`` (a recipe's vectors of a stored corpus), ``hs fit``
(a recipe fitted once, saved as a folder) and ``hs encode`` (a fitted recipe applied to new texts)."""
from __future__ import annotations

from pathlib import Path

import click

from hsstore.errors import HsError

from .params import STORE

FORMAT_HELP = "The extension names the format: .npy (with a .json beside it: ids, texts, recipe), .parquet, .safetensors."


def _recipe(st, text: str):
    """A recipe from its text; 'model' is the model's own sentence-transformers pipeline, as stored."""
    from analysis.recipes.recipe import parse_recipe
    from hsstore.dump.st_modules import model_recipe

    return parse_recipe(model_recipe(st.model.get("pipeline"), st.model["name"]) if text.strip() == "model" else text)


def _log(message: str) -> None:
    click.echo(message, err=True)


@click.command()
@click.argument("store", type=STORE)
@click.option("--task", "-t", "task", metavar="TASK", help="A task whose corpus to embed (its data's order).")
@click.option("--corpus", "-c", "corpus", metavar="NAME", help="A corpus of the store (e.g. your file's name).")
@click.option("--recipe", "-r", "recipe", required=True, metavar="RECIPE",
              help="The recipe, e.g. 'layers=first-last;weights=idf@wikitext2;post=whiten@wikitext2+l2', or 'model'.")
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), metavar="FILE", help=FORMAT_HELP)
@click.option("--order", type=click.Choice(["original", "stored"]), default="original", show_default=True,
              help="original: the task's data order or your file's; stored: the store's order (by token count).")
@click.option("--no-cache", is_flag=True, help="Do not read or write the on-disk pooled-matrix cache.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def embed(store, task, corpus, recipe, out, order, no_cache, quiet):
    """Write a recipe's final sentence vectors (after post-processing) of a stored corpus: one row per
    text, in the corpus's original order, with each row's id (its position in the task's texts or
    your file) and text.

    \b
    Examples:
      hs embed runs/minilm -t stsb -r 'layers=last;pool=mean' --out stsb.npy      # + stsb.json
      hs embed runs/minilm --corpus mine -r model --out mine.parquet
      hs embed runs/minilm -t stsb -r 'post=whiten@wikitext2+l2' --out stsb.safetensors --order stored
    """
    from tqdm import tqdm

    import hsstore
    from analysis.results.vector_files import check_out, write_vectors
    from analysis.runners.embed import embed as run_embed
    from analysis.runners.engine import Engine, find_task

    if bool(task) == bool(corpus):
        raise HsError("name one corpus: --task TASK or --corpus NAME")
    check_out(out)
    st = hsstore.open(store)
    name = find_task(st, task).id if task else corpus  # a benchmark task, or the store's own (a task file)
    engine = Engine(st, disk_cache=not no_cache)
    with tqdm(unit="tok", unit_scale=True, desc=f"embed {name}", disable=True if quiet else None,
              dynamic_ncols=True) as bar:
        engine.pooler.progress = bar.update
        result = run_embed(st, _recipe(st, recipe), name, order, engine)
    info = {"recipe": str(result.recipe), "corpus": name, "order": order, "ids": "position in the source" if
            order == "original" else "stored row", "store": {"path": str(st.path), "identity": st.identity},
            "model": st.model["name"]}
    for path in write_vectors(out, result.matrix, result.ids, result.texts, info):
        _log(f"wrote {path}")
    _log(f"{result.matrix.shape[0]} vectors of {result.matrix.shape[1]} dimensions, {order} order")


@click.command()
@click.argument("store", type=STORE)
@click.option("--recipe", "-r", "recipe", required=True, metavar="RECIPE",
              help="The recipe, e.g. 'layers=first-last;drop=special;weights=idf@wikitext2;post=whiten@wikitext2', "
                   "or 'model'.")
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path, file_okay=False), metavar="DIR",
              help="A new directory for the fitted recipe.")
@click.option("--fit-on", metavar="CORPUS",
              help="The corpus that steps without @REF (post=whiten, weights=idf) are fitted on (required then, recorded).")
@click.option("--format", "fmt", type=click.Choice(["hs", "sentence-transformers", "model2vec", "static-embedding"]),
              default="hs", show_default=True,
              help="hs: for hs encode and Encoder.load; sentence-transformers: SentenceTransformer(DIR, "
                   "trust_remote_code=True) with hs installed; model2vec, static-embedding: static linear recipes, "
                   "loaded without hs.")
@click.option("--model", "-m", metavar="MODEL",
              help="Where the store's model is, if not where the store recorded it (its tokenizer is copied).")
def fit(store, recipe, out, fit_on, fmt, model):
    """Fit a recipe's learned parts once (token statistics, static tables, post-processing) and save
    them with the recipe and the model's identity, to encode new texts later without the store.

    \b
    Examples:
      hs fit runs/minilm -r 'layers=first-last;drop=special;weights=idf@wikitext2;post=whiten@wikitext2' --out fitted/
      hs fit runs/minilm -r 'post=whiten+l2' --fit-on wikitext2 --out fitted-w/    # whiten fitted on wikitext2
      hs fit runs/minilm -r model --out st/ --format sentence-transformers
      hs fit runs/minilm -r 'view=avg;drop=special;weights=idf@wikitext2' --out m2v/ --format model2vec
      hs info fitted/
    """
    import hsstore
    from encoder.fit import fit_folder

    st = hsstore.open(store)
    meta = fit_folder(st, _recipe(st, recipe), out, fit_on, fmt, model)
    _log(f"wrote {out} ({fmt}): {meta['recipe']}")


@click.command()
@click.argument("fitted", type=click.Path(path_type=Path, file_okay=False))
@click.option("--input", "-i", "input_file", required=True, type=click.Path(path_type=Path), metavar="FILE",
              help="Texts: one per line, or .csv/.tsv/.jsonl with --column (as hs dump --corpus-file).")
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), metavar="FILE", help=FORMAT_HELP)
@click.option("--column", help="Column (CSV/TSV) or field (JSONL) holding the text [default: text].")
@click.option("--corpus-format", type=click.Choice(["auto", "lines", "wikitext"]), default="auto", show_default=True,
              help="auto: by extension; wikitext: a WikiText raw file split into sentences.")
@click.option("--encoding", default="utf-8", show_default=True, help="Encoding of --input.")
@click.option("--skip-empty", is_flag=True, help="Skip empty lines instead of failing.")
@click.option("--batch-size", "-b", type=click.IntRange(min=1), default=32, show_default=True,
              help="Texts per forward pass (sorted by length first).")
@click.option("--model", "-m", metavar="MODEL", help="Where the model is, if not where the store recorded it.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--precision", type=click.Choice(["auto", "fp32", "fp16", "bf16"]), default="auto", show_default=True,
              help="Autocast precision of the forward pass (auto: fp16 on CUDA, fp32 on CPU).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def encode(fitted, input_file, out, column, corpus_format, encoding, skip_empty, batch_size, model, device, precision,
           quiet):
    """Encode new texts with a fitted recipe (hs fit): the model runs as in hs dump, and the vectors
    are those hs eval scores. One row per text of FILE, in its order (id: the text's position).

    \b
    Examples:
      hs encode fitted/ --input queries.txt --out queries.npy
      hs encode fitted/ --input docs.jsonl --column body --out docs.parquet --batch-size 64
    """
    import numpy as np

    from analysis.fitted.folder import read_meta
    from analysis.results.vector_files import check_out, write_vectors
    from encoder import Encoder
    from hsstore.tasks.corpusfile import read_corpus_file

    check_out(out)
    read_meta(fitted)  # a damaged or foreign folder fails before the input is read
    texts = read_corpus_file(input_file, column=column, encoding=encoding, skip_empty=skip_empty, fmt=corpus_format)
    enc = Encoder.load(fitted, model=model, device=device, precision=precision)
    X = enc.encode(texts, batch_size=batch_size, progress=not quiet)
    info = {"recipe": str(enc.recipe), "input": str(input_file), "ids": "position in the input",
            "fitted": str(fitted), "model": enc.fitted.meta["model"]["name"]}
    for path in write_vectors(out, X, np.arange(len(texts)), texts, info):
        _log(f"wrote {path}")
    _log(f"{X.shape[0]} vectors of {X.shape[1]} dimensions")


def print_fitted(path: Path) -> None:
    """A fitted folder, as ``hs info`` describes it."""
    from analysis.fitted.folder import read

    meta, arrays, vocab = read(path)  # every file's checksum checked
    m, s = meta["model"], meta["settings"]
    click.echo(f"fitted  {path}  (format {meta['format']} {meta['format_version']}, hs {meta['hs_version']}, "
               f"{meta['created']})")
    click.echo(f"recipe  {meta['recipe']}")
    click.echo(f"model   {m['name']}  {m['architecture']}, {m['n_layers']} layers, hidden {m['hidden_size']}, "
               f"vocab {m['vocab_size']}  weights {(m.get('weights_sha256') or m.get('revision') or '?')[:16]}")
    click.echo(f"store   {meta['store']['path']}  identity {meta['store']['identity'][:16]}  max_length "
               f"{s['max_length']}" + (f"  --fit-on {meta['fit_on']}" if meta.get("fit_on") else ""))
    for name, info in meta["references"].items():
        click.echo(f"counts  {name}: {info['n_sentences']} sentences, {info['n_tokens']} tokens, fingerprint "
                   f"{info['fingerprint'][:12]}")
    for name, info in meta["tables"].items():
        click.echo(f"table   {info['view']} layer {info['layer']}: {' x '.join(map(str, arrays[name].shape))}")
    for info in meta["random_tables"].values():
        click.echo(f"table   {info['step']}: {' x '.join(map(str, info['shape']))}, drawn from its seed")
    for i, p in enumerate(meta["post"]):
        shapes = ", ".join(f"{a} {' x '.join(map(str, arrays[f'post/{i}/{a}'].shape)) or 'scalar'}" for a in p["arrays"])
        click.echo(f"post    {p['step']}" + (f": {shapes}" if shapes else ""))
    click.echo(f"files   {len(meta['files'])}, every SHA-256 right")
