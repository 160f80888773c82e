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
    """Isotropy as Mu & Viswanath define it (All-but-the-Top, ICLR 2018, section 2.1),
    I = min_c Z(c) / max_c Z(c) with Z(c) = sum_i exp(c . u_i), taken over the sentence vectors at
    unit length (u_i = x_i / |x_i|: what cosine compares; on raw vectors a whitened matrix, whose
    rows are ~sqrt(dim) long, scores ~0 while it is the most isotropic of all) and over c = +-v for
    the eigenvectors v of U^T U (their approximation of all unit c; both signs, so the figure does
    not depend on the sign LAPACK gives an eigenvector). 1 is isotropic; it cannot fall below e^-2."""
    U = unit_rows(X.astype(np.float64))
    _, vecs = np.linalg.eigh(U.T @ U)
    from scipy.special import logsumexp  # scipy: not at `hs --help`, which reads the family registry

    proj = U @ vecs
    logz = np.concatenate([logsumexp(proj, axis=0), logsumexp(-proj, axis=0)])  # log Z(+v), log Z(-v)
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
