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
* softmax weights live in the (K-1)-dimensional class basis without the shift shared by all
  classes (:func:`class_basis`);
* per class component, the coordinates are rotated and scaled by the inverse square root of a
  :class:`Curvature` plus the penalty, so that L-BFGS sees a Hessian near the identity: the
  curvature at a rough pilot solution on all the problems' rows (:func:`pilot`), which the
  problems also start from, or, where a pilot would cost more than it saves, the curvature if
  every example sat at the class priors;
* the passes over the data run in float32 as far as its rounding allows, then in float64, each
  problem keeping its correction pairs across the hand-over.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from hsstore.errors import HsError

from .. import tolerate_kernel_cache_failures

tolerate_kernel_cache_failures()  # a kernel cache that cannot be written only warns

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


# The loss pass is split so that the exponentials and logarithms run as numpy's vectorised ufuncs
# (numba's scalar exp is ~6x slower): _shift -> exp -> _sums -> log -> _finish.

@njit(cache=True, fastmath=True)
def _shift(Z, c, yi, weight, act, binary, D, dy):  # pragma: no cover - compiled
    """``D`` gets each row's shifted logits of A problems (logits ``Z`` n x A*m plus intercepts ``c``,
    minus the row's largest, so that exp never overflows) and ``dy`` the true class's shifted logit.
    Binomial (m = 1, class 1 positive): ``D`` = -|signed logit|. ``D`` is clipped at -700 (exp
    1e-304, a negligible term) and is 0 on rows of weight 0 (outside a problem's fold, ignored
    later): numpy's vectorised exp takes a slow path for -inf and for results that underflow."""
    n = Z.shape[0]
    A, m = c.shape
    cf = c.ravel()
    for i in range(n):
        y = yi[i]
        zi, di, wi = Z[i], D[i], weight[i]
        for a in range(A):
            base = a * m
            if wi[act[a]] == 0.0:
                di[base:base + m] = 0.0
                dy[i, a] = 0.0
                continue
            if binary:
                z = zi[base] + cf[base]
                di[base] = max(-abs(z), -700.0)
                dy[i, a] = z if y == 1 else -z  # the signed logit
                continue
            top = -1e308
            for k in range(m):
                v = zi[base + k] + cf[base + k]
                di[base + k] = v
                top = max(top, v)
            dy[i, a] = di[base + y] - top
            for k in range(m):
                di[base + k] = max(di[base + k] - top, -700.0)


@njit(cache=True)
def _sums(E, binary, S):  # pragma: no cover - compiled
    """Softmax denominators of the exponentiated shifted logits ``E`` (n x A*m): S[i, a] (1 + E for
    the binomial loss)."""
    n, A = S.shape
    m = E.shape[1] // A
    for i in range(n):
        for a in range(A):
            total = 1.0 if binary else 0.0
            for k in range(m):
                total += E[i, a * m + k]
            S[i, a] = total


@njit(cache=True, fastmath=True)
def _finish(E, S, logS, dy, yi, weight, act, binary, G, loss, gc):  # pragma: no cover - compiled
    """Per problem a: ``loss[a]`` its weighted loss, ``G`` its weighted gradient wrt the logits (for
    the next product with the data) and ``gc[a]`` that gradient's column sums (the intercepts')."""
    n, A = S.shape
    m = gc.shape[1]
    gcf = gc.ravel()
    for i in range(n):
        y = yi[i]
        ei, gi, wi = E[i], G[i], weight[i]
        for a in range(A):
            w = wi[act[a]]
            base = a * m
            if w == 0.0:
                gi[base:base + m] = 0.0
                continue
            if binary:
                sz = dy[i, a]
                # -log(sigmoid(sz)) and the gradient -sign * sigmoid(-sz), both without overflow
                loss[a] += w * (logS[i, a] + max(-sz, 0.0))
                q = ei[base] / S[i, a] if sz > 0 else 1.0 / S[i, a]
                gi[base] = -w * q if y == 1 else w * q
                continue
            loss[a] += w * (logS[i, a] - dy[i, a])
            scale = w / S[i, a]
            for k in range(m):
                gi[base + k] = ei[base + k] * scale
            gi[base + y] -= w
        for j in range(A * m):  # the intercepts' gradient: column sums, accumulated in float64
            gcf[j] += gi[j]


def _loss_pass(Z, c, yi, weight, act, binary):
    """Weighted losses (A), logit gradients (n x A*m, Z's dtype) and intercept gradients (A x m) of
    the A problems ``act`` whose logits are ``Z`` (intercepts ``c`` still to add)."""
    n = Z.shape[0]
    A = len(act)
    D, dy = np.empty(Z.shape), np.empty((n, A))
    _shift(Z, c, yi, weight, act, binary, D, dy)
    np.exp(D, out=D)
    S = np.empty((n, A))
    _sums(D, binary, S)
    G, loss, gc = np.empty_like(Z), np.zeros(A), np.zeros(c.shape)
    _finish(D, S, np.log(S), dy, yi, weight, act, binary, G, loss, gc)
    return loss, G, gc


def class_basis(yi: np.ndarray, k: int):
    """The (K-1)-dimensional class basis ``M`` (K x K-1, orthonormal columns) and the softmax
    curvature of each component at the class priors (two classes: scikit-learn's binomial loss on
    one weight vector, ``M`` = [[1]], curvature 1/4).

    scikit-learn's optimum has weights summing to zero over the classes (the softmax loss ignores a
    shift shared by all classes, the penalty does not); the basis is the eigenbasis of the softmax
    curvature ``diag(pi) - pi pi^T`` at the priors ``pi``, without that shift."""
    if k == 2:
        return np.ones((1, 1)), np.array([0.25])
    prior = np.bincount(yi, minlength=k) / len(yi)
    lam, Q = np.linalg.eigh(np.diag(prior) - np.outer(prior, prior))
    keep = np.argsort(lam)[1:]  # drop the shared-shift direction (eigenvalue 0)
    return Q[:, keep], np.maximum(lam[keep], 1e-12)


class Curvature:
    """The curvature of the mean loss that preconditions the solver, per class component ``j`` over
    the rotated features and the intercept, in eigen-form: ``vectors[j] @ diag(values[j]) @
    vectors[j].T`` ((d+1) x (d+1)). Cross-component terms are left out (m matrices, not m^2).

    :meth:`at_priors`: every example at the class priors (the covariance's eigenvalues times the
    component's curvature; diagonal in the rotated coordinates, ``vectors`` None). :meth:`at`: the
    examples' curvature under a pilot solution, which on confident data is far from the priors' (a
    softmax that separates most training questions has almost no curvature left along their
    directions, so the priors' scaling mis-sizes L-BFGS's steps there)."""

    def __init__(self, M: np.ndarray, values: np.ndarray, vectors: np.ndarray | None = None):
        self.M, self.values, self.vectors = M, values, vectors

    @classmethod
    def at_priors(cls, rot: Rotation, yi: np.ndarray, k: int) -> Curvature:
        M, lam = class_basis(yi, k)
        return cls(M, lam[:, None] * np.append(rot.eigenvalues, 1.0)[None, :])  # the intercept's "feature" is 1

    @classmethod
    def at(cls, rot: Rotation, yi: np.ndarray, k: int, rows: np.ndarray, W: np.ndarray, b: np.ndarray) -> Curvature:
        """At the solution ``(W, b)`` (rotated coordinates, one problem's as :func:`solve` returns
        it) over the rows where ``rows`` is true: m products of the data with itself."""
        M, _ = class_basis(yi, k)
        X = rot.rotated[rows]
        X1 = np.hstack([X, np.ones((len(X), 1), dtype=X.dtype)])
        Z = rot.rotated64[rows] @ W + b
        if k == 2:
            p = 1.0 / (1.0 + np.exp(-np.clip(Z, -700, 700)))
            weights = p * (1.0 - p)
        else:
            P = np.exp(Z - Z.max(axis=1, keepdims=True))
            P /= P.sum(axis=1, keepdims=True)
            # the class basis re-chosen to diagonalise the examples' mean curvature here, not the
            # priors': the blocks leave out less coupling between components (TREC: 21% fewer iterations)
            PM = P @ M
            M = M @ np.linalg.eigh(M.T @ (P.mean(axis=0)[:, None] * M) - PM.T @ PM / len(P))[1]
            PM = P @ M
            weights = P @ (M * M) - PM ** 2  # each component's curvature, per example
        values, vectors = [], []
        for j in range(M.shape[1]):
            block = ((X1 * weights[:, j, None].astype(X.dtype)).T @ X1).astype(np.float64) / len(X)
            lam, Q = np.linalg.eigh(block)
            values.append(np.maximum(lam, 0.0))
            vectors.append(Q)
        return cls(M, np.stack(values), np.stack(vectors))


PILOT_GTOL = 1e-3  # a rough solution: its curvature is what the preconditioner needs, not its weights
PILOT_QUANTILE = 0.5  # where on the C grid (log scale) the pilot is solved (on TREC 0.25-0.5 alike, the top worse)
PILOT_SAVES = 20  # L-BFGS iterations a pilot saves per problem, at least (TREC's 35 inner problems: 51)


def pilot(rot: Rotation, yi: np.ndarray, k: int, rows: np.ndarray, Cs):
    """What to solve the problems ``rows``/``Cs`` of :func:`solve` from: a rough solution on all
    their rows at the middle of their C grid (in log scale), as ``(curvature, start)`` for
    :func:`solve`. Starting there matters as much as the curvature: from zero, the first steps,
    sized for the pilot's confident curvature, overshoot. The priors' curvature and no start where
    the pilot would cost more than it saves: its m products of the data with itself and m
    eigendecompositions against PILOT_SAVES iterations of every problem (few problems on wide
    features, such as SICK-E's 7 on 1,536 pair features)."""
    rows = np.asarray(rows)
    (n, d), m, K = rot.rotated.shape, max(k - 1, 1), k if k > 2 else 1
    if m * (2.0 * n * (d + 1) ** 2 + 10.0 * (d + 1) ** 3) > rows.shape[1] * PILOT_SAVES * 4.0 * n * d * K:
        return Curvature.at_priors(rot, yi, k), None
    union = rows.any(axis=1)
    C = float(np.exp(np.quantile(np.log(np.unique(np.asarray(Cs, dtype=np.float64))), PILOT_QUANTILE)))
    W, b, _ = solve(rot, yi, k, union[:, None].astype(np.float64), [C], gtol=PILOT_GTOL)
    P = rows.shape[1]
    return Curvature.at(rot, yi, k, union, W[0], b[0]), (np.repeat(W, P, axis=0), np.repeat(b, P, axis=0))


class _Problems:
    """P problems on the rows of one :class:`Rotation`: their weights, penalties and preconditioner,
    and the objective and gradient of any of them in preconditioned coordinates ``theta``.

    A problem's weights ``x_j`` (per class component ``j`` of :func:`class_basis`: d weights and the
    intercept) are ``Q_j diag((c_j + reg) ** -1/2) theta_j`` for the :class:`Curvature`'s eigen-form
    ``Q_j diag(c_j) Q_j^T`` and the problem's penalty ``reg`` (here on the intercept too, which only
    changes the preconditioner): L-BFGS sees a Hessian near the identity.
    """

    def __init__(self, rot: Rotation, yi: np.ndarray, k: int, rows: np.ndarray, Cs, curvature: Curvature):
        rows = np.asarray(rows, dtype=np.float64)
        self.d = rot.rotated.shape[1]
        self.k, self.yi = k, np.ascontiguousarray(yi, dtype=np.int64)
        self.M, self.Q = curvature.M, curvature.vectors
        self.m = self.M.shape[1]
        counts = rows.sum(axis=0)
        self.weight = rows / counts  # the objective divided by C * rows: a mean loss
        self.reg = 1.0 / (np.asarray(Cs, dtype=np.float64) * counts)
        self.scale = 1.0 / np.sqrt(curvature.values[None] + self.reg[:, None, None])  # P x m x (d+1)
        self.size = self.m * (self.d + 1)
        self.q_int = np.eye(self.d + 1)[-1] * np.ones((self.m, 1)) if self.Q is None else self.Q[:, -1, :]
        self.R = rot.rotated

    def _rotate(self, X: np.ndarray, back: bool = False) -> np.ndarray:
        """Each component's rows (X: A x m x (d+1)) times ``Q_j^T`` (``back``: times ``Q_j``)."""
        if self.Q is None:
            return X
        Q = self.Q if back else self.Q.transpose(0, 2, 1)
        return np.matmul(X.transpose(1, 0, 2), Q).transpose(1, 0, 2)

    def to_theta(self, W: np.ndarray, b: np.ndarray) -> np.ndarray:
        X = np.concatenate([(W @ self.M).transpose(0, 2, 1), (b @ self.M)[:, :, None]], axis=2)
        return (self._rotate(X, back=True) / self.scale).reshape(len(W), -1)

    def from_theta(self, theta: np.ndarray, act=slice(None)):
        """Weights (A x d x K, or x 1 for two classes) and intercepts of the problems ``act``."""
        A, d, m = len(theta), self.d, self.m
        X = self._rotate(theta.reshape(A, m, d + 1) * self.scale[act])
        V = np.ascontiguousarray(X[:, :, :d].transpose(1, 0, 2))  # m x A x d
        # one matrix product for every problem: the basis times (m x A*d)
        W = (self.M @ V.reshape(m, A * d)).reshape(-1, A, d).transpose(1, 2, 0)
        return W, X[:, :, d] @ self.M.T

    def forward(self, theta: np.ndarray, act: np.ndarray):
        """Objectives of the problems ``act`` at ``theta``, and what :meth:`gradient` needs: the
        loss's weighted logit gradient (n x A*K) and its column sums (A x K)."""
        W, b = self.from_theta(theta, act)
        R = self.R
        Z = R @ W.transpose(1, 0, 2).reshape(self.d, -1).astype(R.dtype)
        loss, G, gc = _loss_pass(Z, b, self.yi, self.weight, act, self.k == 2)
        # the basis has orthonormal columns: ||W||^2 is the penalty on the component weights
        return loss + 0.5 * self.reg[act] * (W * W).sum(axis=(1, 2)), (G, gc)

    def gradient(self, theta: np.ndarray, logit_grad, act: np.ndarray) -> np.ndarray:
        G, gc = logit_grad
        A, d, m, K = len(act), self.d, self.m, len(self.M)
        gX = np.empty((A, m, d + 1))  # the loss's gradient wrt each component's weights and intercept
        gX[:, :, :d] = ((self.R.T @ G).reshape(d * A, K).astype(np.float64) @ self.M).reshape(d, A, m).transpose(1, 2, 0)
        gX[:, :, d] = gc @ self.M
        # the penalty's, reg * (x - x_int e_d) for x = Q T, is reg * (T - x_int q) in rotated
        # coordinates (q: the intercept's row of Q): no rotation of x needed
        T = theta.reshape(A, m, d + 1) * self.scale[act]
        x_int = (T * self.q_int).sum(axis=2, keepdims=True)
        penalty = self.reg[act][:, None, None] * (T - x_int * self.q_int)
        return ((self._rotate(gX, back=True) + penalty) * self.scale[act]).reshape(A, -1)


def _take(logit_grad, keep, K):
    """The problems ``keep`` (a mask over A) of a forward pass's logit gradient."""
    G, gc = logit_grad
    return G.reshape(len(G), -1, K)[:, keep].reshape(len(G), -1), gc[keep]


ROUGH_GTOL = 1e-5  # where the float32 phase hands over to float64 (float32 rounding noise lies not far below)
NOISE32 = 1e-7  # the float32 objective's rounding, relative: its Armijo test allows that much (TREC: ~1e-8 measured)
STALL = 25  # the float32 phase drops a problem whose gradient has not reached a new low in this many steps


def solve(rot: Rotation, yi: np.ndarray, k: int, rows: np.ndarray, Cs, gtol: float = GTOL,
          start: tuple | None = None, max_iter: int = 5000, curvature: Curvature | None = None):
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
    probs = _Problems(rot, yi, k, rows, Cs, curvature or Curvature.at_priors(rot, yi, k))
    P = probs.weight.shape[1]
    theta = np.zeros((P, probs.size)) if start is None else probs.to_theta(*start)
    history = _History(P, probs.size)
    if rot.dtype == np.float32:
        _lbfgs(probs, theta, max(gtol, ROUGH_GTOL), max_iter, history, stall=STALL)
        probs.R = rot.rotated64  # float64 takes over, keeping each problem's correction pairs
    done = _lbfgs(probs, theta, gtol, max_iter, history)
    if not done:
        raise NotConverged(f"logistic regression did not converge in {max_iter} iterations; check the features "
                           f"for huge values (try post=zscore or post=l2)")
    W, b = probs.from_theta(theta)
    return W, b, history.taken


class _History:
    """Each problem's L-BFGS correction pairs, in a ring buffer indexed by its own step count
    ``taken``; ``used`` (how many pairs are valid) drops to 0 after a reset, ``rho`` 0 marks a
    skipped pair."""

    def __init__(self, P: int, size: int):
        self.S, self.Y = np.zeros((MEMORY, P, size)), np.zeros((MEMORY, P, size))
        self.rho = np.zeros((MEMORY, P))
        self.used, self.taken = np.zeros(P, dtype=np.int64), np.zeros(P, dtype=np.int64)

    def direction(self, g: np.ndarray, act: np.ndarray) -> np.ndarray:
        return -_two_loop(g, self.S, self.Y, self.rho, self.used, self.taken, act)

    def add(self, act: np.ndarray, step: np.ndarray, y: np.ndarray):
        slot = self.taken[act] % MEMORY
        self.S[slot, act], self.Y[slot, act] = step, y
        sy = (step * y).sum(axis=1)
        self.rho[slot, act] = np.where(sy > 1e-16, 1.0 / np.where(sy > 1e-16, sy, 1.0), 0.0)
        self.used[act] = np.minimum(self.used[act] + 1, MEMORY)
        self.taken[act] += 1


def _lbfgs(probs: _Problems, theta: np.ndarray, gtol: float, max_iter: int, history: _History,
           stall: int | None = None) -> bool:
    """Batched L-BFGS on ``theta`` (P x size, updated in place) until every problem's largest
    gradient entry is at most ``gtol`` (or, with ``stall``, has not reached a new low in that many
    steps), or has taken ``max_iter`` steps. Returns whether all converged."""
    P, size = theta.shape
    noise = NOISE32 if stall is not None else 1e-12  # the objective's rounding, relative
    everyone = np.arange(P)
    f, G = probs.forward(theta, everyone)
    g = probs.gradient(theta, G, everyone)
    gmax = np.abs(g).max(axis=1)
    low, since_low = gmax.copy(), np.zeros(P, dtype=int)
    act = everyone[(gmax > gtol) & (history.taken < max_iter)]
    while len(act):
        ga = g[act]
        direction = history.direction(ga, act)
        slope = (ga * direction).sum(axis=1)
        bad = slope >= 0  # not a descent direction (rounding): forget the history, go downhill
        if bad.any():
            direction[bad], slope[bad] = -ga[bad], -(ga[bad] * ga[bad]).sum(axis=1)
            history.used[act[bad]] = 0
        t = np.ones(len(act))
        f_new, G_new = probs.forward(theta[act] + direction, act)
        K = len(probs.M)
        for _ in range(60 if stall is None else 10):  # backtracking (Armijo), for the problems whose step failed
            fail = f_new > f[act] + 1e-4 * t * slope + noise * (1.0 + np.abs(f[act]))
            if not fail.any():
                break
            t[fail] /= 2
            f_new[fail], (G_sub, gc_sub) = probs.forward(theta[act[fail]] + t[fail, None] * direction[fail], act[fail])
            G_new[0].reshape(len(G_sub), -1, K)[:, fail] = G_sub.reshape(len(G_sub), -1, K)
            G_new[1][fail] = gc_sub
        if stall is not None:  # no decrease found: rounding noise, not the optimum; leave it to float64
            moved = f_new <= f[act] + 1e-4 * t * slope + noise * (1.0 + np.abs(f[act]))
            if not moved.any():
                break
            if not moved.all():
                act, ga, t, direction, f_new = act[moved], ga[moved], t[moved], direction[moved], f_new[moved]
                G_new = _take(G_new, moved, K)
        step = t[:, None] * direction
        theta[act] += step
        g_new = probs.gradient(theta[act], G_new, act)
        history.add(act, step, g_new - ga)
        f[act], g[act] = f_new, g_new
        gmax = np.abs(g_new).max(axis=1)
        better = gmax < low[act]
        low[act[better]] = gmax[better]
        since_low[act] = np.where(better, 0, since_low[act] + 1)
        keep = (gmax > gtol) & (history.taken[act] < max_iter)
        if stall is not None:
            keep &= since_low[act] < stall
        act = act[keep]
    return bool((np.abs(g).max(axis=1) <= gtol).all())


@njit(cache=True)
def _two_loop(g, S, Y, rho, used, taken, act):  # pragma: no cover - compiled
    """L-BFGS's inverse-Hessian product for the problems ``act`` (their gradients are the rows of
    ``g``) from each one's last ``used`` correction pairs, stored in the ring-buffer slots of
    ``S``, ``Y``, ``rho`` (MEMORY x P [x size]) by its step count ``taken``. The initial matrix is
    the identity scaled by the newest pair: the preconditioned Hessian is near the identity."""
    memory = S.shape[0]
    out = g.copy()
    alpha = np.empty(memory)
    for r in range(len(act)):
        p, q = act[r], out[r]
        u = min(used[p], memory)
        for j in range(u):  # newest to oldest
            slot = (taken[p] - 1 - j) % memory
            a = rho[slot, p] * np.dot(S[slot, p], q)
            alpha[j] = a
            q -= a * Y[slot, p]
        if u > 0:
            last = (taken[p] - 1) % memory
            yy = np.dot(Y[last, p], Y[last, p])
            if yy > 0.0 and rho[last, p] > 0.0:
                q *= 1.0 / (yy * rho[last, p])
        for j in range(u - 1, -1, -1):  # oldest to newest
            slot = (taken[p] - 1 - j) % memory
            beta = rho[slot, p] * np.dot(Y[slot, p], q)
            q += (alpha[j] - beta) * S[slot, p]
    return out


def predict_rotated(W: np.ndarray, b: np.ndarray, R: np.ndarray) -> np.ndarray:
    """Class indices of rotated rows ``R`` under one problem's ``W`` (d x 1 or d x K) and ``b``."""
    scores = R @ W + b
    return (scores[:, 0] > 0).astype(int) if W.shape[1] == 1 else np.argmax(scores, axis=1)
