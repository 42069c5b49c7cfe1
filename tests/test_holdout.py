"""`rt.tl.holdout_time` and the OT interpolation reference."""

import copy

import numpy as np
import pytest

import ruotools as rt
from ruotools.core.ot import interpolate_ot, wasserstein

FAST = {"max_epochs": {"pretrain": 2, "refine": 1, "score": 1, "joint": 0}, "hidden_dim": 16, "batch_size": 64}


def _small_gene(n_per_time=40, seed=0):
    adata = rt.datasets.simulated_gene()
    rng = np.random.default_rng(seed)
    t = adata.obs["time"].to_numpy()
    idx = np.sort(np.concatenate([rng.choice(np.flatnonzero(t == tk), n_per_time, replace=False) for tk in range(5)]))
    return adata[idx].copy()


def test_interpolate_ot_is_exact_for_a_translation():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 2))
    y = x + np.array([4.0, -2.0])
    pts, w = interpolate_ot(x, y, 0.25)
    assert w.sum() == pytest.approx(1.0)
    # a translation is its own optimal map: the interpolant is the quarter-way translate
    assert wasserstein(pts, x + np.array([1.0, -0.5]), w, None, p=2) == pytest.approx(0.0, abs=1e-6)


def test_holdout_time_table_and_uns():
    adata = _small_gene()
    before = set(adata.uns)
    table = rt.tl.holdout_time(adata, "time", held_out=[2.0], accelerator="cpu", **FAST)
    assert list(table.index) == [2.0]
    assert {"W1", "W2", "TMV", "W1_nearest", "W2_nearest", "W1_interp", "W2_interp"} <= set(table.columns)
    assert np.all(np.isfinite(table.to_numpy()))
    t = adata.obs["time"].to_numpy()
    # the nearest-snapshot reference is the earlier neighbour on a tie, measured independently
    assert table.loc[2.0, "W1_nearest"] == pytest.approx(wasserstein(adata.X[t == 1], adata.X[t == 2], p=1))
    assert set(adata.uns) - before == {"ruot_holdout"}
    np.testing.assert_array_equal(adata.uns["ruot_holdout"]["time"], [2.0])
    assert "ruot_velocity_params" not in adata.uns  # only copies are fitted


@pytest.mark.parametrize("held", [0.0, 4.0, 2.5])
def test_holdout_time_rejects_non_interior_points(held):
    adata = _small_gene(10)
    with pytest.raises(ValueError, match="interior"):
        rt.tl.holdout_time(adata, "time", held_out=[held], **FAST)


def test_holdout_refits_do_not_report_writes_to_adata(ruotools_log):
    """The refits write to copies: no "added `adata...`" message from them, only holdout's own; a fit
    on an embedding is warned about once, at the user's call, not once per refit."""
    import warnings

    adata = _small_gene()
    adata.obsm["X_umap"] = np.asarray(adata.X, dtype=np.float32).copy()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rt.tl.holdout_time(adata, "time", held_out=[1.0, 2.0], use_rep="X_umap", accelerator="cpu", **FAST)
    messages = [r.getMessage() for r in ruotools_log.records]
    added = [m for m in messages if "added `adata." in m]
    assert added == ["    added `adata.uns['ruot_holdout']`"], messages
    assert sum("holding out time = " in m and "refitting on a copy" in m for m in messages) == 2
    assert not any(m.startswith("fitting RUOT") for m in messages)  # the refits' info is silenced…
    embedding = [w for w in caught if "UMAP and t-SNE" in str(w.message)]
    assert len(embedding) == 1
    assert embedding[0].filename == __file__
    assert "ruot_velocity_umap" not in adata.obsm


def test_holdout_restores_the_log_level(ruotools_log):
    """…and only during the refits: a failing refit leaves the logger's level as it was."""
    import logging

    adata = _small_gene(10)
    level = logging.getLogger("ruotools").level
    with pytest.raises(ValueError, match="alpha"):
        rt.tl.holdout_time(adata, "time", held_out=[2.0], alpha=-1.0, **FAST)
    assert logging.getLogger("ruotools").level == level


@pytest.mark.parametrize(("given", "expected"), [("omitted", 0.0), (None, 0.0), (0.2, 0.2)])
def test_var_ruot_refits_resolve_the_geodesic_weight_as_a_fit_of_all_time_points(monkeypatch, given, expected):
    # a refit has one time point fewer: with three, two are left, where a fit of its own would turn the
    # geodesic target on; the check must judge the settings of a fit of all three
    from ruotools.tl import _holdout

    adata = _small_gene(20)
    adata = adata[adata.obs["time"] < 3].copy()
    seen, real = [], _holdout.fit_ruot

    def spy(sub, *args, **kwargs):
        model = real(sub, *args, **kwargs)
        seen.append(model.config.lambda_geodesic)
        return model

    monkeypatch.setattr(_holdout, "fit_ruot", spy)
    fast = {"max_epochs": {"least_action": 1, "score": 1}, "hidden_dim": 16, "batch_size": 32}
    if given != "omitted":
        fast["train_kwargs"] = {"steps_per_epoch": 2, "lambda_geodesic": given}
    given_before = copy.deepcopy(fast.get("train_kwargs"))
    rt.tl.holdout_time(adata, "time", held_out=[1.0], flavor="var_ruot", **fast)
    assert seen == [expected]
    assert fast.get("train_kwargs") == given_before  # the caller's dict is left as it was
