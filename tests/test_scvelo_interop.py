"""`rt.tl.velocity_embedding` / `rt.tl.gene_velocity` and the scvelo hooks they feed."""

import importlib

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import ruotools as rt
from ruotools._keys import Keys

KEYS = Keys()
N_HVG = 30


@pytest.fixture(scope="module")
def _pca_fit_module(tiny_fit_kwargs):
    """Random expression, 240 cells × 50 genes (30 highly variable), PCA with 5 components, 3 time
    points, one cell with a NaN time; fitted on X_pca with the tiny budget."""
    import scanpy as sc
    import torch

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    n, g = 240, 50
    time = np.repeat([0.0, 1.0, 2.0], n // 3)
    expr = rng.gamma(2.0, 1.0, size=(n, g)) + 0.5 * time[:, None] * (np.arange(g) < 10)
    obs = pd.DataFrame({"time": time})
    obs.index = [f"c{i}" for i in range(n)]
    var = pd.DataFrame({"highly_variable": np.arange(g) < N_HVG}, index=[f"g{j}" for j in range(g)])
    adata = ad.AnnData(np.log1p(expr).astype(np.float32), obs=obs, var=var)
    sc.pp.pca(adata, n_comps=5)  # mask_var="highly_variable" by default: PCs rows of the other genes are 0
    adata.obs.loc["c5", "time"] = np.nan
    model = rt.tl.fit_ruot(adata, "time", use_rep="X_pca", **tiny_fit_kwargs)
    return adata, model


@pytest.fixture
def pca_fitted(_pca_fit_module):
    adata, model = _pca_fit_module
    return adata.copy(), model


# --------------------------------------------------------------------------- velocity_embedding


def test_velocity_embedding_exact_on_fitted_basis(pca_fitted):
    adata, _ = pca_fitted
    fitted_v = adata.obsm[KEYS.velocity_obsm("pca")].copy()
    out = rt.tl.velocity_embedding(adata, basis="X_pca")
    np.testing.assert_array_equal(out, fitted_v)
    np.testing.assert_array_equal(adata.obsm[KEYS.velocity_obsm("pca")], fitted_v)
    assert list(adata.uns[KEYS.velocity_params]["embeddings"]) == ["pca"]  # no duplicate


def test_velocity_embedding_knn_points_along_motion(pca_fitted):
    """All cells move in +x of the representation; the embedding is its first two coordinates."""
    adata, _ = pca_fitted
    v = np.zeros_like(adata.obsm[KEYS.velocity_obsm("pca")])
    v[:, 0] = 1.0
    v[5] = np.nan  # the cell excluded from the fit
    adata.obsm[KEYS.velocity_obsm("pca")] = v
    adata.obsm["X_emb"] = adata.obsm["X_pca"][:, :2].copy()
    out = rt.tl.velocity_embedding(adata, basis="emb", n_neighbors=15)
    assert out.shape == (adata.n_obs, 2)
    assert out.dtype == np.float32
    assert np.isnan(out[5]).all()
    ok = np.isfinite(out).all(axis=1)
    assert ok.sum() == adata.n_obs - 1
    assert (out[ok, 0] > 0).mean() > 0.95
    assert np.mean(out[ok, 0]) > 5 * abs(np.mean(out[ok, 1]))
    assert np.median(np.abs(out[ok, 0])) > np.median(np.abs(out[ok, 1]))
    np.testing.assert_array_equal(adata.obsm[KEYS.velocity_obsm("emb")], out)
    assert list(adata.uns[KEYS.velocity_params]["embeddings"]) == ["pca", "emb"]


def test_velocity_embedding_params_survive_h5ad(pca_fitted, tmp_path):
    adata, _ = pca_fitted
    adata.obsm["X_umap"] = adata.obsm["X_pca"][:, [1, 0]].copy()
    rt.tl.velocity_embedding(adata, basis="umap")
    path = tmp_path / "a.h5ad"
    adata.write_h5ad(path)
    back = ad.read_h5ad(path)
    rt.tl.velocity_embedding(back, basis="umap")  # embeddings read back as an array: no duplicate
    assert sorted(back.uns[KEYS.velocity_params]["embeddings"]) == ["pca", "umap"]
    np.testing.assert_allclose(back.obsm[KEYS.velocity_obsm("umap")], adata.obsm[KEYS.velocity_obsm("umap")])


def test_velocity_embedding_errors(pca_fitted):
    adata, _ = pca_fitted
    before = set(adata.obsm)
    with pytest.raises(KeyError, match=r"adata\.obsm\['X_umap'\]"):
        rt.tl.velocity_embedding(adata, basis="umap")
    with pytest.raises(ValueError, match="n_neighbors"):
        rt.tl.velocity_embedding(adata, basis="pca", n_neighbors=0)
    assert set(adata.obsm) == before


# --------------------------------------------------------------------------- gene_velocity


def test_gene_velocity_values_and_slots(pca_fitted):
    adata, model = pca_fitted
    out = rt.tl.gene_velocity(adata)
    assert out is adata.layers[KEYS.velocity_layer]
    assert out.shape == (adata.n_obs, adata.n_vars)
    assert out.dtype == np.float32
    genes = adata.var[KEYS.velocity_genes].to_numpy()
    assert genes.dtype == bool
    np.testing.assert_array_equal(genes, np.arange(adata.n_vars) < N_HVG)
    v = adata.obsm[KEYS.velocity_obsm("pca")]
    expected = v @ adata.varm["PCs"][:, : model.n_dims].T
    ok = np.isfinite(v).all(axis=1)
    np.testing.assert_allclose(out[ok][:, genes], expected[ok][:, genes], rtol=1e-4, atol=1e-5)
    # genes outside the PCA (not highly variable): unknown, NaN in every cell — not a velocity of 0
    assert np.isnan(out[:, ~genes]).all()
    assert np.isfinite(out[:, genes]).all()
    assert np.all(out[~ok][:, genes] == 0)  # excluded cell: 0, not NaN (scvelo drops genes with any NaN)
    assert not ok[5]
    assert KEYS.velocity_params in adata.uns


def test_gene_velocity_errors(pca_fitted, gene_fitted):
    adata, _ = pca_fitted
    del adata.varm["PCs"]
    with pytest.raises(KeyError, match=r"adata\.varm\['PCs'\].*sc\.pp\.pca"):
        rt.tl.gene_velocity(adata)
    assert KEYS.velocity_layer not in adata.layers
    gene_adata, _ = gene_fitted
    with pytest.raises(ValueError, match="use_rep='X'"):
        rt.tl.gene_velocity(gene_adata)


# --------------------------------------------------------------------------- scvelo


@pytest.fixture
def scv():
    scv = pytest.importorskip("scvelo")
    import matplotlib

    matplotlib.use("Agg")
    return scv


def test_scvelo_stream_plot_draws_without_recomputing(pca_fitted, scv, monkeypatch, tmp_path):
    import matplotlib.pyplot as plt

    def forbidden(*args, **kwargs):
        raise AssertionError("scvelo recomputed the embedding / graph")

    monkeypatch.setattr(scv.tl, "velocity_embedding", forbidden)
    monkeypatch.setattr(scv.tl, "velocity_graph", forbidden)
    stream_module = importlib.import_module("scvelo.plotting.velocity_embedding_stream")
    monkeypatch.setattr(stream_module, "velocity_embedding", forbidden)

    adata, _ = pca_fitted
    rot = np.array([[0.8, -0.6], [0.6, 0.8]])
    adata.obsm["X_umap"] = adata.obsm["X_pca"][:, :2] @ rot.T
    rt.tl.velocity_embedding(adata, basis="umap")
    for basis in ("umap", "pca"):  # kNN projection, and the fitted space itself
        ax = scv.pl.velocity_embedding_stream(
            adata, basis=basis, vkey=KEYS.velocity_layer, color="time", show=False, title=basis
        )
        ax.figure.savefig(tmp_path / f"stream_{basis}.png", dpi=60)
        assert len(ax.collections) > 1  # scatter + stream lines
        plt.close(ax.figure)
    assert (tmp_path / "stream_umap.png").stat().st_size > 0


def test_scvelo_velocity_graph_on_gene_velocity(pca_fitted, scv):
    import scanpy as sc

    adata, _ = pca_fitted
    rt.tl.gene_velocity(adata)
    sc.pp.neighbors(adata, n_neighbors=15, use_rep="X_pca", transformer="sklearn", method="gauss")
    adata.layers["expression"] = adata.X.copy()  # no spliced counts here: name the expression layer
    scv.tl.velocity_graph(adata, vkey=KEYS.velocity_layer, xkey="expression", n_jobs=1, show_progress_bar=False)
    graph = adata.uns[f"{KEYS.velocity_layer}_graph"]
    assert graph.shape == (adata.n_obs, adata.n_obs)
    assert graph.nnz > 0
