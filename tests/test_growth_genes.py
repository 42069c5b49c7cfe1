"""`rt.tl.growth_genes` and `rt.pl.growth_genes`: the mean gradient of the growth rate, in genes."""

import anndata as ad
import matplotlib
import numpy as np
import pandas as pd
import pytest

import ruotools as rt
from ruotools.core.config import TrainConfig
from ruotools.core.data import Standardizer
from ruotools.core.train import networks_from_config

matplotlib.use("Agg")


class Growth:
    """A model without a fit: a growth rate ``growth(x, t)`` given as a NumPy function."""

    def __init__(self, growth, use_rep="X", time_key="time"):
        self.growth, self.use_rep, self.time_key = growth, use_rep, time_key


def _adata(n=90, d=4, seed=0):
    rng = np.random.default_rng(seed)
    a = ad.AnnData(rng.normal(size=(n, d)).astype(np.float32))
    a.var_names = [f"g{i}" for i in range(d)]
    a.obs["time"] = pd.Categorical(np.repeat(["day 1", "day 2", "day 3"], n // 3))
    return a


W = np.array([0.5, -2.0, 0.0, 1.2])


def _known(x, t):
    """g = w·x + 0.3·t·x₀²: ∇g = w + (0.6·t·x₀, 0, 0, 0)."""
    return x @ W + 0.3 * t * x[:, 0] ** 2


def _expected(x, t):
    grad = np.tile(W, (len(x), 1))
    grad[:, 0] += 0.6 * t * x[:, 0]
    return grad.mean(0)


def test_gradient_of_a_known_growth_rate():
    a = _adata()
    x, t = a.X.astype(np.float64), np.repeat([1.0, 2.0, 3.0], 30)
    df = rt.tl.growth_genes(a, model=Growth(_known))
    want = _expected(x, t)
    np.testing.assert_allclose(a.var["ruot_growth_gradient"].to_numpy(), want, atol=1e-6)
    assert list(df["gene"]) == list(np.asarray(a.var_names)[np.argsort(-want)])  # ranked, most positive first
    assert list(df["rank"]) == [1, 2, 3, 4]
    assert set(df["group"]) == {"all cells"}
    assert (df["n_cells"] == 90).all()
    assert a.uns["ruot_growth_genes"]["ranking"] is df


def test_gradient_through_pca_loadings():
    """For a fit on PCA, ∇_genes g = PCs · ∇_pca g; genes outside the PCA get NaN and are not ranked."""
    rng = np.random.default_rng(1)
    pcs, _ = np.linalg.qr(rng.normal(size=(10, 4)))
    pcs[[3, 7]] = 0.0
    a = ad.AnnData(rng.normal(size=(60, 10)).astype(np.float32))
    a.var_names = [f"gene{i}" for i in range(10)]
    a.obsm["X_pca"] = (a.X - a.X.mean(0)) @ pcs
    a.varm["PCs"] = pcs
    a.obs["time"] = np.repeat([0.0, 1.0], 30)
    df = rt.tl.growth_genes(a, model=Growth(_known, use_rep="X_pca"))
    x, t = a.obsm["X_pca"], a.obs["time"].to_numpy()
    col = a.var["ruot_growth_gradient"].to_numpy()
    fitted = np.ones(10, bool)
    fitted[[3, 7]] = False
    np.testing.assert_allclose(col[fitted], (pcs @ _expected(x, t))[fitted], atol=1e-6)
    assert np.isnan(col[~fitted]).all()
    assert set(df["gene"]) == {f"gene{i}" for i in np.flatnonzero(fitted)}


def test_groupby_and_time_rank_the_right_cells():
    a = _adata()
    x, t = a.X.astype(np.float64), np.repeat([1.0, 2.0, 3.0], 30)
    a.obs["kind"] = pd.Categorical(np.tile(["b", "a", "b"], 30), categories=["b", "a"])
    df = rt.tl.growth_genes(a, model=Growth(_known), groupby="kind", time=["day 2", 3])
    sel = t >= 2
    assert list(df["group"].unique()) == ["all cells", "b", "a"]
    np.testing.assert_allclose(a.var["ruot_growth_gradient"].to_numpy(), _expected(x[sel], t[sel]), atol=1e-6)
    kind = a.obs["kind"].to_numpy()
    for name in ("b", "a"):
        rows = df[df["group"] == name]
        mask = sel & (kind == name)
        assert (rows["n_cells"] == mask.sum()).all()
        got = rows.set_index("gene")["gradient"].reindex(a.var_names).to_numpy()
        np.testing.assert_allclose(got, _expected(x[mask], t[mask]), atol=1e-6)
        assert list(rows["rank"]) == [1, 2, 3, 4]
        assert rows["gradient"].is_monotonic_decreasing
    assert list(a.uns["ruot_growth_genes"]["params"]["time"]) == [2.0, 3.0]


def test_errors_leave_adata_unchanged():
    a = _adata()
    with pytest.raises(KeyError, match=r"rt\.tl\.fit_ruot"):
        rt.tl.growth_genes(a)
    a.obs["kind"] = pd.Categorical(np.tile(["all cells", "x"], 45))
    with pytest.raises(ValueError, match="rename"):
        rt.tl.growth_genes(a, model=Growth(_known), groupby="kind")
    with pytest.raises(TypeError, match="growth"):
        rt.tl.growth_genes(a, model=object())
    assert "ruot_growth_gradient" not in a.var
    assert "ruot_growth_genes" not in a.uns

    config = TrainConfig(growth=False, hidden_dim=8)
    nets = networks_from_config(4, config)
    balanced = rt.RUOTModel(
        nets, config, Standardizer(np.zeros(4), 1.0, 1.0, 1.0), time_points=np.array([1.0, 2.0, 3.0]),
        relative_mass=np.ones(3), use_rep="X", time_key="time",
    )  # fmt: skip
    with pytest.raises(ValueError, match="no growth"):
        rt.tl.growth_genes(a, model=balanced)


@pytest.mark.parametrize("flavor", ["deepruot", "var_ruot"])
def test_autograd_gradient_matches_differences_of_the_growth_rate(flavor, random_model):
    a = _adata(n=60, d=3)
    x, t = a.X.astype(np.float64), np.repeat([0.0, 3.0, 6.0], 20)
    a.obs["time"] = t
    model = random_model(flavor, x, t)
    rt.tl.growth_genes(a, model=model)
    h = 1e-2
    fd = np.stack([(model.growth(x + h * e, t) - model.growth(x - h * e, t)) / (2 * h) for e in np.eye(3)], -1)
    fd = fd.mean(0)
    assert np.abs(fd).max() > 0.05
    got = a.var["ruot_growth_gradient"].to_numpy()
    np.testing.assert_allclose(got, fd, rtol=2e-3, atol=2e-3 * np.abs(fd).max())


@pytest.mark.parametrize("flavor", ["deepruot", "var_ruot"])
def test_var_ruot_growth_gradient_is_the_mean_drift_rescaled_and_says_so(flavor, ruotools_log, random_model):
    a = _adata(n=60, d=3)
    x, t = a.X.astype(np.float64), np.repeat([0.0, 3.0, 6.0], 20)
    a.obs["time"] = t
    model = random_model(flavor, x, t)
    scale = model.standardizer.x_scale
    rt.tl.growth_genes(a, model=model)
    got = a.var["ruot_growth_gradient"].to_numpy()
    rescaled_drift = model.drift(x, t).mean(0) / (2 * model.config.alpha * scale**2)
    warned = "orders genes by their mean velocity" in ruotools_log.text
    tied = a.uns["ruot_growth_genes"]["params"]["tied_to_drift"]
    if flavor == "var_ruot":  # g = λ / (2α) + c(t), u = ∇λ
        np.testing.assert_allclose(got, rescaled_drift, rtol=1e-4)
        assert tied is True
        assert warned
    else:
        assert not np.allclose(got, rescaled_drift, rtol=0.1)
        assert tied is False
        assert not warned
    ax = rt.pl.growth_genes(a, show=False)
    assert ("var_ruot: the mean drift, rescaled" in ax.get_title()) == (flavor == "var_ruot")
    matplotlib.pyplot.close("all")


def test_plot_from_a_reloaded_h5ad(tmp_path):
    rng = np.random.default_rng(2)
    a = ad.AnnData(rng.normal(size=(60, 40)).astype(np.float32))
    a.var_names = [f"gene{i}" for i in range(40)]
    a.obs["time"] = np.repeat([0.0, 1.0], 30)
    a.obs["half"] = pd.Categorical(np.where(np.arange(60) < 20, "early", "late"))
    w = rng.normal(size=40)
    rt.tl.growth_genes(a, model=Growth(lambda x, t: x @ w + 0.1 * x[:, 0] ** 2), groupby="half")
    a.write_h5ad(tmp_path / "g.h5ad")
    back = ad.read_h5ad(tmp_path / "g.h5ad")
    pd.testing.assert_frame_equal(
        back.uns["ruot_growth_genes"]["ranking"].reset_index(drop=True),
        a.uns["ruot_growth_genes"]["ranking"].reset_index(drop=True),
        check_dtype=False,
        check_index_type=False,
    )

    ax = rt.pl.growth_genes(back, group="late", n_top=5, show=False, save=tmp_path / "g.png")
    assert (tmp_path / "g.png").stat().st_size > 0
    rows = back.uns["ruot_growth_genes"]["ranking"]
    rows = rows[rows["group"] == "late"].sort_values("gradient", ascending=False)
    want = list(rows["gene"][:5]) + list(rows["gene"][-5:])
    assert [t.get_text() for t in ax.get_yticklabels()] == want  # top to bottom: most positive … most negative
    bars = ax.patches[:10]
    widths = [b.get_width() for b in bars]
    np.testing.assert_allclose(widths, list(rows["gradient"][:5]) + list(rows["gradient"][-5:]), rtol=1e-6)
    reds = [b.get_facecolor() == bars[0].get_facecolor() for b in bars]
    assert reds == [w > 0 for w in widths]  # coloured by sign
    assert any(line.get_xdata()[0] == 0 for line in ax.get_lines())  # zero line
    assert "∂g/∂gene" in ax.get_xlabel()
    assert "half = late" in ax.get_title()
    overall = rt.pl.growth_genes(back, show=False)
    assert len(overall.get_yticklabels()) == 20
    with pytest.raises(KeyError, match="not in the ranking"):
        rt.pl.growth_genes(back, group="nope", show=False)
    del back.uns["ruot_growth_genes"]
    with pytest.raises(KeyError, match=r"rt\.tl\.growth_genes"):
        rt.pl.growth_genes(back, show=False)
    matplotlib.pyplot.close("all")


def test_tiny_real_fit_end_to_end(gene_fitted):
    adata, model = gene_fitted
    df = rt.tl.growth_genes(adata, groupby="time")
    x, t = np.asarray(adata.X, dtype=np.float64), adata.obs["time"].to_numpy()
    h = 1e-2
    fd = np.stack([(model.growth(x + h * e, t) - model.growth(x - h * e, t)) / (2 * h) for e in np.eye(2)], -1)
    np.testing.assert_allclose(
        adata.var["ruot_growth_gradient"].to_numpy(), fd.mean(0), rtol=1e-2, atol=1e-2 * np.abs(fd).max()
    )
    assert set(df["group"]) == {"all cells", "0.0", "1.0", "2.0", "3.0", "4.0"}
    ax = rt.pl.growth_genes(adata, group=3, show=False)
    assert "time = 3.0" in ax.get_title()
    matplotlib.pyplot.close("all")
