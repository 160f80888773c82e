"""Prompt templates: each text wrapped in a template and dumped as its own corpus variant.

A template is a string with ``[X]`` where the sentence goes and, for a mask read-out, ``[MASK]``
where the tokenizer's own mask token goes. ``hs dump --template promptbert --task stsb`` stores:

- ``stsb~promptbert``: the templated texts. The stored ``text`` is the sentence itself (so tasks find
  their sentences); token kinds mark the sentence's tokens (0), special tokens (1), template tokens (2)
  and the read-out slot (3): the mask token, or for a template without ``[MASK]`` (PromptEOL, for
  decoders) its last template token; a template with nothing after ``[X]`` (an instruction in front
  of a retrieval query) has no read-out slot.
- ``stsb~promptbert~empty``: the template with an empty sentence, once for each sentence length k
  (in tokens) that ``stsb~promptbert`` holds. Every token after the template's prefix gets its
  position id shifted by k, so the read-out slot sits at the position it has in a k-token sentence:
  PromptBERT's template denoising (Jiang et al. 2022, ``get_delta`` in its evaluation.py). The
  position ids the model saw are stored (``position_ids``).

This module defines templates and names their corpora; hsstore/dump/templated.py tokenizes them.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from hsstore.errors import HsError

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
        """``mask`` (the mask token's state), ``last`` (the last template token's state), or ``none`` for
        a template with nothing after [X] (an instruction before the text, as retrieval queries get)."""
        if MASK in self.text:
            return "mask"
        return "last" if self.text.split(SLOT)[1].strip() else "none"


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
