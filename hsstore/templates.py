"""Prompt templates: each text wrapped in a template and dumped as its own corpus variant.

A template is a string with ``[X]`` where the sentence goes and, for a mask read-out, ``[MASK]``
where the tokenizer's own mask token goes. ``hs dump --template promptbert --task stsb`` stores:

- ``stsb~promptbert``: the templated texts. The stored ``text`` is the sentence itself (so tasks find
  their sentences); token kinds mark the sentence's tokens (0), special tokens (1), template tokens (2)
  and the read-out slot (3): the mask token, or for a template without ``[MASK]`` (PromptEOL, for
  decoders) its last template token.
- ``stsb~promptbert~empty``: the template with an empty sentence, once for each sentence length k
  (in tokens) that ``stsb~promptbert`` holds. Every token after the template's prefix gets its
  position id shifted by k, so the read-out slot sits at the position it has in a k-token sentence:
  PromptBERT's template denoising (Jiang et al. 2022, ``get_delta`` in its evaluation.py). The
  position ids the model saw are stored (``position_ids``).

The sentence and the template pieces are tokenized separately and joined, so no token straddles
the boundary between sentence and template (for WordPiece this equals tokenizing the joined string;
byte-level BPE may merge across it, e.g. ``."``, which the joined string would give). Truncation
cuts the sentence's tail, never the template.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import numpy as np

from .errors import HsError
from .format import KIND_MASK, KIND_SPECIAL, KIND_TEMPLATE, KIND_TEXT

SLOT, MASK = "[X]", "[MASK]"
SEPARATOR = "~"  # corpus variant names: <corpus>~<template>, and <corpus>~<template>~empty
EMPTY = "empty"


@dataclass(frozen=True)
class Template:
    name: str
    text: str
    source: str = "your own"

    @property
    def readout(self) -> str:
        """``mask`` (the mask token's state) or ``last`` (the last template token's state)."""
        return "mask" if MASK in self.text else "last"


TEMPLATES = {t.name: t for t in [
    Template("promptbert", 'This sentence : "[X]" means [MASK] .',
             "PromptBERT (Jiang et al. 2022), its manual template for BERT"),
    Template("promptbert-of", 'This sentence of "[X]" means [MASK] .',
             "PromptBERT (Jiang et al. 2022), its template for unsupervised BERT training"),
    Template("prompteol", 'This sentence : "[X]" means in one word:"',
             "PromptEOL (Jiang et al. 2023, Scaling Sentence Embeddings with LLMs), for decoders"),
]}


def parse_template(spec: str) -> Template:
    """A shipped template by name, or a user's string with exactly one ``[X]``."""
    if spec in TEMPLATES:
        return TEMPLATES[spec]
    if spec.count(SLOT) != 1 or spec.count(MASK) > 1:
        raise HsError(f"unknown template {spec!r}: give a name ({', '.join(TEMPLATES)}) or a string with one "
                      f"[X] where the sentence goes and at most one [MASK], e.g. 'This sentence : \"[X]\" means [MASK] .'")
    if SEPARATOR in spec:
        raise HsError(f"a template may not contain {SEPARATOR!r} (it separates corpus variant names)")
    # a user's template is named by a digest of its text, so two templates never share a corpus
    return Template("t" + hashlib.sha256(spec.encode()).hexdigest()[:8], spec)


def variant_name(corpus: str, template: Template) -> str:
    return f"{corpus}{SEPARATOR}{template.name}"


def empty_name(variant: str) -> str:
    return f"{variant}{SEPARATOR}{EMPTY}"


def template_help() -> str:
    return "; ".join(f"{t.name}: {t.text}" for t in TEMPLATES.values())


class TemplateTokens:
    """A template tokenized for one tokenizer: special tokens, prefix (before [X]) and suffix pieces."""

    def __init__(self, tokenizer, template: Template):
        self.template = template
        mask_id = tokenizer.mask_token_id if template.readout == "mask" else None
        if template.readout == "mask" and mask_id is None:
            raise HsError(f"template {template.name!r} has a [MASK] slot, but this model's tokenizer has no mask "
                          f"token; use a template without [MASK] (e.g. prompteol, read at its last token)")
        self.head, self.tail = _special_frame(tokenizer)
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
        if readout is None:
            if not self.suffix:
                raise HsError(f"template {template.text!r} has nothing after [X] to read the sentence out at")
            readout = len(self.suffix) - 1
        self.readout = readout  # index into the suffix
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


def _special_frame(tokenizer) -> tuple[list[int], list[int]]:
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
    from .dump import dedupe, plan_corpus, plan_rows

    if src.template is None:
        return plan_corpus(loaded.tokenizer, src, max_length, batch_tokens, max_batch)
    texts = dedupe(src.texts)
    tt, wrapped = templated_ids(loaded.tokenizer, src.template, texts, max_length)
    info = {"name": src.template.name, "text": src.template.text, "readout": src.template.readout}
    if not src.empty:
        rows = [(ids, kinds, None) for ids, kinds, _, _ in wrapped]
        source = {**src.source, "template": info}
        return plan_rows(src.name, texts, rows, sum(w[3] for w in wrapped), source, batch_tokens, max_batch)
    lengths = sorted({k for _, _, k, _ in wrapped})
    rows = empty_rows(tt, lengths, position_base(loaded.model))
    labels = [src.template.text.replace(SLOT, f"<{k} tokens>") for k in lengths]
    source = {**src.source, "template": info, "sentence_lengths": lengths,
              "denoises": src.name[:-len(SEPARATOR + EMPTY)]}
    return plan_rows(src.name, labels, rows, 0, source, batch_tokens, max_batch)


def with_templates(sources: list, specs: list[str]) -> list:
    """Each source once per template (``none`` = as it is), a template's variant followed by its empty one."""
    from dataclasses import replace

    out = []
    for spec in specs or ["none"]:
        if spec == "none":
            out += sources
            continue
        template = parse_template(spec)
        for src in sources:
            name = variant_name(src.name, template)
            out.append(replace(src, name=name, template=template))
            out.append(replace(src, name=empty_name(name), template=template, empty=True))
    return out


def check_templates(tokenizer, sources: list) -> None:
    """Fail before anything is written if a template does not fit this tokenizer."""
    for template in {s.template for s in sources if s.template is not None}:
        TemplateTokens(tokenizer, template)


def batch_positions(plan, b: int, width: int) -> np.ndarray | None:
    """Padded position ids of batch ``b`` for a plan that carries its own (template-only corpora), else None."""
    if plan.position_ids is None:
        return None
    start = int(plan.batch_ends[b - 1]) if b else 0
    spans = plan.offsets[start:int(plan.batch_ends[b]) + 1]
    out = np.zeros((len(spans) - 1, width), dtype=np.int64)
    for row, (a, z) in enumerate(zip(spans[:-1].tolist(), spans[1:].tolist())):
        out[row, :z - a] = plan.position_ids[a:z]
    return out
