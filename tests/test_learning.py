"""Small but real training runs: the fitted dynamics must learn what the data show."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import ruotools as rt
from ruotools.core.ot import wasserstein

GROWTH_A = 2.5  # cluster A's cell count is multiplied by this per time unit


def _two_clusters(seed=0, n_b=200, n_a0=100):
    """Two static Gaussian clusters in 2-D; A grows ×2.5 per time unit, B keeps its size."""
    rng = np.random.default_rng(seed)
    centre_a, centre_b = np.array([-2.0, 0.0]), np.array([2.0, 0.0])
    xs, times, labels = [], [], []
    for k in range(3):
        n_a = round(n_a0 * GROWTH_A**k)
        xs += [centre_a + 0.3 * rng.normal(size=(n_a, 2)), centre_b + 0.3 * rng.normal(size=(n_b, 2))]
        times += [np.full(n_a + n_b, float(k))]
        labels += ["A"] * n_a + ["B"] * n_b
    obs = pd.DataFrame({"time": np.concatenate(times), "cluster": pd.Categorical(labels)})
    obs.index = [f"c{i}" for i in range(len(obs))]
    return ad.AnnData(X=np.vstack(xs).astype(np.float32), obs=obs)


def test_growth_is_learned_where_cells_proliferate():
    adata = _two_clusters()
    rt.tl.fit_ruot(
        adata,
        "time",
        use_rep="X",
        max_epochs={"pretrain": 12, "refine": 1, "score": 1, "joint": 0},
        hidden_dim=32,
        batch_size=128,
        show_progress_bar=False,
        accelerator="cpu",
    )
    g = adata.obs["ruot_growth_rate"]
    g_a = float(g[adata.obs["cluster"] == "A"].mean())
    g_b = float(g[adata.obs["cluster"] == "B"].mean())
    # true rates: log 2.5 ≈ 0.92 in A, 0 in B
    assert g_a > 0.3
    assert g_a - g_b > 0.3
    assert abs(g_b) < 0.5 * g_a
    # and the predicted total mass follows the cell counts
    metrics = rt.tl.evaluate(adata, stochastic=False)
    counts = adata.obs["time"].value_counts().sort_index().to_numpy()
    relative_error = metrics["TMV"].to_numpy() / (counts[1:] / counts[0])
    assert (relative_error < 0.25).all(), relative_error


def test_short_fit_beats_the_no_motion_baseline():
    adata = rt.datasets.simulated_gene()
    rt.tl.fit_ruot(
        adata,
        "time",
        use_rep="X",
        max_epochs={"pretrain": 15, "refine": 2, "score": 3, "joint": 0},
        hidden_dim=32,
        batch_size=128,
        show_progress_bar=False,
        accelerator="cpu",
    )
    metrics = rt.tl.evaluate(adata, stochastic=False)
    x = np.asarray(adata.X, dtype=np.float64)
    t = adata.obs["time"].to_numpy()
    for tk in (1.0, 2.0, 3.0, 4.0):
        baseline = wasserstein(x[t == 0], x[t == tk], p=1)  # cells that did not move
        assert metrics.loc[tk, "W1"] < 0.6 * baseline, (tk, metrics.loc[tk, "W1"], baseline)


@pytest.fixture(scope="module")
def small_gene():
    adata = rt.datasets.simulated_gene()
    t = adata.obs["time"].to_numpy()
    rng = np.random.default_rng(0)
    idx = np.concatenate([rng.choice(np.flatnonzero(t == tk), 60, replace=False) for tk in np.unique(t)])
    return adata[np.sort(idx)].copy()


def _velocity(adata, seed):
    adata = adata.copy()
    rt.tl.fit_ruot(
        adata,
        "time",
        use_rep="X",
        max_epochs={"pretrain": 2, "refine": 1, "score": 1, "joint": 1},
        hidden_dim=16,
        batch_size=32,
        random_state=seed,
        show_progress_bar=False,
        accelerator="cpu",
    )
    return adata.layers["ruot_velocity"], adata.obs["ruot_growth_rate"].to_numpy(), adata.obs["ruot_potential"]


def test_fits_are_deterministic_per_seed(small_gene):
    v1, g1, p1 = _velocity(small_gene, 0)
    v2, g2, p2 = _velocity(small_gene, 0)
    v3, _, _ = _velocity(small_gene, 1)
    np.testing.assert_array_equal(v1, v2)
    np.testing.assert_array_equal(g1, g2)
    np.testing.assert_array_equal(p1, p2)
    assert np.abs(v1 - v3).max() > 1e-3
