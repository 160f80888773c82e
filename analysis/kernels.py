"""Numba kernels: pool ragged token ranges straight from stored float16 bits.

Numba has no float16 type, so stored half floats come in as a ``uint16`` view and each token's
row is decoded in the kernel with integer operations that vectorise (the IEEE bit layout moved
into float32's; zero and subnormal halves, rare in hidden states, take an exact slow path).
Measured against a 65,536-entry lookup table and against ``astype(float32)`` first in
``benchmarks/eval.py``. Float32 stores pass through. One pass fuses decode, layer mix, token
filter/weights and pooling; sentences run in parallel.
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


@njit(cache=True, inline="always")
def _half_bits(row, bits):
    """float16 bits (uint16) -> float32 bits, exact for normal numbers, infinities and NaN."""
    for j in range(row.shape[0]):
        h = np.uint32(row[j])
        u = (h & np.uint32(0x7FFF)) << np.uint32(13)
        inf_nan = np.uint32(u >= np.uint32(0x0F800000))
        bits[j] = (u + np.uint32(0x38000000) + inf_nan * np.uint32(0x38000000)) | ((h & np.uint32(0x8000)) << np.uint32(16))


@njit(cache=True, inline="always")
def _fix_subnormals(row, values):
    small = 0
    for j in range(row.shape[0]):
        small += np.int32((row[j] & np.uint16(0x7C00)) == 0)
    if small:
        for j in range(row.shape[0]):
            if (row[j] & np.uint16(0x7C00)) == 0:
                m = np.float32(row[j] & np.uint16(0x3FF)) * np.float32(5.960464477539063e-08)  # 2**-24
                values[j] = -m if row[j] & np.uint16(0x8000) else m


def _row(row, bits):  # pragma: no cover - replaced by the overload inside kernels
    return row


@overload(_row, inline="always")
def _row_impl(row, bits):
    """A token's row as float32: decoded into the scratch ``bits`` for uint16, as is for float32."""
    if isinstance(row.dtype, types.Integer):
        def decode(row, bits):
            _half_bits(row, bits)
            values = bits.view(np.float32)
            _fix_subnormals(row, values)
            return values
        return decode
    return lambda row, bits: row


@njit(parallel=True, cache=True, nogil=True)
def pool(states, layer_weights, offsets, token_weights, mode):
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
        bits = np.empty(hidden, dtype=np.uint32)
        acc = np.zeros(hidden, dtype=np.float32)
        if mode == MEAN:
            total = np.float32(0.0)
            for t in range(a, b):
                w = token_weights[t]
                if w == 0.0:
                    continue
                total += w
                for k in range(n_layers):
                    c = w * layer_weights[k]
                    values = _row(states[k, t], bits)
                    for j in range(hidden):
                        acc[j] += c * values[j]
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
                    values = _row(states[k, t], bits)
                    for j in range(hidden):
                        tmp[j] += c * values[j]
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
                    values = _row(states[k, pick], bits)
                    for j in range(hidden):
                        acc[j] += c * values[j]
        out[s] = acc
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
                np.asarray(token_weights, dtype=np.float32), POOL_MODES[mode])


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
