"""One evaluator class per task family, following SentEval's and MTEB's protocols.

Each takes the task and its corpus at construction (mapping texts to sentence ids once) and is
called with the corpus's sentence matrix, returning a dict of scores with ``main_score``.
"""
from __future__ import annotations

import warnings
from collections import defaultdict

import numpy as np

from hsstore.errors import HsError
from hsstore.store import Corpus
from hsstore.tasks import Task

from .post import unit_rows


def rankdata(x: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties sharing their average rank (what Spearman's rho needs).

    Written here so that scoring STS needs no scipy.stats, whose import costs half a second."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])  # first position of each run of ties
    ends = np.r_[starts[1:], len(xs)]
    group = np.cumsum(np.r_[True, xs[1:] != xs[:-1]]) - 1
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = (starts[group] + ends[group] + 1) / 2.0
    return ranks


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.corrcoef(x, y)[0, 1])


def _centered(ranks: np.ndarray) -> np.ndarray:
    return ranks - ranks.mean()


def _spearman(x: np.ndarray, y_ranks_centered: np.ndarray) -> float:
    """Spearman's rho (Pearson of average ranks, as scipy), with the gold side ranked once."""
    rx = _centered(rankdata(x))
    return float(rx @ y_ranks_centered / np.sqrt((rx @ rx) * (y_ranks_centered @ y_ranks_centered)))


class STS:
    """Spearman x100 of cosine similarity against gold scores.

    ``aggregate``: ``all`` (subsets concatenated: SimCSE, MTEB), ``mean`` or ``wmean`` (weighted by
    pair counts: SentEval) of per-subset scores. Per-subset scores are always reported.
    """

    def __init__(self, task: Task, corpus: Corpus, aggregate: str = "all"):
        recs = task.records()
        self.a = corpus.ids_of(r["text"] for r in recs)
        self.b = corpus.ids_of(r["text2"] for r in recs)
        self.gold = np.array([r["score"] for r in recs])
        self.subsets = np.array([r.get("subset", "all") for r in recs])
        self.aggregate = aggregate
        self.masks = {str(n): self.subsets == n for n in np.unique(self.subsets)}
        self.gold_ranks = {n: _centered(rankdata(self.gold[m])) for n, m in self.masks.items()}
        self.gold_ranks_all = _centered(rankdata(self.gold))

    def cosines(self, X: np.ndarray) -> np.ndarray:
        U = unit_rows(X)
        return np.einsum("ij,ij->i", U[self.a], U[self.b])

    def __call__(self, X: np.ndarray) -> dict:
        cos = self.cosines(X)
        scores = {"spearman_all": 100 * _spearman(cos, self.gold_ranks_all),
                  "pearson_all": 100 * _pearson(cos, self.gold)}
        per = {n: 100 * _spearman(cos[m], self.gold_ranks[n]) for n, m in self.masks.items()}
        counts = [int(m.sum()) for m in self.masks.values()]
        scores["subsets"] = per
        scores["spearman_mean"] = float(np.mean(list(per.values())))
        scores["spearman_wmean"] = float(np.average(list(per.values()), weights=counts))
        scores["main_score"] = scores[f"spearman_{self.aggregate}"]
        return scores


def hungarian_accuracy(labels: np.ndarray, clusters: np.ndarray) -> float:
    """Accuracy under the best one-to-one matching of clusters to labels."""
    from scipy.optimize import linear_sum_assignment

    _, y = np.unique(labels, return_inverse=True)
    _, c = np.unique(clusters, return_inverse=True)
    table = np.zeros((c.max() + 1, y.max() + 1), dtype=np.int64)
    np.add.at(table, (c, y), 1)
    rows, cols = linear_sum_assignment(-table)
    return float(table[rows, cols].sum() / len(labels))


class Clustering:
    """k-means with k = number of labels, averaged over seeds (and over sets where a task has several).

    ``preset``: ``kmeans`` (full k-means, ``seeds`` runs) or ``mteb`` (MiniBatchKMeans, batch 500, as MTEB).
    """

    def __init__(self, task: Task, corpus: Corpus, preset: str = "kmeans", seeds: int = 5):
        recs = task.records()
        groups = defaultdict(list)
        for r in recs:
            groups[r.get("subset", "all")].append(r)
        self.sets = [(corpus.ids_of(r["text"] for r in rs), np.array([str(r["label"]) for r in rs]))
                     for _, rs in sorted(groups.items())]
        self.preset, self.seeds = preset, seeds

    def __call__(self, X: np.ndarray) -> dict:
        from sklearn.cluster import KMeans, MiniBatchKMeans
        from sklearn.metrics import normalized_mutual_info_score, v_measure_score

        runs = defaultdict(list)
        for ids, labels in self.sets:
            k = len(np.unique(labels))
            for seed in range(self.seeds):
                if self.preset == "mteb":
                    model = MiniBatchKMeans(n_clusters=k, batch_size=500, n_init="auto", random_state=seed)
                else:
                    model = KMeans(n_clusters=k, n_init=1, random_state=seed)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    pred = model.fit_predict(X[ids])
                runs["v_measure"].append(100 * v_measure_score(labels, pred))
                runs["nmi"].append(100 * normalized_mutual_info_score(labels, pred))
                runs["accuracy"].append(100 * hungarian_accuracy(labels, pred))
        scores = {k: float(np.mean(v)) for k, v in runs.items()}
        scores.update({f"{k}_std": float(np.std(v)) for k, v in runs.items()})
        scores["main_score"] = scores["v_measure"]
        return scores


C_GRID = [2.0 ** t for t in range(-2, 5)]


def _logreg(C: float = 1.0, seed: int = 0, max_iter: int = 1000):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, max_iter=max_iter, random_state=seed)


def _fit_score(Xtr, ytr, Xte, yte, C, seed=0) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(_logreg(C, seed).fit(Xtr, ytr).score(Xte, yte))


def _select_C(X, y, folds: int, seed: int) -> float:
    """Inner cross-validation over C_GRID (SentEval's L2 selection)."""
    from sklearn.model_selection import StratifiedKFold

    skf = StratifiedKFold(folds, shuffle=True, random_state=seed)
    means = [np.mean([_fit_score(X[tr], y[tr], X[va], y[va], C) for tr, va in skf.split(X, y)]) for C in C_GRID]
    return C_GRID[int(np.argmax(means))]


class Classification:
    """Logistic regression on sentence vectors (pairs: SentEval's [u, v, |u-v|, u*v]).

    ``preset``: ``senteval``: 10-fold CV with inner 5-fold selection of C for the one-split tasks
    (MR, CR, SUBJ, MPQA); elsewhere C chosen on the dev split (or by inner 5-fold CV on train),
    trained on train, scored on test. ``mteb``: 10 experiments, 8 training samples per label
    drawn from train, default logistic regression, mean test accuracy.
    """

    def __init__(self, task: Task, corpus: Corpus, preset: str = "senteval"):
        recs = task.records()
        self.pair = task.family == "pair-classification"
        self.ids = corpus.ids_of(r["text"] for r in recs)
        self.ids2 = corpus.ids_of(r["text2"] for r in recs) if self.pair else None
        self.labels = np.array([str(r["label"]) for r in recs])
        self.splits = np.array([r["split"] for r in recs])
        self.protocol, self.preset = task.protocol, preset
        if preset == "mteb" and task.protocol == "cv":
            raise HsError(f"task {task.id} has no train/test split; use --classification senteval")

    def features(self, X: np.ndarray) -> np.ndarray:
        u = X[self.ids]
        if not self.pair:
            return u
        v = X[self.ids2]
        return np.hstack([u, v, np.abs(u - v), u * v])

    def __call__(self, X: np.ndarray) -> dict:
        F, y = self.features(X), self.labels
        if self.preset == "mteb":
            return self._mteb(F, y)
        if self.protocol == "cv":
            return self._cv(F, y)
        return self._split(F, y)

    def _cv(self, F, y, folds: int = 10, seed: int = 1111) -> dict:
        from sklearn.model_selection import StratifiedKFold

        accs = []
        for tr, te in StratifiedKFold(folds, shuffle=True, random_state=seed).split(F, y):
            C = _select_C(F[tr], y[tr], 5, seed)
            accs.append(_fit_score(F[tr], y[tr], F[te], y[te], C))
        return {"accuracy": 100 * float(np.mean(accs)), "accuracy_std": 100 * float(np.std(accs)),
                "main_score": 100 * float(np.mean(accs))}

    def _split(self, F, y) -> dict:
        tr, te, dev = self.splits == "train", self.splits == "test", self.splits == "dev"
        if dev.any():
            C = C_GRID[int(np.argmax([_fit_score(F[tr], y[tr], F[dev], y[dev], C) for C in C_GRID]))]
        else:
            C = _select_C(F[tr], y[tr], 5, 1111)
        acc = 100 * _fit_score(F[tr], y[tr], F[te], y[te], C)
        return {"accuracy": acc, "C": C, "main_score": acc}

    def _mteb(self, F, y, experiments: int = 10, per_label: int = 8) -> dict:
        from sklearn.metrics import f1_score

        tr = np.flatnonzero(self.splits == "train")
        te = self.splits == "test"
        accs, f1s = [], []
        for seed in range(experiments):
            rng = np.random.default_rng(42 + seed)
            order = rng.permutation(tr)
            counts: dict = defaultdict(int)
            pick = []
            for i in order:
                if counts[y[i]] < per_label:
                    counts[y[i]] += 1
                    pick.append(i)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                clf = _logreg(1.0, seed, max_iter=100).fit(F[pick], y[pick])
            pred = clf.predict(F[te])
            accs.append(100 * float(np.mean(pred == y[te])))
            f1s.append(100 * float(f1_score(y[te], pred, average="macro")))
        return {"accuracy": float(np.mean(accs)), "accuracy_std": float(np.std(accs)),
                "f1": float(np.mean(f1s)), "main_score": float(np.mean(accs))}


def evaluator_for(task: Task, corpus: Corpus, options: dict):
    if task.family == "sts":
        return STS(task, corpus, options.get("sts_aggregate", "all"))
    if task.family == "clustering":
        return Clustering(task, corpus, options.get("clustering", "kmeans"), options.get("seeds", 5))
    if task.family in ("classification", "pair-classification"):
        return Classification(task, corpus, options.get("classification", "senteval"))
    raise HsError(f"task {task.id} is a {task.family}, not an evaluation task; use it as a reference (@{task.id})")
