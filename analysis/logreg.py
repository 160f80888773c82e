"""L2-regularised logistic regression with scikit-learn's objective, solved fast along a C path.

scikit-learn's ``LogisticRegression(C)`` (lbfgs) minimises ``C * sum_i loss_i + ||W||^2 / 2`` with an
unpenalised intercept: a binomial loss on one weight vector for two classes, a multinomial (softmax)
loss on one weight vector per class otherwise. That problem has one optimum; this module reaches it
in far fewer iterations by solving it in preconditioned coordinates:

* features are centred and rotated onto the eigenvectors of their covariance (the centring only
  moves the intercept, the rotation keeps the penalty a plain sum of squares);
* each direction is scaled by ``(c * eigenvalue + 1 / (C n)) ** -1/2``, the inverse square root of
  the objective's curvature if every example sat at the same point of the loss (``c`` = 1/4 for
  the binomial loss, 1/K for a softmax over K classes), so L-BFGS sees a Hessian near the identity;
* each C starts from an earlier optimum: the previous C's, or the same C's on a superset of the rows
  (the protocol fits the whole training set first, then its inner folds from there).
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_expit

GTOL = 1e-4  # largest gradient entry at the stop, in the preconditioned coordinates (~ distance to the optimum)


class Rotation:
    """Centring and eigenvector rotation of one training set, shared by every C of a path."""

    def __init__(self, X: np.ndarray):
        self.dtype = np.float64 if np.asarray(X).dtype == np.float64 else np.float32  # of the data passes
        X = np.asarray(X, dtype=np.float64)
        self.mean = X.mean(axis=0)
        Xc = X - self.mean
        self.eigenvalues, self.vectors = np.linalg.eigh(Xc.T @ Xc / len(X))
        self.eigenvalues = np.clip(self.eigenvalues, 0.0, None)
        self.rotated = Xc @ self.vectors


def _binomial(Z: np.ndarray, Y: np.ndarray):
    """Summed loss and its gradient wrt the logits; ``Y`` holds +1/-1 for the positive/negative class."""
    m = Y * Z
    return -float(log_expit(m).sum()), -Y * expit(-m)


def _multinomial(Z: np.ndarray, Y: np.ndarray):
    """Summed softmax cross-entropy over the last axis and its gradient wrt the logits; ``Y`` is one-hot."""
    top = Z.max(axis=-1, keepdims=True)
    E = np.exp(Z - top)
    total = E.sum(axis=-1, keepdims=True)
    lse = top + np.log(total)
    return float((lse - (Z * Y).sum(axis=-1, keepdims=True)).sum()), E / total - Y


def fit_path(X: np.ndarray, y: np.ndarray, Cs, rotation: Rotation | None = None, gtol: float = GTOL,
             starts: list | None = None):
    """The solutions for every C in ``Cs``, in that order, each warm-started from the one before, or
    from ``starts[j]`` (a ``(coef, intercept)`` pair, e.g. the solution on a superset of the rows).

    Returns ``(classes, [(coef, intercept, iterations), ...])`` with ``coef`` shaped as
    scikit-learn's ``coef_`` (1 x d for two classes, K x d otherwise) and ``intercept`` as its
    ``intercept_``.
    """
    classes, yi = np.unique(y, return_inverse=True)
    K = len(classes)
    if K < 2:
        raise ValueError("logistic regression needs at least two classes")
    rot = rotation or Rotation(X)
    n, d = rot.rotated.shape
    dt = rot.dtype  # float32 features (what the engine pools) are passed over in float32: half the memory traffic
    R = rot.rotated.astype(dt)
    if K == 2:
        Y, loss, m, curvature = np.where(yi == 1, 1.0, -1.0)[:, None], _binomial, 1, 0.25
    else:
        Y, loss, m, curvature = np.eye(K)[yi], _multinomial, K, 1.0 / K
    b_scale = 1.0 / np.sqrt(curvature)
    W, b = np.zeros((d, m)), np.zeros(m)  # weights in the rotated coordinates, intercept for centred data
    out = []
    for j, C in enumerate(Cs):
        if starts is not None:
            coef, intercept = starts[j]
            W, b = rot.vectors.T @ coef.T, intercept + coef @ rot.mean
        reg = 1.0 / (C * n)
        s = 1.0 / np.sqrt(curvature * rot.eigenvalues + reg)  # preconditioner
        pen = (reg * s * s)[:, None]

        def objective(theta, s=s, pen=pen):  # bound now: the solver calls it within this iteration
            U, c = theta[:-m].reshape(d, m), theta[-m:]
            Z = (R @ (s[:, None] * U).astype(dt)).astype(np.float64) + c * b_scale
            value, G = loss(Z, Y)
            grad_U = s[:, None] * (R.T @ G.astype(dt)) / n + pen * U
            return value / n + 0.5 * float((pen * U * U).sum()), np.concatenate([grad_U.ravel(), G.sum(0) * (b_scale / n)])

        theta0 = np.concatenate([(W / s[:, None]).ravel(), b / b_scale])
        res = minimize(objective, theta0, jac=True, method="L-BFGS-B",
                       options={"gtol": gtol, "ftol": 0.0, "maxiter": 10000, "maxcor": 20})
        W, b = res.x[:-m].reshape(d, m) * s[:, None], res.x[-m:] * b_scale
        coef = (rot.vectors @ W).T
        out.append((coef, b - coef @ rot.mean, int(res.nit)))
    return classes, out


def predict(classes: np.ndarray, coef: np.ndarray, intercept: np.ndarray, X: np.ndarray) -> np.ndarray:
    scores = X @ coef.T + intercept
    if coef.shape[0] == 1:
        return classes[(scores[:, 0] > 0).astype(int)]
    return classes[np.argmax(scores, axis=1)]


def path_accuracies(Xtr, ytr, Xte, yte, Cs, starts=None) -> list[float]:
    """Test accuracy of the fit on (Xtr, ytr) for every C."""
    classes, fits = fit_path(Xtr, ytr, Cs, starts=starts)
    return [float(np.mean(predict(classes, coef, b, Xte) == yte)) for coef, b, _ in fits]
