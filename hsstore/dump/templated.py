"""Templated corpora at dump time: a template tokenized for one tokenizer, and the plans of
``<corpus>~<template>`` and ``<corpus>~<template>~empty`` (hsstore/tasks/templates.py says what they hold).

The sentence and the template pieces are tokenized separately and joined, so no token straddles
the boundary between sentence and template (for WordPiece this equals tokenizing the joined string;
byte-level BPE may merge across it, e.g. ``."``, which the joined string would give). Truncation
cuts the sentence's tail, never the template.
"""
from __future__ import annotations

import re

import numpy as np

from hsstore.errors import HsError
from hsstore.format.layout import KIND_MASK, KIND_SPECIAL, KIND_TEMPLATE, KIND_TEXT, empty_label
from hsstore.tasks.templates import EMPTY, MASK, SEPARATOR, SLOT, Template

from .plan import dedupe, first_positions, plan_corpus, plan_rows


class TemplateTokens:
    """A template tokenized for one tokenizer: special tokens, prefix (before [X]) and suffix pieces."""

    def __init__(self, tokenizer, template: Template):
        self.template = template
        mask_id = tokenizer.mask_token_id if template.readout == "mask" else None
        if template.readout == "mask" and mask_id is None:
            raise HsError(f"template {template.name!r} has a [MASK] slot, but this model's tokenizer has no mask "
                          f"token; use a template without [MASK] (e.g. prompteol, read at its last token)")
        self.head, self.tail = special_frame(tokenizer)
        before, after = template.text.split(SLOT)
        self.space_before_sentence = before.endswith(" ")  # the space belongs to the sentence's first word
        self.prefix = _encode(tokenizer, before.rstrip(" ")) if before.strip() else []
        if MASK in before:
            raise HsError(f"template {template.text!r}: [MASK] must come after [X]")
        self.suffix, readout = [], None
        parts = re.split(r"(\[MASK\])", after)
        for i, piece in enumerate(parts):
            if piece == MASK:
                readout = len(self.suffix)
                self.suffix.append(mask_id)
            elif piece.strip():
                if i + 1 < len(parts):  # text before [MASK] leaves its trailing space to the mask (RoBERTa's <mask> strips it)
                    piece = piece.rstrip(" ")
                self.suffix += _encode(tokenizer, piece)
        if readout is None and self.suffix:
            readout = len(self.suffix) - 1
        self.readout = readout  # index into the suffix; None: nothing after [X], no read-out slot
        self.n_template = len(self.prefix) + len(self.suffix)

    def sentence_ids(self, tokenizer, texts: list[str]) -> list[list[int]]:
        lead = " " if self.space_before_sentence else ""
        return tokenizer([lead + t for t in texts], add_special_tokens=False, return_attention_mask=False,
                         return_token_type_ids=False)["input_ids"]

    def wrap(self, sentence: list[int]) -> tuple[list[int], list[int]]:
        """Token ids and kinds of one templated sentence."""
        ids = self.head + self.prefix + sentence + self.suffix + self.tail
        kinds = ([KIND_SPECIAL] * len(self.head) + [KIND_TEMPLATE] * len(self.prefix) + [KIND_TEXT] * len(sentence)
                 + [KIND_TEMPLATE] * len(self.suffix) + [KIND_SPECIAL] * len(self.tail))
        if self.readout is not None:
            kinds[len(self.head) + len(self.prefix) + len(sentence) + self.readout] = KIND_MASK
        return ids, kinds

    @property
    def n_prefix(self) -> int:
        """Tokens before the sentence: special tokens and the template's prefix."""
        return len(self.head) + len(self.prefix)

    def budget(self, max_length: int) -> int:
        room = max_length - len(self.head) - len(self.tail) - self.n_template
        if room < 1:
            raise HsError(f"template {self.template.name!r} takes {max_length - room} of the {max_length} tokens "
                          f"allowed, leaving no room for the sentence; use a shorter template or a larger --max-length")
        return room


def _encode(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def special_frame(tokenizer) -> tuple[list[int], list[int]]:
    """The special tokens the tokenizer puts before and after a single text (e.g. [CLS] ... [SEP])."""
    probe = "hello"
    plain = _encode(tokenizer, probe)
    full = tokenizer(probe, add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start:start + len(plain)] == plain:
            return full[:start], full[start + len(plain):]
    raise HsError("cannot tell where this tokenizer puts its special tokens; templates need a tokenizer that "
                  "wraps a text as <specials> text <specials>")


def position_base(model) -> int:
    """The position id of a sequence's first token: padding_idx + 1 for RoBERTa-style embeddings, else 0."""
    embeddings = getattr(getattr(model, "base_model", model), "embeddings", None)
    padding_idx = getattr(embeddings, "padding_idx", None)
    return int(padding_idx) + 1 if padding_idx is not None else 0


def templated_ids(tokenizer, template: Template, texts: list[str], max_length: int):
    """Per text: token ids, kinds, sentence length in tokens (after truncation), whether it was cut."""
    tt = TemplateTokens(tokenizer, template)
    room = tt.budget(max_length)
    out = []
    for sentence in tt.sentence_ids(tokenizer, texts):
        cut = sentence[:room]
        ids, kinds = tt.wrap(cut)
        out.append((ids, kinds, len(cut), len(sentence) > room))
    return tt, out


def empty_rows(tt: TemplateTokens, lengths: list[int], base: int):
    """The template with an empty sentence, one row per sentence length k, with shifted position ids."""
    ids, kinds = tt.wrap([])
    rows = []
    for k in lengths:
        positions = base + np.arange(len(ids), dtype=np.int64)
        positions[tt.n_prefix:] += k
        rows.append((ids, kinds, positions.astype(np.int32)))
    return rows


def plan_source(loaded, src, max_length: int, batch_tokens: int, max_batch: int):
    """The corpus plan of a source: plain, templated, or the template with an empty sentence."""
    if src.template is None:
        return plan_corpus(loaded.tokenizer, src, max_length, batch_tokens, max_batch)
    texts = dedupe(src.texts)
    tt, wrapped = templated_ids(loaded.tokenizer, src.template, texts, max_length)
    info = {"name": src.template.name, "text": src.template.text, "readout": src.template.readout}
    if not src.empty:
        rows = [(ids, kinds, None) for ids, kinds, _, _ in wrapped]
        source = {**src.source, "template": info}
        return plan_rows(src.name, texts, rows, sum(w[3] for w in wrapped), source, batch_tokens, max_batch,
                         first_positions(src.texts))
    lengths = sorted({k for _, _, k, _ in wrapped})
    rows = empty_rows(tt, lengths, position_base(loaded.model))
    labels = [empty_label(src.template.text, k) for k in lengths]
    source = {**src.source, "template": info, "sentence_lengths": lengths,
              "denoises": src.name[:-len(SEPARATOR + EMPTY)]}
    return plan_rows(src.name, labels, rows, 0, source, batch_tokens, max_batch)


def check_templates(tokenizer, sources: list) -> None:
    """Fail before anything is written if a template does not fit this tokenizer."""
    for template in {s.template for s in sources if s.template is not None}:
        TemplateTokens(tokenizer, template)
