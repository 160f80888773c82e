"""Two-class L2 logistic regression for many (rows, C) problems at once, by batched Newton-CG.

The SentEval protocol fits one training set's inner folds and the whole set at each of seven C
values: 42 problems on subsets of the same rows. Each problem is scikit-learn's objective
``C * sum_i loss_i + ||w||^2 / 2`` (intercept unpenalised), which is smooth and strongly convex, so
Newton's method reaches its one optimum in a handful of steps. Here every problem takes its Newton
steps together with the others: a pass over the data is one matrix product for all 42 (row
subsets are 0/1 weights), which uses the CPU far better than 42 matrix-vector products.

Each Newton system is solved by conjugate gradients, preconditioned by the Hessian's diagonal in a
basis where the Hessian is nearly diagonal: the eigenvectors of ``X^T D X`` with ``D`` the
curvature of the loss at a pilot solution (:class:`Basis`). The basis only changes the path, not
the optimum: the penalty is rotation invariant and centring only moves the intercept.
"""
from __future__ import annotations

import numpy as np
from scipy.special import expit, log_expit

GTOL = 1e-8  # largest gradient entry at the stop, objective divided by C * rows


class Basis:
    """Centre and rotation that make the loss's Hessian nearly diagonal for one data set."""

    def __init__(self, X: np.ndarray, yi: np.ndarray, C: float = 1.0):
        X = np.asarray(X, dtype=np.float64)
        mean = X.mean(axis=0)
        _, V = np.linalg.eigh((X - mean).T @ (X - mean))
        self.mean, self.vectors = mean, V
        pilot = solve(self.rotate(X), yi[:, None] == 1, np.ones((len(X), 1)), [C], gtol=1e-4)
        z = self.rotate(X) @ pilot[0][:, 0] + pilot[1][0]
        D = expit(z) * expit(-z)  # curvature of each example's loss at the pilot
        mean = D @ X / D.sum()  # centring by the curvature-weighted mean decouples the intercept
        _, self.vectors = np.linalg.eigh((X - mean).T @ (D[:, None] * (X - mean)))
        self.mean = mean

    def rotate(self, X: np.ndarray) -> np.ndarray:
        return (np.asarray(X, dtype=np.float64) - self.mean) @ self.vectors

    def unrotate(self, w: np.ndarray, b: float):
        """(coef, intercept) in the original coordinates, shaped as scikit-learn's (1 x d, (1,))."""
        coef = self.vectors @ w
        return coef[None, :], np.array([b - coef @ self.mean])


def solve(R: np.ndarray, positive: np.ndarray, rows: np.ndarray, Cs, gtol: float = GTOL,
          start: tuple | None = None, max_newton: int = 100):
    """Optima of P problems on the rows of ``R`` (n x d): problem p uses the rows where
    ``rows[:, p]`` is 1, with regularisation ``Cs[p]``; ``positive[:, p]`` (or one column for all)
    says which rows are of the positive class. Returns ``(W, b, newton_steps)``: ``W`` is d x P, ``b``
    has P entries.
    """
    n, d = R.shape
    rows = np.asarray(rows, dtype=np.float64)
    P = rows.shape[1]
    weight = rows / rows.sum(axis=0)  # the objective divided by C * rows: a mean loss
    reg = 1.0 / (np.asarray(Cs, dtype=np.float64) * rows.sum(axis=0))
    sign = np.where(np.broadcast_to(positive, (n, P)), 1.0, -1.0)
    R32 = R.astype(np.float32)  # conjugate gradients only need a direction: half the memory traffic
    W, b = (np.zeros((d, P)), np.zeros(P)) if start is None else (start[0].copy(), start[1].copy())

    def evaluate(W, b):
        z = R @ W + b
        m = sign * z
        f = -(log_expit(m) * weight).sum(axis=0) + 0.5 * reg * (W * W).sum(axis=0)
        return f, z, m

    f, z, m = evaluate(W, b)
    for step in range(max_newton):
        G = -sign * expit(-m) * weight
        gW, gb = R.T @ G + reg * W, G.sum(axis=0)
        gmax = np.maximum(np.abs(gW).max(axis=0), np.abs(gb))
        todo = gmax > gtol
        if not todo.any():
            return W, b, step
        D = expit(z) * expit(-z) * weight
        sW, sb = _newton_direction(R32, D, reg, gW, gb, todo)
        # backtracking (Armijo) per problem; the full step is almost always taken
        slope = (gW * sW).sum(axis=0) + gb * sb
        t = todo.astype(np.float64)
        for _ in range(60):
            f_new, z_new, m_new = evaluate(W + t * sW, b + t * sb)
            # near the optimum the decrease is below float64 rounding of the summed loss: accept
            ok = f_new <= f + 1e-4 * t * slope + 1e-11 * (1.0 + np.abs(f))
            if ok.all():
                break
            t = np.where(ok, t, t / 2)
        W, b, f, z, m = W + t * sW, b + t * sb, f_new, z_new, m_new
    raise RuntimeError(f"Newton's method did not converge in {max_newton} steps")


def _newton_direction(R, D, reg, gW, gb, todo):
    """Solve (Hessian) s = -gradient for every problem by preconditioned conjugate gradients, to the
    relative accuracy min(0.5, sqrt|g|) (superlinear convergence of the outer steps). ``R`` may be
    float32: the gradient, computed in float64, decides where the steps end."""
    D32 = D.astype(R.dtype)
    precW = 1.0 / ((R * R).T @ D32 + reg)  # inverse Hessian diagonal in the basis
    precb = 1.0 / np.maximum(D.sum(axis=0), 1e-300)
    sW, sb = np.zeros_like(gW), np.zeros_like(gb)
    rW, rb = -gW * todo, -gb * todo
    gnorm = np.sqrt((gW * gW).sum(axis=0) + gb * gb)
    target = np.minimum(0.5, np.sqrt(gnorm)) * gnorm
    zW, zb = rW * precW, rb * precb
    pW, pb = zW, zb
    rz = (rW * zW).sum(axis=0) + rb * zb
    for _ in range(R.shape[1] + 1):
        Hz = D32 * (R @ pW.astype(R.dtype) + pb.astype(R.dtype))
        HW, Hb = (R.T @ Hz).astype(np.float64) + reg * pW, Hz.sum(axis=0, dtype=np.float64)
        pHp = (pW * HW).sum(axis=0) + pb * Hb
        alpha = np.where(rz > 0, rz / np.where(pHp > 0, pHp, 1.0), 0.0)
        sW, sb = sW + alpha * pW, sb + alpha * pb
        rW, rb = rW - alpha * HW, rb - alpha * Hb
        active = np.sqrt((rW * rW).sum(axis=0) + rb * rb) > target
        if not active.any():
            break
        rW, rb = rW * active, rb * active  # converged problems stop moving
        zW, zb = rW * precW, rb * precb
        rz_new = (rW * zW).sum(axis=0) + rb * zb
        beta = np.where(rz > 0, rz_new / np.where(rz > 0, rz, 1.0), 0.0)
        pW, pb, rz = zW + beta * pW, zb + beta * pb, rz_new
    return sW, sb
