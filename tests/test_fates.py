"""`rt.tl.fate_probabilities`: growth-weighted fates of every cell's descendants."""

import numpy as np
import pandas as pd
import pytest

import ruotools as rt
from ruotools._keys import Keys

TOY_FIT = {
    "max_epochs": {"pretrain": 30, "refine": 2, "score": 2, "joint": 0},
    "hidden_dim": 16,
    "batch_size": 64,
    "show_progress_bar": False,
    "accelerator": "cpu",
}


def _subset(adata, n_per_time=60, seed=0):
    rng = np.random.default_rng(seed)
    t = adata.obs["time"].to_numpy()
    idx = np.concatenate([rng.choice(np.flatnonzero(t == tk), n_per_time, replace=False) for tk in np.unique(t)])
    return adata[np.sort(idx)].copy()


def _with_clusters(adata):
    """Two clusters at the last time point split at the median of the first coordinate."""
    t = adata.obs["time"].to_numpy()
    x1 = np.asarray(adata.X)[:, 0]
    last = t == t.max()
    labels = np.where(x1 > np.median(x1[last]), "hi", "lo").astype(object)
    labels[~last] = "early"
    adata.obs["cluster"] = pd.Categorical(labels)
    return adata


def _two_branch(n_per_group=40, seed=0):
    """t=0: halves at (∓0.5, 0); t=1: branch L at (−2, 2) and R at (3, 6); t=0.5 half-way between.

    R is placed far away so that every t=0 cell is nearer to L: a model that does not move the cells
    gets half of them wrong, and only the learned flow (left half → L, right half → R, the optimal
    transport) gets them right.
    """
    import anndata as ad

    rng = np.random.default_rng(seed)
    blocks, times, branch = [], [], []
    for tv in (0.0, 0.5, 1.0):
        for start, end, name in [((-0.5, 0.0), (-2.0, 2.0), "L"), ((0.5, 0.0), (3.0, 6.0), "R")]:
            centre = (1 - tv) * np.asarray(start) + tv * np.asarray(end)
            blocks.append(rng.normal(centre, 0.12, size=(n_per_group, 2)))
            times += [tv] * n_per_group
            branch += [name] * n_per_group
    adata = ad.AnnData(np.vstack(blocks).astype(np.float32))
    adata.obs_names = [f"c{i}" for i in range(adata.n_obs)]
    adata.obs["time"] = np.asarray(times)
    adata.obs["branch"] = pd.Categorical(branch)
    return adata


def test_rows_sum_to_one_and_outputs(gene_fitted):
    adata, _ = gene_fitted
    adata = _with_clusters(_subset(adata))
    adata.X[3] = np.nan  # an excluded cell gets a NaN row
    fates = rt.tl.fate_probabilities(adata, "cluster", n_samples=2, n_steps_per_unit=10, batch_size=50)
    keys = Keys("ruot")
    assert list(fates.columns) == ["hi", "lo"]
    assert fates.index.equals(adata.obs_names)
    assert fates.iloc[3].isna().all()
    ok = np.ones(adata.n_obs, dtype=bool)
    ok[3] = False
    np.testing.assert_allclose(fates.to_numpy()[ok].sum(axis=1), 1.0, atol=1e-9)
    assert np.all(fates.to_numpy()[ok] >= 0)
    stored = adata.obsm[keys.fate_probabilities]
    assert stored.dtype == np.float32
    assert stored.shape == (adata.n_obs, 2)
    np.testing.assert_allclose(stored[ok], fates.to_numpy()[ok], rtol=1e-6)
    assert list(adata.uns[keys.fate_probabilities]["names"]) == ["hi", "lo"]
    assert adata.uns[keys.fate_probabilities]["params"]["n_samples"] == 2
    # last time point: one-hot of the cell's own cluster
    last = (adata.obs["time"] == 4.0).to_numpy()
    own = adata.obs["cluster"].astype(str).to_numpy()[last]
    np.testing.assert_array_equal(fates.to_numpy()[last][np.arange(last.sum()), (own == "lo").astype(int)], 1.0)
    # seeded: the same call gives the same table
    again = rt.tl.fate_probabilities(adata, "cluster", n_samples=2, n_steps_per_unit=10, batch_size=50)
    pd.testing.assert_frame_equal(fates, again)


def test_deterministic_single_path(gene_fitted):
    adata, _ = gene_fitted
    adata = _with_clusters(_subset(adata, 30))
    rt.tl.fate_probabilities(adata, "cluster", stochastic=False, n_samples=5, n_steps_per_unit=10)
    assert adata.uns[Keys("ruot").fate_probabilities]["params"]["n_samples"] == 1


def test_errors(gene_fitted):
    adata, _ = gene_fitted
    adata = _with_clusters(_subset(adata, 20))
    with pytest.raises(KeyError, match=r"adata\.obs\['nope'\]"):
        rt.tl.fate_probabilities(adata, "nope")
    adata.obs["numeric"] = 1.0
    with pytest.raises(TypeError, match="categorical"):
        rt.tl.fate_probabilities(adata, "numeric")
    adata.obs["early_only"] = adata.obs["cluster"].astype(str).where(adata.obs["time"] < 4.0)
    with pytest.raises(ValueError, match="last time point"):
        rt.tl.fate_probabilities(adata, "early_only")
    assert Keys("ruot").fate_probabilities not in adata.obsm


def test_two_branch_toy_recovers_branches():
    adata = _two_branch()
    x, t = np.asarray(adata.X), adata.obs["time"].to_numpy()
    t0 = t == 0.0
    truth_r = x[t0, 0] > 0
    # the static answer (nearest t=1 cell) is L for every t=0 cell: the test needs the learned flow
    d_l = np.linalg.norm(x[t0][:, None] - x[(t == 1.0) & (adata.obs["branch"] == "L").to_numpy()], axis=2).min(1)
    d_r = np.linalg.norm(x[t0][:, None] - x[(t == 1.0) & (adata.obs["branch"] == "R").to_numpy()], axis=2).min(1)
    assert np.all(d_l < d_r)
    rt.tl.fit_ruot(adata, "time", use_rep="X", random_state=0, **TOY_FIT)
    fates = rt.tl.fate_probabilities(adata, "branch", n_samples=4, n_neighbors=10)
    assert list(fates.columns) == ["L", "R"]
    accuracy = np.mean(fates.to_numpy()[t0].argmax(axis=1) == truth_r)
    assert accuracy > 0.9, accuracy


def test_outputs_survive_h5ad(gene_fitted, tmp_path):
    import anndata as ad

    adata, _ = gene_fitted
    adata = _with_clusters(_subset(adata, 20))
    fates = rt.tl.fate_probabilities(adata, "cluster", stochastic=False, n_steps_per_unit=10)
    adata.write_h5ad(tmp_path / "a.h5ad")
    back = ad.read_h5ad(tmp_path / "a.h5ad")
    key = Keys("ruot").fate_probabilities
    np.testing.assert_allclose(back.obsm[key], fates.to_numpy(), rtol=1e-6)
    assert list(back.uns[key]["names"]) == list(fates.columns)
    assert back.uns[key]["params"]["cluster_key"] == "cluster"
