"""Evaluators against direct scipy / scikit-learn computations and data with known answers."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

import hsstore
from analysis.evaluation import diagnostics
from analysis.evaluation import classification as cl
from analysis.evaluation import logreg, probe
from analysis.evaluation.clustering import contingency, scores_from_table
from analysis.evaluation.sts import STS
from analysis.evaluation.classification import Classification, TrainedPairs
from analysis.evaluation.clustering import Clustering, hungarian_accuracy
from hsstore.errors import HsError
from analysis.embedding.pooling import Pooler
from analysis.recipes.recipe import parse_recipe
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

    from analysis.evaluation.sts import rankdata

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


@pytest.mark.parametrize("preset", ["senteval", "probe", "mteb"])
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
    ev = TrainedPairs(FakeTask("x", "pair-trained", "x", protocol="cv", rows=rows), FakeCorpus(300))
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


def test_isotropy_is_mu_and_viswanath_on_unit_vectors():
    """I = min Z(c) / max Z(c) over c = +-eigenvectors, Z(c) = sum_i exp(c . u_i), computed directly
    (SVD instead of eigh, a plain sum of exps); it ignores vector length, so whitening raises it."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((400, 6)) * [5, 2, 1, 1, 0.5, 0.2] + [3, 0, 0, 1, 0, 0]  # a cone, uneven spread
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    _, _, vt = np.linalg.svd(U, full_matrices=False)  # rows: the eigenvectors of U^T U
    z = [np.exp(U @ (sign * c)).sum() for c in vt for sign in (1, -1)]
    assert diagnostics.partition_ratio(X) == pytest.approx(min(z) / max(z), rel=1e-9)
    assert diagnostics.partition_ratio(X * 1e4) == pytest.approx(diagnostics.partition_ratio(X), rel=1e-9)
    from analysis.embedding.post import Whiten

    whitened = Whiten().fit(X).transform(X.astype(np.float32))
    assert diagnostics.partition_ratio(whitened) > 0.95 > 0.8 > diagnostics.partition_ratio(X) >= np.exp(-2)


# --- the probe: closed-form cross-validation against explicit refits ---

@pytest.mark.parametrize("n, d", [(40, 6), (15, 30)])  # primal (n >= d) and dual (n < d)
def test_probe_leave_one_out_equals_refits(n, d):
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(n)
    X, yi = rng.standard_normal((n, d)) + 3.0, rng.integers(0, 3, n)
    yi[:3] = [0, 1, 2]
    fit = probe.RidgeFit(X, yi, 3)
    Y = np.eye(3)[yi]
    for lam in fit.lambdas()[::4]:
        loo = fit.loo_predictions(lam)
        for i in range(n):
            keep = np.arange(n) != i
            refit = Ridge(alpha=lam, solver="svd").fit(X[keep], Y[keep])
            np.testing.assert_allclose(loo[i], refit.predict(X[i:i + 1])[0], atol=1e-6)
        Xt = rng.standard_normal((5, d))
        np.testing.assert_allclose(fit.predict(Xt, lam), Ridge(alpha=lam, solver="svd").fit(X, Y).predict(Xt),
                                   atol=1e-6)


def test_probe_chooses_the_best_held_out_lambda():
    rng = np.random.default_rng(3)
    yi = rng.integers(0, 2, 120)
    X = rng.standard_normal((120, 20)) + yi[:, None] * 0.3
    fit = probe.RidgeFit(X[:80], yi[:80], 2)
    lam = probe.choose_on(fit, X[80:], yi[80:])
    best = max(probe.accuracy(fit, lam_, X[80:], yi[80:]) for lam_ in fit.lambdas())
    assert probe.accuracy(fit, lam, X[80:], yi[80:]) == best
    loo_lam = probe.choose_by_loo(fit, yi[:80])
    accs = [np.mean(np.argmax(fit.loo_predictions(lam_), axis=1) == yi[:80]) for lam_ in fit.lambdas()]
    assert np.mean(np.argmax(fit.loo_predictions(loo_lam), axis=1) == yi[:80]) == max(accs)


# --- the fast SentEval solver against scikit-learn's converged solution ---

@pytest.mark.parametrize("k", [2, 4])
def test_fast_logistic_regression_is_sklearns_optimum(k):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(k)
    y = rng.integers(0, k, 300)
    X = 0.05 * rng.standard_normal((300, 12)) + 0.04 * np.eye(k)[y] @ rng.standard_normal((k, 12)) + 1.0
    Cs = [0.25, 2.0, 16.0]
    rot = logreg.Rotation(X)
    W, intercepts, _ = logreg.solve(rot, y, k, np.ones((len(X), len(Cs))), Cs, gtol=1e-9)
    for j, C in enumerate(Cs):
        coef, b = rot.unrotate(W[j], intercepts[j])
        ref = LogisticRegression(C=C, tol=1e-12, max_iter=100000).fit(X, y)
        np.testing.assert_allclose(coef, ref.coef_, rtol=0, atol=1e-5 * np.abs(ref.coef_).max())
        np.testing.assert_array_equal(logreg.predict_rotated(W[j], intercepts[j], rot.apply(X)), ref.predict(X))
        np.testing.assert_allclose(X @ coef.T + b - (X @ ref.coef_.T + ref.intercept_).mean(axis=1, keepdims=True)
                                   * (k > 2), X @ ref.coef_.T + ref.intercept_
                                   - (X @ ref.coef_.T + ref.intercept_).mean(axis=1, keepdims=True) * (k > 2),
                                   atol=1e-4)


@pytest.mark.parametrize("preconditioner", ["priors", "pilot"])
@pytest.mark.parametrize("k", [2, 3])
def test_batched_solver_reaches_sklearns_optimum_for_every_rows_and_C(k, preconditioner):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(3)
    y = rng.integers(0, k, 240)
    X = (0.05 * rng.standard_normal((240, 10)) + 0.03 * np.eye(k)[y] @ rng.standard_normal((k, 10)) + 1.0
         ).astype(np.float32)  # float32 features: the solver's float32 phase, then its float64 one
    rot = logreg.Rotation(X)
    rows = np.ones((240, 3))
    rows[:80, 1] = rows[80:160, 2] = 0
    Cs = [0.25, 4.0, 16.0]
    problems = np.repeat(rows, 3, axis=1)
    # the priors' curvature from zero, or a rough pilot's curvature from the pilot's solution
    curvature, start = logreg.pilot(rot, y, k, problems, Cs * 3) if preconditioner == "pilot" else (None, None)
    if preconditioner == "pilot":
        assert curvature.vectors is not None and start[0].shape == (9, 10, 1 if k == 2 else k)
    W, b, _ = logreg.solve(rot, y, k, problems, Cs * 3, gtol=1e-9, curvature=curvature, start=start)
    X64 = X.astype(np.float64)
    for j in range(9):
        keep, C = rows[:, j // 3] == 1, Cs[j % 3]
        ref = LogisticRegression(C=C, tol=1e-12, max_iter=100000).fit(X64[keep], y[keep])
        coef, intercept = rot.unrotate(W[j], b[j])
        np.testing.assert_allclose(coef, ref.coef_, rtol=0, atol=1e-4 * np.abs(ref.coef_).max())

        # scikit-learn's objective and its gradient, in plain numpy: ours is the optimum (sklearn's
        # lbfgs stops with gradients up to ~1e-4 here, so ours must be at least as low)
        def objective(coef, intercept, keep=keep, C=C):
            Z = X64[keep] @ coef.T + intercept
            if k == 2:
                sign = np.where(y[keep] == 1, 1.0, -1.0)[:, None]
                return C * np.logaddexp(0, -sign * Z).sum() + 0.5 * (coef * coef).sum(), -C * sign / (1 + np.exp(sign * Z))
            P = np.exp(Z - Z.max(axis=1, keepdims=True))
            P /= P.sum(axis=1, keepdims=True)
            loss = -np.log(P[np.arange(len(Z)), y[keep]]).sum()
            return C * loss + 0.5 * (coef * coef).sum(), C * (P - np.eye(k)[y[keep]])
        f, G = objective(coef, intercept)
        grad = np.r_[(X64[keep].T @ G + coef.T).ravel(), G.sum(axis=0)] / (C * keep.sum())  # of the mean loss
        assert np.abs(grad).max() < 1e-8
        assert f <= objective(ref.coef_, ref.intercept_)[0] + 1e-9


def test_pilot_curvature_is_the_mean_losss_hessian_per_class_component():
    """The preconditioner's blocks against finite differences of the mean softmax loss's gradient
    with respect to one class component's weights and intercept (rotated coordinates)."""
    rng = np.random.default_rng(7)
    k, n = 3, 200
    y = rng.integers(0, k, n)
    X = rng.standard_normal((n, 4)) + np.eye(k)[y] @ rng.standard_normal((k, 4))
    rot = logreg.Rotation(X)
    W, b = rng.standard_normal((4, k)), rng.standard_normal(k)
    curvature = logreg.Curvature.at(rot, y, k, np.ones(n, bool), W, b)
    R1 = np.hstack([rot.rotated64, np.ones((n, 1))])

    def gradient(j, x):  # of the mean loss wrt component j's (weights, intercept), the others held
        Wj = np.vstack([W, b]) + np.outer(x, curvature.M[:, j])
        Z = R1 @ Wj
        P = np.exp(Z - Z.max(axis=1, keepdims=True))
        P /= P.sum(axis=1, keepdims=True)
        return R1.T @ ((P - np.eye(k)[y]) @ curvature.M[:, j]) / n

    for j in range(k - 1):
        h = 1e-6
        fd = np.stack([(gradient(j, h * e) - gradient(j, -h * e)) / (2 * h) for e in np.eye(5)])
        Q, lam = curvature.vectors[j], curvature.values[j]
        np.testing.assert_allclose(Q @ np.diag(lam) @ Q.T, fd, atol=1e-7)


def test_pilot_is_skipped_where_it_would_cost_more_than_it_saves():
    rng = np.random.default_rng(8)
    y = rng.integers(0, 3, 300)
    wide = logreg.Rotation(rng.standard_normal((300, 200)))  # one problem on 200 features: priors
    curvature, start = logreg.pilot(wide, y, 3, np.ones((300, 1)), [1.0])
    assert curvature.vectors is None and start is None
    narrow = logreg.Rotation(rng.standard_normal((300, 5)))  # ten problems on 5 features: a pilot
    curvature, start = logreg.pilot(narrow, y, 3, np.ones((300, 10)), [1.0] * 10)
    assert curvature.vectors.shape == (2, 6, 6) and start[0].shape == (10, 5, 3)


@pytest.mark.parametrize("k", [2, 3])
def test_senteval_protocol_equals_sklearn_fits_on_the_same_folds(k):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(5)
    y = rng.integers(0, k, 100).astype(str)
    F = rng.standard_normal((100, 3)) + (y == "1")[:, None] * 0.8

    def sk(Xtr, ytr, Xte, yte, C):
        return LogisticRegression(C=C, tol=1e-10, max_iter=100000).fit(Xtr, ytr).score(Xte, yte)

    accs = []
    for tr, te in cl._stratified_folds(y, cl.OUTER_FOLDS):
        inner = [np.mean([sk(F[tr][a], y[tr][a], F[tr][b], y[tr][b], C) for a, b in cl._stratified_folds(y[tr], 5)])
                 for C in cl.C_GRID]
        accs.append(sk(F[tr], y[tr], F[te], y[te], cl.C_GRID[int(np.argmax(inner))]))
    assert cl.senteval_cv(F, y)["main_score"] == pytest.approx(100 * np.mean(accs), abs=1e-9)
    # the train/dev/test protocol: C chosen on dev, scored on test
    splits = np.array(["train"] * 60 + ["dev"] * 20 + ["test"] * 20)
    tr, dev, te = (splits == s for s in ("train", "dev", "test"))
    best = cl.C_GRID[int(np.argmax([sk(F[tr], y[tr], F[dev], y[dev], C) for C in cl.C_GRID]))]
    assert cl.senteval_split(F, y, splits)["main_score"] == pytest.approx(100 * sk(F[tr], y[tr], F[te], y[te], best))


# --- MTEB's protocol: the registry against the installed mteb ---

def test_mteb_settings_in_the_registry_match_the_installed_mteb():
    mteb = pytest.importorskip("mteb")
    import inspect

    from hsstore.tasks import MTEB_NAMES, TASKS, MtebClassification, MtebClustering

    declared = [t for t in TASKS.values() if t.mteb is not None]
    assert {t.mteb.name for t in declared} >= {"Banking77Classification", "EmotionClassification",
                                                "TwentyNewsgroupsClustering"}
    for task in declared:
        theirs = mteb.get_task(task.mteb.name)
        # where the data are MTEB's, the results carry its name; sampled sets (Reddit, StackExchange) run
        # MTEB's protocol under their own
        if task.id in MTEB_NAMES:
            assert MTEB_NAMES[task.id][0] == task.mteb.name, task.id
        if isinstance(task.mteb, MtebClassification):
            assert task.mteb.samples_per_label == theirs.samples_per_label, task.id
            assert task.mteb.n_experiments == theirs.n_experiments, task.id
            assert task.mteb.seed == theirs.seed, task.id
            assert task.mteb.max_iter == theirs.evaluator_model.get_params()["max_iter"], task.id
            assert task.mteb.train_split == theirs.train_split, task.id
            assert task.mteb.eval_split in theirs.metadata.eval_splits, task.id
            assert theirs.metadata.main_score == "accuracy"
        else:
            assert isinstance(task.mteb, MtebClustering)
            assert type(theirs).__mro__[1].__name__ == "AbsTaskClusteringLegacy", task.id
            params = inspect.signature(theirs.evaluator.__init__).parameters
            assert task.mteb.batch_size == params["clustering_batch_size"].default, task.id
            assert task.mteb.seed == theirs.seed == inspect.signature(
                theirs.evaluator.__mro__[1].__init__).parameters["seed"].default
            assert theirs.metadata.main_score == "v_measure"


def test_mteb_undersampling_draws_mtebs_rows():
    mteb = pytest.importorskip("mteb")
    datasets = pytest.importorskip("datasets")
    from hsstore.tasks import get_task

    labels = list(np.random.default_rng(0).integers(0, 5, 300))
    theirs_task = mteb.get_task("EmotionClassification")
    ds = datasets.Dataset.from_dict({"text": [str(i) for i in range(300)], "label": labels})
    theirs, idxs = [], None
    for i in range(theirs_task.n_experiments):
        _, idxs, picked = theirs_task._undersample_data(ds, i, idxs)
        theirs.append(list(picked))
    assert cl.mteb_undersamples(np.array(labels), get_task("emotion").mteb) == theirs


# --- clustering scores and bad input ---

def test_clustering_scores_match_sklearn():
    from sklearn.metrics import normalized_mutual_info_score, v_measure_score

    rng = np.random.default_rng(0)
    labels, pred = rng.integers(0, 4, 500).astype(str), rng.integers(0, 6, 500)
    pred[:300] = (labels[:300] == "1") * 2
    got = scores_from_table(contingency(labels, pred))
    assert got["v_measure"] == pytest.approx(100 * v_measure_score(labels, pred), abs=1e-9)
    assert got["nmi"] == pytest.approx(100 * normalized_mutual_info_score(labels, pred), abs=1e-9)
    assert got["accuracy"] == pytest.approx(100 * hungarian_accuracy(labels, pred))


def test_single_threaded_kmeans_gives_the_multithreaded_labels():
    """--jobs runs k-means with one OpenMP thread; the labels must be those of the threaded default
    (overlapping clusters, so that summation order could move borderline points if it mattered)."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(1)
    X = rng.standard_normal((4000, 16)) + 1.5 * rng.standard_normal((12, 16))[rng.integers(0, 12, 4000)]
    rows = tuple({"text": str(i), "label": "0", "split": "test"} for i in range(len(X)))
    ev = Clustering(FakeTask("x", "clustering", "x", rows=rows), FakeCorpus(len(X)))
    runs = {}
    for threads in (1, 2, 4):
        with threadpool_limits(threads):
            runs[threads] = [ev.model(12, seed).fit_predict(X) for seed in range(3)]
    for threads in (2, 4):
        for a, b in zip(runs[1], runs[threads]):
            np.testing.assert_array_equal(a, b)


def test_bad_protocols_and_missing_splits_are_hs_errors():
    rng = np.random.default_rng(0)
    _, rows = _classification_rows(rng)
    task = FakeTask("x", "classification", "x", protocol="split", rows=rows)
    with pytest.raises(HsError, match="unknown classification protocol"):
        Classification(task, FakeCorpus(300), "svm")
    no_train = FakeTask("x", "classification", "x", protocol="split",
                        rows=tuple({**r, "split": "test"} for r in rows))
    for protocol in ("senteval", "probe", "mteb"):
        with pytest.raises(HsError, match="no train split"):
            Classification(no_train, FakeCorpus(300), protocol)
    with pytest.raises(HsError, match="unknown clustering preset"):
        Clustering(FakeTask("x", "clustering", "x", rows=rows), FakeCorpus(300), "dbscan")


def test_jobs_do_not_change_the_json(tiny_store, tmp_path):
    from click.testing import CliRunner

    from cli.main import hs

    outs = []
    for jobs in ("1", "2"):
        path = tmp_path / f"j{jobs}.json"
        res = CliRunner().invoke(hs, ["eval", str(tiny_store), "-t", "sts17", "-t", "biosses", "--layers", "last",
                                      "--layers", "0", "--pool", "mean", "--pool", "max", "--post", "none",
                                      "--post", "whiten@wikitext2", "--jobs", jobs, "--no-cache", "-q",
                                      "--json", str(path)])
        assert res.exit_code == 0, res.output
        records = json.loads(path.read_text())
        for r in records:
            r.pop("evaluation_time", None)
        table = [ln for ln in res.output.splitlines() if not ln.startswith("wrote ")]
        outs.append((table, records))
    assert outs[0] == outs[1] and len(outs[0][1]) == 16


def test_costliest_evaluations_start_first_and_results_keep_their_order():
    import threading

    from analysis.runners.threads import run_ordered

    started, lock, both = [], threading.Lock(), threading.Barrier(2, timeout=30)

    def work(x):
        with lock:
            started.append(x)
            first = len(started) <= 2
        if first:  # the first two wait for each other: nothing else can have started before them
            both.wait()
        return x * x

    items = [3, 1, 4, 1, 5, 9, 2, 6]
    out = run_ordered(work, items, jobs=2, cost=lambda x: x)
    assert out == [x * x for x in items]
    # two workers take from the queue in submission order: the first two are the costliest
    assert sorted(started[:2]) == [6, 9] and sorted(started) == sorted(items)


def test_solver_failures_are_one_line_errors():
    from hsstore.errors import HsError

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 60)
    X = rng.standard_normal((60, 4)) + y[:, None]
    with pytest.raises(HsError, match="did not converge in 2 iterations"):
        logreg.solve(logreg.Rotation(X), y, 3, np.ones((60, 1)), [16.0], max_iter=2)
    with pytest.raises(HsError, match="two classes"):
        cl.senteval_cv(X, np.zeros(60).astype(str))
    X[5, 1] = np.nan
    with pytest.raises(HsError, match="NaN"):
        cl.senteval_cv(X, y.astype(str))


def test_libraries_first_loaded_by_an_evaluation_are_single_threaded_too():
    # a fresh interpreter: scipy.linalg and scikit-learn not yet imported when the run starts
    code = """
import json
from types import SimpleNamespace
from analysis.runners.threads import run_ordered

def pools(_):
    import scipy.linalg, sklearn.cluster  # first loaded here, as inside an evaluation
    from threadpoolctl import threadpool_info
    return [(p["internal_api"], p["num_threads"]) for p in threadpool_info()]

print(json.dumps(run_ordered(pools, [0, 1], jobs=2, tasks=[SimpleNamespace(family="clustering")])))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    runs = json.loads(out.stdout)
    apis = {api for pools in runs for api, _ in pools}
    assert {"openblas", "openmp"} <= apis or {"mkl"} <= apis
    assert all(n == 1 for pools in runs for _, n in pools), runs
