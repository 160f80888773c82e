"""Pair classification as MTEB defines it: is a pair of texts a match (a paraphrase, a duplicate), told
by the similarity of its two vectors alone, with no training.

For each similarity (cosine, dot product, and negated Euclidean and Manhattan distances) the pairs
are ranked; the scores are the average precision of that ranking and the accuracy and F1 of the
best threshold on it (a threshold never splits tied similarities), and each metric's best over the
similarities is ``max_*``. The main score is ``max_ap``, as in MTEB's English pair-classification
tasks; hs's ``similarity_*`` are its cosine figures (cosine is hs's similarity). Trained pair
classification (SentEval's MRPC and SICK-E) is the family ``pair-trained``.
"""
from __future__ import annotations

import numpy as np

from hsstore.store import Corpus
from hsstore.tasks import Task

from ...vectors import unit_rows
from ..family import Evaluator, Family

METRICS = ("accuracy", "f1", "precision", "recall", "ap")
SIMILARITIES = ("cosine", "dot", "euclidean", "manhattan")


def best_accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """The accuracy of the best threshold on ``scores`` (higher = more alike); a threshold lies between
    two different scores, after at least one pair and before the last."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    positive = np.cumsum(y)  # matches among the pairs at or above each position
    negative_below = (y == 0).sum() - (np.arange(1, len(y) + 1) - positive)
    valid = s[:-1] != s[1:]
    accs = (positive[:-1] + negative_below[:-1]) / len(y)
    return float(accs[valid].max()) if valid.any() else 0.0


def best_f1(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float, float]:
    """(F1, precision, recall) of the threshold with the best F1, as ``best_accuracy`` places them."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    found = np.cumsum(y)[:-1]
    taken = np.arange(1, len(y))
    valid = (s[:-1] != s[1:]) & (found > 0)
    if not valid.any():
        return 0.0, 0.0, 0.0
    precision, recall = found / taken, found / max(1, y.sum())
    f1 = np.where(valid, 2 * precision * recall / np.maximum(precision + recall, 1e-300), -1.0)
    best = int(np.argmax(f1))
    return float(f1[best]), float(precision[best]), float(recall[best])


class PairSimilarity(Evaluator):
    """Average precision and best-threshold accuracy and F1 of the pairs' similarities (x100)."""

    def __init__(self, task: Task, corpus: Corpus):
        recs = task.records()
        self.a = corpus.ids_of(r["text"] for r in recs)
        self.b = corpus.ids_of(r["text2"] for r in recs)
        self.labels = np.array([int(r["label"]) for r in recs])

    def similarities(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """Each similarity of every pair, higher meaning more alike (distances negated)."""
        A, B = X[self.a].astype(np.float64), X[self.b].astype(np.float64)
        return {"cosine": np.einsum("ij,ij->i", unit_rows(A), unit_rows(B)), "dot": np.einsum("ij,ij->i", A, B),
                "euclidean": -np.linalg.norm(A - B, axis=1), "manhattan": -np.abs(A - B).sum(axis=1)}

    def __call__(self, X: np.ndarray) -> dict:
        from sklearn.metrics import average_precision_score  # scikit-learn loads with the first score

        scores: dict[str, float] = {}
        for name, sim in self.similarities(X).items():
            f1, precision, recall = best_f1(sim, self.labels)
            values = {"accuracy": best_accuracy(sim, self.labels), "f1": f1, "precision": precision,
                      "recall": recall, "ap": float(average_precision_score(self.labels, sim))}
            scores.update({f"{name}_{metric}": 100 * value for metric, value in values.items()})
        scores.update({f"similarity_{m}": scores[f"cosine_{m}"] for m in METRICS})
        scores.update({f"max_{m}": max(scores[f"{s}_{m}"] for s in SIMILARITIES) for m in METRICS})
        scores["main_score"] = scores["max_ap"]
        return scores


FAMILY = Family(
    name="pair-classification", position=40, evaluator=PairSimilarity,
    description="sentence pairs with a 0/1 label, told apart by the similarity of their vectors with no training "
                "(MTEB's PairClassification); max average precision x100",
    measure="average precision x100 of the best similarity (MTEB's max_ap)", short_measure="max AP x100",
    mteb_keys={key: (key,) for key in [f"{s}_{m}" for s in ("similarity", *SIMILARITIES) for m in METRICS]
               + [f"max_{m}" for m in METRICS]},
    mteb_main="max_ap",
)
