"""The pair-classification family (MTEB's PairClassification): scores against mteb's own metric code, and
a task of the family end to end through hs dump and hs eval."""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest
from click.testing import CliRunner

import hsstore
from analysis.evaluation.families.pair_classification import PairSimilarity, best_accuracy, best_f1
from analysis.evaluation.registry import family_of
from cli.main import hs
from hsstore.tasks import Task, get_task


@dataclass(frozen=True)
class PairsTask(Task):
    rows: tuple = ()

    def records(self):
        return list(self.rows)


class Ids:
    def ids_of(self, texts):
        return np.array([int(t) for t in texts])


def _pairs(rng, n: int = 400, dim: int = 16):
    """Vectors of 2n texts and n pairs whose label follows how alike their two vectors are, with noise."""
    X = rng.standard_normal((2 * n, dim)).astype(np.float32)
    labels = rng.integers(0, 2, n)
    X[1::2] = np.where(labels[:, None] == 1, X[0::2] + 0.8 * X[1::2], X[1::2])
    rows = tuple({"text": str(2 * i), "text2": str(2 * i + 1), "label": int(labels[i])} for i in range(n))
    return X, rows, labels


def mteb_metrics(X: np.ndarray, labels: np.ndarray) -> dict:
    """mteb's own pair-classification metrics of the pairs (rows 2i, 2i+1), from its similarity code."""
    import mteb
    from sklearn.metrics.pairwise import paired_cosine_distances, paired_euclidean_distances, paired_manhattan_distances

    e1, e2 = X[0::2], X[1::2]
    cosine = 1 - paired_cosine_distances(e1, e2)
    distances = {"cosine_scores": cosine.tolist(), "euclidean_distances": paired_euclidean_distances(e1, e2).tolist(),
                 "manhattan_distances": paired_manhattan_distances(e1, e2).tolist(),
                 "similarity_scores": cosine.tolist(), "dot_scores": np.einsum("ij,ij->i", e1, e2).tolist()}
    return mteb.get_task("TwitterSemEval2015")._compute_metrics(distances, labels.tolist())


def test_scores_equal_mtebs_own_metrics():
    rng = np.random.default_rng(0)
    X, rows, labels = _pairs(rng)
    ours = PairSimilarity(PairsTask("p", "pair-classification", "p", rows=rows), Ids())(X)
    theirs = mteb_metrics(X, labels)
    assert set(theirs) <= set(ours)
    for key, value in theirs.items():
        assert ours[key] == pytest.approx(100 * value, abs=1e-6), key
    assert ours["main_score"] == ours["max_ap"] > 60  # the labels follow the similarity


def test_thresholds_never_split_ties_and_match_a_brute_force_sweep():
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 6, 80).astype(float)  # many ties
    labels = (scores + rng.standard_normal(80) > 2.5).astype(int)
    cuts = np.unique(scores)[:-1] + 0.5  # thresholds between distinct scores
    assert best_accuracy(scores, labels) == pytest.approx(max(np.mean((scores > c) == labels) for c in cuts))
    f1s = []
    for c in cuts:
        tp = np.sum((scores > c) & (labels == 1))
        f1s.append(2 * tp / (np.sum(scores > c) + labels.sum()))
    assert best_f1(scores, labels)[0] == pytest.approx(max(f1s))
    assert best_accuracy(np.ones(5), np.array([1, 0, 1, 0, 1])) == 0.0  # all tied: no threshold


def test_a_pair_classification_task_end_to_end(tmp_path, tiny_model):
    from hsstore.dump.run import run_dump
    from hsstore.dump.sources import task_source

    task = get_task("mrpc-pairs")
    assert family_of(task).name == "pair-classification" and task.splits == ("test",)
    out = tmp_path / "store"
    run_dump(str(tiny_model), [task_source("mrpc-pairs")], out, batch_tokens=2048, progress=False, log=lambda m: None)
    result = CliRunner().invoke(hs, ["eval", str(out), "-t", "mrpc-pairs", "-r", "layers=last;pool=mean", "-q",
                                     "--json", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    (record,) = json.loads((tmp_path / "r.json").read_text())
    scores = record["scores"]["test"][0]
    assert record["task_name"] == "mrpc-pairs" and scores["main_score"] == scores["max_ap"]
    assert {"cosine_ap", "dot_accuracy", "euclidean_f1", "manhattan_recall", "max_f1"} <= set(scores)
    # the same figures from the stored vectors and mteb's metric code
    from analysis.recipes.recipe import parse_recipe
    from analysis.runners.engine import Engine

    store = hsstore.open(out)
    X = Engine(store).embed("mrpc-pairs", parse_recipe("layers=last;pool=mean"))
    corpus = store.corpus("mrpc-pairs")
    recs = task.records()
    pairs = np.empty((2 * len(recs), X.shape[1]), dtype=np.float32)
    pairs[0::2], pairs[1::2] = X[corpus.ids_of(r["text"] for r in recs)], X[corpus.ids_of(r["text2"] for r in recs)]
    theirs = mteb_metrics(pairs, np.array([r["label"] for r in recs]))
    assert scores["max_ap"] == pytest.approx(theirs["max_ap"], abs=1e-8)
    assert scores["cosine_accuracy"] == pytest.approx(theirs["cosine_accuracy"], abs=1e-8)
