"""A linear probe for grids: ridge regression on one-hot labels, regularisation chosen in closed form.

One eigendecomposition of a training set's centred Gram matrix gives the fit for every
regularisation value at once, and with it the exact leave-one-out predictions: for ridge with an
unpenalised intercept, the prediction for example i from the fit without i is
``(yhat_i - h_ii y_i) / (1 - h_ii)``, where ``h_ii = 1/n + sum_j P_ij^2 / (e_j + lam)`` and ``P`` is the
centred training matrix in the eigenbasis. When there are fewer examples than dimensions the
decomposition is done on the n x n kernel instead (the dual) and mapped back.
"""
from __future__ import annotations

import numpy as np
from scipy.linalg import eigh

# regularisation grid, relative to the mean eigenvalue of the centred Gram matrix (scale-free)
ALPHAS = tuple(10.0 ** (k / 2) for k in range(-10, 3))


class RidgeFit:
    """The eigendecomposition of one training set and what every regularisation value needs from it."""

    def __init__(self, X: np.ndarray, yi: np.ndarray, k: int):
        """``yi``: class indices 0..k-1 of the rows of ``X``."""
        self.Y = Y = np.eye(k)[yi]
        dtype = np.float64 if X.dtype == np.float64 else np.float32
        X = np.asarray(X, dtype=dtype)
        self.n = len(X)
        self.mean = X.mean(axis=0)
        Xc = X - self.mean
        self.y_mean = Y.mean(axis=0)
        Yc = Y - self.y_mean
        if self.n >= X.shape[1]:  # primal: d x d
            e, V = _eigh(Xc.T @ Xc)
            e = np.clip(e, 0.0, None)
            self.vectors = V.astype(dtype)
        else:  # dual: n x n kernel, V = Xc^T U / sqrt(e) on its non-null part
            e, U = _eigh(Xc @ Xc.T)
            keep = e > e.max() * 1e-12
            e = e[keep]
            self.vectors = (Xc.T @ (U[:, keep] / np.sqrt(e)).astype(dtype))
        self.eigenvalues = e.astype(np.float64)
        self.P = Xc @ self.vectors  # training set in the eigenbasis (float32 for float32 features: the big product)
        self.Q = (self.P.T @ Yc.astype(dtype)).astype(np.float64)  # = V^T Xc^T Yc
        # mean eigenvalue of the Gram matrix over all d directions; constant features (Xc = 0, e.g. CLS
        # at layer 0) fit the class prior for any lambda, so any positive scale does
        self.scale = float(e.sum()) / X.shape[1] or 1.0

    def lambdas(self, alphas=ALPHAS) -> np.ndarray:
        return np.asarray(alphas) * self.scale

    def loo_predictions(self, lams) -> np.ndarray:
        """Leave-one-out predictions (n x K, or L x n x K for a sequence of L values) for regularisation ``lams``."""
        one = np.ndim(lams) == 0
        lams = np.atleast_1d(np.asarray(lams, dtype=np.float64))
        inv = 1.0 / (self.eigenvalues[:, None] + lams[None, :])  # (r, L)
        L, K = len(lams), self.Q.shape[1]
        coefs = (self.Q[:, None, :] * inv[:, :, None]).reshape(-1, L * K).astype(self.P.dtype)
        fitted = (self.P @ coefs).astype(np.float64).reshape(self.n, L, K) + self.y_mean
        h = 1.0 / self.n + ((self.P * self.P) @ inv.astype(self.P.dtype)).astype(np.float64)  # (n, L)
        loo = ((fitted - h[:, :, None] * self.Y[:, None, :]) / (1.0 - h)[:, :, None]).transpose(1, 0, 2)
        return loo[0] if one else loo

    def predict(self, X: np.ndarray, lam: float) -> np.ndarray:
        """Scores (n x K) for new rows."""
        inv = 1.0 / (self.eigenvalues + lam)
        T = ((np.asarray(X, dtype=self.vectors.dtype) - self.mean) @ self.vectors).astype(np.float64)
        return T @ (self.Q * inv[:, None]) + self.y_mean


def _eigh(G: np.ndarray):
    """Eigendecomposition of a symmetric matrix (LAPACK's divide and conquer: the fastest for all vectors)."""
    return eigh(G, driver="evd", check_finite=False)


def choose_by_loo(fit: RidgeFit, yi: np.ndarray, alphas=ALPHAS) -> float:
    """The regularisation with the best leave-one-out accuracy (the smallest-index one on ties)."""
    lams = fit.lambdas(alphas)
    accs = (np.argmax(fit.loo_predictions(lams), axis=2) == yi[None, :]).mean(axis=1)
    return float(lams[int(np.argmax(accs))])


def choose_on(fit: RidgeFit, X: np.ndarray, yi: np.ndarray, alphas=ALPHAS) -> float:
    """The regularisation with the best accuracy on a held-out set (a dev split)."""
    lams = fit.lambdas(alphas)
    accs = [np.mean(np.argmax(fit.predict(X, lam), axis=1) == yi) for lam in lams]
    return float(lams[int(np.argmax(accs))])


def accuracy(fit: RidgeFit, lam: float, X: np.ndarray, yi: np.ndarray) -> float:
    return float(np.mean(np.argmax(fit.predict(X, lam), axis=1) == yi))
