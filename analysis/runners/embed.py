"""A recipe's sentence vectors out of a store, in the corpus's original order (``hs embed``).

A store keeps each corpus's texts deduplicated and sorted by token count (the dump's batches). The
original order is the order of the task's data (``Task.texts()``, first occurrences) or of the
user's file: a store dumped by this hs records each sentence's first position in its source
(``source_position``); for an older store the recorded file is read again (with the options the dump
recorded, else the defaults), and used only if it was not modified after the corpus was written and
its texts, sorted the way the dump sorts them, are exactly the stored ones. Otherwise the original
order is refused, never guessed: ``order="stored"`` gives the rows as stored.

    from analysis.runners.embed import embed
    out = embed(hsstore.open("runs/minilm"), parse_recipe("layers=last;pool=mean"), corpus="stsb")
    out.matrix, out.ids, out.texts          # (n, dim) float32; each row's position in the source; its text
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hsstore.errors import HsError, StoreError
from hsstore.format.layout import stored_order
from hsstore.format.storage import is_remote
from hsstore.store import Corpus, Store
from hsstore.tasks import TASKS
from hsstore.tasks.corpusfile import read_corpus_file

from ..recipes.recipe import Recipe
from .engine import Engine

ORDERS = ("original", "stored")


@dataclass
class Embedded:
    """A corpus's sentence vectors: ``matrix`` row i is the text ``texts[i]``, at position ``ids[i]``
    of its source (original order) or of the store (stored order)."""
    matrix: np.ndarray
    ids: np.ndarray
    texts: list[str]
    corpus: str
    recipe: Recipe
    order: str


def _stored_hint(corpus: Corpus) -> str:
    return f"--order stored gives {corpus.name!r}'s rows in the store's order (by token count)"


def _dumped_at(corpus: Corpus) -> float | None:
    """When the corpus's texts were written (its text arrays' files), where the store is a local directory."""
    if not corpus.store.is_zarr or is_remote(corpus.dir) or not (corpus.dir / "text").is_dir():
        return None
    times = [p.stat().st_mtime for p in (corpus.dir / "text").rglob("*") if p.is_file()]
    return min(times) if times else None


def _from_file(corpus: Corpus, source: dict) -> tuple[np.ndarray, np.ndarray]:
    """(stored rows, source positions) by reading the corpus's file again, if it is unchanged since the
    dump (not modified after the corpus was written) and still holds its texts in an order the dump's
    sort maps to the stored one."""
    path = Path(source["file"])
    dumped = _dumped_at(corpus)
    if dumped is None or not path.is_file() or path.stat().st_mtime > dumped:
        why = "was changed after the dump" if path.is_file() and dumped is not None else \
            "is not there" if not path.is_file() else "cannot be compared with this copy of the store"
        raise HsError(f"corpus {corpus.name!r} records no original order, and its file {path} {why}; "
                      f"{_stored_hint(corpus)}")
    try:
        texts = read_corpus_file(path, column=source.get("column"), encoding=source.get("encoding", "utf-8"),
                                 skip_empty=bool(source.get("skip_empty", False)), fmt=source.get("format", "auto"))
    except HsError as exc:
        raise HsError(f"corpus {corpus.name!r} records no original order, and its file cannot be read again "
                      f"({exc}); {_stored_hint(corpus)}") from None
    first: dict[str, int] = {}
    for i, text in enumerate(texts):
        first.setdefault(text, i)
    unique = list(first)
    index = corpus.sentence_ids
    lengths = np.diff(corpus.offsets)
    if len(unique) != corpus.n_sentences or any(t not in index for t in unique) or \
            [unique[i] for i in stored_order(lengths[[index[t] for t in unique]])] != corpus.texts:
        raise HsError(f"corpus {corpus.name!r} records no original order, and {path} no longer holds the texts "
                      f"it was dumped from in their order; {_stored_hint(corpus)}")
    return np.fromiter((index[t] for t in unique), dtype=np.int64, count=len(unique)), \
        np.fromiter(first.values(), dtype=np.int64, count=len(unique))


def original_order(corpus: Corpus) -> tuple[np.ndarray, np.ndarray]:
    """(rows, ids): the stored rows of ``corpus`` in its source's order, and each one's position there."""
    positions = corpus.source_positions
    if positions is not None:
        if len(positions) != corpus.n_sentences or len(np.unique(positions)) != len(positions):
            raise StoreError(f"corpus {corpus.name!r}: source_position does not give each sentence one place; "
                             f"run hs verify {corpus.store.path}")
        rows = np.argsort(positions, kind="stable")
        return rows, positions[rows]
    source = corpus.attrs.get("source") or {}
    if source.get("denoises"):
        raise HsError(f"corpus {corpus.name!r} holds a template's rows for denoising, which have no original order; "
                      f"{_stored_hint(corpus)}")
    if source.get("task") in TASKS:
        texts = TASKS[source["task"]].texts()
        if len(texts) != corpus.n_sentences or not set(texts) <= set(corpus.sentence_ids):
            raise HsError(f"corpus {corpus.name!r} holds other texts than task {source['task']}'s data now; "
                          f"{_stored_hint(corpus)}")
        return corpus.ids_of(texts), np.arange(len(texts), dtype=np.int64)
    if source.get("file"):
        return _from_file(corpus, source)
    raise HsError(f"corpus {corpus.name!r} records no original order and no source to read it from; "
                  f"{_stored_hint(corpus)}")


def embed(store: Store, recipe: Recipe, corpus: str, order: str = "original", engine: Engine | None = None) -> Embedded:
    """The recipe's final (post-processed) sentence vectors of a corpus of ``store``, one row per text,
    in ``order``: ``original`` (the source's) or ``stored``."""
    if order not in ORDERS:
        raise HsError(f"order must be one of {', '.join(ORDERS)}, not {order!r}")
    engine = engine or Engine(store)
    c = store.corpus(corpus)  # the reader's own error for a missing or incomplete corpus
    if order == "original":
        rows, ids = original_order(c)  # before the work: a refusal comes at once
    else:
        rows = ids = np.arange(c.n_sentences, dtype=np.int64)
    engine.check([], [recipe])
    X = engine.embed(corpus, recipe)
    return Embedded(np.ascontiguousarray(X[rows]), ids, [c.texts[i] for i in rows], corpus, recipe, order)
