"""``hs dump``: plan length-sorted batches, run the model once, write every layer's states.

The model thread and the writer thread meet at a small queue, so the model does not wait on the
disk. See hsstore/store/writer.py for how a killed dump resumes to the same bytes.
"""
from __future__ import annotations

import os
import queue
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from hsstore.errors import HsError
from hsstore.format.layout import DTYPES, default_chunk_tokens
from hsstore.format.storage import location
from hsstore.layers import parse_layers
from hsstore.store import shards, statics
from hsstore.store.writer import CorpusPlan, StoreWriter, check_corpus_name, check_output_path
from hsstore.tasks.presets import get_preset

from . import attention, model as model_mod
from .forward import Forward, pick_device
from .sources import CorpusSource, preset_sources
from .templated import check_templates, plan_source


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
    """Run the model over the plan's batches from the writer's resume point, the writer on its own thread."""
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


def check_request(out, sources: list[CorpusSource], dtype: str, attention_diagonals: bool,
                  shard: tuple[int, int] | None) -> None:
    """Everything about a dump that can be refused before the slow model load (a preset's corpora
    are named after it: check_names)."""
    check_output_path(out)
    if shard:
        if attention_diagonals:
            raise HsError("--attention-diagonals cannot be combined with --shard; dump those corpora in one process")
        shards.check_local(out)
        shards.check_shard_count(out, shard[1])
    if dtype not in DTYPES:
        raise HsError(f"--dtype must be one of {', '.join(DTYPES)}")
    check_names(sources)


def check_names(sources: list[CorpusSource]) -> None:
    names = [check_corpus_name(s.name) for s in sources]
    if len(set(names)) != len(names):
        raise HsError(f"two corpora share a name in {names}; pass --corpus-name")


def dump_settings(loaded, layers_spec: str, dtype: str, max_length: int | None, batch_tokens: int, max_batch: int,
                  chunk_tokens: int | None, precision: str) -> dict:
    """The store settings of this dump for the loaded model (layers, length limit, chunking, batching)."""
    limit = min(loaded.identity["max_position_embeddings"], getattr(loaded.tokenizer, "model_max_length", 10**9))
    return {"dtype": dtype, "layers": sorted(parse_layers(layers_spec, loaded.n_layers)),
            "max_length": min(max_length or limit, limit), "precision": precision,
            "chunk_tokens": chunk_tokens or default_chunk_tokens(loaded.identity["hidden_size"], dtype),
            "batch_tokens": batch_tokens, "max_batch": max_batch}


def _keep_store_settings(store: StoreWriter, settings: dict, out, log) -> dict:
    """The batch and chunk settings an existing store was made with win, so a resumed corpus gets the
    same batches; says which differ from this command's."""
    stored = store.attrs["settings"]
    fixed = {k: stored[k] for k in ("batch_tokens", "max_batch", "chunk_tokens") if stored[k] != settings[k]}
    if fixed:
        log(f"{out} keeps the settings it was created with: " + ", ".join(f"{k}={v}" for k, v in fixed.items()))
    return stored


def run_dump(model_name: str, sources: list[CorpusSource], out: Path, layers_spec: str = "all",
             dtype: str = "float16", max_length: int | None = None, batch_tokens: int = 8192,
             max_batch: int = 256, chunk_tokens: int | None = None, device: str = "auto",
             precision: str = "auto", progress: bool = True, log: Callable[[str], None] = print,
             attention_diagonals: bool = False, shard: tuple[int, int] | None = None,
             preset: str | None = None) -> dict:
    """Dump every source into the store at ``out``, after a preset's corpora for this kind of model
    (``preset``); returns a summary per corpus. ``shard`` (k, n): only shard k of n, into
    ``out/shards/k-of-n`` (shards.py; ``hs merge`` joins them)."""
    out = location(out)  # a directory, or an fsspec URL such as s3://bucket/prefix
    check_request(out, sources, dtype, attention_diagonals, shard)
    if preset:
        get_preset(preset)  # an unknown name fails before the model loads
    device, precision = pick_device(device, precision)
    loaded = model_mod.load(model_name)
    if preset:  # the preset's templates fit the model: a decoder has no mask token
        sources = preset_sources(preset, loaded.identity["causal"]) + sources
        check_names(sources)
    check_templates(loaded.tokenizer, sources)
    settings = dump_settings(loaded, layers_spec, dtype, max_length, batch_tokens, max_batch, chunk_tokens, precision)
    vocab = loaded.tokenizer.convert_ids_to_tokens(list(range(len(loaded.tokenizer))))
    forward = Forward(loaded, settings["layers"], device, precision, dtype, attention_diagonals)
    target = out
    if shard:
        settings = shards.shard_settings(out, settings)
        target = shards.shard_dir(out, *shard)
    with StoreWriter(target, loaded.identity, settings, vocab) as store:
        stored = _keep_store_settings(store, settings, out, log)
        if statics.write_input_embeddings(store.root, loaded.model, store.path):
            log(f"{out}: stored the input-embedding matrix")
        # planned one corpus at a time, as it is dumped (a shard plans all first: chunk ranges span corpora)
        plans = (plan_source(loaded, src, settings["max_length"], stored["batch_tokens"], stored["max_batch"])
                 for src in sources)
        parts = None
        if shard:
            plans = list(plans)
            parts = shards.assign_parts(out, store, plans, *shard)
        summary = {}
        for src, plan in zip(sources, plans):
            if attention_diagonals:
                plan.attention_shape = attention.shape(loaded.model)
            status = _dump_one(store, forward, plan, parts, device, out, settings["max_length"], progress, log)
            summary[src.name] = {"sentences": plan.n_sentences, "tokens": plan.n_tokens,
                                 "truncated": plan.truncated, "status": status}
    return summary


def _dump_one(store: StoreWriter, forward: Forward, plan: CorpusPlan, parts: dict | None, device: str, out,
              max_length: int, progress: bool, log) -> str:
    """Dump one planned corpus unless the store has it (``parts``: a shard's part of each corpus);
    returns its status before: new, resume, shard or complete."""
    fingerprint = plan.fingerprint(store.identity)
    if parts is not None:
        writer = shards.open_part(store, plan, fingerprint, parts[plan.name], {"device": device})
        status = "complete" if writer is None or writer.done else "shard"
    else:
        status = store.corpus_status(plan.name, fingerprint)
    if status == "complete":
        log(f"{plan.name}: already in {out} ({plan.n_sentences} sentences), skipped")
        return status
    t0 = time.perf_counter()
    if parts is None:
        writer = store.open_corpus(plan, fingerprint, status, info={"device": device})
    dump_corpus(forward, writer, plan, progress, log)
    roles = plan.source.get("truncated") or {}  # a retrieval task's documents and queries, counted apart
    log(f"{plan.name}: {plan.n_sentences} sentences, {plan.n_tokens} tokens in {time.perf_counter() - t0:.1f} s"
        + (f"; {plan.truncated} truncated at {max_length} tokens" if plan.truncated else "")
        + (f" ({', '.join(f'{n} {role}' for role, n in roles.items())})" if plan.truncated and roles else ""))
    return status
