"""Post-processors against independent formulas on random data."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from analysis.embedding import post
from analysis.recipes.steps import parse_step
from hsstore import HsError


@pytest.fixture()
def data():
    rng = np.random.default_rng(0)
    # correlated, anisotropic, shifted: like raw transformer embeddings
    X = rng.standard_normal((3000, 16)) @ rng.standard_normal((16, 16)) + 5.0
    return X.astype(np.float32), rng


def test_zscore(data):
    X, _ = data
    Z = post.ZScore().fit(X).transform(X)
    np.testing.assert_allclose(Z.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(Z.std(0), 1, atol=1e-4)


@pytest.mark.parametrize("mode", ["pca", "zca"])
def test_whitening_gives_identity_covariance_on_its_reference(data, mode):
    X, _ = data
    W = post.Whiten(mode).fit(X).transform(X).astype(np.float64)
    np.testing.assert_allclose(np.cov(W, rowvar=False), np.eye(16), atol=1e-3)


def test_zca_is_the_symmetric_whitening(data):
    X, _ = data
    w = post.Whiten("zca").fit(X)
    cov = np.cov(X.astype(np.float64), rowvar=False)
    vals, vecs = np.linalg.eigh(cov)
    inv_sqrt = vecs @ np.diag(vals ** -0.5) @ vecs.T  # cov^(-1/2)
    np.testing.assert_allclose(w.W_, inv_sqrt, rtol=1e-3, atol=1e-4)


def test_whitening_keeps_k_dimensions(data):
    X, _ = data
    W = post.Whiten("pca", k=5).fit(X).transform(X)
    assert W.shape == (3000, 5)
    np.testing.assert_allclose(np.cov(W.astype(np.float64), rowvar=False), np.eye(5), atol=1e-3)


def test_all_but_the_top_removes_exactly_d_directions(data):
    X, _ = data
    d = 3
    abtt = post.AllButTheTop(d).fit(X)
    Y = abtt.transform(X).astype(np.float64)
    _, _, vt = np.linalg.svd(X - X.mean(0), full_matrices=False)
    # no variance left along the top d principal directions, all of it along the others
    np.testing.assert_allclose(Y @ vt[:d].T, 0, atol=1e-3)
    np.testing.assert_allclose(Y @ vt[d:].T, (X - X.mean(0)) @ vt[d:].T, atol=1e-3)
    assert np.linalg.matrix_rank(Y, tol=1e-3 * np.abs(Y).max()) == 16 - d


def test_quantile_gives_uniform_marginals(data):
    X, _ = data
    q = post.QuantileUniform().fit(X)
    U = q.transform(X)
    assert U.min() >= 0 and U.max() <= 1
    for j in range(X.shape[1]):
        assert stats.kstest(U[:, j], "uniform").statistic < 0.01


def test_quantile_matches_scikit_learn(data):
    from sklearn.preprocessing import QuantileTransformer

    X, _ = data
    ours = post.QuantileUniform(200).fit(X[:1000]).transform(X[1000:])
    theirs = QuantileTransformer(n_quantiles=200, subsample=10**9).fit(X[:1000]).transform(X[1000:])
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_l2_and_pca(data):
    X, _ = data
    np.testing.assert_allclose(np.linalg.norm(post.L2().fit(X).transform(X), axis=1), 1, atol=1e-5)
    P = post.PCA(4).fit(X).transform(X).astype(np.float64)
    var = np.var(P, axis=0)
    evals = np.sort(np.linalg.eigvalsh(np.cov(X.astype(np.float64), rowvar=False)))[::-1][:4]
    np.testing.assert_allclose(var, evals * (len(X) - 1) / len(X), rtol=1e-3)


def test_step_parameters_are_checked():
    assert isinstance(post.make(parse_step("whiten:mode=zca", "post")), post.Whiten)
    with pytest.raises(HsError, match="takes d"):
        parse_step("abtt:k=3", "post")
    with pytest.raises(HsError, match="whole number"):
        parse_step("abtt:d=x", "post")
    with pytest.raises(HsError, match="mode=pca only"):
        post.make(parse_step("whiten:mode=zca:k=4", "post"))
