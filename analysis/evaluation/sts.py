"""The STS evaluator: Spearman's rho x100 of the pairs' cosine similarities against gold scores, as
SentEval and MTEB compute it (the family's declaration is families/sts.py)."""
from __future__ import annotations

import numpy as np

from hsstore.store import Corpus
from hsstore.tasks import Task

from ..vectors import unit_rows
from .diagnostics import alignment, diagnose
from .family import Evaluator


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


class STS(Evaluator):
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

    def diagnostics(self, X: np.ndarray) -> dict:
        """Isotropy and uniformity of the paired sentences, and the alignment of the pairs scored at
        least 80% of the top gold score (Wang & Isola's positive pairs)."""
        ids = np.unique(np.concatenate([self.a, self.b]))
        pos = self.gold >= 0.8 * self.gold.max()
        return diagnose(X[ids]) | {"alignment": alignment(X, self.a[pos], self.b[pos]), "alignment_pairs": int(pos.sum())}
