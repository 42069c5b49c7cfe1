"""Property-based tests of `rt.tl.fit_ruot` on random small AnnData (issue 6).

* any valid input (2–4 time points, 5–30 cells each, 2–4 dims, random scale, offset and unevenly
  spaced times, some cells without a time or with NaN coordinates) fits on a tiny budget, with
  finite outputs on the valid cells and NaN on the others;
* any input broken in one of the documented ways raises ``KeyError``, ``TypeError`` or
  ``ValueError`` from ruotools' own checks — never a bare torch/NumPy error — before training
  starts, and leaves ``adata`` unchanged.
"""

from pathlib import Path
from unittest import mock

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ruotools as rt
from ruotools import _validation as val

from .test_validation import assert_unchanged, snapshot

PACKAGE = Path(rt.__file__).parent
TINY = {"max_epochs": 1, "hidden_dim": 8, "batch_size": 16, "show_progress_bar": False, "accelerator": "cpu"}
PROPERTY_SETTINGS = settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def datasets(draw):
    """A valid AnnData and the keyword arguments of a fit on it, with the mask of usable cells."""
    n_times = draw(st.integers(2, 4))
    counts = draw(st.lists(st.integers(5, 30), min_size=n_times, max_size=n_times))
    n_dims = draw(st.integers(2, 4))
    start = draw(st.floats(-10, 100, allow_nan=False))
    gaps = draw(st.lists(st.floats(0.05, 20, allow_nan=False), min_size=n_times - 1, max_size=n_times - 1))
    times = start + np.concatenate([[0.0], np.cumsum(gaps)])
    scale = 10 ** draw(st.floats(-2, 3))
    offset = draw(st.floats(-1e3, 1e3))
    seed = draw(st.integers(0, 2**32 - 1))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    rep = draw(st.sampled_from(["X", "X_pca"]))
    time_kind = draw(st.sampled_from(["float", "categorical", "strings"]))
    n_missing = draw(st.integers(0, 3))  # cells without a time point or with a NaN coordinate

    rng = np.random.default_rng(seed)
    t = np.repeat(times, counts)
    drift = rng.normal(size=n_dims)
    x = offset + scale * (rng.normal(size=(len(t), n_dims)) + (t - times[0])[:, None] / max(gaps) * drift)
    usable = np.ones(len(t), dtype=bool)
    for i in rng.choice(len(t), n_missing, replace=False):
        # keep at least MIN_CELLS_PER_TIME usable cells at the time point
        if (usable & (t == t[i])).sum() > val.MIN_CELLS_PER_TIME:
            usable[i] = False
    t_obs = t.copy()
    no_time = ~usable & (rng.random(len(t)) < 0.5)
    t_obs[no_time] = np.nan
    x[~usable & ~no_time, rng.integers(n_dims)] = np.nan

    obs = pd.DataFrame(index=[f"c{i}" for i in range(len(t))])
    if rep == "X":
        adata = ad.AnnData(X=x.astype(dtype), obs=obs)
    else:
        adata = ad.AnnData(X=rng.normal(size=(len(t), 5)).astype(np.float32), obs=obs)
        adata.obsm["X_pca"] = x.astype(dtype)
    if time_kind == "float":
        adata.obs["time"] = t_obs
    else:
        labels = [None if np.isnan(v) else repr(float(v)) for v in t_obs]
        adata.obs["time"] = pd.Categorical(labels) if time_kind == "categorical" else np.array(labels, dtype=object)
    return adata, {"use_rep": rep}, usable, np.unique(t)


@PROPERTY_SETTINGS
@given(data=datasets(), sigma=st.one_of(st.none(), st.just(0.0), st.floats(1e-3, 1.0)), growth=st.booleans())
def test_any_valid_input_fits_without_nan(data, sigma, growth):
    adata, kwargs, usable, times = data
    before = adata.obs["time"].copy()
    if sigma is not None:  # a noise level in the representation's units
        sigma = sigma * float(np.nanstd(adata.obsm.get("X_pca", adata.X)))
    model = rt.tl.fit_ruot(adata, "time", sigma=sigma, growth=growth, **TINY, **kwargs)
    n = adata.n_obs
    vel = adata.layers["ruot_velocity"] if kwargs["use_rep"] == "X" else adata.obsm["ruot_velocity_pca"]
    assert vel.shape == (n, model.n_dims)
    assert vel.dtype == np.float32
    growth_rate = adata.obs["ruot_growth_rate"].to_numpy()
    potential = adata.obs["ruot_potential"].to_numpy()
    assert np.isfinite(vel[usable]).all()
    assert np.isfinite(growth_rate[usable]).all()
    assert np.isnan(vel[~usable]).all()
    assert np.isnan(growth_rate[~usable]).all()
    if model.sigma > 0:
        assert np.isfinite(potential[usable]).all()
    else:
        assert np.isnan(potential).all()
    if not growth:
        assert (growth_rate[usable] == 0).all()
    np.testing.assert_allclose(adata.uns["ruot"]["time_points"], times, rtol=1e-12)
    for phase in model.history.values():
        assert np.isfinite(phase["loss"]).all()
    pd.testing.assert_series_equal(adata.obs["time"], before)


# --------------------------------------------------------------------------- invalid inputs


def _drop_time(adata, kwargs, draw):
    return adata, draw(st.sampled_from(["day", "Time", "time "])), kwargs


def _missing_rep(adata, kwargs, draw):
    return adata, "time", {**kwargs, "use_rep": draw(st.sampled_from(["X_umap", "pca", "X_PCA"]))}


def _non_numeric_time(adata, kwargs, draw):
    label = draw(st.text("abcdefghijklmnopqrstuvwxyz _-", min_size=1, max_size=8))
    first = adata.obs["time"].astype(str) == adata.obs["time"].astype(str).iloc[0]
    adata.obs["time"] = np.where(first, label, adata.obs["time"].astype(str)).astype(object)
    return adata, "time", kwargs


def _one_time_point(adata, kwargs, draw):
    adata.obs["time"] = np.full(adata.n_obs, draw(st.floats(-1e3, 1e3)))
    return adata, "time", kwargs


def _too_few_cells(adata, kwargs, draw):
    t = pd.to_numeric(adata.obs["time"].astype(str), errors="coerce").to_numpy().copy()
    x = adata.X if kwargs["use_rep"] == "X" else adata.obsm[kwargs["use_rep"]]
    finite = np.flatnonzero(np.isfinite(np.asarray(x)).all(axis=1))
    t[draw(st.sampled_from(finite.tolist()))] = 1e6  # a time point with a single cell
    adata.obs["time"] = t
    return adata, "time", kwargs


def _coordinates(fill):
    def corrupt(adata, kwargs, draw):
        key = kwargs["use_rep"]
        x = np.asarray(adata.X if key == "X" else adata.obsm[key], dtype=np.float64).copy()
        x[:] = fill(draw)
        if key == "X":
            adata.X = x
        else:
            adata.obsm[key] = x
        return adata, "time", kwargs

    return corrupt


def _argument(name, values):
    def corrupt(adata, kwargs, draw):
        return adata, "time", {**kwargs, name: draw(values)}

    return corrupt


CORRUPTIONS = {
    "missing time_key": (_drop_time, KeyError),
    "missing use_rep": (_missing_rep, KeyError),
    "non-numeric time": (_non_numeric_time, (TypeError, ValueError)),  # "inf" parses as a number
    "one time point": (_one_time_point, ValueError),
    "too few cells": (_too_few_cells, ValueError),
    "non-finite coordinates": (_coordinates(lambda d: d(st.sampled_from([np.nan, np.inf, -np.inf]))), ValueError),
    "zero variance": (_coordinates(lambda d: d(st.floats(-1e3, 1e3))), ValueError),
    "n_dims too large": (_argument("n_dims", st.integers(5, 100)), ValueError),
    "negative sigma": (_argument("sigma", st.floats(max_value=-1e-9, allow_infinity=False)), ValueError),
    "non-finite sigma": (_argument("sigma", st.sampled_from([np.nan, np.inf])), ValueError),
    "unknown accelerator": (
        _argument("accelerator", st.text(min_size=0, max_size=6).filter(lambda s: s not in val.ACCELERATORS)),
        ValueError,
    ),
    "bad train_size": (
        _argument("train_size", st.one_of(st.floats(max_value=0.0), st.floats(min_value=1.001))),
        ValueError,
    ),
    "bad lr": (_argument("lr", st.floats(max_value=0.0)), ValueError),
    "bad max_epochs": (_argument("max_epochs", st.integers(max_value=-1)), ValueError),
    "bad random_state": (_argument("random_state", st.integers(max_value=-1)), ValueError),
    "wrong argument types": (
        lambda a, k, d: (a, "time", {**k, d(st.sampled_from(["sigma", "alpha", "train_size", "lr"])): "0.5"}),
        TypeError,
    ),
}


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
@settings(PROPERTY_SETTINGS, max_examples=10)  # no training: about 10 ms an example
@given(data=datasets(), draw=st.data())
def test_any_invalid_input_raises_a_documented_error(name, data, draw):
    adata, kwargs, _, _ = data
    corrupt, expected = CORRUPTIONS[name]
    adata, time_key, kwargs = corrupt(adata, kwargs, draw.draw)
    snap = snapshot(adata)
    with (
        mock.patch("ruotools.tl._fit.fit", side_effect=AssertionError("training started")),
        pytest.raises((KeyError, TypeError, ValueError)) as err,
    ):
        rt.tl.fit_ruot(adata, time_key, **{**TINY, **kwargs})
    assert isinstance(err.value, expected), (name, err.value)
    # raised by ruotools' own checks, with a message naming the slot or argument
    assert Path(str(err.traceback[-1].path)).is_relative_to(PACKAGE), err.traceback[-1]
    assert "`" in str(err.value)
    assert_unchanged(adata, snap)
