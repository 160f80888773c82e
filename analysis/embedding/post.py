"""Post-processors in scikit-learn's shape: ``fit(X_reference)`` then ``transform(X)``.

Each is fitted on a reference matrix named by the recipe (the task's own sentences, Wikitext, or
any stored corpus) and applied to the task's sentences. Each is a registered step (analysis/recipes/steps.py):
a new one is one class here with ``@register``, its declarations, ``fit`` and ``transform``.

What ``fit`` learns is held in attributes whose names end in ``_`` (scikit-learn's convention): a
fitted recipe (analysis/fitted) saves exactly those and restores them into a fresh step. ``AFFINE``
says the transform is ``x @ A + b`` for fitted A and b, which a static export folds into its token
table (analysis/fitted/static.py).
"""
from __future__ import annotations

import numpy as np

from hsstore.errors import HsError

from ..recipes.steps import Param, Step, StepType, register
from ..vectors import unit_rows


class PostStep(StepType):
    AXIS, REF, LINEAR = "post", "task", False
    AFFINE = False  # transform(x) = x @ A + b


@register
class ZScore(PostStep):
    """Per-dimension standardisation."""
    NAME, AFFINE = "zscore", True
    DESCRIPTION = "per-dimension standardisation with REF's mean and deviation"

    def fit(self, X):
        self.mean_ = X.mean(axis=0)
        self.scale_ = X.std(axis=0)
        self.scale_[self.scale_ == 0] = 1.0
        return self

    def transform(self, X):
        return (X - self.mean_) / self.scale_


@register
class QuantileUniform(PostStep):
    """Each dimension mapped through the reference's empirical CDF onto [0, 1] (quantile-to-uniform)."""
    NAME = "quantile"
    PARAMS = (Param("n", int, 1000, low=2, help="quantiles"),)
    DESCRIPTION = "each dimension through REF's empirical CDF onto [0, 1] (quantile-uniform)"

    def __init__(self, n: int = 1000):
        self.n_quantiles = n

    def fit(self, X):
        q = np.linspace(0, 1, min(self.n_quantiles, X.shape[0]))
        self.quantiles_ = np.quantile(X, q, axis=0)  # (n_q, dim)
        self.references_ = q
        return self

    def transform(self, X):
        from .kernels import quantile_transform  # numba loads with the first transform, not with `hs --help`

        return quantile_transform(np.ascontiguousarray(X, dtype=np.float64),
                                  np.ascontiguousarray(self.quantiles_, dtype=np.float64), self.references_)


@register
class Whiten(PostStep):
    """PCA whitening (rotate to principal axes, scale to unit variance) or ZCA (rotate back).
    ``k`` keeps the top k directions (PCA only)."""
    NAME, AFFINE = "whiten", True
    PARAMS = (Param("mode", str, "pca", choices=("pca", "zca")),
              Param("k", int, None, low=1, help="top directions kept (pca only)"))
    DESCRIPTION = "whitening with REF's mean and covariance (pca: to principal axes; zca: rotated back)"

    def __init__(self, mode: str = "pca", k: int | None = None, eps: float = 1e-8):
        if mode not in ("pca", "zca"):
            raise HsError(f"whiten mode must be pca or zca, not {mode!r}")
        if k is not None and mode == "zca":
            raise HsError("whiten:k=N keeps N principal directions and applies to mode=pca only")
        self.mode, self.k, self.eps = mode, k, eps

    def fit(self, X):
        X = X.astype(np.float64)
        self.mean_ = X.mean(axis=0)
        cov = np.cov(X - self.mean_, rowvar=False)
        vals, vecs = np.linalg.eigh(cov)
        order = np.argsort(vals)[::-1]
        vals, vecs = vals[order], vecs[:, order]
        if self.k:
            vals, vecs = vals[:self.k], vecs[:, :self.k]
        self.warning_ = _degenerate(len(vals), len(X))
        W = vecs / np.sqrt(vals + self.eps)
        self.W_ = (W @ vecs.T if self.mode == "zca" else W).astype(np.float32)
        return self

    def transform(self, X):
        return (X - self.mean_.astype(np.float32)) @ self.W_


def _degenerate(kept: int, rows: int) -> str | None:
    """Why a whitening fit is degenerate, or None: with ``rows`` reference rows the centred covariance
    has rank at most rows - 1, so of ``kept`` > rows - 1 directions the rest have no variance there and
    whitening scales rounding noise in them by up to 1/sqrt(eps). (A model's own flat directions, such
    as a LayerNorm's, are flat in the task's vectors too; they are not flagged.)"""
    flat = kept - (rows - 1)
    if flat <= 0:
        return None
    good = max(1, rows - 1)
    return (f"the whitening is degenerate: it keeps {kept} directions but its reference has {rows} rows, so at least "
            f"{flat} directions have no variance there and are scaled up from rounding noise; fit it on a corpus with "
            f"more sentences than dimensions (e.g. @wikitext2) or keep at most {good} (whiten:k={good})")


@register
class AllButTheTop(PostStep):
    """Mu & Viswanath (2018): subtract the mean, then remove the top ``d`` principal directions."""
    NAME, AFFINE = "abtt", True
    PARAMS = (Param("d", int, 1, low=1, help="directions removed"),)
    DESCRIPTION = "all-but-the-top: subtract REF's mean and its top d principal directions"

    def __init__(self, d: int = 1):
        self.d = d

    def fit(self, X):
        X = X.astype(np.float64)
        self.mean_ = X.mean(axis=0)
        _, _, vt = np.linalg.svd(X - self.mean_, full_matrices=False)
        self.U_ = vt[:self.d].T.astype(np.float32)  # (dim, d)
        return self

    def transform(self, X):
        Xc = X - self.mean_.astype(np.float32)
        return Xc - (Xc @ self.U_) @ self.U_.T


@register
class PCA(PostStep):
    """Projection onto the top ``k`` principal directions (no scaling)."""
    NAME, AFFINE = "pca", True
    PARAMS = (Param("k", int, 128, low=1, help="directions kept"),)
    DESCRIPTION = "projection onto REF's top k principal directions (no scaling)"

    def __init__(self, k: int):
        self.k = k

    def fit(self, X):
        X = X.astype(np.float64)
        self.mean_ = X.mean(axis=0)
        _, _, vt = np.linalg.svd(X - self.mean_, full_matrices=False)
        self.V_ = vt[:self.k].T.astype(np.float32)
        return self

    def transform(self, X):
        return (X - self.mean_.astype(np.float32)) @ self.V_


@register
class L2(PostStep):
    NAME, REF = "l2", None
    DESCRIPTION = "each vector scaled to unit length"

    def fit(self, X):
        return self

    def transform(self, X):
        return unit_rows(X)


def make(step: Step):
    """A fresh, unfitted post-processor for a recipe step."""
    return step.build()


def apply(chain: list, X: np.ndarray) -> np.ndarray:
    """A fitted chain applied in order, float32 out: the one place hs eval and the encoders transform."""
    for step in chain:
        X = step.transform(X)
    return np.asarray(X, dtype=np.float32)


def fitted_arrays(fitted) -> dict[str, np.ndarray]:
    """What a fitted post-processor learned: its attributes ending in ``_``, as arrays (not its
    ``warning_``, a message about the fit, which hs eval reports and a saved recipe does not need)."""
    return {k: np.asarray(v) for k, v in vars(fitted).items() if k.endswith("_") and not isinstance(v, (str, type(None)))}


def restore(step: Step, arrays: dict[str, np.ndarray]):
    """A post-processor of ``step`` in the state ``fitted_arrays`` saved (no refitting)."""
    out = make(step)
    for key, value in arrays.items():
        if not key.endswith("_"):
            raise HsError(f"post-processor {step}: {key!r} is not a fitted attribute (they end in _)")
        setattr(out, key, np.asarray(value))
    return out
