"""`rt.tl.growth_identifiability`: a balanced refit against a growth refit."""

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import ruotools as rt

FIT = {"max_epochs": {"pretrain": 15, "refine": 1, "score": 1, "joint": 0}, "hidden_dim": 32, "batch_size": 128}


def _two_clusters(grow: bool, seed: int = 0) -> ad.AnnData:
    """Two resting clusters 8 units apart; with ``grow`` the right one doubles each time unit, else both stay."""
    rng = np.random.default_rng(seed)
    blocks, times = [], []
    for k in range(3):
        n_right = 60 * 2**k if grow else 60
        for centre, n in ((-4.0, 60), (4.0, n_right)):
            blocks.append(rng.normal([centre, 0.0], 0.3, size=(n, 2)))
            times += [k] * n
    adata = ad.AnnData(np.vstack(blocks).astype(np.float32))
    adata.obs["time"] = np.asarray(times, dtype=float)
    return adata


def test_growth_between_separate_clusters_is_identifiable():
    adata = _two_clusters(grow=True)
    before = adata.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # identifiable: no warning
        table = rt.tl.growth_identifiability(adata, "time", use_rep="X", accelerator="cpu", **FIT)
    assert list(table.index) == [1.0, 2.0]
    assert list(table.columns) == ["W1_growth", "W1_balanced", "W1_floor", "excess", "identifiable"]
    np.testing.assert_allclose(table["excess"], (table["W1_balanced"] - table["W1_growth"]) / table["W1_floor"])
    # without growth the right cluster's share (1/2 at t0, 4/5 at t2) can only come from moving cells 8 units
    assert (table["excess"] > 1.0).all()
    assert table["identifiable"].all()
    # only the table is added; the user's cells and annotations are untouched (the fits ran on copies)
    assert set(adata.uns) - set(before.uns) == {"ruot_growth_identifiability"}
    stored = adata.uns["ruot_growth_identifiability"]
    np.testing.assert_array_equal(stored["time"], [1.0, 2.0])
    np.testing.assert_array_equal(stored["identifiable"], table["identifiable"].to_numpy())
    assert stored["min_excess"] == 0.25
    pd.testing.assert_frame_equal(adata.obs, before.obs)
    assert not adata.obsm
    assert not adata.layers
    np.testing.assert_array_equal(adata.X, before.X)


def test_uniform_change_is_not_identifiable_and_warns():
    adata = _two_clusters(grow=False)
    with pytest.warns(UserWarning, match="without cell-specific growth matches every snapshot"):
        table = rt.tl.growth_identifiability(
            adata, "time", use_rep="X", relative_mass={0: 1, 1: 2, 2: 4}, key_added="mine", accelerator="cpu", **FIT
        )
    assert (table["excess"] < 0.25).all()
    assert not table["identifiable"].any()
    assert list(adata.uns) == ["mine_growth_identifiability"]


def test_an_existing_fit_is_left_alone():
    adata = _two_clusters(grow=True)
    rt.tl.fit_ruot(adata, "time", use_rep="X", accelerator="cpu", **FIT)
    before = adata.copy()
    rt.tl.growth_identifiability(adata, "time", use_rep="X", alpha=0.5, accelerator="cpu", **FIT)
    assert set(adata.uns) - set(before.uns) == {"ruot_growth_identifiability"}
    pd.testing.assert_frame_equal(adata.obs, before.obs)
    for slot in ("obsm", "layers"):
        assert set(getattr(adata, slot)) == set(getattr(before, slot))
        for k in getattr(adata, slot):
            np.testing.assert_array_equal(getattr(adata, slot)[k], getattr(before, slot)[k])
    assert adata.uns["ruot"]["params"].keys() == before.uns["ruot"]["params"].keys()
    for name, value in before.uns["ruot"]["params"].items():
        np.testing.assert_equal(adata.uns["ruot"]["params"][name], value)
    state, state_before = adata.uns["ruot"]["model"]["state"], before.uns["ruot"]["model"]["state"]
    for name in state_before:
        np.testing.assert_array_equal(state[name], state_before[name])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"growth": False}, TypeError, "`growth`: not accepted by growth_identifiability"),
        ({"checkpoint_dir": "ckpt", "resume": True}, TypeError, "`checkpoint_dir`, `resume`: not accepted"),
        ({"key_added": ""}, TypeError, "`key_added` must be a non-empty string"),
        ({"min_excess": "0.3"}, TypeError, "`min_excess` must be a number"),
        ({"min_excess": float("nan")}, ValueError, "`min_excess` must be a finite number"),
        ({"max_cells": 0}, ValueError, "`max_cells` must be an integer ≥ 2"),
        ({"n_steps_per_unit": -1}, ValueError, "`n_steps_per_unit` must be a finite number > 0"),
        ({"random_state": -1}, ValueError, "random_state"),
        ({"use_rep": "X_missing"}, KeyError, "X_missing"),
    ],
)
def test_bad_arguments_fail_before_any_fit(kwargs, error, match, monkeypatch):
    from ruotools.tl import _identifiability

    monkeypatch.setattr(_identifiability, "fit_ruot", lambda *a, **k: pytest.fail("fitted before checking"))
    adata = _two_clusters(grow=False)
    with pytest.raises(error, match=match):
        rt.tl.growth_identifiability(adata, "time", **kwargs)
    assert not adata.uns


@pytest.mark.parametrize("tool", ["fit_ruot", "growth_identifiability"])
def test_a_view_is_made_actual_with_a_warning_at_the_callers_line(tool):
    parent = _two_clusters(grow=True)
    view = parent[parent.obs["time"] < 2]
    assert view.is_view
    with pytest.warns(UserWarning, match="Received a view of an AnnData") as record:
        getattr(rt.tl, tool)(view, "time", use_rep="X", accelerator="cpu", **FIT)
    assert any(w.filename == __file__ for w in record if "Received a view" in str(w.message))
    assert not view.is_view
    assert not parent.uns  # the AnnData the view was taken from is not modified


@pytest.mark.parametrize(("given", "expected"), [(None, 0.0), (0.3, 0.3)])
def test_var_ruot_fits_on_two_time_points_differ_in_growth_only(monkeypatch, given, expected):
    # the geodesic target, on by default for two time points with growth, has no balanced counterpart:
    # both fits leave it off unless it is given
    from ruotools.tl import _identifiability

    adata = _two_clusters(grow=True)
    adata = adata[adata.obs["time"] < 2].copy()
    seen, real = {}, _identifiability.fit_ruot

    def spy(copy, *args, growth, **kwargs):
        model = real(copy, *args, growth=growth, **kwargs)
        seen[growth] = model.config.lambda_geodesic
        return model

    monkeypatch.setattr(_identifiability, "fit_ruot", spy)
    fast = {"max_epochs": {"least_action": 1, "score": 1}, "hidden_dim": 16, "batch_size": 32}
    if given is not None:
        fast["train_kwargs"] = {"lambda_geodesic": given}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        rt.tl.growth_identifiability(adata, "time", use_rep="X", flavor="var_ruot", accelerator="cpu", **fast)
    assert seen == {True: expected, False: expected}
