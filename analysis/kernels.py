"""Numba kernels: pool ragged token ranges straight from stored float16 bits.

Numba has no float16 type, so stored half floats come in as a ``uint16`` view and are decoded
through a 65,536-entry float32 table (256 KiB, it stays in cache); float32 stores pass through.
One pass fuses decode, layer mix, token filter/weights and pooling; sentences run in parallel.
"""
from __future__ import annotations

import os

from hsstore.paths import cache_dir

# compiled kernels are cached per user (an installed package directory may be read-only)
os.environ.setdefault("NUMBA_CACHE_DIR", str(cache_dir("numba")))

import numba  # noqa: E402
import numpy as np  # noqa: E402
from numba import njit, prange, types  # noqa: E402
from numba.extending import overload  # noqa: E402

MEAN, MAX, FIRST, LAST = 0, 1, 2, 3
POOL_MODES = {"mean": MEAN, "max": MAX, "first": FIRST, "last": LAST}

HALF_TABLE = np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float32)


def _decode(x, table):  # pragma: no cover - replaced by the overload inside kernels
    return np.float32(x)


@overload(_decode)
def _decode_impl(x, table):
    if isinstance(x, types.Integer):
        return lambda x, table: table[x]
    return lambda x, table: np.float32(x)


@njit(parallel=True, cache=True, nogil=True)
def pool(states, layer_weights, offsets, token_weights, mode, table):
    """Pool each sentence's tokens into one vector.

    states: (K, T, H) uint16 (float16 bits) or float32; layer_weights: (K,) mix of the K layers;
    offsets: (S+1,) int64 token ranges; token_weights: (T,) float32, 0 drops a token;
    mode: MEAN (weighted mean), MAX, FIRST or LAST (first/last kept token).
    Returns (S, H) float32; a sentence with no kept token gives zeros.
    """
    n_layers, _, hidden = states.shape
    n_sent = offsets.shape[0] - 1
    out = np.zeros((n_sent, hidden), dtype=np.float32)
    for s in prange(n_sent):
        a, b = offsets[s], offsets[s + 1]
        acc = out[s]
        if mode == MEAN:
            total = np.float32(0.0)
            for t in range(a, b):
                w = token_weights[t]
                if w == 0.0:
                    continue
                total += w
                for k in range(n_layers):
                    c = w * layer_weights[k]
                    for j in range(hidden):
                        acc[j] += c * _decode(states[k, t, j], table)
            if total > 0.0:
                for j in range(hidden):
                    acc[j] /= total
        elif mode == MAX:
            tmp = np.empty(hidden, dtype=np.float32)
            seen = False
            for t in range(a, b):
                if token_weights[t] == 0.0:
                    continue
                tmp[:] = 0.0
                for k in range(n_layers):
                    c = layer_weights[k]
                    for j in range(hidden):
                        tmp[j] += c * _decode(states[k, t, j], table)
                if not seen:
                    acc[:] = tmp
                    seen = True
                else:
                    for j in range(hidden):
                        if tmp[j] > acc[j]:
                            acc[j] = tmp[j]
        else:
            pick = -1
            for t in range(a, b):
                if token_weights[t] != 0.0:
                    pick = t
                    if mode == FIRST:
                        break
            if pick >= 0:
                for k in range(n_layers):
                    c = layer_weights[k]
                    for j in range(hidden):
                        acc[j] += c * _decode(states[k, pick, j], table)
    return out


def pool_states(states: np.ndarray, layer_weights, offsets, token_weights, mode: str) -> np.ndarray:
    """``pool`` for float16 or float32 states of shape (K, T, H) or (T, H)."""
    if states.ndim == 2:
        states = states[None]
    if states.dtype == np.float16:
        states = states.view(np.uint16)
    elif states.dtype != np.float32:
        states = states.astype(np.float32)
    return pool(states, np.asarray(layer_weights, dtype=np.float32), np.asarray(offsets, dtype=np.int64),
                np.asarray(token_weights, dtype=np.float32), POOL_MODES[mode], HALF_TABLE)


def set_threads(n: int | None) -> None:
    if n:
        numba.set_num_threads(n)
