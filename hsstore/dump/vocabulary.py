"""``hs dump --vocabulary-states``: every vocabulary id alone through the model (hsstore/store/vocabulary.py).

Each id is wrapped in the special tokens the tokenizer adds to a text (found by tokenizing a word
with and without them), so every input has the same length and a batch needs no padding. The mean
over the input's positions of each stored layer's states is what the table keeps.
"""
from __future__ import annotations

import sys
import time

import numpy as np
import torch
from tqdm import tqdm

from hsstore.errors import HsError
from hsstore.store import vocabulary

BATCH = 512  # ids per forward pass: inputs are a few tokens long

ROLES = ("unk", "pad", "cls", "sep", "mask", "bos", "eos")


def special_frame(tokenizer) -> tuple[list[int], list[int]]:
    """(prefix, suffix): the ids the tokenizer puts before and after a text's own tokens."""
    for probe in ("a", "the", "x"):
        inner = tokenizer(probe, add_special_tokens=False)["input_ids"]
        outer = tokenizer(probe, add_special_tokens=True)["input_ids"]
        for start in range(len(outer) - len(inner) + 1):
            if inner and outer[start:start + len(inner)] == inner:
                return list(outer[:start]), list(outer[start + len(inner):])
    raise HsError("cannot tell which special tokens this tokenizer adds around a text; the vocabulary table "
                  "needs to know")


def special_record(tokenizer) -> dict:
    """What every dump records of the tokenizer's special tokens."""
    roles = {r: int(getattr(tokenizer, f"{r}_token_id")) for r in ROLES
             if getattr(tokenizer, f"{r}_token_id", None) is not None}
    prefix, suffix = special_frame(tokenizer)
    return {"special_tokens": roles, "special_ids": sorted(int(i) for i in tokenizer.all_special_ids),
            "special_prefix": prefix, "special_suffix": suffix}


def inputs(tokenizer, start: int, stop: int) -> np.ndarray:
    """(stop - start, n) int64 model inputs of ids start..stop, each wrapped in the special tokens."""
    prefix, suffix = special_frame(tokenizer)
    ids = np.arange(start, stop, dtype=np.int64)[:, None]
    return np.hstack([np.tile(np.asarray(prefix, dtype=np.int64), (len(ids), 1)), ids,
                      np.tile(np.asarray(suffix, dtype=np.int64), (len(ids), 1))])


def dump_vocabulary_states(forward, tokenizer, store, settings: dict, progress: bool, log) -> str:
    """Fill the store's vocabulary table from its resume point; returns new, resume or complete."""
    size = len(tokenizer)
    writer = vocabulary.StatesWriter(store.root, store.path, settings["layers"], settings["dtype"],
                                     store.attrs["model"]["hidden_size"], size, store.chunk_tokens)
    if writer.complete:
        log(f"vocabulary table: already in {store.path} ({size} ids), skipped")
        return "complete"
    status = "resume" if writer.rows_done else "new"
    if writer.rows_done:
        log(f"vocabulary table: resuming at id {writer.rows_done}/{size}")
    t0 = time.perf_counter()
    bar = tqdm(total=size, initial=writer.rows_done, unit="id", unit_scale=True, desc="vocabulary",
               disable=None if progress else True, file=sys.stderr, dynamic_ncols=True)
    try:
        # batches cut within each chunk, so a resumed run (at a chunk boundary) runs the same batches
        starts = [s for c in range(writer.rows_done, size, writer.rows) for s in range(c, min(size, c + writer.rows), BATCH)]
        for start in starts:
            stop = min(size, start + BATCH, (start // writer.rows + 1) * writer.rows)
            batch = inputs(tokenizer, start, stop)
            ids = torch.from_numpy(batch).to(forward.device)
            hidden = forward.model_states(ids, torch.ones_like(ids))
            with torch.inference_mode():
                means = torch.stack([hidden[layer].float().mean(dim=1) for layer in forward.layers])
            writer.add(means.to(forward.out_dtype).cpu().numpy())
            bar.update(len(batch))
    finally:
        bar.close()
    log(f"vocabulary table: {size} ids in {time.perf_counter() - t0:.1f} s")
    return status
