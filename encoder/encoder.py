"""``Encoder``: a fitted recipe applied to new texts.

The texts are deduplicated, tokenised and sorted into batches by the plan ``hs dump`` makes
(hsstore/dump/plan.py, templated.py for ``view=prompt``), run through the model by the dump's
forward pass (hsstore/dump/forward.py; eager attention where ``weights=ditto`` reads attention
diagonals) in float32, and put in memory as the corpora the recipe reads (analysis/embedding/memory.py).
The fitted recipe (analysis/fitted/recipe.py) then computes their sentence vectors with the Pooler
and post-processing of ``hs eval``. So for a text of the store, the encoder's vector is the one
``hs eval`` scores, up to the float16 rounding of the stored states (docs/encoders.md gives the
measured agreement).

A long input is run a window of whole batches at a time: memory holds one window's states of the
recipe's layers. A recipe whose views are all static (re, input, avg) never loads the model.
"""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from analysis.embedding.memory import MemoryCorpus
from analysis.fitted.recipe import FittedRecipe
from hsstore.dump.model import LoadedModel
from hsstore.dump.plan import dedupe, plan_slice
from hsstore.dump.sources import CorpusSource
from hsstore.dump.templated import check_templates, plan_source
from hsstore.errors import HsError
from hsstore.store.attention import ARRAY
from hsstore.tasks.templates import Template, empty_name, variant_name

from .model import folder_tokenizer, load_model

INPUT = "input"  # the name of the encoded texts' corpus (its templated variants: input~<template>)
WINDOW_BYTES = 256 << 20  # float32 states held at once, over all the recipe's layers


class Encoder:
    """Encodes texts with a fitted recipe::

        from encoder import Encoder
        enc = Encoder.load("runs/minilm-whiten")          # hs fit runs/minilm -r ... --out runs/minilm-whiten
        X = enc.encode(["A man is playing a guitar.", "Someone plays music."], batch_size=32)

    ``X`` is float32, one row per text in the order given. ``model``: where the model is, if not where
    the store recorded it (it must be the same model); ``device``/``precision`` as ``hs dump``'s
    (auto: CUDA with fp16 autocast where torch sees a GPU, else the CPU in fp32).
    """

    def __init__(self, fitted: FittedRecipe, tokenizer, model: LoadedModel | None = None, device: str = "auto",
                 precision: str = "auto"):
        self.fitted, self.recipe = fitted, fitted.recipe
        self.max_length = int(fitted.meta["settings"]["max_length"])
        self.parts = fitted.contextual
        self.layers = sorted({layer for part in self.parts for layer in part.layers})
        self.ditto = self.recipe.weights.name == "ditto"
        self.denoise = self.recipe.pool.name == "mask" and self.recipe.pool.kwargs.get("denoise") == "yes"
        self.templates = [Template(t["name"], t["text"]) for t in fitted.meta.get("templates", {}).values()]
        # the folder's tokenizer, which is the model's (load_model checks the model's identity)
        self.loaded = LoadedModel(model.model if model else None, tokenizer, fitted.meta["model"])
        self.forward = None
        if self.parts:
            if model is None:
                raise HsError("this recipe reads the model's states: load it with Encoder.load (it loads the model)")
            from hsstore.dump.forward import Forward, pick_device  # torch loads only for a contextual recipe

            device, precision = pick_device(device, precision)
            self.forward = Forward(self.loaded, self.layers, device, precision, "float32",
                                   attention_diagonals=self.ditto)
        check_templates(tokenizer, [CorpusSource(INPUT, [], {}, template=t) for t in self.templates])

    @classmethod
    def load(cls, path: str | Path, model: str | None = None, device: str = "auto", precision: str = "auto") -> "Encoder":
        """The encoder of the fitted folder ``path`` (``hs fit --out``), its files checked first; the model
        loads only if a view reads its states."""
        fitted = FittedRecipe.load(path)
        tokenizer = folder_tokenizer(Path(path), fitted.meta["model"])
        loaded = load_model(fitted.meta["model"], model) if fitted.contextual else None
        return cls(fitted, tokenizer, loaded, device, precision)

    @property
    def needs_model(self) -> bool:
        return bool(self.parts)

    def encode(self, texts, batch_size: int = 32, progress: bool = False) -> np.ndarray:
        """(len(texts), dim) float32 sentence vectors, in the order of ``texts`` (repeated texts repeat
        their row). ``batch_size`` texts go through the model at once (sorted by length first)."""
        if isinstance(texts, str):
            raise HsError("encode takes a list of texts, not one string: encode([text])")
        texts = list(texts)
        bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
        if bad is not None:
            raise HsError(f"text {bad} is {type(texts[bad]).__name__}, not a string")
        if not texts:
            raise HsError("no texts to encode")
        if batch_size < 1:
            raise HsError(f"batch_size must be at least 1, not {batch_size}")
        plan = self._plan(CorpusSource(INPUT, dedupe(texts), {"encoded": "texts"}), batch_size)
        parts = []
        with tqdm(total=plan.n_sentences, unit="text", desc="encode", disable=None if progress else True,
                  file=sys.stderr, dynamic_ncols=True) as bar:
            for b0, b1 in self._windows(plan):
                window = plan_slice(plan, b0, b1)
                corpora = self._corpora(window, batch_size)
                store = self.fitted.store.with_corpora(corpora)
                parts.append(self.fitted.embed(store.corpus(INPUT)))
                bar.update(window.n_sentences)
        row = {text: i for i, text in enumerate(plan.texts)}
        return np.concatenate(parts)[np.fromiter((row[t] for t in texts), dtype=np.int64, count=len(texts))]

    def _plan(self, source: CorpusSource, batch_size: int):
        """The dump's plan of ``source`` with batches of ``batch_size`` texts (whatever their length)."""
        return plan_source(self.loaded, source, self.max_length, batch_size * self.max_length, batch_size)

    def _windows(self, plan) -> list[tuple[int, int]]:
        """Runs of whole batches (b0, b1) whose states of the recipe's layers fit in WINDOW_BYTES."""
        width = max(1, len(self.layers)) * int(self.fitted.meta["model"]["hidden_size"]) * 4
        budget, out, b0, tokens = max(1, WINDOW_BYTES // width), [], 0, 0
        token_ends = plan.offsets[plan.batch_ends]
        for b in range(len(plan.batch_ends)):
            start = int(token_ends[b - 1]) if b else 0
            tokens += int(token_ends[b]) - start
            if tokens >= budget or b == len(plan.batch_ends) - 1:
                out.append((b0, b + 1))
                b0, tokens = b + 1, 0
        return out

    def _corpora(self, window, batch_size: int) -> list[MemoryCorpus]:
        """The corpora the recipe reads for the window's texts: the texts themselves, and per template their
        templated variant (and its template-only rows, for denoising), each with the states it needs."""
        reads_plain = any(p.template is None for p in self.parts)
        out = [self._memory(window, reads_plain)]
        for template in self.templates:
            src = CorpusSource(variant_name(INPUT, template), window.texts, {"encoded": "texts"}, template=template)
            out.append(self._memory(self._plan(src, batch_size), True))
            if self.denoise:
                empty = replace(src, name=empty_name(src.name), empty=True)
                out.append(self._memory(self._plan(empty, batch_size), True))
        return out

    def _memory(self, plan, run: bool) -> MemoryCorpus:
        """A plan as a corpus in memory, with the recipe's layers' states if ``run`` (the model's forward
        pass, batch by batch as the dump runs it) and the attention diagonals for weights=ditto."""
        states, attrs, arrays = None, {"source": plan.source}, {}
        if run:
            blocks, diagonals = [], []
            for b in range(len(plan.batch_ends)):
                blocks.append(self.forward(plan, b))
                if self.ditto:
                    diagonals.append(self.forward.extras[ARRAY])
            states = np.concatenate(blocks, axis=1) if len(blocks) > 1 else blocks[0]
            if self.ditto:
                arrays[ARRAY] = np.concatenate(diagonals, axis=1)
                attrs.update(attention_layers=list(range(1, arrays[ARRAY].shape[0] + 1)),
                             attention_heads=int(arrays[ARRAY].shape[2]))
        return MemoryCorpus(plan.name, plan.texts, plan.offsets, plan.token_ids, plan.token_kind,
                            self.layers if run else [], states, attrs, arrays)
