"""Representation diagnostics of a sentence matrix: isotropy, alignment and uniformity."""
from __future__ import annotations

import numpy as np

from ..vectors import unit_rows


def average_cosine(X: np.ndarray) -> float:
    """Mean cosine over all distinct pairs, exactly, from the sum of unit vectors."""
    U = unit_rows(X.astype(np.float64))
    n = len(U)
    s = U.sum(axis=0)
    return float((s @ s - n) / (n * (n - 1)))


def partition_ratio(X: np.ndarray) -> float:
    """Mu & Viswanath's isotropy I(W) = min_c Z(c) / max_c Z(c), c over eigenvectors of X^T X,
    Z(c) = sum_i exp(c . x_i); 1 is perfectly isotropic."""
    X = X.astype(np.float64)
    _, vecs = np.linalg.eigh(X.T @ X)
    from scipy.special import logsumexp  # scipy: not at `hs --help`, which reads the family registry

    logz = logsumexp(X @ vecs, axis=0)  # log Z(c) per eigenvector, each without underflow
    return float(np.exp(logz.min() - logz.max()))


def alignment(X: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Wang & Isola: mean squared distance of unit vectors of positive pairs (lower is better)."""
    U = unit_rows(X)
    return float(np.mean(np.sum((U[a] - U[b]) ** 2, axis=1)))


def uniformity(X: np.ndarray, max_n: int = 2000, seed: int = 0) -> float:
    """Wang & Isola: log mean exp(-2 |x - y|^2) over pairs of unit vectors (lower is better)."""
    U = unit_rows(X.astype(np.float64))
    if len(U) > max_n:
        U = U[np.random.default_rng(seed).choice(len(U), max_n, replace=False)]
    sq = np.maximum(2 - 2 * U @ U.T, 0)
    iu = np.triu_indices(len(U), 1)
    return float(np.log(np.mean(np.exp(-2 * sq[iu]))))


def diagnose(X: np.ndarray) -> dict:
    """Isotropy and uniformity of the rows of ``X`` (alignment needs pairs: see ``alignment``)."""
    return {"avg_cosine": average_cosine(X), "isotropy": partition_ratio(X), "uniformity": uniformity(X)}
