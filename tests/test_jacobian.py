"""`rt.tl.jacobian` and `rt.pl.jacobian`: the mean Jacobian of the SDE drift, in genes."""

import tracemalloc

import anndata as ad
import matplotlib
import numpy as np
import pandas as pd
import pytest

import ruotools as rt

matplotlib.use("Agg")


class Field:
    """A model without a fit: ``drift(x, t)`` and ``growth(x, t)`` given as NumPy functions."""

    def __init__(self, drift=None, growth=None, use_rep="X", time_key="time"):
        self.use_rep, self.time_key = use_rep, time_key
        if drift is not None:
            self.drift = drift
        if growth is not None:
            self.growth = growth


def _adata(n=90, d=3, seed=0, time_labels=None):
    rng = np.random.default_rng(seed)
    a = ad.AnnData(rng.normal(size=(n, d)).astype(np.float32))
    a.var_names = [f"g{i}" for i in range(d)]
    t = np.repeat([1.0, 2.0, 3.0], n // 3)
    a.obs["time"] = t if time_labels is None else pd.Categorical([time_labels[int(v) - 1] for v in t])
    return a


def _pca_adata(n_cells, n_genes, n_pcs, seed=0, outside=()):
    """Cells in gene space, their PCA coordinates and loadings (orthonormal columns; ``outside`` genes: zero rows)."""
    rng = np.random.default_rng(seed)
    pcs, _ = np.linalg.qr(rng.normal(size=(n_genes, n_pcs)))
    pcs[list(outside)] = 0.0
    y = rng.normal(size=(n_cells, n_genes))
    mu = y.mean(0)
    a = ad.AnnData(y.astype(np.float32))
    a.var_names = [f"gene{i}" for i in range(n_genes)]
    a.obsm["X_pca"] = (y - mu) @ pcs
    a.varm["PCs"] = pcs
    a.obs["time"] = np.repeat([0.0, 1.0], n_cells // 2)
    return a, y, mu, pcs


def test_linear_field_jacobian_is_its_matrix():
    a = _adata()
    m = np.array([[-1.0, 0.5, 0.0], [2.0, -0.3, -1.5], [0.0, 0.7, -2.0]])
    field = Field(drift=lambda x, t: x @ m.T + np.array([0.1, -0.2, 0.3]) + t[:, None])
    out = rt.tl.jacobian(a, model=field)
    np.testing.assert_allclose(out["mean"], m, rtol=1e-5, atol=1e-6)
    assert list(out["genes"]) == ["g0", "g1", "g2"]
    assert out["n_cells"] == a.n_obs
    assert a.uns["ruot_jacobian"] is out
    # a subset of the genes is the sub-block, in the order asked for
    sub = rt.tl.jacobian(a, model=field, genes=["g2", "g0"])
    np.testing.assert_allclose(sub["mean"], m[np.ix_([2, 0], [2, 0])], rtol=1e-5, atol=1e-6)


def test_pca_jacobian_matches_the_gene_space_map():
    """PCs · J_pca · PCsᵀ equals the finite-difference Jacobian of y ↦ PCs · u(PCsᵀ(y − μ)), genes of the PCA only."""
    a, y, mu, pcs = _pca_adata(40, 8, 3, outside=(2, 5))
    rng = np.random.default_rng(1)
    m, b = rng.normal(size=(3, 3)), rng.normal(size=(3, 3))

    def drift_pc(x, t):
        return x @ m.T + 0.5 * np.tanh(x @ b.T) * (1 + t[:, None])

    out = rt.tl.jacobian(a, model=Field(drift=drift_pc, use_rep="X_pca"))
    fitted = [g for g in range(8) if g not in (2, 5)]
    assert list(out["genes"]) == [f"gene{g}" for g in fitted]

    t = a.obs["time"].to_numpy()
    h = 1e-6
    direct = np.zeros((8, 8))
    for j in range(8):
        step = np.zeros(8)
        step[j] = h
        up = drift_pc((y + step - mu) @ pcs, t) @ pcs.T
        down = drift_pc((y - step - mu) @ pcs, t) @ pcs.T
        direct[:, j] = ((up - down) / (2 * h)).mean(0)
    np.testing.assert_allclose(out["mean"], direct[np.ix_(fitted, fitted)], atol=1e-5)
    assert np.abs(direct).max() > 0.1  # a real comparison

    with pytest.raises(ValueError, match="outside the fit"):
        rt.tl.jacobian(a, model=Field(drift=drift_pc, use_rep="X_pca"), genes=["gene2"])
    with pytest.raises(KeyError, match=r"not in `adata\.var_names`"):
        rt.tl.jacobian(a, model=Field(drift=drift_pc, use_rep="X_pca"), genes=["nope"])


@pytest.mark.parametrize("flavor", ["deepruot", "var_ruot"])
def test_autograd_jacobian_matches_differences_of_the_drift_in_user_units(flavor, random_model):
    a = _adata(n=60, d=3)
    x, t = a.X.astype(np.float64), a.obs["time"].to_numpy() * 3.0
    a.obs["time"] = t
    model = random_model(flavor, x, t)
    out = rt.tl.jacobian(a, model=model)
    h = 1e-2
    fd = np.stack([(model.drift(x + h * e, t) - model.drift(x - h * e, t)) / (2 * h) for e in np.eye(3)], -1)
    fd = fd.mean(0)
    assert np.abs(fd).max() > 0.05
    np.testing.assert_allclose(out["mean"], fd, rtol=2e-3, atol=2e-3 * np.abs(fd).max())


@pytest.mark.parametrize("flavor", ["deepruot", "var_ruot"])
def test_var_ruot_jacobian_is_symmetric_and_says_so(flavor, ruotools_log, tmp_path, random_model):
    a = _adata(n=60, d=3)
    x, t = a.X.astype(np.float64), a.obs["time"].to_numpy() * 3.0
    a.obs["time"] = t
    out = rt.tl.jacobian(a, model=random_model(flavor, x, t))
    j = out["mean"]
    asymmetry = np.abs(j - j.T).max() / np.abs(j).max()
    warned = "cannot tell who regulates whom" in ruotools_log.text
    if flavor == "var_ruot":  # the drift ∇λ: J is the Hessian of λ
        assert asymmetry < 1e-5
        assert out["params"]["symmetric"] is True
        assert warned
    else:
        assert asymmetry > 0.01  # a free drift: not symmetric
        assert out["params"]["symmetric"] is False
        assert not warned
    a.write_h5ad(tmp_path / "j.h5ad")
    ax = rt.pl.jacobian(ad.read_h5ad(tmp_path / "j.h5ad"), show=False)
    assert ("var_ruot: symmetric, no direction" in ax.get_title()) == (flavor == "var_ruot")
    matplotlib.pyplot.close("all")


def test_groupby_and_time_select_the_right_cells():
    """drift u_i = t·x_i² has J = diag(2 t x): each mean is that of the selected cells."""
    a = _adata(n=90, d=2, time_labels=["D1", "D2", "D3"])
    t_num = np.repeat([1.0, 2.0, 3.0], 30)
    a.obs["kind"] = pd.Categorical(np.tile(["a", "b", "a"], 30), categories=["b", "c", "a"])
    a.obs.loc[a.obs_names[:4], "kind"] = np.nan
    field = Field(drift=lambda x, t: t[:, None] * x**2)
    x = a.X.astype(np.float64)

    def expected(mask):
        return np.diag(2 * (t_num[mask, None] * x[mask]).mean(0))

    out = rt.tl.jacobian(a, model=field, groupby="kind")
    np.testing.assert_allclose(out["mean"], expected(np.ones(90, bool)), atol=1e-6)
    assert list(out["group_names"]) == ["b", "a"]  # the column's order; "c" has no cell
    kind = a.obs["kind"].to_numpy()
    assert list(out["group_n_cells"]) == [int((kind == "b").sum()), int((kind == "a").sum())]
    for k, name in enumerate(["b", "a"]):
        np.testing.assert_allclose(out["groups"][k], expected(kind == name), atol=1e-6)

    by_label = rt.tl.jacobian(a, model=field, time="D2", groupby="kind")
    by_value = rt.tl.jacobian(a, model=field, time=2)
    np.testing.assert_allclose(by_label["mean"], expected(t_num == 2), atol=1e-6)
    np.testing.assert_array_equal(by_label["mean"], by_value["mean"])
    assert by_label["n_cells"] == 30
    np.testing.assert_allclose(by_label["groups"][0], expected((t_num == 2) & (kind == "b")), atol=1e-6)
    two = rt.tl.jacobian(a, model=field, time=["D1", 3])
    np.testing.assert_allclose(two["mean"], expected(t_num != 2), atol=1e-6)

    before = dict(a.uns)
    with pytest.raises(ValueError, match=r"no cell at \[5.0\]"):
        rt.tl.jacobian(a, model=field, time=5)
    with pytest.raises(KeyError, match="nope"):
        rt.tl.jacobian(a, model=field, groupby="nope")
    assert a.uns["ruot_jacobian"] is before["ruot_jacobian"]  # failed calls write nothing


def test_missing_fit_is_a_key_error_naming_fit_ruot():
    a = _adata()
    with pytest.raises(KeyError, match=r"rt\.tl\.fit_ruot"):
        rt.tl.jacobian(a)
    assert "ruot_jacobian" not in a.uns
    with pytest.raises(TypeError, match="drift"):
        rt.tl.jacobian(a, model=object())


def test_memory_is_bounded_at_2000_genes():
    """500 cells × 2,000 genes: a per-cell genes × genes tensor would be 8 GB; the call stays under 100 MB."""
    a, _, _, pcs = _pca_adata(500, 2000, 10)
    rng = np.random.default_rng(2)
    m = rng.normal(size=(10, 10))
    field = Field(drift=lambda x, t: x @ m.T + 0.1 * x**2, use_rep="X_pca")
    tracemalloc.start()
    try:
        out = rt.tl.jacobian(a, model=field, groupby="time")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out["mean"].shape == (2000, 2000)
    assert out["groups"].shape == (2, 2000, 2000)
    assert peak < 100e6, f"peak {peak / 1e6:.0f} MB"
    x = a.obsm["X_pca"]
    expected = pcs[:50] @ (m + np.diag(0.2 * x.mean(0))) @ pcs[:50].T
    np.testing.assert_allclose(out["mean"][:50, :50], expected, atol=1e-4)


def _top_entries(j, top):
    rank = np.abs(j).astype(float)
    np.fill_diagonal(rank, -1)
    order = np.argsort(-rank, axis=None, kind="stable")[:top]
    return np.unravel_index(order, j.shape)


def test_plot_from_a_reloaded_h5ad(tmp_path):
    a, _, _, _ = _pca_adata(60, 30, 4, seed=3)
    rng = np.random.default_rng(4)
    m = rng.normal(size=(4, 4))
    a.obs["half"] = pd.Categorical(np.where(np.arange(60) % 2 == 0, "even", "odd"))
    rt.tl.jacobian(a, model=Field(drift=lambda x, t: x @ m.T + np.sin(x), use_rep="X_pca"), groupby="half")
    a.write_h5ad(tmp_path / "j.h5ad")
    back = ad.read_h5ad(tmp_path / "j.h5ad")
    stored = back.uns["ruot_jacobian"]
    np.testing.assert_array_equal(stored["groups"], a.uns["ruot_jacobian"]["groups"])
    assert list(stored["group_names"]) == ["even", "odd"]

    ax = rt.pl.jacobian(back, group="odd", top=12, show=False, save=tmp_path / "j.png")
    assert (tmp_path / "j.png").stat().st_size > 0
    j = np.asarray(stored["groups"][1])
    rows, cols = _top_entries(j, 12)
    genes = np.asarray(stored["genes"]).astype(str)
    assert [t.get_text() for t in ax.get_yticklabels()] == list(genes[list(dict.fromkeys(rows))])
    assert [t.get_text() for t in ax.get_xticklabels()] == list(genes[list(dict.fromkeys(cols))])
    assert ax.get_xlabel().startswith("regulator")
    assert ax.get_ylabel().startswith("effect on")
    im = ax.get_images()[0]
    assert im.norm.vmax > 0
    assert im.norm.vmin == -im.norm.vmax  # diverging, centred at 0
    assert im.norm.vmax == pytest.approx(np.abs(j[rows, cols]).max(), rel=1e-6)
    assert "half = odd" in ax.get_title()
    with pytest.raises(KeyError, match="not among"):
        rt.pl.jacobian(back, group="nope", show=False)
    del back.uns["ruot_jacobian"]
    with pytest.raises(KeyError, match=r"rt\.tl\.jacobian"):
        rt.pl.jacobian(back, show=False)
    matplotlib.pyplot.close("all")


def test_tiny_real_fit_end_to_end(gene_fitted, tmp_path):
    adata, model = gene_fitted
    out = rt.tl.jacobian(adata, groupby="time", time=[1, 2])
    assert list(out["genes"]) == list(adata.var_names)
    t = adata.obs["time"].to_numpy()
    sel = (t == 1) | (t == 2)
    x = np.asarray(adata.X, dtype=np.float64)[sel]
    h = 1e-2
    fd = np.stack([(model.drift(x + h * e, t[sel]) - model.drift(x - h * e, t[sel])) / (2 * h) for e in np.eye(2)], -1)
    np.testing.assert_allclose(out["mean"], fd.mean(0), rtol=1e-2, atol=1e-2 * np.abs(fd).max())
    assert list(out["group_names"]) == ["1.0", "2.0"]
    adata.write_h5ad(tmp_path / "fit.h5ad")
    ax = rt.pl.jacobian(ad.read_h5ad(tmp_path / "fit.h5ad"), group=2, diagonal=True, show=False)
    assert "time = 2.0" in ax.get_title()
    matplotlib.pyplot.close("all")
