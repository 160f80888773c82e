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

import numpy as np

from hsstore.attention import read_diagonal
from hsstore.errors import HsError
from hsstore.format import KIND_MASK, KIND_TEXT
from hsstore.templates import SEPARATOR, empty_name


def template_of(corpus) -> dict | None:
    """The template a corpus was dumped with (name, text, readout), or None for a plain corpus."""
    return (corpus.attrs.get("source") or {}).get("template")


def require_template(corpus, what: str) -> dict:
    template = template_of(corpus)
    if template is None:
        raise HsError(f"{what} reads a template's slot, but corpus {corpus.name!r} is not templated; dump it with "
                      f"`hs dump --template promptbert` and evaluate its variant (e.g. {corpus.name}{SEPARATOR}promptbert)")
    return template


def slot_weights(corpus) -> np.ndarray:
    """1 at each sentence's read-out slot, 0 elsewhere: mean pooling with these weights reads the slot."""
    require_template(corpus, "pool=mask")
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
    """For each sentence of ``corpus``, the row of ``empty`` with the same sentence length."""
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
    from .kernels import pool_states

    empty = empty_corpus(corpus)
    delta = pool_states(layer_states_of_empty, [1.0], empty.offsets, slot_weights(empty), "mean")
    return X - delta[denoise_rows(corpus, empty)]


def ditto_weights(corpus, layer: int, head: int) -> np.ndarray:
    """Ditto's token weights: each token's self-attention a_ii at attention layer ``layer``, ``head``."""
    return read_diagonal(corpus, layer, head)
