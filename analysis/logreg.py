"""L2-regularised logistic regression with scikit-learn's objective, many problems solved at once.

scikit-learn's ``LogisticRegression(C)`` (lbfgs) minimises ``C * sum_i loss_i + ||W||^2 / 2`` with an
unpenalised intercept: a binomial loss on one weight vector for two classes, a multinomial (softmax)
loss on one weight vector per class otherwise. That problem has one optimum. The SentEval protocol
needs it for one training set, its inner folds and every C of a grid: here all of them are solved
together by one batched L-BFGS, so a pass over the data is one matrix product for every problem
(row subsets are 0/1 weights) instead of one thin product per problem. Each problem runs its own
L-BFGS (own history, own backtracking line search) and stops at its own tolerance, in
preconditioned coordinates:

* features are centred and rotated onto the eigenvectors of their covariance (the centring only
  moves the intercept, the rotation keeps the penalty a plain sum of squares);
* each direction is scaled by ``(c * eigenvalue + 1 / (C n)) ** -1/2``, the inverse square root of
  the objective's curvature if every example sat at the same point of the loss (``c`` = 1/4 for
  the binomial loss; for a softmax, the curvature at the class priors, per component of a class
  basis, see :class:`_Problems`), so L-BFGS sees a Hessian near the identity;
* the passes over the data run in float32 as far as its rounding allows, then in float64.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from hsstore.errors import HsError

GTOL = 1e-5  # largest gradient entry at the stop, in the preconditioned coordinates (~ distance to the optimum)
MEMORY = 10  # L-BFGS correction pairs per problem


class NotConverged(HsError):
    """A solver stopped at its iteration limit: the features are degenerate (huge or NaN values)."""


class Rotation:
    """Centring and eigenvector rotation of one training set, shared by every problem on its rows."""

    def __init__(self, X: np.ndarray):
        self.dtype = np.float64 if np.asarray(X).dtype == np.float64 else np.float32  # of the data passes
        X = np.asarray(X, dtype=np.float64)
        if not np.isfinite(X).all():
            raise HsError("the features hold NaN or infinite values; check the recipe's post-processing")
        self.mean = X.mean(axis=0)
        Xc = X - self.mean
        self.eigenvalues, self.vectors = np.linalg.eigh(Xc.T @ Xc / len(X))
        self.eigenvalues = np.clip(self.eigenvalues, 0.0, None)
        self.rotated64 = Xc @ self.vectors
        self.rotated = self.rotated64.astype(self.dtype)

    def apply(self, X: np.ndarray) -> np.ndarray:
        """Other rows (a dev or test split) in the same coordinates, float64."""
        return (np.asarray(X, dtype=np.float64) - self.mean) @ self.vectors

    def unrotate(self, W: np.ndarray, b: np.ndarray):
        """(coef, intercept) in the original coordinates, shaped as scikit-learn's ``coef_`` (m x d)
        and ``intercept_``, from one problem's rotated ``W`` (d x m) and centred intercept ``b``."""
        coef = (self.vectors @ W).T
        return coef, b - coef @ self.mean


@njit(cache=True)
def _losses(Z, c, yi, weight, act, binary, L, G):  # pragma: no cover - compiled
    """One pass over the logits ``Z`` (n x A*m, float32, intercepts ``c`` still to add) of A problems:
    ``L[i, a]`` gets row i's weighted loss in problem a, ``G`` its weighted gradient wrt the logits
    (float32, for the next product with the data); problem a's row weights are ``weight[:, act[a]]``.
    Binomial for ``binary`` (m = 1, class 1 positive), softmax cross-entropy otherwise. Rows of
    weight 0 (outside a problem's fold) are skipped."""
    n = Z.shape[0]
    A, m = c.shape
    for i in range(n):
        y = yi[i]
        for a in range(A):
            w = weight[i, act[a]]
            base = a * m
            if w == 0.0:
                L[i, a] = 0.0
                for k in range(m):
                    G[i, base + k] = 0.0
                continue
            if binary:
                z = Z[i, base] + c[a, 0]
                sz = z if y == 1 else -z
                # -log(sigmoid(sz)) and the gradient -sign * sigmoid(-sz), both without overflow
                if sz > 0:
                    e = np.exp(-sz)
                    L[i, a] = w * np.log1p(e)
                    q = e / (1.0 + e)
                else:
                    e = np.exp(sz)
                    L[i, a] = w * (np.log1p(e) - sz)
                    q = 1.0 / (1.0 + e)
                G[i, base] = -w * q if y == 1 else w * q
                continue
            top = -np.inf
            for k in range(m):
                top = max(top, Z[i, base + k] + c[a, k])
            total = 0.0
            for k in range(m):
                e = np.exp(Z[i, base + k] + c[a, k] - top)
                G[i, base + k] = e
                total += e
            L[i, a] = w * (top + np.log(total) - (Z[i, base + y] + c[a, y]))
            scale = w / total
            for k in range(m):
                G[i, base + k] *= scale
            G[i, base + y] -= w


class _Problems:
    """P problems on the rows of one :class:`Rotation`: their weights, penalties and preconditioner,
    and the objective and gradient of any of them in preconditioned coordinates ``theta``.

    For K classes the weights are parameterised in a (K-1)-dimensional class basis ``M`` (K x K-1,
    orthonormal columns): scikit-learn's optimum has weights summing to zero over the classes (the
    softmax loss ignores a shift shared by all classes, the penalty does not), and the basis is the
    eigenbasis of the softmax curvature ``diag(pi) - pi pi^T`` at the class priors ``pi``. With the
    covariance's eigenvalues ``e`` that gives the curvature of every (direction, class component)
    pair if each example sat at the prior, ``lambda_k e_j``: its inverse square root scales the
    coordinates so that L-BFGS sees a Hessian near the identity, rare classes included. Two classes
    use scikit-learn's binomial loss on one weight vector (curvature 1/4).
    """

    def __init__(self, rot: Rotation, yi: np.ndarray, k: int, rows: np.ndarray, Cs):
        rows = np.asarray(rows, dtype=np.float64)
        self.n, self.d = rot.rotated.shape
        self.k, self.yi = k, np.ascontiguousarray(yi, dtype=np.int64)
        if k == 2:
            self.M, curvature = np.ones((1, 1)), np.array([0.25])
        else:
            prior = np.bincount(self.yi, minlength=k) / len(self.yi)
            lam, Q = np.linalg.eigh(np.diag(prior) - np.outer(prior, prior))
            keep = np.argsort(lam)[1:]  # drop the shared-shift direction (eigenvalue 0)
            self.M, curvature = Q[:, keep], np.maximum(lam[keep], 1e-12)
        self.m = self.M.shape[1]
        counts = rows.sum(axis=0)
        self.weight = rows / counts  # the objective divided by C * rows: a mean loss
        self.reg = 1.0 / (np.asarray(Cs, dtype=np.float64) * counts)
        e = rot.eigenvalues[None, :, None] * curvature[None, None, :]
        self.s = 1.0 / np.sqrt(e + self.reg[:, None, None])  # P x d x m
        self.b_scale = 1.0 / np.sqrt(curvature)
        self.size = self.d * self.m + self.m
        self.R = rot.rotated

    def to_theta(self, W: np.ndarray, b: np.ndarray) -> np.ndarray:
        U, c = (W @ self.M) / self.s, (b @ self.M) / self.b_scale
        return np.concatenate([U.reshape(len(W), -1), c], axis=1)

    def from_theta(self, theta: np.ndarray, act=slice(None)):
        """Weights (A x d x K, or x 1 for two classes) and intercepts of the problems ``act``."""
        U = theta[:, :self.d * self.m].reshape(len(theta), self.d, self.m)
        return (self.s[act] * U) @ self.M.T, (theta[:, self.d * self.m:] * self.b_scale) @ self.M.T

    def forward(self, theta: np.ndarray, act: np.ndarray):
        """Objectives of the problems ``act`` at ``theta`` and the loss's weighted logit gradient."""
        W, b = self.from_theta(theta, act)
        R = self.R
        Z = R @ W.transpose(1, 0, 2).reshape(self.d, -1).astype(R.dtype)
        L, G = np.empty((self.n, len(act))), np.empty_like(Z)
        _losses(Z, b, self.yi, self.weight, act, self.k == 2, L, G)
        return L.sum(axis=0) + 0.5 * self.reg[act] * (W * W).sum(axis=(1, 2)), G

    def gradient(self, theta: np.ndarray, G: np.ndarray, act: np.ndarray) -> np.ndarray:
        A, d, m = len(act), self.d, self.m
        U = theta[:, :d * m].reshape(A, d, m)
        gW = (self.R.T @ G).astype(np.float64).reshape(d, A, -1).transpose(1, 0, 2) @ self.M
        gU = self.s[act] * (gW + self.reg[act][:, None, None] * self.s[act] * U)
        gc = (G.sum(axis=0, dtype=np.float64).reshape(A, -1) @ self.M) * self.b_scale
        return np.concatenate([gU.reshape(A, -1), gc], axis=1)


ROUGH_GTOL = 1e-5  # where the float32 phase hands over to float64 (float32 rounding noise lies not far below)
STALL = 10  # the float32 phase drops a problem whose gradient has not reached a new low in this many steps


def solve(rot: Rotation, yi: np.ndarray, k: int, rows: np.ndarray, Cs, gtol: float = GTOL,
          start: tuple | None = None, max_iter: int = 5000):
    """Optima of P problems on the rows of ``rot``: problem p uses the rows where ``rows[:, p]`` is 1,
    with regularisation ``Cs[p]``; ``yi`` holds class indices 0..k-1. Returns ``(W, b, iterations)``
    in the rotated, centred coordinates: ``W`` is P x d x K, ``b`` P x K (K = 1 for two classes, k
    otherwise), ``iterations`` per problem. ``start``: an earlier ``(W, b)`` of the same shapes.

    The passes over the data run in float32 (half the memory traffic, twice the matrix-product
    rate) down to ``ROUGH_GTOL`` (or while a problem's gradient keeps falling, if float32
    rounding stops it sooner), then in float64 down to ``gtol``.
    """
    if k < 2:
        raise HsError("logistic regression needs at least two classes in the training data")
    probs = _Problems(rot, yi, k, rows, Cs)
    P = probs.weight.shape[1]
    theta = np.zeros((P, probs.size)) if start is None else probs.to_theta(*start)
    iterations = np.zeros(P, dtype=int)
    if rot.dtype == np.float32:
        its, _ = _lbfgs(probs, theta, max(gtol, ROUGH_GTOL), max_iter, stall=STALL)
        iterations += its
        probs.R = rot.rotated64
    its, done = _lbfgs(probs, theta, gtol, max_iter)
    iterations += its
    if not done:
        raise NotConverged(f"logistic regression did not converge in {max_iter} iterations; check the features "
                           f"for huge values (try post=zscore or post=l2)")
    W, b = probs.from_theta(theta)
    return W, b, iterations


def _lbfgs(probs: _Problems, theta: np.ndarray, gtol: float, max_iter: int, stall: int | None = None):
    """Batched L-BFGS on ``theta`` (P x size, updated in place) until every problem's largest
    gradient entry is at most ``gtol`` (or, with ``stall``, has not reached a new low in that many
    steps). Returns (iterations per problem, all converged)."""
    P, size = theta.shape
    everyone = np.arange(P)
    f, G = probs.forward(theta, everyone)
    g = probs.gradient(theta, G, everyone)
    # correction pairs per problem, in a ring buffer indexed by the step count (shared: every
    # active problem has taken the same number of steps); ``used`` drops after a reset
    S, Yh, rho = np.zeros((MEMORY, P, size)), np.zeros((MEMORY, P, size)), np.zeros((MEMORY, P))
    used, steps = np.zeros(P, dtype=int), 0
    iterations = np.zeros(P, dtype=int)
    gmax = np.abs(g).max(axis=1)
    low, low_step = gmax.copy(), np.zeros(P, dtype=int)
    act = everyone[gmax > gtol]
    while len(act) and steps < max_iter:
        ga = g[act]
        direction = -_two_loop(ga, S[:, act], Yh[:, act], rho[:, act], used[act], steps)
        slope = (ga * direction).sum(axis=1)
        bad = slope >= 0  # not a descent direction (rounding): forget the history, go downhill
        if bad.any():
            direction[bad], slope[bad] = -ga[bad], -(ga[bad] * ga[bad]).sum(axis=1)
            used[act[bad]] = 0
        t = np.ones(len(act))
        f_new, G_new = probs.forward(theta[act] + direction, act)
        K = len(probs.M)
        for _ in range(60 if stall is None else 10):  # backtracking (Armijo), for the problems whose step failed
            fail = f_new > f[act] + 1e-4 * t * slope + 1e-12 * (1.0 + np.abs(f[act]))
            if not fail.any():
                break
            t[fail] /= 2
            f_new[fail], G_sub = probs.forward(theta[act[fail]] + t[fail, None] * direction[fail], act[fail])
            G_new.reshape(len(G_new), -1, K)[:, fail] = G_sub.reshape(len(G_sub), -1, K)
        if stall is not None:  # no decrease found: rounding noise, not the optimum; leave it to float64
            moved = f_new <= f[act] + 1e-4 * t * slope + 1e-12 * (1.0 + np.abs(f[act]))
            act, ga, t, direction, f_new = act[moved], ga[moved], t[moved], direction[moved], f_new[moved]
            G_new = G_new.reshape(len(G_new), -1, K)[:, moved].reshape(len(G_new), -1)
            if not len(act):
                break
        step = t[:, None] * direction
        theta[act] += step
        g_new = probs.gradient(theta[act], G_new, act)
        y = g_new - ga
        sy = (step * y).sum(axis=1)
        slot = steps % MEMORY
        S[slot, act], Yh[slot, act] = step, y
        rho[slot, act] = np.where(sy > 1e-16, 1.0 / np.where(sy > 1e-16, sy, 1.0), 0.0)  # 0: a skipped pair
        used[act] = np.minimum(used[act] + 1, MEMORY)
        f[act], g[act] = f_new, g_new
        iterations[act] += 1
        steps += 1
        gmax = np.abs(g_new).max(axis=1)
        better = gmax < low[act]
        low[act[better]], low_step[act[better]] = gmax[better], steps
        keep = gmax > gtol
        if stall is not None:
            keep &= steps - low_step[act] < stall
        act = act[keep]
    return iterations, bool((np.abs(g).max(axis=1) <= gtol).all())


def _two_loop(g, S, Yh, rho, used, steps):
    """L-BFGS's inverse-Hessian product for every problem (rows of ``g``) from its last ``used``
    correction pairs, stored in ring-buffer slots by step number (every problem here has taken
    ``steps`` steps; ``used`` is lower for one whose history was reset). The initial matrix is the
    identity scaled by the newest pair: the preconditioned Hessian is near the identity."""
    held = min(steps, S.shape[0])
    if held == 0 or not used.any():
        return g.copy()
    # oldest to newest; a pair is valid for a problem if it is among that problem's newest ``used``
    order = [((steps - held + j) % S.shape[0], j >= held - used) for j in range(held)]
    q = g.copy()
    alphas = []
    for slot, valid in reversed(order):
        a = rho[slot] * (S[slot] * q).sum(axis=1) * valid
        q -= a[:, None] * Yh[slot]
        alphas.append(a)
    last = order[-1][0]
    yy = (Yh[last] * Yh[last]).sum(axis=1)
    ok = (used > 0) & (yy > 0) & (rho[last] > 0)
    r = q * np.where(ok, 1.0 / np.where(ok, yy * rho[last], 1.0), 1.0)[:, None]
    for (slot, valid), a in zip(order, reversed(alphas)):
        beta = rho[slot] * (Yh[slot] * r).sum(axis=1) * valid
        r += S[slot] * (a - beta)[:, None]
    return r


def predict_rotated(W: np.ndarray, b: np.ndarray, R: np.ndarray) -> np.ndarray:
    """Class indices of rotated rows ``R`` under one problem's ``W`` (d x 1 or d x K) and ``b``."""
    scores = R @ W + b
    return (scores[:, 0] > 0).astype(int) if W.shape[1] == 1 else np.argmax(scores, axis=1)
