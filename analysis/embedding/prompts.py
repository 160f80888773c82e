"""Read-outs of templated corpora and Ditto's token weights, from the store (docs/prompts.md).

- the read-out slot (``pool=mask``): per sentence, the state of its token of kind 3 (the mask token,
  or a template's last token for PromptEOL), as a one-hot token weight under mean pooling;
- kind filters: the sentence's own tokens only, or every templated token;
- PromptBERT's template denoising: the read-out state minus the read-out state of the template with
  an empty sentence whose later positions are shifted by the sentence's length k (corpus C~T~empty);
- Ditto (Chen et al. 2023): token weights = the stored self-attention a_ii of one layer and head.

Everything here is linear in the layer states, so per-layer results mix like plain mean pooling.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from hsstore.errors import HsError, StoreError
from hsstore.format.layout import KIND_MASK, KIND_TEMPLATE, KIND_TEXT
from hsstore.store.attention import read_diagonal
from hsstore.tasks.templates import SEPARATOR, TEMPLATES, empty_name

from ..recipes.recipe import Part, Recipe
from ..recipes.steps import Param, Step, StepType, register
from .pooling import Pooling
from .tokens import Stream, Weights, store_stream
from .views import _LAYERS, Contextual, View


def template_of(corpus) -> dict | None:
    """The template a corpus was dumped with (name, text, readout), or None for a plain corpus."""
    return (corpus.attrs.get("source") or {}).get("template")


def require_template(corpus, what: str) -> dict:
    template = template_of(corpus)
    if template is None:
        raise HsError(f"{what} needs a templated corpus, but {corpus.name!r} is plain: dump the task with "
                      f"`hs dump --template promptbert` and use view=prompt:template=promptbert")
    return template


def slot_weights(corpus) -> np.ndarray:
    """1 at each sentence's read-out slot, 0 elsewhere: mean pooling with these weights reads the slot."""
    template = require_template(corpus, "pool=mask")
    if template.get("readout") == "none":
        raise HsError(f"pool=mask reads a template's read-out slot, but {template['text']!r} has nothing after [X] "
                      f"(corpus {corpus.name!r}); pool its tokens instead, e.g. pool=mean;drop=template")
    return (corpus.all_token_kinds == KIND_MASK).astype(np.float32)


def kind_weights(corpus, kinds: tuple[int, ...]) -> np.ndarray:
    """1 for tokens of the given kinds, 0 for the others."""
    return np.isin(corpus.all_token_kinds, kinds).astype(np.float32)


def sentence_lengths(corpus) -> np.ndarray:
    """Tokens of kind text per sentence (the sentence's own tokens after truncation)."""
    counts = np.concatenate([[0], np.cumsum(corpus.all_token_kinds == KIND_TEXT)])
    return counts[corpus.offsets[1:]] - counts[corpus.offsets[:-1]]


def empty_corpus(corpus):
    """The template-only corpus C~T~empty that denoises the templated corpus C~T."""
    require_template(corpus, "denoising")
    name = empty_name(corpus.name)
    if name not in corpus.store.corpora:
        raise HsError(f"store {corpus.store.path} lacks {name!r}, the template-only rows that denoise {corpus.name!r}; "
                      f"rerun the `hs dump --template` command that made {corpus.name!r} (it writes both)")
    return corpus.store.corpus(name)


def denoise_rows(corpus, empty) -> np.ndarray:
    """For each sentence of ``corpus``, the row of ``empty`` with the same sentence length (the reader
    checks the lengths against the rows' texts when it reads them)."""
    empty.texts  # noqa: B018 - read, so checked, before the lengths are trusted
    lengths = list(empty.attrs["source"]["sentence_lengths"])
    index = {k: i for i, k in enumerate(lengths)}
    try:
        return np.fromiter((index[int(k)] for k in sentence_lengths(corpus)), dtype=np.int64)
    except KeyError as exc:
        raise HsError(f"{empty.name!r} has no template-only row for sentences of {exc} tokens: it was dumped for "
                      f"other texts; dump the templated corpus again into a new store") from None


def denoise(X: np.ndarray, corpus, layer_states_of_empty) -> np.ndarray:
    """``X`` (the read-out state of each sentence at one layer) minus the template-only read-out state
    at the same layer for the sentence's length. ``layer_states_of_empty``: that layer of C~T~empty."""
    from .kernels import pool_states  # numba loads only when needed (not for `hs --help`)

    empty = empty_corpus(corpus)
    delta = pool_states(layer_states_of_empty, [1.0], empty.offsets, slot_weights(empty), "mean")
    return X - delta[denoise_rows(corpus, empty)]


def ditto_weights(corpus, layer: int, head: int) -> np.ndarray:
    """Ditto's token weights: each token's self-attention a_ii at attention layer ``layer``, ``head``."""
    return read_diagonal(corpus, layer, head)


# ---- recipe steps --------------------------------------------------------------------------------

def _template_name(text: str) -> str:
    if SEPARATOR in text or not text:
        raise HsError(f"template={text!r}: give a template's name ({', '.join(TEMPLATES)}, or t<8 hex digits> "
                      f"for your own, as `hs info` lists its corpora)")
    return text


def _stream_corpus(stream: Stream, what: str):
    if stream.corpus is None:
        raise HsError(f"{what} reads token kinds of a stored corpus; it has no meaning for this view's tokens")
    return stream.corpus


@register
class Prompted(View):
    NAME, LAYERED, STATIC = "prompt", True, False
    PARAMS = (Param("template", str, "promptbert", check=_template_name,
                    help=f"the template's name: {', '.join(TEMPLATES)} or t<hex> for your own"),
              _LAYERS)
    DESCRIPTION = "contextual states of the task's templated variant <task>~<template> (hs dump --template)"

    def variant(self, corpus):
        name = f"{corpus.name}{SEPARATOR}{self.template}"
        if name not in corpus.store.corpora:
            raise StoreError(f"store {corpus.store.path} has no complete corpus {name!r}; run: hs dump --model "
                          f"{corpus.store.model['name']} --task {corpus.name} --template {self.template} "
                          f"--out {corpus.store.path}")
        return corpus.store.corpus(name)

    def key(self, store) -> str:
        return f"prompt-{self.template}"

    def corpus_key(self, corpus) -> str:
        """The variant's (and its template-only rows') fingerprints: cached matrices follow their data."""
        variant = self.variant(corpus)
        empty = empty_name(variant.name)
        tail = corpus.store.corpus(empty).fingerprint[:12] if empty in corpus.store.corpora else "none"
        return f"prompt-{self.template}-{variant.fingerprint[:12]}-{tail}"

    def signature(self, store, layer, corpus=None):
        """The template-only rows' files too: denoising reads their states."""
        empty = empty_name(self.variant(corpus).name) if corpus is not None else None
        return store.corpus(empty).signature(layer) if empty in store.corpora else ""

    def stream(self, corpus) -> Stream:
        return store_stream(self.variant(corpus))

    def states_corpus(self, corpus):
        return self.variant(corpus)

    def align(self, X: np.ndarray, corpus) -> np.ndarray:
        """Rows of the variant's order put in the task corpus's order (matched by sentence text)."""
        return np.ascontiguousarray(X[self.variant(corpus).ids_of(corpus.texts)])


@register
class ReadOut(Pooling):
    NAME = "mask"
    PARAMS = (Param("denoise", str, "no", choices=("no", "yes"),
                    help="subtract the template-only state at the same length (PromptBERT)"),)
    DESCRIPTION = ("the template's read-out slot ([MASK], PromptEOL's last token); denoise=yes subtracts "
                   "the template's own state there (PromptBERT)")

    def __init__(self, denoise: str = "no"):
        self.denoise = denoise

    def prepare(self, weights, stream):
        return slot_weights(_stream_corpus(stream, "pool=mask"))

    def finish(self, X, weights, stream):
        if self.denoise == "no":
            return X
        corpus = _stream_corpus(stream, "pool=mask:denoise=yes")
        return denoise(X, corpus, empty_corpus(corpus).layer(self.layer))  # a few hundred tokens


@register
class DropTemplate(StepType):
    AXIS, NAME, LEVELS, BY_ID = "drop", "template", ("subword",), False
    DESCRIPTION = "a template's own tokens and its read-out slot (with special: the sentence's tokens only)"

    def dropped(self, stream: Stream, refs: dict) -> np.ndarray:
        _stream_corpus(stream, "drop=template")
        return np.isin(stream.kinds, (KIND_TEMPLATE, KIND_MASK))


@register
class Ditto(Weights):
    NAME, LEVELS, BY_ID = "ditto", ("subword",), False
    PARAMS = (Param("layer", int, 1, low=1, help="attention layer (1 = first block; Ditto's layer 0)"),
              Param("head", int, 9, low=0, help="attention head"))
    DESCRIPTION = "each token's self-attention a_ii at one layer and head (Ditto; hs dump --attention-diagonals)"

    def __init__(self, layer: int = 1, head: int = 9):
        self.layer, self.head = layer, head

    def token_weights(self, stream: Stream, refs: dict) -> np.ndarray:
        return ditto_weights(_stream_corpus(stream, "weights=ditto"), self.layer, self.head)


def query_template(recipe: Recipe) -> tuple[str, Recipe] | None:
    """A retrieval recipe's query-side template. A retrieval task's template wraps its queries only
    (``hs dump --template`` makes ``<task>~T`` of them), so ``view=prompt:template=T`` there means: the
    queries from ``<task>~T``, the documents from the task's corpus, both read as stored (``view=ctx``
    with the part's layers). Returns (T, that recipe), or None for a recipe without a template."""
    parts = [p for p in recipe.view if p.step.name == Prompted.NAME]
    if not parts:
        return None
    if len(recipe.view) > 1:
        raise HsError(f"recipe {recipe}: on a retrieval task view=prompt must be the only view (its template is the "
                      f"queries', so a mix has no meaning for the documents)")
    if recipe.pool.name == ReadOut.NAME:
        raise HsError(f"recipe {recipe}: a retrieval task's documents are not templated, so they have no read-out "
                      f"slot for pool=mask; pool the tokens (pool=mean, with drop=template to leave the template's "
                      f"words out of the queries)")
    step = parts[0].step
    layers = step.param("layers")
    plain = Step("view", Contextual.NAME, (("layers", layers),) if layers else ())
    return step.kwargs["template"], replace(recipe, view=(Part(plain),))
