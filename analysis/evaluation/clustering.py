"""Clustering evaluation: k-means with k = number of labels, scored by V-measure, NMI and accuracy."""
from __future__ import annotations

import warnings
from collections import defaultdict

import numpy as np

from hsstore.errors import HsError
from hsstore.store import Corpus
from hsstore.tasks import MtebClustering, Task

from .family import Evaluator

PRESETS = ("kmeans", "mteb")


def contingency(labels: np.ndarray, clusters: np.ndarray) -> np.ndarray:
    """Counts of (cluster, label) pairs; every score below is a function of this table."""
    _, y = np.unique(labels, return_inverse=True)
    _, c = np.unique(clusters, return_inverse=True)
    table = np.zeros((c.max() + 1, y.max() + 1), dtype=np.int64)
    np.add.at(table, (c, y), 1)
    return table


def hungarian_accuracy(labels: np.ndarray, clusters: np.ndarray) -> float:
    """Accuracy under the best one-to-one matching of clusters to labels."""
    return _matched(contingency(labels, clusters))


def _matched(table: np.ndarray) -> float:
    from scipy.optimize import linear_sum_assignment  # scipy: not at `hs --help`, which reads this family

    rows, cols = linear_sum_assignment(-table)
    return float(table[rows, cols].sum() / table.sum())


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def scores_from_table(table: np.ndarray) -> dict:
    """V-measure and NMI (arithmetic mean normalisation, as scikit-learn's defaults) and accuracy, x100."""
    n = table.sum()
    nz = table > 0
    pij = table[nz] / n
    outer = np.outer(table.sum(axis=1), table.sum(axis=0))[nz] / (n * n)
    mi = float((pij * np.log(pij / outer)).sum())
    h_c, h_k = _entropy(table.sum(axis=0)), _entropy(table.sum(axis=1))  # labels, clusters
    homogeneity = 1.0 if h_c == 0 else mi / h_c
    completeness = 1.0 if h_k == 0 else mi / h_k
    hc = homogeneity + completeness
    v = 0.0 if hc == 0 else 2 * homogeneity * completeness / hc
    nmi = 1.0 if h_c == h_k == 0 else (mi / ((h_c + h_k) / 2) if h_c + h_k > 0 else 0.0)
    return {"v_measure": 100 * v, "nmi": 100 * nmi, "accuracy": 100 * _matched(table)}


class Clustering(Evaluator):
    """k-means with k = number of labels, averaged over seeds (and over sets where a task has several).

    ``preset``: ``kmeans`` (full k-means, ``seeds`` runs, seeds 0..seeds-1) or ``mteb`` (MTEB's legacy
    protocol with the task's declared settings: one MiniBatchKMeans run per set).
    """

    def __init__(self, task: Task, corpus: Corpus, preset: str = "kmeans", seeds: int = 5):
        if preset not in PRESETS:
            raise HsError(f"unknown clustering preset {preset!r}; use one of {', '.join(PRESETS)}")
        if seeds < 1:
            raise HsError(f"--seeds must be at least 1, not {seeds}")
        groups = defaultdict(list)
        for r in task.records():
            groups[r.get("subset", "all")].append(r)
        self.sets = [(corpus.ids_of(r["text"] for r in rs), np.array([str(r["label"]) for r in rs]))
                     for _, rs in sorted(groups.items())]
        self.preset, self.seeds = preset, seeds
        self.mteb = task.mteb if isinstance(task.mteb, MtebClustering) else MtebClustering()

    @property
    def cost(self) -> float:
        """Relative cost, for scheduling: k-means passes cost points x clusters per run."""
        per_set = 1 if self.preset == "mteb" else self.seeds
        return float(sum(len(ids) * len(np.unique(labels)) for ids, labels in self.sets) * per_set)

    def runs(self) -> list[tuple[int, int]]:
        """(set index, random state) of every k-means run."""
        states = [self.mteb.seed] if self.preset == "mteb" else range(self.seeds)
        return [(i, s) for i in range(len(self.sets)) for s in states]

    def model(self, k: int, state: int):
        from sklearn.cluster import KMeans, MiniBatchKMeans  # scikit-learn: not at `hs --help` either

        if self.preset == "mteb":
            return MiniBatchKMeans(n_clusters=k, batch_size=self.mteb.batch_size, n_init="auto", random_state=state)
        return KMeans(n_clusters=k, n_init=1, random_state=state)

    def __call__(self, X: np.ndarray) -> dict:
        runs = defaultdict(list)
        points = [np.ascontiguousarray(X[ids]) for ids, _ in self.sets]
        for i, state in self.runs():
            labels = self.sets[i][1]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pred = self.model(len(np.unique(labels)), state).fit_predict(points[i])
            for name, value in scores_from_table(contingency(labels, pred)).items():
                runs[name].append(value)
        scores = {k: float(np.mean(v)) for k, v in runs.items()}
        scores.update({f"{k}_std": float(np.std(v)) for k, v in runs.items()})
        scores["main_score"] = scores["v_measure"]
        return scores
