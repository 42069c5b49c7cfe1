"""CellRank 2 hooks: RealTimeKernel on `rt.tl.couplings`, PrecomputedKernel on the velocity transition matrix.

CellRank 2.0.7's ``VelocityKernel`` fails on numpy 2 (it calls ``assert_array_equal(x=, y=)``);
``PrecomputedKernel(rt.tl.velocity_transition_matrix(adata), adata=adata)`` is the workaround.
"""

import numpy as np
import pytest

import ruotools as rt

cr = pytest.importorskip("cellrank")

# pygpcca warns about inaccurate Schur reordering on these tiny, nearly reducible chains
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:pygpcca.*")


def _subset(adata, n_per_time=40, seed=0):
    rng = np.random.default_rng(seed)
    t = adata.obs["time"].to_numpy()
    idx = np.concatenate([rng.choice(np.flatnonzero(t == tk), n_per_time, replace=False) for tk in np.unique(t)])
    return adata[np.sort(idx)].copy()


def _row_stochastic(mat):
    sums = np.asarray(mat.sum(axis=1)).ravel()
    np.testing.assert_allclose(sums, 1.0, atol=1e-6)


def _gpcca(kernel):
    g = cr.estimators.GPCCA(kernel)
    g.compute_schur(n_components=3, method="brandts")
    g.compute_macrostates(n_states=2)
    assert len(g.macrostates.cat.categories) == 2


def test_real_time_kernel_from_couplings(gene_fitted):
    adata, _ = gene_fitted
    adata = _subset(adata)
    adata.obs["time_cat"] = adata.obs["time"].astype("category")
    tmaps = rt.tl.couplings(adata)
    kernel = cr.kernels.RealTimeKernel(adata, time_key="time_cat", couplings=tmaps)
    # "uniform" within the last time point keeps the chain irreducible there (GPCCA fails on the
    # degenerate spectrum of "diagonal") without the scanpy neighbour graph of "connectivities"
    kernel.compute_transition_matrix(self_transitions="uniform", threshold=None)
    assert kernel.transition_matrix.shape == (adata.n_obs, adata.n_obs)
    _row_stochastic(kernel.transition_matrix)
    _gpcca(kernel)


def test_real_time_kernel_from_sparse_couplings(gene_fitted):
    adata, _ = gene_fitted
    adata = _subset(adata, 30)
    adata.obs["time_cat"] = adata.obs["time"].astype("category")
    tmaps = rt.tl.couplings(adata, dense_max=20)
    kernel = cr.kernels.RealTimeKernel(adata, time_key="time_cat", couplings=tmaps)
    kernel.compute_transition_matrix(self_transitions="diagonal")
    _row_stochastic(kernel.transition_matrix)


def test_precomputed_kernel_from_velocity(gene_fitted):
    adata, _ = gene_fitted
    adata = _subset(adata)
    tmat = rt.tl.velocity_transition_matrix(adata)
    _row_stochastic(tmat)
    kernel = cr.kernels.PrecomputedKernel(tmat, adata=adata)
    _row_stochastic(kernel.transition_matrix)
    _gpcca(kernel)
