"""Evaluators against direct scipy / scikit-learn computations and data with known answers."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from scipy.stats import spearmanr

import hsstore
from analysis import diagnostics
from analysis.evaluators import STS, Classification, Clustering, hungarian_accuracy
from analysis.pooling import Pooler
from analysis.recipe import parse_recipe
from hsstore.tasks import Task, get_task


@dataclass(frozen=True)
class FakeTask(Task):
    rows: tuple = ()

    def records(self):
        return list(self.rows)


class FakeCorpus:
    def __init__(self, n):
        self.n = n

    def ids_of(self, texts):
        return np.array([int(t) for t in texts])


def test_sts_is_spearman_of_cosines(tiny_store):
    store = hsstore.open(tiny_store)
    corpus = store.corpus("sts17")
    X = Pooler(store, disk_cache=False).embed(corpus, parse_recipe("layers=last"))
    scores = STS(get_task("sts17"), corpus)(X)
    recs = get_task("sts17").records()
    cos = []
    for r in recs:
        u, v = X[corpus.texts.index(r["text"])], X[corpus.texts.index(r["text2"])]
        cos.append(u @ v / np.linalg.norm(u) / np.linalg.norm(v))
    expected = 100 * spearmanr(cos, [r["score"] for r in recs]).statistic
    assert scores["main_score"] == pytest.approx(expected, abs=1e-6)


def test_sts_aggregations():
    rng = np.random.default_rng(0)
    rows = tuple({"text": str(2 * i), "text2": str(2 * i + 1), "score": float(rng.random()),
                  "subset": "a" if i < 30 else "b", "split": "test"} for i in range(100))
    X = rng.standard_normal((200, 8))
    ev = {agg: STS(FakeTask("x", "sts", "x", rows=rows), FakeCorpus(200), agg)(X) for agg in ("all", "mean", "wmean")}
    a, b = ev["all"]["subsets"]["a"], ev["all"]["subsets"]["b"]
    assert ev["mean"]["main_score"] == pytest.approx((a + b) / 2)
    assert ev["wmean"]["main_score"] == pytest.approx((30 * a + 70 * b) / 100)
    cos = np.einsum("ij,ij->i", X[0::2], X[1::2]) / np.linalg.norm(X[0::2], axis=1) / np.linalg.norm(X[1::2], axis=1)
    assert ev["all"]["main_score"] == pytest.approx(100 * spearmanr(cos, [r["score"] for r in rows]).statistic)


def test_rankdata_matches_scipy():
    from scipy.stats import rankdata as scipy_rankdata

    from analysis.evaluators import rankdata

    rng = np.random.default_rng(0)
    for x in (rng.standard_normal(50), rng.integers(0, 5, 200).astype(float), np.array([3.0]), np.ones(4)):
        np.testing.assert_array_equal(rankdata(x), scipy_rankdata(x))


def test_hungarian_accuracy():
    labels = np.array(["a", "a", "b", "b", "c", "c"])
    assert hungarian_accuracy(labels, np.array([2, 2, 0, 0, 1, 1])) == 1.0
    assert hungarian_accuracy(labels, np.array([0, 0, 0, 0, 1, 1])) == pytest.approx(4 / 6)


@pytest.mark.parametrize("preset", ["kmeans", "mteb"])
def test_clustering_separable_blobs(preset):
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((4, 10)) * 20
    labels = np.repeat(np.arange(4), 50)
    X = centers[labels] + rng.standard_normal((200, 10))
    rows = tuple({"text": str(i), "label": f"L{labels[i]}", "split": "test"} for i in range(200))
    scores = Clustering(FakeTask("x", "clustering", "x", rows=rows), FakeCorpus(200), preset, seeds=2)(X)
    assert scores["v_measure"] == pytest.approx(100) and scores["accuracy"] == pytest.approx(100)
    noise = Clustering(FakeTask("x", "clustering", "x", rows=rows), FakeCorpus(200), preset, seeds=2)(
        rng.standard_normal((200, 10)))
    assert noise["v_measure"] < 20


def _classification_rows(rng, n=300, pairs=False):
    labels = rng.integers(0, 3, n)
    splits = np.where(np.arange(n) < 200, "train", "test")
    return labels, tuple({"text": str(i), **({"text2": str(i)} if pairs else {}), "label": int(labels[i]),
                          "split": str(splits[i])} for i in range(n))


@pytest.mark.parametrize("preset", ["senteval", "mteb"])
def test_classification_learns_a_separable_signal(preset):
    rng = np.random.default_rng(0)
    labels, rows = _classification_rows(rng)
    X = np.eye(3)[labels] * 4 + rng.standard_normal((300, 3)) * 0.3
    ev = Classification(FakeTask("x", "classification", "x", protocol="split", rows=rows), FakeCorpus(300), preset)
    assert ev(X)["main_score"] > 95
    assert ev(rng.standard_normal((300, 3)))["main_score"] < 60


def test_classification_cv_and_pairs():
    rng = np.random.default_rng(1)
    labels, rows = _classification_rows(rng, pairs=True)
    rows = tuple({**r, "split": "all"} for r in rows)
    X = np.eye(3)[labels] * 4 + rng.standard_normal((300, 3)) * 0.3
    ev = Classification(FakeTask("x", "pair-classification", "x", protocol="cv", rows=rows), FakeCorpus(300))
    assert ev.features(X).shape == (300, 12)  # [u, v, |u-v|, u*v]
    assert ev(X)["main_score"] > 95


def test_diagnostics_against_brute_force():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 5)) + 2
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    cos = U @ U.T
    assert diagnostics.average_cosine(X) == pytest.approx(cos[np.triu_indices(60, 1)].mean())
    sq = 2 - 2 * cos[np.triu_indices(60, 1)]
    assert diagnostics.uniformity(X) == pytest.approx(np.log(np.mean(np.exp(-2 * sq))))
    assert diagnostics.alignment(X, np.arange(30), np.arange(30, 60)) == pytest.approx(
        np.mean(np.sum((U[:30] - U[30:]) ** 2, axis=1)))
    iso = rng.standard_normal((5000, 5))
    assert diagnostics.partition_ratio(iso) > diagnostics.partition_ratio(X)
