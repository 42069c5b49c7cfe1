"""`rt.tl.fit_ruot`, `rt.tl.simulate` and `rt.tl.evaluate` against the AnnData contract of API.md."""

import copy
import logging

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import ruotools as rt
from ruotools.core.ot import wasserstein

FAST = {"max_epochs": 1, "hidden_dim": 16, "batch_size": 64, "show_progress_bar": False, "accelerator": "cpu"}
UNS_KEYS = {"params", "time_points", "use_rep", "history", "model", "version"}


def _small_gene(n_per_time=40, seed=0):
    """A subsample of ``simulated_gene`` with the same number of cells at every time point."""
    adata = rt.datasets.simulated_gene()
    rng = np.random.default_rng(seed)
    t = adata.obs["time"].to_numpy()
    idx = np.sort(
        np.concatenate([rng.choice(np.flatnonzero(t == tk), n_per_time, replace=False) for tk in np.unique(t)])
    )
    return adata[idx].copy()


def _snapshot(adata):
    return {
        "X": np.array(adata.X, copy=True),
        "obs": adata.obs.copy(),
        "obsm": {k: np.array(v, copy=True) for k, v in adata.obsm.items()},
        "layers": {k: np.array(v, copy=True) for k, v in adata.layers.items()},
        "uns": copy.deepcopy(dict(adata.uns)),
    }


def _assert_unchanged(adata, snap):
    np.testing.assert_array_equal(adata.X, snap["X"])
    pd.testing.assert_frame_equal(adata.obs, snap["obs"])
    assert set(adata.obsm) == set(snap["obsm"])
    for k, v in snap["obsm"].items():
        np.testing.assert_array_equal(adata.obsm[k], v)
    assert set(adata.layers) == set(snap["layers"])
    for k, v in snap["layers"].items():
        np.testing.assert_array_equal(adata.layers[k], v)
    assert set(adata.uns) == set(snap["uns"])
    for k, v in snap["uns"].items():
        if isinstance(v, dict):
            assert set(adata.uns[k]) == set(v), k


# --------------------------------------------------------------------------- written keys


def test_outputs_for_use_rep_x(gene_fitted):
    adata, model = gene_fitted
    n = adata.n_obs
    for key in ("ruot_velocity", "ruot_drift"):
        assert adata.layers[key].shape == (n, 2)
        assert adata.layers[key].dtype == np.float32
        assert np.isfinite(adata.layers[key]).all()
    assert not any(k.startswith("ruot_") for k in adata.obsm)
    assert adata.obs["ruot_growth_rate"].dtype == np.float32
    assert adata.obs["ruot_potential"].dtype == np.float32
    assert np.isfinite(adata.obs["ruot_growth_rate"]).all()
    assert np.isfinite(adata.obs["ruot_potential"]).all()
    # the drift v + ∇s differs from v when σ > 0
    assert not np.allclose(adata.layers["ruot_drift"], adata.layers["ruot_velocity"])

    uns = adata.uns["ruot"]
    assert set(uns) >= UNS_KEYS
    np.testing.assert_array_equal(uns["time_points"], [0.0, 1.0, 2.0, 3.0, 4.0])
    assert uns["use_rep"] == "X"
    assert uns["version"] == rt.__version__
    assert uns["params"]["time_key"] == "time"
    assert uns["params"]["use_rep"] == "X"
    assert uns["params"]["hidden_dim"] == 16
    assert uns["params"]["sigma"] == pytest.approx(model.sigma)
    np.testing.assert_allclose(uns["params"]["relative_mass"], np.array([400, 442, 530, 690, 969]) / 400)
    assert set(uns["history"]) == {"pretrain", "refine", "score", "joint"}
    assert len(uns["history"]["pretrain"]["loss"]) <= 3
    assert uns["model"]["dim"] == 2
    assert "pca" not in list(adata.uns["ruot_velocity_params"]["embeddings"])
    # the values written are the model's, at each cell's own time
    x, t = np.asarray(adata.X[:50], dtype=np.float64), adata.obs["time"].to_numpy()[:50]
    np.testing.assert_allclose(adata.layers["ruot_velocity"][:50], model.velocity(x, t), rtol=1e-6)
    np.testing.assert_allclose(adata.obs["ruot_growth_rate"].to_numpy()[:50], model.growth(x, t), rtol=1e-6)


def test_outputs_for_an_obsm_representation():
    adata = _small_gene()
    rng = np.random.default_rng(0)
    rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    coords = np.column_stack([adata.X, 0.1 * rng.normal(size=adata.n_obs)])
    adata.obsm["X_pca"] = (coords @ rotation).astype(np.float32)
    model = rt.tl.fit_ruot(adata, "time", **FAST)  # use_rep=None picks X_pca
    n = adata.n_obs
    for key in ("ruot_velocity_pca", "ruot_drift_pca"):
        assert adata.obsm[key].shape == (n, 3)
        assert adata.obsm[key].dtype == np.float32
    assert "ruot_velocity" not in adata.layers
    assert list(adata.uns["ruot_velocity_params"]["embeddings"]) == ["pca"]
    assert adata.uns["ruot"]["use_rep"] == "X_pca"
    assert adata.obs["ruot_growth_rate"].dtype == np.float32
    assert model.n_dims == 3

    # n_dims takes the first columns
    rt.tl.fit_ruot(adata, "time", use_rep="X_pca", n_dims=2, key_added="two", **FAST)
    assert adata.obsm["two_velocity_pca"].shape == (n, 2)
    assert adata.uns["two"]["params"]["n_dims"] == 2


def test_key_added_keeps_an_earlier_fit(gene_fitted):
    adata, _ = gene_fitted
    before = _snapshot(adata)
    rt.tl.fit_ruot(adata, "time", use_rep="X", key_added="other", random_state=1, **FAST)
    for key in ("other_velocity", "other_drift"):
        assert adata.layers[key].shape == (adata.n_obs, 2)
    for key in ("other_growth_rate", "other_potential"):
        assert key in adata.obs
    assert set(adata.uns["other"]) >= UNS_KEYS
    assert "other_velocity_params" in adata.uns
    # the default fit is intact
    for key in ("ruot_velocity", "ruot_drift"):
        np.testing.assert_array_equal(adata.layers[key], before["layers"][key])
    for key in ("ruot_growth_rate", "ruot_potential"):
        np.testing.assert_array_equal(adata.obs[key].to_numpy(), before["obs"][key].to_numpy())
    for name, weights in before["uns"]["ruot"]["model"]["state"].items():
        np.testing.assert_array_equal(adata.uns["ruot"]["model"]["state"][name], weights)
    assert not np.array_equal(adata.layers["other_velocity"], adata.layers["ruot_velocity"])
    # both models can be rebuilt
    v_other = rt.RUOTModel.from_adata(adata, key_added="other").velocity(np.zeros((1, 2)), 0.0)
    v_ruot = rt.RUOTModel.from_adata(adata).velocity(np.zeros((1, 2)), 0.0)
    assert not np.array_equal(v_other, v_ruot)


def test_default_representation():
    wide = ad.AnnData(X=np.random.default_rng(0).normal(size=(40, 60)).astype(np.float32))
    wide.obs["time"] = np.repeat([0.0, 1.0], 20)
    with pytest.raises(KeyError, match="pca"):
        rt.tl.fit_ruot(wide, "time", **FAST)
    assert not wide.layers
    small = _small_gene(20)
    rt.tl.fit_ruot(small, "time", **FAST)  # ≤ 50 columns and no X_pca: uses .X
    assert small.uns["ruot"]["use_rep"] == "X"
    assert small.layers["ruot_velocity"].shape == (small.n_obs, 2)


# --------------------------------------------------------------------------- missing values and time


def test_nan_cells_are_excluded_and_get_nan_outputs(ruotools_log):
    adata = _small_gene()
    adata.obs["time"] = adata.obs["time"].astype(float)
    nan_time = [0, 5, 77]
    nan_coord = [3, 100]
    adata.obs.iloc[nan_time, adata.obs.columns.get_loc("time")] = np.nan
    adata.X[nan_coord, 1] = np.nan
    time_before = adata.obs["time"].copy()
    rt.tl.fit_ruot(adata, "time", use_rep="X", **FAST)
    bad = np.zeros(adata.n_obs, dtype=bool)
    bad[nan_time + nan_coord] = True
    for values in (adata.layers["ruot_velocity"], adata.layers["ruot_drift"]):
        assert np.isnan(values[bad]).all()
        assert np.isfinite(values[~bad]).all()
    for col in ("ruot_growth_rate", "ruot_potential"):
        assert np.isnan(adata.obs[col].to_numpy()[bad]).all()
        assert np.isfinite(adata.obs[col].to_numpy()[~bad]).all()
    warnings = [r.getMessage() for r in ruotools_log.records if r.levelno >= logging.WARNING]
    assert any("5 cell" in msg for msg in warnings), warnings
    pd.testing.assert_series_equal(adata.obs["time"], time_before)
    # downstream tools skip them too
    metrics = rt.tl.evaluate(adata, stochastic=False)
    assert np.isfinite(metrics[["W1", "W2", "TMV"]].to_numpy()).all()
    traj = rt.tl.simulate(adata, times=[0.0, 1.0], stochastic=False)
    assert traj.positions.shape[1] == ((adata.obs["time"] == 0) & ~bad).sum()


def test_categorical_time_with_string_categories():
    adata = _small_gene()
    adata.obs["day"] = pd.Categorical(adata.obs["time"].astype(int).astype(str), categories=["0", "1", "2", "3", "4"])
    before = adata.obs["day"].copy()
    rt.tl.fit_ruot(adata, "day", use_rep="X", **FAST)
    assert isinstance(adata.obs["day"].dtype, pd.CategoricalDtype)
    assert list(adata.obs["day"].cat.categories) == ["0", "1", "2", "3", "4"]
    pd.testing.assert_series_equal(adata.obs["day"], before)
    np.testing.assert_array_equal(adata.uns["ruot"]["time_points"], [0.0, 1.0, 2.0, 3.0, 4.0])
    assert adata.uns["ruot"]["params"]["time_key"] == "day"
    # downstream tools read the same column
    assert list(rt.tl.evaluate(adata, stochastic=False).index) == [1.0, 2.0, 3.0, 4.0]


def test_uneven_time_spacing_is_accepted():
    adata = _small_gene()
    adata = adata[adata.obs["time"].isin([0.0, 1.0, 2.0])].copy()
    adata.obs["time"] = adata.obs["time"].map({0.0: 0.0, 1.0: 1.0, 2.0: 3.0}).astype(float)
    model = rt.tl.fit_ruot(adata, "time", use_rep="X", **FAST)
    np.testing.assert_array_equal(adata.uns["ruot"]["time_points"], [0.0, 1.0, 3.0])
    np.testing.assert_array_equal(model.time_points, [0.0, 1.0, 3.0])
    assert list(rt.tl.evaluate(adata, stochastic=False).index) == [1.0, 3.0]
    traj = rt.tl.simulate(adata, stochastic=False)
    assert traj.times[0] == 0.0
    assert traj.times[-1] == pytest.approx(3.0)


# --------------------------------------------------------------------------- mass


def test_balanced_model_has_zero_growth_and_cell_count_tmv():
    adata = _small_gene()
    keep = np.concatenate([np.flatnonzero(adata.obs["time"] == tk)[: 20 + 10 * int(tk)] for tk in range(5)])
    adata = adata[np.sort(keep)].copy()
    counts = adata.obs["time"].value_counts().sort_index().to_numpy()
    rt.tl.fit_ruot(adata, "time", use_rep="X", growth=False, **FAST)
    assert (adata.obs["ruot_growth_rate"] == 0).all()
    metrics = rt.tl.evaluate(adata, stochastic=False)
    np.testing.assert_allclose(metrics["TMV"].to_numpy(), np.abs(1 - counts[1:] / counts[0]), rtol=1e-4, atol=1e-5)


def test_relative_mass_is_honoured():
    adata = _small_gene()  # equal cell counts: a cell-count ratio would be 1 everywhere
    given = {0.0: 2.0, 1.0: 3.0, 2.0: 4.0, 3.0: 5.0, 4.0: 8.0}
    rt.tl.fit_ruot(adata, "time", use_rep="X", growth=False, relative_mass=given, **FAST)
    expected = np.array(list(given.values())) / 2.0
    np.testing.assert_allclose(adata.uns["ruot"]["params"]["relative_mass"], expected)
    assert bool(adata.uns["ruot"]["params"]["relative_mass_given"])
    metrics = rt.tl.evaluate(adata, stochastic=False)
    # no growth: the predicted mass stays 1, so TMV = |1 − m_k| against the *given* masses
    np.testing.assert_allclose(metrics["TMV"].to_numpy(), np.abs(1 - expected[1:]), rtol=1e-4)


def test_relative_mass_missing_a_time_point():
    adata = _small_gene()
    snap = _snapshot(adata)
    with pytest.raises(KeyError, match="relative_mass"):
        rt.tl.fit_ruot(adata, "time", use_rep="X", relative_mass={0.0: 1.0, 1.0: 2.0}, **FAST)
    _assert_unchanged(adata, snap)


# --------------------------------------------------------------------------- evaluate
# (invalid inputs, and that a failed call leaves adata unchanged: tests/test_validation.py)


def test_evaluate_table_and_uns(gene_fitted):
    adata, model = gene_fitted
    metrics = rt.tl.evaluate(adata, stochastic=False)
    assert isinstance(metrics, pd.DataFrame)
    assert list(metrics.index) == [1.0, 2.0, 3.0, 4.0]
    assert {"W1", "W2", "TMV"} <= set(metrics.columns)
    values = metrics[["W1", "W2", "TMV"]].to_numpy()
    assert np.isfinite(values).all()
    assert (values >= 0).all()
    assert (metrics["W1"] <= metrics["W2"] + 1e-9).all()  # W1 ≤ W2 always
    stored = adata.uns["ruot"]["metrics"]
    np.testing.assert_array_equal(stored["time"], [1.0, 2.0, 3.0, 4.0])
    for col in ("W1", "W2", "TMV"):
        np.testing.assert_allclose(stored[col], metrics[col].to_numpy())

    # independent recomputation of the deterministic metrics from the model
    t = adata.obs["time"].to_numpy()
    x = np.asarray(adata.X, dtype=np.float64)
    sim = model.simulate(x[t == 0], model.time_points, stochastic=False)
    for k, tk in enumerate(model.time_points[1:], start=1):
        w = np.exp(sim["log_mass"][k])
        assert metrics.loc[tk, "W1"] == pytest.approx(wasserstein(sim["X"][k], x[t == tk], w, None, p=1), rel=1e-6)
        assert metrics.loc[tk, "W2"] == pytest.approx(wasserstein(sim["X"][k], x[t == tk], w, None, p=2), rel=1e-6)
        n_ratio = (t == tk).sum() / (t == 0).sum()
        assert metrics.loc[tk, "TMV"] == pytest.approx(abs(w.sum() - n_ratio), rel=1e-6, abs=1e-9)


def _pot_w1(x, y):
    """W1 between two uniform clouds straight from POT: exact EMD with the Euclidean cost."""
    import ot

    return float(ot.emd2(ot.unif(len(x)), ot.unif(len(y)), ot.dist(x, y, metric="euclidean"), numItermax=10_000_000))


def test_evaluate_w1_references_equal_direct_pot(gene_fitted):
    adata, _ = gene_fitted
    t = adata.obs["time"].to_numpy()
    x = np.asarray(adata.X, dtype=np.float64)
    metrics = rt.tl.evaluate(adata, stochastic=False, random_state=3)
    assert list(metrics.columns[:3]) == ["W1", "W1_floor", "W1_nearest"]
    for k, tk in enumerate([1.0, 2.0, 3.0, 4.0], start=1):
        # no motion: the previous snapshot against this one, every cell (fewer than max_cells)
        assert metrics.loc[tk, "W1_nearest"] == pytest.approx(_pot_w1(x[t == tk - 1], x[t == tk]), rel=1e-9)
        # the floor: the mean over 5 splits of this snapshot into halves, drawn as documented (seed (random_state, k))
        cells = np.flatnonzero(t == tk)
        rng = np.random.default_rng([3, k])
        splits = [rng.permutation(cells) for _ in range(5)]
        direct = [_pot_w1(x[p[: len(cells) // 2]], x[p[len(cells) // 2 :]]) for p in splits]
        assert metrics.loc[tk, "W1_floor"] == pytest.approx(np.mean(direct), rel=1e-9)
        # not any one split: the mean is what is reported
        assert np.ptp(direct) > 0
        assert all(metrics.loc[tk, "W1_floor"] != pytest.approx(v) for v in direct)
    stored = adata.uns["ruot"]["metrics"]
    np.testing.assert_allclose(stored["W1_floor"], metrics["W1_floor"].to_numpy())
    np.testing.assert_allclose(stored["W1_nearest"], metrics["W1_nearest"].to_numpy())


def test_evaluate_w1_references_are_data_only_and_reproducible(gene_fitted, monkeypatch):
    from ruotools.tl import _evaluate

    adata, _ = gene_fitted
    # computed anew on every call here (no cache), so that each comparison below can fail
    monkeypatch.setattr(_evaluate, "_references", _evaluate._compute_references)
    refs = ["W1_floor", "W1_nearest"]
    base = rt.tl.evaluate(adata, stochastic=False, max_cells=150)
    # they depend on neither the simulation nor the number of repeats, and carry no spread
    repeated = rt.tl.evaluate(adata, stochastic=True, n_repeats=2, max_cells=150)
    pd.testing.assert_frame_equal(base[refs], repeated[refs])
    assert not {"W1_floor_std", "W1_nearest_std"} & set(repeated.columns)
    # the model's W1 is unchanged by them: the same subsampling as without references (recomputed here)
    pd.testing.assert_series_equal(base["W1"], rt.tl.evaluate(adata, stochastic=False, max_cells=150)["W1"])
    # subsampled to max_cells per side, seeded: another seed draws other cells
    other = rt.tl.evaluate(adata, stochastic=False, max_cells=150, random_state=1)
    assert not np.allclose(other["W1_floor"], base["W1_floor"])
    full = rt.tl.evaluate(adata, stochastic=False)
    # a snapshot is closer to a second sample of itself than to the previous snapshot on this benchmark
    assert (full["W1_floor"] < full["W1_nearest"]).all()
    assert (full[refs] > 0).all().all()


def test_evaluate_references_are_computed_once_per_data_set(gene_fitted, monkeypatch):
    from ruotools.tl import _evaluate

    adata, _ = gene_fitted
    calls = []
    compute = _evaluate._compute_references
    monkeypatch.setattr(_evaluate, "_REFERENCE_CACHE", type(_evaluate._REFERENCE_CACHE)())
    monkeypatch.setattr(_evaluate, "_compute_references", lambda *a: calls.append(a) or compute(*a))
    first = rt.tl.evaluate(adata, stochastic=False, max_cells=150)
    again = rt.tl.evaluate(adata, stochastic=False, max_cells=150)
    assert len(calls) == 1
    pd.testing.assert_frame_equal(first, again)
    # the cached arrays are not handed out: changing a result leaves the next one intact
    _evaluate._references(*calls[0])["W1_floor"][:] = -1.0
    assert (rt.tl.evaluate(adata, stochastic=False, max_cells=150)["W1_floor"] > 0).all()
    # another seed, another max_cells, or other coordinates: computed anew
    rt.tl.evaluate(adata, stochastic=False, max_cells=150, random_state=1)
    rt.tl.evaluate(adata, stochastic=False, max_cells=100)
    moved = adata.copy()
    moved.X = np.asarray(moved.X).copy()
    moved.X[0, 0] += 1.0
    rt.tl.evaluate(moved, stochastic=False, max_cells=150)
    assert len(calls) == 4


def test_evaluate_w1_floor_is_nan_for_a_single_cell(gene_fitted):
    adata, model = gene_fitted
    t = adata.obs["time"].to_numpy()
    keep = (t != 4.0) | (np.arange(adata.n_obs) == np.flatnonzero(t == 4.0)[0])
    small = adata[keep].copy()
    metrics = rt.tl.evaluate(small, model=model, stochastic=False)
    assert np.isnan(metrics.loc[4.0, "W1_floor"])
    x = np.asarray(small.X, dtype=np.float64)
    ts = small.obs["time"].to_numpy()
    assert metrics.loc[4.0, "W1_nearest"] == pytest.approx(_pot_w1(x[ts == 3.0], x[ts == 4.0]), rel=1e-9)


def test_evaluate_repeats_report_a_spread(gene_fitted):
    adata, _ = gene_fitted
    metrics = rt.tl.evaluate(adata, stochastic=True, n_repeats=2, max_cells=200)
    assert {"W1_std", "W2_std"} <= set(metrics.columns)
    assert (metrics["W1_std"] > 0).all()
    with pytest.raises(ValueError, match="n_repeats"):
        rt.tl.evaluate(adata, n_repeats=0)


def test_tools_need_a_fit():
    adata = _small_gene()
    with pytest.raises(RuntimeError, match="fit_ruot"):
        rt.tl.evaluate(adata)
    with pytest.raises(RuntimeError, match="fit_ruot"):
        rt.tl.simulate(adata)


# --------------------------------------------------------------------------- simulate


def test_simulate_trajectories(gene_fitted):
    adata, _ = gene_fitted
    traj = rt.tl.simulate(adata, stochastic=False)
    start = adata.obs_names[adata.obs["time"] == 0]
    n, T = len(start), len(traj.times)
    assert traj.positions.shape == (T, n, 2)
    assert traj.log_mass.shape == (T, n)
    assert traj.start_obs.shape == (n,)
    assert list(traj.start_obs) == list(start)
    assert traj.times[0] == 0.0
    assert traj.times[-1] == pytest.approx(4.0)
    assert np.all(np.diff(traj.times) > 0)
    np.testing.assert_allclose(traj.positions[0], adata[start].X, atol=1e-5)
    np.testing.assert_allclose(traj.weights.sum(axis=1)[0], 1.0, rtol=1e-5)
    stored = adata.uns["ruot_trajectories"]
    assert set(stored) >= {"X", "t", "log_mass", "start_obs"}
    np.testing.assert_array_equal(stored["X"], traj.positions)
    np.testing.assert_array_equal(stored["t"], traj.times)
    np.testing.assert_array_equal(stored["log_mass"], traj.log_mass)


def test_simulate_options(gene_fitted):
    adata, _ = gene_fitted
    traj = rt.tl.simulate(adata, times=[0.0, 1.0, 2.0], n_particles=50, random_state=3, key_added="sub")
    assert traj.positions.shape == (3, 50, 2)
    assert set(traj.start_obs) <= set(adata.obs_names[adata.obs["time"] == 0])
    assert "sub" in adata.uns
    # stochastic runs are reproducible per seed and differ between seeds
    again = rt.tl.simulate(adata, times=[0.0, 1.0, 2.0], n_particles=50, random_state=3, key_added="sub")
    np.testing.assert_array_equal(again.positions, traj.positions)
    other = rt.tl.simulate(adata, times=[0.0, 1.0, 2.0], n_particles=50, random_state=4, key_added="sub")
    assert not np.array_equal(other.positions, traj.positions)
    # start from named cells of a later time point
    names = adata.obs_names[adata.obs["time"] == 2][:10]
    later = rt.tl.simulate(adata, start=names, times=[2.0, 3.0], stochastic=False)
    assert list(later.start_obs) == list(names)
    assert later.positions.shape == (2, 10, 2)


def test_h5ad_round_trip_after_simulate_and_evaluate(gene_fitted, tmp_path):
    adata, _ = gene_fitted
    rt.tl.simulate(adata, times=[0.0, 2.0, 4.0], stochastic=False)
    rt.tl.evaluate(adata, stochastic=False)
    path = tmp_path / "all.h5ad"
    adata.write_h5ad(path)
    back = ad.read_h5ad(path)
    assert set(back.uns) == set(adata.uns)
    assert set(back.uns["ruot"]) == set(adata.uns["ruot"])
    np.testing.assert_array_equal(back.uns["ruot_trajectories"]["X"], adata.uns["ruot_trajectories"]["X"])
    assert list(back.uns["ruot_trajectories"]["start_obs"]) == list(adata.uns["ruot_trajectories"]["start_obs"])
    np.testing.assert_allclose(back.uns["ruot"]["metrics"]["W1"], adata.uns["ruot"]["metrics"]["W1"])
    np.testing.assert_array_equal(back.layers["ruot_velocity"], adata.layers["ruot_velocity"])
    # the tools run on the reloaded object with no other file
    again = rt.tl.evaluate(back, stochastic=False)
    np.testing.assert_allclose(again["W1"].to_numpy(), adata.uns["ruot"]["metrics"]["W1"], rtol=1e-6)


def test_train_kwargs_enable_fokker_planck_and_initial_density():
    adata = _small_gene()
    kwargs = {**FAST, "max_epochs": {"pretrain": 1, "refine": 0, "score": 1, "joint": 2}}
    model = rt.tl.fit_ruot(adata, "time", train_kwargs={"lambda_fp": 1.0, "lambda_init": 0.1}, **kwargs)
    assert model.config.lambda_fp == 1.0
    assert model.config.lambda_init == 0.1
    assert len(model.history["joint"]["loss"]) == 2
    assert np.all(np.isfinite(model.history["joint"]["loss"]))
    assert np.all(np.isfinite(adata.obs["ruot_potential"]))


def test_train_kwargs_lambda_curl_is_resolved_and_checked():
    import torch

    from ruotools.core.checkpoint import fingerprint
    from ruotools.core.data import Snapshots

    adata = _small_gene()
    before = _snapshot(adata)
    with pytest.raises(ValueError, match=r"train_kwargs\['lambda_curl'\]"):
        rt.tl.fit_ruot(adata, "time", train_kwargs={"lambda_curl": -1}, **FAST)
    _assert_unchanged(adata, before)
    off = rt.tl.fit_ruot(adata.copy(), "time", train_kwargs={"lambda_curl": 0}, **FAST)
    assert type(off.config.lambda_curl) is float  # as earlier versions stored it
    assert off.config.lambda_curl == 0.0
    assert rt.tl.fit_ruot(adata.copy(), "time", train_kwargs={"lambda_curl": None}, **FAST).config.lambda_curl == 0.01
    # a checkpoint of the previous default (0.0) has the fingerprint of a fit given `{"lambda_curl": 0}`
    previous = copy.copy(off.config)
    previous.lambda_curl = 0.0
    xs = [torch.randn(20, 2, generator=torch.Generator().manual_seed(k)) for k in range(2)]
    data = Snapshots(xs, [0.0, 1.0], [1.0, 1.5], train_size=0.9, random_state=0, device=torch.device("cpu"))
    assert fingerprint(data, off.config) == fingerprint(data, previous)


@pytest.mark.parametrize("bad", [{"no_such_option": 1}, {"sigma": 0.1}, {"epochs": {}}])
def test_train_kwargs_rejects_unknown_and_reserved_names(bad):
    adata = _small_gene()
    before = _snapshot(adata)
    with pytest.raises(ValueError, match="train_kwargs"):
        rt.tl.fit_ruot(adata, "time", train_kwargs=bad, **FAST)
    _assert_unchanged(adata, before)


def test_import_is_light():
    import subprocess
    import sys

    code = (
        "import sys, ruotools; "
        "heavy = [m for m in ('torch', 'scanpy', 'scvelo', 'matplotlib', 'anndata') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
