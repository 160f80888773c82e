"""A corpus's plan, fixed before the model runs: texts deduplicated and tokenized (truncated at the
length limit), sorted by token count and cut into batches of at most ``batch_tokens`` padded tokens;
and the padded model inputs of each batch. The plan decides the stored order and the batches, so a
resumed dump recomputes exactly the batches an uninterrupted one runs (hsstore/store/writer.py).
"""
from __future__ import annotations

import numpy as np

from hsstore.format.layout import KIND_SPECIAL, KIND_TEXT, stored_order
from hsstore.store.writer import CorpusPlan

from .sources import CorpusSource


def dedupe(texts: list[str]) -> list[str]:
    return list(dict.fromkeys(texts))


def first_positions(texts: list[str]) -> list[int]:
    """For each text of ``dedupe(texts)``, the position of its first occurrence in ``texts`` (the
    source's order, which the plan's length sort leaves behind: hs embed gives it back)."""
    first: dict[str, int] = {}
    for i, text in enumerate(texts):
        first.setdefault(text, i)
    return list(first.values())


def plan_corpus(tokenizer, src: CorpusSource, max_length: int, batch_tokens: int, max_batch: int) -> CorpusPlan:
    """Deduplicate, tokenize (truncating at ``max_length``), sort by length, cut into batches."""
    texts = dedupe(src.texts)
    enc = tokenizer(texts, add_special_tokens=True, truncation=True, max_length=max_length,
                    return_special_tokens_mask=True, return_attention_mask=False, return_token_type_ids=False)
    # only a text whose tokens fill max_length may have been cut: those alone are tokenized again, whole
    full = [t for t, ids in zip(texts, enc["input_ids"]) if len(ids) >= max_length]
    raw = tokenizer(full, add_special_tokens=False, return_attention_mask=False,
                    return_token_type_ids=False)["input_ids"] if full else []
    n_special = tokenizer.num_special_tokens_to_add(pair=False)
    cut_full = dict(zip(full, (len(ids) + n_special > max_length for ids in raw)))
    cut = [cut_full.get(t, False) for t in texts]
    source = src.source
    if src.roles:  # e.g. a retrieval task's documents and queries, each counted
        cut_of = dict(zip(texts, cut))
        source = {**source, "truncated": {role: sum(cut_of[t] for t in role_texts)
                                          for role, role_texts in src.roles.items()}}
    rows = [(ids, np.where(np.asarray(special, dtype=bool), KIND_SPECIAL, KIND_TEXT), None)
            for ids, special in zip(enc["input_ids"], enc["special_tokens_mask"])]
    plan = plan_rows(src.name, texts, rows, sum(cut), source, batch_tokens, max_batch, first_positions(src.texts))
    plan.task_lines = src.task_lines
    return plan


def plan_rows(name: str, texts: list[str], rows: list, truncated: int, source: dict, batch_tokens: int,
              max_batch: int, positions: list[int] | None = None) -> CorpusPlan:
    """A CorpusPlan from per-text (token ids, kinds, position ids or None): texts sorted by token
    count (stable), cut into batches. ``positions``: each text's place in the source (kept with the
    plan as ``source_position``)."""
    lengths = np.array([len(r[0]) for r in rows], dtype=np.int64)
    order = stored_order(lengths)
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths[order], out=offsets[1:])
    token_ids = np.concatenate([np.asarray(rows[i][0], dtype=np.int32) for i in order])
    kinds = np.concatenate([np.asarray(rows[i][1], dtype=np.uint8) for i in order])
    token_positions = None
    if rows[0][2] is not None:
        token_positions = np.concatenate([np.asarray(rows[i][2], dtype=np.int32) for i in order])
    source_position = None if positions is None else np.asarray(positions, dtype=np.int64)[order]
    return CorpusPlan(name, [texts[i] for i in order], offsets, token_ids, kinds,
                      cut_batches(lengths[order], batch_tokens, max_batch), truncated, source,
                      position_ids=token_positions, source_position=source_position)


def plan_slice(plan: CorpusPlan, b0: int, b1: int) -> CorpusPlan:
    """Batches ``b0..b1`` of a plan as a plan of their own (sentences, tokens and batch ends rebased):
    the encoder runs a long input a part at a time, with the batches a plan of it all cuts."""
    s0 = int(plan.batch_ends[b0 - 1]) if b0 else 0
    s1 = int(plan.batch_ends[b1 - 1])
    t0, t1 = int(plan.offsets[s0]), int(plan.offsets[s1])
    tokens = slice(t0, t1)
    return CorpusPlan(plan.name, plan.texts[s0:s1], plan.offsets[s0:s1 + 1] - t0, plan.token_ids[tokens],
                      plan.token_kind[tokens], plan.batch_ends[b0:b1] - s0, 0, plan.source,
                      position_ids=None if plan.position_ids is None else plan.position_ids[tokens],
                      source_position=None if plan.source_position is None else plan.source_position[s0:s1])


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
