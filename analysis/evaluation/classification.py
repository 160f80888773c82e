"""Classification on sentence vectors under three protocols (pairs use SentEval's [u, v, |u-v|, u*v]).

* ``senteval``: L2 logistic regression, C from SentEval's grid. The one-split tasks (MR, CR, SUBJ,
  MPQA) use 10-fold CV with C chosen by an inner 5-fold CV; the others choose C on the dev split
  (or by inner 5-fold CV on train where there is none), train on train and score test. The fits are
  scikit-learn's objective solved to its optimum by :mod:`analysis.logreg`: every outer fold's
  inner folds at every C in one batched L-BFGS run from a pilot solution (:func:`logreg.pilot`),
  the final fits in another.
* ``probe``: the same folds and splits, but ridge regression on one-hot labels with the
  regularisation chosen in closed form (:mod:`analysis.probe`) from SentEval's C grid mapped to
  ridge penalties (PROBE_LAMBDAS): a fast proxy for grids.
* ``mteb``: MTEB's few-shot protocol with the task's own settings from the task registry.
"""
from __future__ import annotations

import warnings
from collections import defaultdict

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold

from hsstore.errors import HsError
from hsstore.store import Corpus
from hsstore.tasks import MtebClassification, Task

from . import logreg, probe
from .families.classification import PROTOCOL
from .family import Evaluator

PROTOCOLS = PROTOCOL.choices
C_GRID = [2.0 ** t for t in range(-2, 5)]  # SentEval's L2 grid
SEED = 1111  # SentEval's fold seed
OUTER_FOLDS, INNER_FOLDS = 10, 5
# The probe's ridge penalties: SentEval's C grid mapped through the logistic loss's largest
# curvature (1/4): ridge on X^T X + lam I matches logistic C/4 X^T X + I at lam = 4/C. Absolute,
# like SentEval's C, so the probe shares SentEval's dependence on the features' scale and ranks
# recipes like it (a scale-free grid ranked z-scored pair features far above SentEval's order).
PROBE_LAMBDAS = tuple(4.0 / C for C in C_GRID)


def _probe_alphas(fit) -> list[float]:
    """PROBE_LAMBDAS in the units of :meth:`probe.RidgeFit.lambdas`."""
    return [lam / fit.scale for lam in PROBE_LAMBDAS]


def _stratified_folds(y: np.ndarray, folds: int, seed: int = SEED):
    return list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))


def _select_C(rot: logreg.Rotation, yi: np.ndarray, k: int, trains: list, folds: int = INNER_FOLDS,
              seed: int = SEED):
    """SentEval's selection for each training set (row indices of ``rot``): the C of C_GRID with the
    best mean accuracy over the set's inner stratified folds (the first such C on ties), and the fit
    on the whole set at that C. Every (set, inner fold, C) problem is solved in one batched run from
    a pilot (its curvature and solution), the final fits in a second with the same curvature, each
    starting from the mean of its set's inner solutions at its C.
    Returns (the C of each set, weights, intercepts) in ``rot``'s coordinates."""
    n, K = len(yi), len(C_GRID)
    fits, checks = [], []
    for tr in trains:
        for a, v in _stratified_folds(yi[tr], folds, seed):
            fits.append(tr[a])
            checks.append(tr[v])
    rows = np.zeros((n, len(fits) * K))
    for j, idx in enumerate(fits):
        rows[idx, j * K:(j + 1) * K] = 1.0
    curvature, start = logreg.pilot(rot, yi, k, rows, C_GRID * len(fits))
    W, b, _ = logreg.solve(rot, yi, k, rows, C_GRID * len(fits), start=start, curvature=curvature)
    accs = []
    for j, v in enumerate(checks):
        Rv = rot.rotated64[v]  # the fold's held-out rows, gathered once for its 7 C values
        accs.append([np.mean(logreg.predict_rotated(W[j * K + c], b[j * K + c], Rv) == yi[v]) for c in range(K)])
    accs = np.array(accs).reshape(len(trains), folds, K)
    best = np.argmax(accs.mean(axis=1), axis=1)  # argmax: the first best C
    pick = [(t * folds + np.arange(folds)) * K + c for t, c in enumerate(best)]
    start = (np.stack([W[p].mean(axis=0) for p in pick]), np.stack([b[p].mean(axis=0) for p in pick]))
    final = np.zeros((n, len(trains)))
    for t, tr in enumerate(trains):
        final[tr, t] = 1.0
    Cs = [C_GRID[c] for c in best]
    Wf, bf, _ = logreg.solve(rot, yi, k, final, Cs, start=start, curvature=curvature)
    return Cs, Wf, bf


class Classification(Evaluator):
    """One classification task's evaluator; ``protocol`` is one of PROTOCOLS."""

    PAIRS = False  # TrainedPairs: each example is a pair of texts, classified on [u, v, |u-v|, u*v]

    def __init__(self, task: Task, corpus: Corpus, protocol: str = "senteval"):
        if protocol not in PROTOCOLS:
            raise HsError(f"unknown classification protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")
        recs = task.records()
        self.task, self.protocol = task, protocol
        self.pair = self.PAIRS
        self.ids = corpus.ids_of(r["text"] for r in recs)
        self.ids2 = corpus.ids_of(r["text2"] for r in recs) if self.pair else None
        self.labels = np.array([str(r["label"]) for r in recs])
        self.splits = np.array([r["split"] for r in recs])
        self.mteb = task.mteb if isinstance(task.mteb, MtebClassification) else MtebClassification()
        if protocol == "mteb" and task.protocol == "cv":
            raise HsError(f"task {task.id} has no train/test split; use --classification senteval or probe")
        need = (self.mteb.train_split, self.mteb.eval_split) if protocol == "mteb" else \
            (() if task.protocol == "cv" else ("train", "test"))
        missing = [s for s in need if not (self.splits == s).any()]
        if missing:
            raise HsError(f"task {task.id} has no {' or '.join(missing)} split, which --classification {protocol} "
                          f"needs; use another protocol or task")

    def features(self, X: np.ndarray) -> np.ndarray:
        u = X[self.ids]
        if not self.pair:
            return u
        v = X[self.ids2]
        return np.hstack([u, v, np.abs(u - v), u * v])

    def __call__(self, X: np.ndarray) -> dict:
        F, y = self.features(X), self.labels
        if self.protocol == "mteb":
            return mteb_fewshot(F, y, self.splits, self.mteb)
        cv = self.task.protocol == "cv"
        if self.protocol == "probe":
            return probe_cv(F, y) if cv else probe_split(F, y, self.splits)
        return senteval_cv(F, y) if cv else senteval_split(F, y, self.splits)


class TrainedPairs(Classification):
    """Classification of sentence pairs (MRPC, SICK-E) on SentEval's pair features [u, v, |u-v|, u*v]."""

    PAIRS = True


def _cv_scores(accs: list[float]) -> dict:
    return {"accuracy": 100 * float(np.mean(accs)), "accuracy_std": 100 * float(np.std(accs)),
            "main_score": 100 * float(np.mean(accs))}


def senteval_cv(F: np.ndarray, y: np.ndarray) -> dict:
    classes, yi = np.unique(y, return_inverse=True)
    outer = _stratified_folds(y, OUTER_FOLDS)
    # one rotation of all rows serves every outer fold: it only changes the solver's path
    rot = logreg.Rotation(F)
    _, W, b = _select_C(rot, yi, len(classes), [tr for tr, _ in outer])
    accs = [float(np.mean(logreg.predict_rotated(W[t], b[t], rot.rotated64[te]) == yi[te]))
            for t, (_, te) in enumerate(outer)]
    return _cv_scores(accs)


def senteval_split(F: np.ndarray, y: np.ndarray, splits: np.ndarray) -> dict:
    tr, te, dev = splits == "train", splits == "test", splits == "dev"
    classes, yi = np.unique(y[tr], return_inverse=True)
    rot = logreg.Rotation(F[tr])
    if dev.any():  # C chosen on the dev split
        rows = np.ones((len(yi), len(C_GRID)))
        curvature, start = logreg.pilot(rot, yi, len(classes), rows, C_GRID)
        W, b, _ = logreg.solve(rot, yi, len(classes), rows, C_GRID, start=start, curvature=curvature)
        Rdev = rot.apply(F[dev])
        best = int(np.argmax([np.mean(classes[logreg.predict_rotated(W[c], b[c], Rdev)] == y[dev])
                              for c in range(len(C_GRID))]))
        C, w, c0 = C_GRID[best], W[best], b[best]
    else:
        (C,), W, b = _select_C(rot, yi, len(classes), [np.arange(len(yi))])
        w, c0 = W[0], b[0]
    acc = 100 * float(np.mean(classes[logreg.predict_rotated(w, c0, rot.apply(F[te]))] == y[te]))
    return {"accuracy": acc, "C": C, "main_score": acc}


def probe_cv(F: np.ndarray, y: np.ndarray) -> dict:
    classes, yi = np.unique(y, return_inverse=True)
    accs = []
    for tr, te in _stratified_folds(y, OUTER_FOLDS):
        fit = probe.RidgeFit(F[tr], yi[tr], len(classes))
        accs.append(probe.accuracy(fit, probe.choose_by_loo(fit, yi[tr], _probe_alphas(fit)), F[te], yi[te]))
    return _cv_scores(accs)


def probe_split(F: np.ndarray, y: np.ndarray, splits: np.ndarray) -> dict:
    classes, yi = np.unique(y, return_inverse=True)
    tr, te, dev = splits == "train", splits == "test", splits == "dev"
    fit = probe.RidgeFit(F[tr], yi[tr], len(classes))
    alphas = _probe_alphas(fit)
    lam = probe.choose_on(fit, F[dev], yi[dev], alphas) if dev.any() else probe.choose_by_loo(fit, yi[tr], alphas)
    acc = 100 * probe.accuracy(fit, lam, F[te], yi[te])
    return {"accuracy": acc, "lambda": lam, "main_score": acc}


def mteb_undersamples(y_train: np.ndarray, cfg: MtebClassification) -> list[list[int]]:
    """The training rows of each experiment, drawn as MTEB's ``_undersample_data`` draws them."""
    idxs = list(range(len(y_train)))
    picks = []
    for _ in range(cfg.n_experiments):
        np.random.RandomState(cfg.seed).shuffle(idxs)  # shuffles the previous experiment's order again
        counts: dict = defaultdict(int)
        pick = []
        for i in idxs:
            if counts[y_train[i]] < cfg.samples_per_label:
                counts[y_train[i]] += 1
                pick.append(i)
        picks.append(pick)
    return picks


def mteb_fewshot(F: np.ndarray, y: np.ndarray, splits: np.ndarray, cfg: MtebClassification) -> dict:
    tr = np.flatnonzero(splits == cfg.train_split)
    te = splits == cfg.eval_split
    accs, f1s = [], []
    for pick in mteb_undersamples(y[tr], cfg):
        rows = tr[pick]
        with warnings.catch_warnings():  # MTEB's max_iter=100 often stops short; that is its protocol
            warnings.simplefilter("ignore")
            clf = LogisticRegression(max_iter=cfg.max_iter, random_state=cfg.seed).fit(F[rows], y[rows])
        pred = clf.predict(F[te])
        accs.append(100 * float(np.mean(pred == y[te])))
        f1s.append(100 * float(f1_score(y[te], pred, average="macro")))
    return {"accuracy": float(np.mean(accs)), "accuracy_std": float(np.std(accs)),
            "f1": float(np.mean(f1s)), "main_score": float(np.mean(accs))}
