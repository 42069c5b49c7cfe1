"""`rt.tl.couplings`: growth-aware OT couplings between consecutive time points."""

import numpy as np
import pytest
from scipy import sparse

import ruotools as rt
from ruotools._keys import Keys
from ruotools.core.ot import wasserstein


def _subset(adata, n_per_time=60, seed=0):
    rng = np.random.default_rng(seed)
    t = adata.obs["time"].to_numpy()
    idx = np.concatenate([rng.choice(np.flatnonzero(t == tk), n_per_time, replace=False) for tk in np.unique(t)])
    return adata[np.sort(idx)].copy()


def test_dense_couplings_shapes_order_and_mass(gene_fitted):
    adata, model = gene_fitted
    adata = _subset(adata)
    tmaps = rt.tl.couplings(adata)
    t = adata.obs["time"].to_numpy()
    x = np.asarray(adata.X, dtype=np.float64)
    assert list(tmaps) == [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0), (3.0, 4.0)]
    for (ta, tb), plan in tmaps.items():
        assert isinstance(plan, np.ndarray)
        assert plan.shape == ((t == ta).sum(), (t == tb).sum())
        assert np.all(plan >= 0)
        assert plan.sum() == pytest.approx(1.0)
        np.testing.assert_allclose(plan.sum(axis=0), 1.0 / (t == tb).sum(), rtol=1e-6)
        # rows in adata order: row sums are each t_a cell's normalised predicted mass
        out = model.simulate(x[t == ta], [ta, tb], log_mass0=np.zeros((t == ta).sum()), stochastic=False)
        mass = np.exp(out["log_mass"][-1])
        np.testing.assert_allclose(plan.sum(axis=1), mass / mass.sum(), rtol=1e-5)
        # columns in adata order: the plan's cost is the optimal one
        pushed, y = out["X"][-1], x[t == tb]
        cost = (plan * ((pushed[:, None, :] - y[None, :, :]) ** 2).sum(-1)).sum()
        assert cost == pytest.approx(wasserstein(pushed, y, mass, None, p=2) ** 2, rel=1e-5)
    summary = adata.uns[Keys("ruot").couplings]
    np.testing.assert_array_equal(summary["time_pairs"], [[0, 1], [1, 2], [2, 3], [3, 4]])
    np.testing.assert_array_equal(summary["shapes"], [[60, 60]] * 4)
    assert not summary["sparse"].any()


def test_sparse_above_dense_max(gene_fitted):
    adata, model = gene_fitted
    adata = _subset(adata, 40)
    tmaps = rt.tl.couplings(adata, dense_max=30)
    t = adata.obs["time"].to_numpy()
    x = np.asarray(adata.X, dtype=np.float64)
    for (ta, tb), plan in tmaps.items():
        assert sparse.isspmatrix_csr(plan)
        assert plan.shape == (40, 40)
        assert plan.nnz < 40 * 40
        assert plan.min() >= 0
        assert plan.sum() == pytest.approx(1.0)
        out = model.simulate(x[t == ta], [ta, tb], log_mass0=np.zeros(40), stochastic=False)
        mass = np.exp(out["log_mass"][-1])
        np.testing.assert_allclose(np.asarray(plan.sum(axis=1)).ravel(), mass / mass.sum(), rtol=1e-5)
        np.testing.assert_allclose(np.asarray(plan.sum(axis=0)).ravel(), 1 / 40, rtol=0.05)
    summary = adata.uns[Keys("ruot").couplings]
    assert summary["sparse"].all()
    assert np.all(summary["epsilon"] > 0)


def test_exact_solver_above_dense_max_is_sparse(gene_fitted):
    adata, _ = gene_fitted
    adata = _subset(adata, 40)
    dense = rt.tl.couplings(adata)
    exact = rt.tl.couplings(adata, dense_max=30, solver="emd")
    for key, plan in exact.items():
        assert sparse.isspmatrix_csr(plan)
        assert plan.nnz <= 40 + 40 - 1
        np.testing.assert_allclose(plan.toarray(), dense[key], atol=1e-12)
    with pytest.raises(ValueError, match="solver"):
        rt.tl.couplings(adata, solver="greenkhorn")


def test_excluded_cells_and_categorical_keys(gene_fitted):
    adata, _ = gene_fitted
    adata = _subset(adata, 20)
    adata.X[0] = np.nan  # first cell (time 0): zero row
    adata.obs["time"] = adata.obs["time"].astype(int).astype(str).astype("category")
    tmaps = rt.tl.couplings(adata, stochastic=True)
    assert list(tmaps) == [("0", "1"), ("1", "2"), ("2", "3"), ("3", "4")]
    plan = tmaps["0", "1"]
    assert plan.shape == (20, 20)
    assert plan[0].sum() == 0
    assert plan.sum() == pytest.approx(1.0)


def test_summary_survives_h5ad(gene_fitted, tmp_path):
    import anndata as ad

    adata, _ = gene_fitted
    adata = _subset(adata, 20)
    rt.tl.couplings(adata)
    adata.write_h5ad(tmp_path / "a.h5ad")
    back = ad.read_h5ad(tmp_path / "a.h5ad")
    np.testing.assert_array_equal(back.uns[Keys("ruot").couplings]["shapes"], [[20, 20]] * 4)


@pytest.mark.parametrize("cache_bytes", [2**30, 0])
def test_sinkhorn_matches_pot(cache_bytes):
    import ot

    from ruotools.tl._couplings import _sinkhorn_sparse

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 3)), rng.normal(size=(40, 3)) + 0.5
    a = rng.uniform(0.5, 1.5, 30)
    a /= a.sum()
    b = np.full(40, 1 / 40)
    ours = _sinkhorn_sparse(x, y, a, b, 0.5, tol=1e-8, cache_bytes=cache_bytes).toarray()
    ref = ot.sinkhorn(a, b, ot.dist(x, y), 0.5, numItermax=100_000, stopThr=1e-12)
    np.testing.assert_allclose(ours.sum(axis=1), a, rtol=1e-10)
    np.testing.assert_allclose(ours, ref, atol=2e-3 * ref.max())
