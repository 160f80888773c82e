"""Numba kernels: pool ragged token ranges straight from stored float16 bits.

Numba has no float16 type, so stored half floats come in as a ``uint16`` view and are decoded
through a 65,536-entry float32 table (256 KiB, it stays in cache), exact for every value;
float32 stores pass through. One pass fuses decode, layer mix, token filter/weights and pooling;
sentences run in parallel. ``benchmarks/eval.py`` compares this with converting to float32
first (``astype``) and with a plain numpy implementation.
"""
from __future__ import annotations

import numpy as np
from numba import get_num_threads, njit, prange, types
from numba.extending import overload

from .. import tolerate_kernel_cache_failures

tolerate_kernel_cache_failures()  # a kernel cache that cannot be written only warns

POOLINGS = ("mean", "max", "first", "last")

HALF_TABLE = np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float32)


def _decode(x, table):  # pragma: no cover - replaced by the overload inside kernels
    return np.float32(x)


@overload(_decode)
def _decode_impl(x, table):
    if isinstance(x, types.Integer):
        return lambda x, table: table[x]
    return lambda x, table: np.float32(x)


def _row(rows, t):  # pragma: no cover - replaced by the overload inside kernels
    return t


@overload(_row)
def _row_impl(rows, t):
    """Token t's row of ``states``: t itself for stored states (rows is None, compiled away), or a
    gather, ``rows[t]``, for a static table indexed by token id."""
    if isinstance(rows, types.NoneType):
        return lambda rows, t: t
    return lambda rows, t: rows[t]


@njit(parallel=True, cache=True)
def pool_mean(states, layer_weights, offsets, token_weights, table, rows):
    """Weighted mean over each sentence's tokens of the layer mix.

    states: (K, T, H) uint16 (float16 bits) or float32, or with ``rows`` a (K, V, H) table whose row
    rows[t] is token t's vector; layer_weights: (K,); offsets: (S+1,) int64;
    token_weights: (T,) float32, 0 drops a token. A sentence with no kept token gives zeros.
    """
    n_layers, _, hidden = states.shape
    out = np.zeros((offsets.shape[0] - 1, hidden), dtype=np.float32)
    for s in prange(offsets.shape[0] - 1):
        total = np.float32(0.0)
        for t in range(offsets[s], offsets[s + 1]):
            w = token_weights[t]
            if w == 0.0:
                continue
            total += w
            r = _row(rows, t)
            for k in range(n_layers):
                c = w * layer_weights[k]
                for j in range(hidden):
                    out[s, j] += c * _decode(states[k, r, j], table)
        if total > 0.0:
            for j in range(hidden):
                out[s, j] /= total
    return out


@njit(parallel=True, cache=True)
def pool_max(states, layer_weights, offsets, token_weights, table, rows):
    """Element-wise max over each sentence's kept tokens of the layer mix (zeros if none kept)."""
    n_layers, _, hidden = states.shape
    out = np.zeros((offsets.shape[0] - 1, hidden), dtype=np.float32)
    for s in prange(offsets.shape[0] - 1):
        row = np.empty(hidden, dtype=np.float32)
        seen = False
        for t in range(offsets[s], offsets[s + 1]):
            if token_weights[t] == 0.0:
                continue
            for j in range(hidden):
                row[j] = 0.0
            r = _row(rows, t)
            for k in range(n_layers):
                c = layer_weights[k]
                for j in range(hidden):
                    row[j] += c * _decode(states[k, r, j], table)
            for j in range(hidden):
                if not seen or row[j] > out[s, j]:
                    out[s, j] = row[j]
            seen = True
    return out


@njit(parallel=True, cache=True)
def pool_pick(states, layer_weights, offsets, token_weights, table, rows, last):
    """The layer mix of each sentence's first (or last) kept token (zeros if none kept)."""
    n_layers, _, hidden = states.shape
    out = np.zeros((offsets.shape[0] - 1, hidden), dtype=np.float32)
    for s in prange(offsets.shape[0] - 1):
        pick = -1
        for t in range(offsets[s], offsets[s + 1]):
            if token_weights[t] != 0.0:
                pick = t
                if not last:
                    break
        if pick >= 0:
            r = _row(rows, pick)
            for k in range(n_layers):
                c = layer_weights[k]
                for j in range(hidden):
                    out[s, j] += c * _decode(states[k, r, j], table)
    return out


def pool_states(states: np.ndarray, layer_weights, offsets, token_weights, mode: str, rows=None) -> np.ndarray:
    """Pool float16 or float32 states of shape (K, T, H) or (T, H): ``mode`` is one of POOLINGS.

    With ``rows`` (T,) int, ``states`` is a table (K, V, H) or (V, H) and token t's vector is its
    row rows[t] (a static view: a gather by token id, fused with the weights and pooling)."""
    if rows is not None:
        rows = np.ascontiguousarray(rows, dtype=np.int32)
    if states.ndim == 2:
        states = states[None]
    if states.dtype == np.float16:
        states = states.view(np.uint16)
    elif states.dtype != np.float32:
        states = states.astype(np.float32)
    args = (states, np.asarray(layer_weights, dtype=np.float32), np.asarray(offsets, dtype=np.int64),
            np.asarray(token_weights, dtype=np.float32), HALF_TABLE, rows)
    if mode == "mean":
        return pool_mean(*args)
    if mode == "max":
        return pool_max(*args)
    if mode in ("first", "last"):
        return pool_pick(*args, mode == "last")
    raise ValueError(f"unknown pooling {mode!r}")


@njit(parallel=True, cache=True)
def scatter_add(sums, states, ids, table, n_blocks):
    """sums[ids[t]] += states[t] for a block of token states (T, H) in float16 bits or float32.

    Each thread takes one contiguous slice of the hidden dimensions (no two write one cell, and
    each reads its slice of every row in order); sums (V, H) float64."""
    n_tokens, hidden = states.shape
    for b in prange(n_blocks):
        lo = b * hidden // n_blocks
        hi = (b + 1) * hidden // n_blocks
        for t in range(n_tokens):
            r = ids[t]
            for j in range(lo, hi):
                sums[r, j] += _decode(states[t, j], table)


def add_by_id(sums: np.ndarray, states: np.ndarray, ids: np.ndarray) -> None:
    """Add each row of ``states`` (float16 or float32) into ``sums`` at its token id."""
    if states.dtype == np.float16:
        states = states.view(np.uint16)
    elif states.dtype != np.float32:
        states = states.astype(np.float32)
    scatter_add(sums, np.ascontiguousarray(states), np.ascontiguousarray(ids, dtype=np.int32), HALF_TABLE,
                min(states.shape[1], get_num_threads()))



@njit(parallel=True, cache=True)
def quantile_transform(X, quantiles, references):
    """Each column of X through its reference quantiles onto [0, 1]: the mean of interpolating
    upwards and downwards, so repeated quantiles map to the middle of their range (scikit-learn's
    rule). X (n, d) float64, quantiles (q, d) float64, references (q,) float64."""
    n, d = X.shape
    out = np.empty((n, d), dtype=np.float32)
    rev_refs = -references[::-1]
    for j in prange(d):
        qs = np.ascontiguousarray(quantiles[:, j])
        rev_qs = -qs[::-1]
        col = np.ascontiguousarray(X[:, j])
        up = np.interp(col, qs, references)
        down = -np.interp(-col, rev_qs, rev_refs)
        for i in range(n):
            out[i, j] = 0.5 * (up[i] + down[i])
    return out
