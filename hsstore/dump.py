"""``hs dump``: tokenize, plan length-sorted batches, run the model once, write every layer's states.

The model thread and the writer thread meet at a small queue, so the model does not wait on the
disk. See writer.py for how a killed dump resumes to the same bytes.
"""
from __future__ import annotations

import os
import queue
import sys
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from . import statics
from .errors import HsError
from .format import DTYPES, KIND_SPECIAL, KIND_TEXT, default_chunk_tokens
from .layers import parse_layers
from .writer import CorpusPlan, StoreWriter, check_corpus_name


@dataclass
class CorpusSource:
    name: str
    texts: list[str]
    source: dict
    template: object = None  # a templates.Template: dump the texts wrapped in it
    empty: bool = False      # with a template: the template-only rows for denoising (templates.py)


def dedupe(texts: list[str]) -> list[str]:
    return list(dict.fromkeys(texts))


def plan_corpus(tokenizer, src: CorpusSource, max_length: int, batch_tokens: int, max_batch: int) -> CorpusPlan:
    """Deduplicate, tokenize (truncating at ``max_length``), sort by length, cut into batches."""
    texts = dedupe(src.texts)
    enc = tokenizer(texts, add_special_tokens=True, truncation=True, max_length=max_length,
                    return_special_tokens_mask=True, return_attention_mask=False, return_token_type_ids=False)
    raw = tokenizer(texts, add_special_tokens=False, return_attention_mask=False, return_token_type_ids=False)
    n_special = tokenizer.num_special_tokens_to_add(pair=False)
    truncated = sum(len(ids) + n_special > max_length for ids in raw["input_ids"])
    rows = [(ids, np.where(np.asarray(special, dtype=bool), KIND_SPECIAL, KIND_TEXT), None)
            for ids, special in zip(enc["input_ids"], enc["special_tokens_mask"])]
    return plan_rows(src.name, texts, rows, truncated, src.source, batch_tokens, max_batch)


def plan_rows(name: str, texts: list[str], rows: list, truncated: int, source: dict, batch_tokens: int,
              max_batch: int) -> CorpusPlan:
    """A CorpusPlan from per-text (token ids, kinds, position ids or None): texts sorted by token
    count (stable), cut into batches."""
    lengths = np.array([len(r[0]) for r in rows], dtype=np.int64)
    order = np.argsort(lengths, kind="stable")
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths[order], out=offsets[1:])
    token_ids = np.concatenate([np.asarray(rows[i][0], dtype=np.int32) for i in order])
    kinds = np.concatenate([np.asarray(rows[i][1], dtype=np.uint8) for i in order])
    positions = None
    if rows[0][2] is not None:
        positions = np.concatenate([np.asarray(rows[i][2], dtype=np.int32) for i in order])
    return CorpusPlan(name, [texts[i] for i in order], offsets, token_ids, kinds,
                      cut_batches(lengths[order], batch_tokens, max_batch), truncated, source,
                      position_ids=positions)


def cut_batches(sorted_lengths: np.ndarray, batch_tokens: int, max_batch: int) -> np.ndarray:
    """Batch end indices: each batch's padded size (count x longest) stays within ``batch_tokens``."""
    ends, count = [], 0
    for i, length in enumerate(sorted_lengths.tolist()):
        if count and ((count + 1) * length > batch_tokens or count == max_batch):
            ends.append(i)
            count = 0
        count += 1
    ends.append(len(sorted_lengths))
    return np.asarray(ends, dtype=np.int64)


def batch_inputs(plan: CorpusPlan, b: int, pad_id: int):
    """Padded ``input_ids`` and ``attention_mask`` (numpy) of batch ``b``."""
    start = int(plan.batch_ends[b - 1]) if b else 0
    end = int(plan.batch_ends[b])
    spans = plan.offsets[start:end + 1]
    lengths = np.diff(spans)
    ids = np.full((end - start, int(lengths.max())), pad_id, dtype=np.int64)
    mask = np.zeros_like(ids)
    for row, (a, n) in enumerate(zip(spans[:-1].tolist(), lengths.tolist())):
        ids[row, :n] = plan.token_ids[a:a + n]
        mask[row, :n] = 1
    return ids, mask


class Forward:
    """Runs batches through the model and returns the chosen layers' states of the real tokens."""

    def __init__(self, loaded, layers: list[int], device: str, precision: str, out_dtype: str,
                 attention_diagonals: bool = False):
        import torch

        self.torch = torch
        self.device = torch.device(device)
        self.model = loaded.model.to(self.device)
        self.layers = layers
        self.pad_id = loaded.tokenizer.pad_token_id or 0
        self.out_dtype = {"float16": torch.float16, "float32": torch.float32}[out_dtype]
        amp = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
        self.autocast = (lambda: torch.autocast(self.device.type, dtype=amp)) if amp else nullcontext
        self.attention_diagonals, self.extras = attention_diagonals, {}
        if attention_diagonals:
            from .attention import use_eager
            use_eager(self.model)

    def inputs(self, plan: CorpusPlan, b: int):
        ids, mask = batch_inputs(plan, b, self.pad_id)
        return self.torch.from_numpy(ids).to(self.device), self.torch.from_numpy(mask).to(self.device)

    def model_states(self, ids, mask, **extra):
        """The bare forward pass: every layer's states, padded."""
        return self.model_outputs(ids, mask, **extra).hidden_states

    def model_outputs(self, ids, mask, **extra):
        with self.torch.inference_mode(), self.autocast():
            return self.model(input_ids=ids, attention_mask=mask, output_hidden_states=True,
                              output_attentions=self.attention_diagonals, **extra)

    def __call__(self, plan: CorpusPlan, b: int) -> np.ndarray:
        from .templates import batch_positions

        ids, mask = self.inputs(plan, b)
        positions = batch_positions(plan, b, ids.shape[1])  # template-only rows bring their own
        extra = {} if positions is None else {"position_ids": self.torch.from_numpy(positions).to(self.device)}
        outputs = self.model_outputs(ids, mask, **extra)
        hidden = outputs.hidden_states
        with self.torch.inference_mode():
            real = mask.bool()
            if self.attention_diagonals:
                from .attention import ARRAY, diagonals
                self.extras = {ARRAY: diagonals(outputs.attentions, real)}
            size = hidden[0].shape[-1]
            out = self.torch.empty((len(self.layers), int(real.sum()), size), dtype=self.out_dtype, device=self.device)
            for i, layer in enumerate(self.layers):
                out[i] = hidden[layer][real]  # real tokens only, sentences in order, cast on copy
            return out.cpu().numpy()


def pick_device(device: str, precision: str) -> tuple[str, str]:
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise HsError("--device cuda asked for, but torch sees no CUDA device; use --device cpu")
    if precision == "auto":
        precision = "fp16" if device == "cuda" else "fp32"
    return device, precision


def _writer_loop(q: queue.Queue, writer, errors: list) -> None:
    while True:
        item = q.get()
        if item is None:
            return
        if errors:
            continue  # drain after a failure so the producer never blocks
        try:
            writer.add(*item)  # (batch, states, extras)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            errors.append(exc)


def dump_corpus(forward: Forward, writer, plan: CorpusPlan, progress: bool,
                log: Callable[[str], None]) -> None:
    from tqdm import tqdm

    start = writer.start_batch
    end = getattr(writer, "end_batch", len(plan.batch_ends))  # a shard's writer stops at its last batch
    done_tokens = int(plan.offsets[plan.batch_ends[start - 1]]) if start else 0
    done_sents = int(plan.batch_ends[start - 1]) if start else 0
    if start and end == len(plan.batch_ends):
        log(f"{plan.name}: resuming at batch {start}/{len(plan.batch_ends)} ({done_sents} sentences committed)")
    q: queue.Queue = queue.Queue(maxsize=4)
    errors: list = []
    thread = threading.Thread(target=_writer_loop, args=(q, writer, errors), daemon=True)
    thread.start()
    delay = float(os.environ.get("HS_FAULT_BATCH_DELAY", "0"))  # fault-injection hook for the kill tests
    total = int(plan.offsets[plan.batch_ends[end - 1]]) if end else 0
    bar = tqdm(total=total, initial=done_tokens, unit="tok", unit_scale=True, desc=plan.name,
               disable=None if progress else True, file=sys.stderr, dynamic_ncols=True)
    t0, sents = time.perf_counter(), 0
    try:
        for b in range(start, end):
            if errors:
                break
            states = forward(plan, b)
            q.put((b, states, forward.extras))
            first = int(plan.batch_ends[b - 1]) if b else 0
            sents += int(plan.batch_ends[b]) - first
            bar.update(states.shape[1])
            bar.set_postfix_str(f"{sents / (time.perf_counter() - t0):.0f} sent/s", refresh=False)
            if delay:
                time.sleep(delay)
    finally:
        q.put(None)
        thread.join()
        bar.close()
    if errors:
        raise errors[0]
    writer.finish()


def run_dump(model_name: str, sources: list[CorpusSource], out: Path, layers_spec: str = "all",
             dtype: str = "float16", max_length: int | None = None, batch_tokens: int = 8192,
             max_batch: int = 256, chunk_tokens: int | None = None, device: str = "auto",
             precision: str = "auto", progress: bool = True, log: Callable[[str], None] = print,
             attention_diagonals: bool = False, shard: tuple[int, int] | None = None) -> dict:
    """Dump every source into the store at ``out``; returns a summary per corpus. ``shard`` (k, n):
    only shard k of n, into ``out/shards/k-of-n`` (shards.py; ``hs merge`` joins them)."""
    from . import model as model_mod
    from .templates import check_templates, plan_source
    from .storage import location
    from .writer import check_output_path

    out = location(out)  # a directory, or an fsspec URL such as s3://bucket/prefix
    check_output_path(out)  # before the slow model load
    if shard:
        from . import shards
        if attention_diagonals:
            raise HsError("--attention-diagonals cannot be combined with --shard; dump those corpora in one process")
        shards.check_local(out)
        shards.check_shard_count(out, shard[1])
    if dtype not in DTYPES:
        raise HsError(f"--dtype must be one of {', '.join(DTYPES)}")
    names = [check_corpus_name(s.name) for s in sources]
    if len(set(names)) != len(names):
        raise HsError(f"two corpora share a name in {names}; pass --corpus-name")
    device, precision = pick_device(device, precision)
    loaded = model_mod.load(model_name)
    check_templates(loaded.tokenizer, sources)
    n_layers = loaded.n_layers
    layers = sorted(parse_layers(layers_spec, n_layers))
    limit = min(loaded.identity["max_position_embeddings"], getattr(loaded.tokenizer, "model_max_length", 10**9))
    max_length = min(max_length or limit, limit)
    settings = {"dtype": dtype, "layers": layers, "max_length": max_length, "precision": precision,
                "chunk_tokens": chunk_tokens or default_chunk_tokens(loaded.identity["hidden_size"], dtype),
                "batch_tokens": batch_tokens, "max_batch": max_batch}
    vocab = loaded.tokenizer.convert_ids_to_tokens(list(range(len(loaded.tokenizer))))
    forward = Forward(loaded, layers, device, precision, dtype, attention_diagonals)
    summary = {}
    target = out
    if shard:
        settings = shards.shard_settings(out, settings)
        target = shards.shard_dir(out, *shard)
    with StoreWriter(target, loaded.identity, settings, vocab) as store:
        # batch settings of an existing store win, so a resumed corpus gets the same batches
        stored = store.attrs["settings"]
        fixed = {k: stored[k] for k in ("batch_tokens", "max_batch", "chunk_tokens") if stored[k] != settings[k]}
        if fixed:
            log(f"{out} keeps the settings it was created with: " + ", ".join(f"{k}={v}" for k, v in fixed.items()))
        if statics.write_input_embeddings(store.root, loaded.model, store.path):
            log(f"{out}: stored the input-embedding matrix")
        plans = (plan_source(loaded, src, max_length, stored["batch_tokens"], stored["max_batch"]) for src in sources)
        if shard:  # every shard plans every corpus, to cut the same chunk ranges
            plans = list(plans)
            parts = shards.assign_parts(out, store, plans, *shard)
        for src, plan in zip(sources, plans):
            if attention_diagonals:
                from .attention import shape
                plan.attention_shape = shape(loaded.model)
            fingerprint = plan.fingerprint(store.identity)
            if shard:
                writer = shards.open_part(store, plan, fingerprint, parts[src.name], {"device": device})
                status = "complete" if writer is None or writer.done else "shard"
            else:
                status = store.corpus_status(src.name, fingerprint)
            if status == "complete":
                log(f"{src.name}: already in {out} ({plan.n_sentences} sentences), skipped")
            else:
                t0 = time.perf_counter()
                if not shard:
                    writer = store.open_corpus(plan, fingerprint, status, info={"device": device})
                dump_corpus(forward, writer, plan, progress, log)
                secs = time.perf_counter() - t0
                log(f"{src.name}: {plan.n_sentences} sentences, {plan.n_tokens} tokens in {secs:.1f} s"
                    + (f"; {plan.truncated} truncated at {max_length} tokens" if plan.truncated else ""))
            summary[src.name] = {"sentences": plan.n_sentences, "tokens": plan.n_tokens,
                                 "truncated": plan.truncated, "status": status}
    return summary
