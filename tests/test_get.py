"""`rt.get`: tidy tables of trajectories, mass, growth and gene trends."""

import numpy as np
import pandas as pd
import pytest

import ruotools as rt
from ruotools._keys import Keys


def _simulated(gene_fitted, n_particles=50):
    adata, _ = gene_fitted
    traj = rt.tl.simulate(adata, n_particles=n_particles, times=np.linspace(0, 4, 9), n_steps_per_unit=10)
    return adata, traj


def test_lazy_namespace():
    assert set(rt.get.__all__) == {"trajectories", "mass", "growth", "gene_trends"}


def test_trajectories_table(gene_fitted):
    adata, traj = _simulated(gene_fitted)
    df = rt.get.trajectories(adata)
    assert list(df.columns) == ["particle", "start_obs", "time", "weight", "log_mass", "dim_1", "dim_2"]
    assert len(df) == 9 * 50
    last = df[df["time"] == traj.times[-1]]
    np.testing.assert_allclose(last[["dim_1", "dim_2"]].to_numpy(), traj.positions[-1])
    np.testing.assert_allclose(last["weight"].to_numpy(), traj.weights[-1])
    assert list(last["start_obs"]) == list(traj.start_obs)
    assert set(df["particle"]) == set(range(50))


def test_mass_matches_trajectories(gene_fitted):
    adata, traj = _simulated(gene_fitted)
    df = rt.get.mass(adata)
    assert list(df.columns) == ["time", "total_mass", "observed"]
    np.testing.assert_allclose(df["time"], traj.times)
    np.testing.assert_allclose(df["total_mass"], traj.total_mass)
    assert df["total_mass"].iloc[0] == pytest.approx(1.0)
    counts = adata.obs["time"].value_counts().sort_index().to_numpy()
    at_points = df.set_index("time")["observed"].loc[[0.0, 1.0, 2.0, 3.0, 4.0]].to_numpy()
    np.testing.assert_allclose(at_points, counts / counts[0])
    assert df["observed"].isna().sum() == 4  # the half-way times


def test_growth_table(gene_fitted):
    adata, _ = gene_fitted
    adata.obs["half"] = pd.Categorical(np.where(np.arange(adata.n_obs) % 2, "odd", "even"))
    rates = adata.obs[Keys("ruot").growth].to_numpy()
    df = rt.get.growth(adata)
    assert list(df.columns) == ["time", "n_cells", "mean", "median"]
    np.testing.assert_allclose(df["time"], [0, 1, 2, 3, 4])
    t = adata.obs["time"].to_numpy()
    np.testing.assert_allclose(df["mean"], [rates[t == tk].mean() for tk in range(5)], rtol=1e-5)
    np.testing.assert_allclose(df["median"], [np.median(rates[t == tk]) for tk in range(5)], rtol=1e-5)
    by = rt.get.growth(adata, groupby="half")
    assert list(by.columns) == ["time", "half", "n_cells", "mean", "median"]
    assert len(by) == 10
    assert by["n_cells"].sum() == adata.n_obs
    with pytest.raises(KeyError, match=r"adata\.obs\['nope'\]"):
        rt.get.growth(adata, groupby="nope")


def test_gene_trends(gene_fitted):
    adata, traj = _simulated(gene_fitted)
    df = rt.get.gene_trends(adata, ["x1", "x2"], n_neighbors=1)
    assert list(df.columns) == ["time", "gene", "expression"]
    assert len(df) == 9 * 2
    # at the start every particle sits on its own cell: the trend is the mean of the start cells
    start = adata[traj.start_obs].X
    first = df[df["time"] == 0.0].set_index("gene")["expression"]
    np.testing.assert_allclose(first.loc[["x1", "x2"]].to_numpy(), np.asarray(start).mean(axis=0), rtol=1e-5)
    x = np.asarray(adata.X)
    assert df["expression"].between(x.min(), x.max()).all()
    with pytest.raises(KeyError, match="not found"):
        rt.get.gene_trends(adata, "nope")


def test_missing_trajectories():
    import anndata as ad

    with pytest.raises(KeyError, match=r"rt\.tl\.simulate"):
        rt.get.trajectories(ad.AnnData(np.zeros((3, 2))))


def test_getters_on_reloaded_h5ad(gene_fitted, tmp_path):
    import anndata as ad

    adata, _ = _simulated(gene_fitted)
    adata.write_h5ad(tmp_path / "a.h5ad")
    back = ad.read_h5ad(tmp_path / "a.h5ad")
    pd.testing.assert_frame_equal(rt.get.mass(back), rt.get.mass(adata))
    pd.testing.assert_frame_equal(rt.get.growth(back), rt.get.growth(adata))
    pd.testing.assert_frame_equal(rt.get.trajectories(back), rt.get.trajectories(adata))
    pd.testing.assert_frame_equal(rt.get.gene_trends(back, "x1"), rt.get.gene_trends(adata, "x1"))
