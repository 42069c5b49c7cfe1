"""`rt.tl.velocity_transition_matrix`: kNN Markov chain oriented by the fitted velocity."""

import numpy as np
import pytest
from scipy import sparse

import ruotools as rt
from ruotools._keys import Keys


def test_row_stochastic_and_follows_velocity(gene_fitted):
    adata, _ = gene_fitted
    adata = adata[::5].copy()
    adata.X[1] = np.nan
    tmat = rt.tl.velocity_transition_matrix(adata, n_neighbors=15)
    assert sparse.isspmatrix_csr(tmat)
    assert tmat.shape == (adata.n_obs, adata.n_obs)
    np.testing.assert_allclose(np.asarray(tmat.sum(axis=1)).ravel(), 1.0, atol=1e-9)
    assert tmat.min() >= 0
    assert tmat[1, 1] == 1.0
    assert tmat[:, 1].sum() == 1.0
    assert np.all(np.diff(tmat.indptr)[np.arange(adata.n_obs) != 1] == 15)
    # the expected step points along each cell's velocity
    x = np.asarray(adata.X, dtype=np.float64)
    v = adata.layers[Keys("ruot").velocity_layer]
    ok = np.all(np.isfinite(x), axis=1)
    step = tmat @ np.nan_to_num(x) - np.nan_to_num(x)
    assert np.mean(np.sum(step[ok] * v[ok], axis=1) > 0) > 0.8


def test_sharper_with_larger_scale(gene_fitted):
    adata, _ = gene_fitted
    adata = adata[::10].copy()
    soft = rt.tl.velocity_transition_matrix(adata, n_neighbors=10, softmax_scale=0.1)
    sharp = rt.tl.velocity_transition_matrix(adata, n_neighbors=10, softmax_scale=20.0)
    assert soft.max() < sharp.max()
    with pytest.raises(ValueError, match="softmax_scale"):
        rt.tl.velocity_transition_matrix(adata, softmax_scale=-1.0)


def test_needs_a_fit():
    import anndata as ad

    with pytest.raises(RuntimeError, match="fit_ruot"):
        rt.tl.velocity_transition_matrix(ad.AnnData(np.zeros((5, 2))))
