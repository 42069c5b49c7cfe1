"""Input validation of `rt.tl.fit_ruot` (API.md "Errors", issue 6).

Every invalid input raises the documented exception type with a message that names the slot or
argument, before any training, and leaves ``adata`` exactly as it was. The input kinds the API
accepts (sparse, backed, views, integer/float16/float64, duplicate names, every time dtype) fit and
give the same result as the plain dense float input.
"""

import copy
import hashlib
import logging
import tracemalloc
import warnings
from unittest import mock

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

import ruotools as rt
from ruotools import _validation as val

FAST = {"max_epochs": 1, "hidden_dim": 8, "batch_size": 16, "show_progress_bar": False, "accelerator": "cpu"}
OUTPUT_KEYS = ("ruot_velocity", "ruot_drift")


def toy(n_per_time=12, times=(0.0, 1.0, 2.5), n_dims=3, seed=0):
    """Small AnnData with something in every slot a fit must not touch."""
    rng = np.random.default_rng(seed)
    n = n_per_time * len(times)
    t = np.repeat(np.asarray(times, dtype=np.float64), n_per_time)
    x = rng.normal(size=(n, n_dims)) + t[:, None] * np.linspace(1.0, 2.0, n_dims)
    adata = ad.AnnData(X=x.astype(np.float32))
    adata.obs_names = [f"cell{i}" for i in range(n)]
    adata.var_names = [f"g{j}" for j in range(n_dims)]
    adata.obs["time"] = t
    adata.obs["day"] = pd.Categorical([f"{v:g}" for v in t])
    adata.obs["batch"] = pd.Categorical(rng.choice(["a", "b"], n))
    adata.obs["n_counts"] = rng.integers(100, 1000, n)
    adata.obsm["X_pca"] = (x[:, :2] @ np.array([[0.8, 0.6], [-0.6, 0.8]])).astype(np.float32)
    adata.layers["counts"] = sparse.csr_matrix(rng.poisson(2.0, size=(n, n_dims)).astype(np.float32))
    adata.uns["meta"] = {"nested": {"weights": np.arange(3.0), "name": "toy"}, "flag": True}
    adata.uns["batch_colors"] = np.array(["#ff0000", "#0000ff"])
    return adata


# --------------------------------------------------------------------------- deep comparison


def _assert_equal_values(a, b, where):
    if isinstance(a, dict) or isinstance(b, dict):
        assert isinstance(a, dict), where
        assert isinstance(b, dict), where
        assert set(a) == set(b), where
        for key in a:
            _assert_equal_values(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b, check_exact=True, obj=where)
    elif sparse.issparse(a) or sparse.issparse(b):
        assert sparse.issparse(a), where
        assert sparse.issparse(b), where
        assert a.format == b.format, where
        assert a.dtype == b.dtype, where
        np.testing.assert_array_equal(a.toarray(), b.toarray(), err_msg=where)
    elif isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype, (where, a.dtype, b.dtype)
        np.testing.assert_array_equal(a, b, err_msg=where)
    else:
        assert type(a) is type(b), (where, type(a), type(b))
        if isinstance(a, float) and np.isnan(a):
            assert np.isnan(b), where
        else:
            assert a == b, where


def _in_memory(value):
    """Deep in-memory copy of an array, also of the on-disk arrays of a backed AnnData."""
    if hasattr(value, "to_memory"):  # sparse dataset of a backed AnnData
        return value.to_memory()
    if isinstance(value, h5py.Dataset):
        return value[()]
    if sparse.issparse(value):  # also anndata's sparse views, whose deep copy would copy the parent
        return sparse.csr_matrix(value, copy=True).asformat(value.format)
    if isinstance(value, np.ndarray):
        return np.array(value, copy=True)
    if isinstance(value, pd.DataFrame):
        return value.copy(deep=True)
    return copy.deepcopy(value)


def snapshot(adata):
    """Deep copy of everything a fit could change (a view stays a view)."""
    return {
        "is_view": adata.is_view,
        "X": None if adata.X is None else _in_memory(adata.X),
        "obs": adata.obs.copy(deep=True),
        "var": adata.var.copy(deep=True),
        "obsm": {k: _in_memory(v) for k, v in adata.obsm.items()},
        "varm": {k: _in_memory(v) for k, v in adata.varm.items()},
        "obsp": {k: _in_memory(v) for k, v in adata.obsp.items()},
        "layers": {k: _in_memory(v) for k, v in adata.layers.items()},
        "uns": copy.deepcopy(dict(adata.uns)),
    }


def assert_unchanged(adata, snap):
    """``adata`` equals ``snap``: values, dtypes (categorical categories included), keys, nested ``uns``."""
    assert adata.is_view == snap["is_view"]
    if snap["X"] is None:
        assert adata.X is None
    else:
        _assert_equal_values(_in_memory(adata.X), snap["X"], "X")
    pd.testing.assert_frame_equal(adata.obs, snap["obs"], check_exact=True)
    pd.testing.assert_frame_equal(adata.var, snap["var"], check_exact=True)
    for attr in ("obsm", "varm", "obsp", "layers"):
        current = {k: _in_memory(v) for k, v in getattr(adata, attr).items()}
        _assert_equal_values(current, snap[attr], attr)
    _assert_equal_values(dict(adata.uns), snap["uns"], "uns")


# --------------------------------------------------------------------------- invalid inputs

# id → (how to break the input, exception type, regex the message must match)
# A "break" takes the AnnData and returns (adata, time_key, fit keyword arguments).


def _kw(**kwargs):
    return lambda a: (a, "time", kwargs)


def _set_time(values):
    def apply(a):
        a.obs["time"] = values(a)
        return a, "time", {}

    return apply


def _set_x(values, **kwargs):
    def apply(a):
        a.X = values(a)
        return a, "time", {"use_rep": "X", **kwargs}

    return apply


def _wide_without_pca(a):
    wide = ad.AnnData(X=np.random.default_rng(0).normal(size=(a.n_obs, 60)).astype(np.float32), obs=a.obs.copy())
    return wide, "time", {}


def _no_x(a):
    del a.obsm["X_pca"]
    return ad.AnnData(obs=a.obs.copy(), obsm={"X_umap": np.asarray(a.X)}), "time", {}


def _no_x_but_use_rep_x(a):
    return ad.AnnData(obs=a.obs.copy(), obsm=dict(a.obsm)), "time", {"use_rep": "X"}


def _time_point_with_one_cell(a):
    t = a.obs["time"].to_numpy().copy()
    t[-1] = 7.0
    a.obs["time"] = t
    return a, "time", {}


def _time_point_with_one_valid_cell(a):
    # time 2.5 keeps a single cell with finite coordinates: the others are NaN
    x = np.asarray(a.X).copy()
    last = np.flatnonzero(a.obs["time"].to_numpy() == 2.5)
    x[last[1:], 0] = np.nan
    a.X = x
    return a, "time", {"use_rep": "X"}


def _zero_variance_among_valid(a):
    # every cell with a time point sits at one place; only a cell without time differs
    x = np.ones((a.n_obs, a.n_vars), dtype=np.float32)
    x[0] = 5.0
    a.X = x
    t = a.obs["time"].to_numpy().copy()
    t[0] = np.nan
    a.obs["time"] = t
    return a, "time", {"use_rep": "X"}


def _obsm(values, **kwargs):
    def apply(a):
        a.obsm["X_bad"] = values(a)
        return a, "time", {"use_rep": "X_bad", **kwargs}

    return apply


def _unreadable_labels(a):
    # "day 0" reads as 0; "ctrl" has no number, "day1_rep2" two
    a.obs["d2"] = pd.Categorical(a.obs["day"].map({"0": "day 0", "1": "ctrl", "2.5": "day1_rep2"}).astype(str))
    return a, "d2", {}


def _with_x(a, x):
    a.X = x.astype(np.float32)
    return a


INVALID = {
    # missing slots → KeyError naming the slot and the fix
    "missing time_key": (
        lambda a: (a, "stage", {}),
        KeyError,
        r"`adata\.obs\['stage'\]` not found\. Pass `time_key=` one of the `\.obs` columns: \['time', 'day'",
    ),
    "missing use_rep": (_kw(use_rep="X_umap"), KeyError, r"`adata\.obsm\['X_umap'\]` not found.*sc\.pp\.pca"),
    "no default representation": (_wide_without_pca, KeyError, r"`adata\.obsm\['X_pca'\]` is missing.*60 columns"),
    "no X and no X_pca": (_no_x, KeyError, r"`adata\.obsm\['X_pca'\]` is missing and `adata\.X` is empty"),
    "use_rep X without X": (_no_x_but_use_rep_x, KeyError, r"`adata\.X` is empty; pass `use_rep=` an `\.obsm` key"),
    # time of the wrong type → TypeError showing the offending values
    "time categories without one number": (
        _unreadable_labels,
        TypeError,
        r"`adata\.obs\['d2'\]` must hold time points.*cannot be read: 'ctrl' \(no number\); "
        r"'day1_rep2' \(several numbers: 1, 2\)\. Map every label.*time_key='d2_numeric'",
    ),
    "time strings without a number": (
        _set_time(lambda a: np.where(a.obs["time"] > 0, "late", "0").astype(object)),
        TypeError,
        r"`adata\.obs\['time'\]` must hold time points.*cannot be read: 'late' \(no number\)",
    ),
    "time boolean": (_set_time(lambda a: a.obs["time"] > 0), TypeError, r"`adata\.obs\['time'\]` is boolean"),
    "time complex": (
        _set_time(lambda a: a.obs["time"].to_numpy() + 1j),
        TypeError,
        r"`adata\.obs\['time'\]` holds complex numbers",
    ),
    "time datetime": (
        _set_time(lambda a: pd.to_datetime("2024-01-01") + pd.to_timedelta(a.obs["time"].to_numpy(), unit="D")),
        TypeError,
        r"`adata\.obs\['time'\]` holds dates or durations \(datetime64\[ns\]\).*pd\.Timedelta\(days=1\)",
    ),
    "time_key not a string": (lambda a: (a, 0, {}), TypeError, r"`time_key` must be a string"),
    # time values → ValueError
    "one time point": (
        _set_time(lambda a: np.full(a.n_obs, 3.0)),
        ValueError,
        r"`adata\.obs\['time'\]` has 1 time point\(s\).*at least two",
    ),
    "time point with one cell": (
        _time_point_with_one_cell,
        ValueError,
        r"Time point\(s\) \[7\.0\] of `adata\.obs\['time'\]` have fewer than 2 cells",
    ),
    "time point with one valid cell": (
        _time_point_with_one_valid_cell,
        ValueError,
        r"Time point\(s\) \[2\.5\] of `adata\.obs\['time'\]` have fewer than 2 cells with valid coordinates",
    ),
    "time infinite": (
        _set_time(lambda a: np.where(a.obs["time"] > 2, np.inf, a.obs["time"])),
        ValueError,
        r"`adata\.obs\['time'\]` contains infinite values",
    ),
    "time all NaN": (
        _set_time(lambda a: np.full(a.n_obs, np.nan)),
        ValueError,
        r"`adata\.obs\['time'\]` is NaN for every cell",
    ),
    # coordinates → ValueError / TypeError naming the slot
    "X all NaN": (
        _set_x(lambda a: np.full(a.shape, np.nan, dtype=np.float32)),
        ValueError,
        r"`adata\.X` has a NaN or infinite coordinate in every cell",
    ),
    "obsm all infinite": (
        _obsm(lambda a: np.full((a.n_obs, 2), np.inf)),
        ValueError,
        r"`adata\.obsm\['X_bad'\]` has a NaN or infinite coordinate in every cell",
    ),
    "NaN time or coordinates everywhere": (
        lambda a: (
            _with_x(a, np.where(a.obs["time"].to_numpy()[:, None] > 0, np.nan, np.asarray(a.X))),
            "time",
            {"use_rep": "X"},
        ),
        ValueError,
        r"`adata\.obs\['time'\]` has 1 time point\(s\) among cells with valid coordinates",
    ),
    "X zero variance": (
        _set_x(lambda a: np.full(a.shape, 2.0, dtype=np.float32)),
        ValueError,
        r"`adata\.X` has zero variance",
    ),
    "zero variance among valid cells": (_zero_variance_among_valid, ValueError, r"`adata\.X` has zero variance"),
    "obsm strings": (
        _obsm(lambda a: np.asarray(a.obsm["X_pca"]).astype(str)),
        TypeError,
        r"`adata\.obsm\['X_bad'\]` must hold real numbers, got dtype <U",
    ),
    "obsm complex": (
        _obsm(lambda a: np.asarray(a.obsm["X_pca"]) + 0j),
        TypeError,
        r"`adata\.obsm\['X_bad'\]` must hold real numbers, got dtype complex",
    ),
    "obsm 3-D": (
        _obsm(lambda a: np.zeros((a.n_obs, 2, 2))),
        ValueError,
        r"`adata\.obsm\['X_bad'\]` must be 2-D \(cells × dims\), got shape \(36, 2, 2\)",
    ),
    "n_dims larger than the representation": (
        _kw(use_rep="X", n_dims=5),
        ValueError,
        r"`n_dims=5` exceeds the 3 columns of `adata\.X`",
    ),
    "n_dims larger than obsm": (
        _kw(use_rep="X_pca", n_dims=3),
        ValueError,
        r"`n_dims=3` exceeds the 2 columns of `adata\.obsm\['X_pca'\]`",
    ),
    "n_dims zero": (_kw(n_dims=0), ValueError, r"`n_dims` must be a positive integer, got 0"),
    # arguments
    "sigma negative": (_kw(sigma=-0.1), ValueError, r"`sigma` must be a finite number ≥ 0 \(0 gives a determ"),
    "sigma NaN": (_kw(sigma=float("nan")), ValueError, r"`sigma` must be a finite number ≥ 0"),
    "sigma string": (_kw(sigma="0.1"), TypeError, r"`sigma` must be a number, got str"),
    "accelerator unknown": (
        _kw(accelerator="tpu"),
        ValueError,
        r"`accelerator` must be one of \['auto', 'cpu', 'cuda', 'gpu', 'mps'\], got 'tpu'",
    ),
    "accelerator None": (_kw(accelerator=None), ValueError, r"`accelerator` must be one of \['auto', 'cpu'"),
    "train_size zero": (_kw(train_size=0.0), ValueError, r"`train_size` must be in \(0, 1\], got 0\.0"),
    "train_size string": (_kw(train_size="0.9"), TypeError, r"`train_size` must be a number, got str"),
    "alpha negative": (_kw(alpha=-1.0), ValueError, r"`alpha` must be a finite number ≥ 0, got -1\.0"),
    "lr zero": (_kw(lr=0.0), ValueError, r"`lr` must be a finite number > 0, got 0\.0"),
    "lr per phase negative": (_kw(lr={"joint": -1e-3}), ValueError, r"`lr\['joint'\]` must be a finite number > 0"),
    "max_epochs negative": (_kw(max_epochs=-1), ValueError, r"`max_epochs` must be an integer ≥ 0, got -1"),
    "max_epochs string": (_kw(max_epochs="2"), TypeError, r"`max_epochs` must be an integer, got str"),
    "max_epochs unknown phase": (
        _kw(max_epochs={"bogus": 1}),
        ValueError,
        r"`max_epochs` has unknown phase\(s\) \['bogus'\]; accepted: \['pretrain', 'refine', 'score', 'joint'\]",
    ),
    "hidden_dim zero": (_kw(hidden_dim=0), ValueError, r"`hidden_dim` must be a positive integer, got 0"),
    "random_state negative": (_kw(random_state=-1), ValueError, r"`random_state` must be an integer ≥ 0, got -1"),
    "random_state None": (_kw(random_state=None), TypeError, r"`random_state` must be an integer, got NoneType"),
    "key_added empty": (_kw(key_added=""), TypeError, r"`key_added` must be a non-empty string"),
}


@pytest.fixture(scope="module")
def fitted_toy():
    """A toy AnnData with a previous fit in it, so a failed call can be checked not to lose that fit either."""
    adata = toy()
    rt.tl.fit_ruot(adata, "time", use_rep="X", **FAST)
    return adata


@pytest.mark.parametrize(("make", "error", "match"), list(INVALID.values()), ids=list(INVALID))
def test_invalid_input_raises_before_training_and_changes_nothing(fitted_toy, make, error, match):
    adata, time_key, kwargs = make(fitted_toy.copy())
    snap = snapshot(adata)
    with (
        mock.patch("ruotools.tl._fit.fit", side_effect=AssertionError("training started")),
        pytest.raises(error, match=match),
    ):
        rt.tl.fit_ruot(adata, time_key, **{**FAST, **kwargs})
    assert_unchanged(adata, snap)


def test_not_an_anndata():
    with pytest.raises(TypeError, match=r"`adata` must be an AnnData object, got DataFrame"):
        rt.tl.fit_ruot(pd.DataFrame({"time": [0.0, 1.0]}), "time", **FAST)


def test_view_of_a_backed_anndata_is_rejected(tmp_path):
    path = tmp_path / "toy.h5ad"
    toy().write_h5ad(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    backed = ad.read_h5ad(path, backed="r")
    view = backed[backed.obs["time"] > 0]
    snap = snapshot(view)
    with pytest.raises(ValueError, match=r"`adata` is a view of a backed AnnData.*adata\.to_memory\(\)"):
        rt.tl.fit_ruot(view, "time", use_rep="X", **FAST)
    assert_unchanged(view, snap)
    # the suggested fix works
    subset = backed[:24].to_memory()
    rt.tl.fit_ruot(subset, "time", use_rep="X", **FAST)
    assert subset.layers["ruot_velocity"].shape == (24, 3)
    backed.file.close()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


def test_a_failed_call_on_a_view_leaves_the_view_and_its_parent_unchanged():
    parent = toy()
    view = parent[parent.obs["time"] < 2]  # 2 time points
    parent_snap, view_snap = snapshot(parent), snapshot(view)
    with pytest.raises(ValueError, match="sigma"):
        rt.tl.fit_ruot(view, "time", sigma=-1.0, **FAST)
    assert view.is_view
    assert_unchanged(view, view_snap)
    assert_unchanged(parent, parent_snap)


def test_snapshot_detects_changes():
    """The deep comparison used above does notice a change in any slot or dtype."""
    changes = [
        lambda a: setattr(a, "obs", a.obs.assign(day=a.obs["day"].astype(str))),
        lambda a: setattr(a, "obs", a.obs.assign(n_counts=a.obs["n_counts"].astype(np.float64))),
        lambda a: a.obsm.__setitem__("X_pca", np.asarray(a.obsm["X_pca"], dtype=np.float64)),
        lambda a: a.layers["counts"].data.__setitem__(0, 99.0),
        lambda a: a.uns["meta"]["nested"]["weights"].__setitem__(1, -1.0),
        lambda a: a.uns["meta"]["nested"].__setitem__("extra", 1),
        lambda a: a.X.__setitem__((0, 0), 42.0),
        lambda a: a.obsm.__setitem__("ruot_velocity_pca", np.zeros((a.n_obs, 2))),
    ]
    for change in changes:
        adata = toy()
        snap = snapshot(adata)
        change(adata)
        with pytest.raises(AssertionError):
            assert_unchanged(adata, snap)


# --------------------------------------------------------------------------- inputs that must work


def _outputs(adata, key="ruot"):
    return {
        "velocity": np.asarray(adata.layers[f"{key}_velocity"]),
        "drift": np.asarray(adata.layers[f"{key}_drift"]),
        "growth": adata.obs[f"{key}_growth_rate"].to_numpy(),
        "potential": adata.obs[f"{key}_potential"].to_numpy(),
    }


def _assert_same_outputs(a, b):
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


@pytest.fixture(scope="module")
def reference():
    """Outputs of a fit on the plain toy data (dense float32 ``.X``, float time, unique names)."""
    adata = toy()
    rt.tl.fit_ruot(adata, "time", use_rep="X", **FAST)
    return _outputs(adata)


@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_sparse_x_gives_the_dense_result(reference, fmt):
    adata = toy()
    adata.X = sparse.csr_matrix(adata.X).asformat(fmt)
    rt.tl.fit_ruot(adata, "time", use_rep="X", **FAST)
    assert sparse.issparse(adata.X)
    assert adata.X.format == fmt
    _assert_same_outputs(_outputs(adata), reference)


def test_sparse_x_densifies_only_the_columns_used():
    n_obs, n_vars = 60, 200_000  # the whole matrix dense would be 96 MB in float64
    rng = np.random.default_rng(0)
    x = sparse.random(n_obs, n_vars, density=1e-4, format="csr", random_state=0, dtype=np.float32)
    x = sparse.hstack([sparse.csr_matrix(rng.normal(size=(n_obs, 2)).astype(np.float32)), x], format="csr")
    adata = ad.AnnData(X=x)
    adata.obs["time"] = np.repeat([0.0, 1.0, 2.0], n_obs // 3)
    tracemalloc.start()
    try:
        rt.tl.fit_ruot(adata, "time", use_rep="X", n_dims=2, **FAST)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20e6, peak
    assert adata.obsm["ruot_velocity_X"].shape == (n_obs, 2)


@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int64, np.int32, np.uint8])
def test_representation_dtypes(dtype):
    adata = toy()
    values = np.round(np.asarray(adata.X) * 10) + 50  # exactly representable in every dtype above
    adata.X = values.astype(dtype)
    rt.tl.fit_ruot(adata, "time", use_rep="X", **FAST)
    assert adata.X.dtype == dtype  # the input is not converted in place
    out = _outputs(adata)
    for name in ("velocity", "drift", "growth", "potential"):
        assert out[name].dtype == np.float32
        assert np.isfinite(out[name]).all(), name
    same = toy()
    same.X = values.astype(np.float32)
    rt.tl.fit_ruot(same, "time", use_rep="X", **FAST)
    _assert_same_outputs(out, _outputs(same))


def test_dataframe_in_obsm():
    adata = toy()
    adata.obsm["X_df"] = pd.DataFrame(np.asarray(adata.X), index=adata.obs_names, columns=["a", "b", "c"])
    rt.tl.fit_ruot(adata, "time", use_rep="X_df", **FAST)
    assert np.isfinite(adata.obsm["ruot_velocity_df"]).all()


@pytest.mark.parametrize("x_kind", ["dense", "sparse"])
def test_backed_anndata_fits_in_memory_and_leaves_the_file(tmp_path, reference, x_kind):
    adata = toy()
    if x_kind == "sparse":
        adata.X = sparse.csr_matrix(adata.X)
    path = tmp_path / "toy.h5ad"
    adata.write_h5ad(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    backed = ad.read_h5ad(path, backed="r")
    rt.tl.fit_ruot(backed, "time", use_rep="X", **FAST)
    assert backed.isbacked
    _assert_same_outputs(_outputs(backed), reference)
    # the outputs are in memory and can be written elsewhere; the backed file is untouched
    backed.write_h5ad(tmp_path / "out.h5ad")
    backed.file.close()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    _assert_same_outputs(_outputs(ad.read_h5ad(tmp_path / "out.h5ad")), reference)


def test_view_is_made_actual_without_touching_its_parent():
    parent = toy()
    mask = np.arange(parent.n_obs) % 3 != 0
    expected = parent[mask].copy()
    rt.tl.fit_ruot(expected, "time", use_rep="X", **FAST)
    parent_snap = snapshot(parent)
    view = parent[mask]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ad.ImplicitModificationWarning)
        with pytest.warns(UserWarning, match=r"view of an AnnData; making it an actual AnnData"):
            rt.tl.fit_ruot(view, "time", use_rep="X", **FAST)
    assert not view.is_view
    _assert_same_outputs(_outputs(view), _outputs(expected))
    assert set(view.uns) == set(expected.uns)
    pd.testing.assert_frame_equal(view.obs, expected.obs)
    assert_unchanged(parent, parent_snap)


def test_duplicate_obs_names_warn_and_match_cells_by_position(reference, ruotools_log):
    adata = toy()
    adata.obs_names = ["same"] * 10 + list(adata.obs_names[10:])
    rt.tl.fit_ruot(adata, "time", use_rep="X", **FAST)
    warnings_ = [r.getMessage() for r in ruotools_log.records if r.levelno >= logging.WARNING]
    assert any("9 duplicate name(s)" in msg and "obs_names_make_unique" in msg for msg in warnings_), warnings_
    _assert_same_outputs(_outputs(adata), reference)


def test_sigma_zero_is_a_deterministic_model():
    adata = toy()
    model = rt.tl.fit_ruot(adata, "time", use_rep="X", sigma=0, **FAST)
    assert model.sigma == 0
    out = _outputs(adata)
    np.testing.assert_array_equal(out["drift"], out["velocity"])
    assert np.isnan(out["potential"]).all()
    assert np.isfinite(out["growth"]).all()


def test_minimum_cells_per_time_point_is_accepted():
    adata = toy()
    t = adata.obs["time"].to_numpy().copy()
    t[-val.MIN_CELLS_PER_TIME :] = 9.0
    adata.obs["time"] = t
    # 10 → 2 cells: the cell-count ratios imply a steep decline, which the fit points out
    with pytest.warns(UserWarning, match=r"`relative_mass` is not given.*10 → 2 cells from time 2\.5 to 9"):
        rt.tl.fit_ruot(adata, "time", use_rep="X", **FAST)
    np.testing.assert_array_equal(adata.uns["ruot"]["time_points"], [0.0, 1.0, 2.5, 9.0])


# --------------------------------------------------------------------------- the user's data is kept

# the toy's times are 0, 1, 2.5; every column but "float" and "categorical float" holds twice them
TIME_COLUMNS = {
    "float": lambda t: t,
    "int": lambda t: (t * 2).astype(np.int64),
    "Int64 with NA": lambda t: pd.array([pd.NA, *(t[1:] * 2).astype(np.int64)], dtype="Int64"),
    "categorical float": lambda t: pd.Categorical(t),
    "categorical int ordered": lambda t: pd.Categorical((t * 2).astype(int), ordered=True),
    # categories out of order, one unused
    "categorical string numbers": lambda t: pd.Categorical([f"{v:g}" for v in t * 2], categories=["5", "0", "7", "2"]),
    "object strings": lambda t: np.array([f"{v:g}" for v in t * 2], dtype=object),
    # labels with one number each, categories out of order, one unused
    "categorical labels": lambda t: pd.Categorical([f"day {v:g}" for v in t * 2], ["day 5", "day 0", "D9", "day 2"]),
    "string labels": lambda t: pd.array([f"D{v:g}" for v in t * 2], dtype="string"),
}


@pytest.mark.parametrize("kind", list(TIME_COLUMNS))
def test_time_column_is_never_changed(kind):
    adata = toy()
    adata.obs["stage"] = TIME_COLUMNS[kind](adata.obs["time"].to_numpy())
    before = adata.obs["stage"].copy(deep=True)
    model = rt.tl.fit_ruot(adata, "stage", use_rep="X", **FAST)
    pd.testing.assert_series_equal(adata.obs["stage"], before, check_exact=True, check_categorical=True)
    assert adata.obs["stage"].dtype == before.dtype
    if isinstance(before.dtype, pd.CategoricalDtype):
        assert list(adata.obs["stage"].cat.categories) == list(before.cat.categories)
        assert adata.obs["stage"].cat.ordered == before.cat.ordered
    scale = 1.0 if kind in ("float", "categorical float") else 2.0
    np.testing.assert_array_equal(model.time_points, np.array([0.0, 1.0, 2.5]) * scale)
    # a failed call does not convert it either
    with pytest.raises(ValueError, match="sigma"):
        rt.tl.fit_ruot(adata, "stage", use_rep="X", sigma=-1.0, **FAST)
    pd.testing.assert_series_equal(adata.obs["stage"], before, check_exact=True, check_categorical=True)


def test_a_second_fit_with_another_key_keeps_everything_of_the_first():
    adata = toy()
    rt.tl.fit_ruot(adata, "time", use_rep="X_pca", **FAST)
    snap = snapshot(adata)
    rt.tl.fit_ruot(adata, "day", use_rep="X", key_added="again", random_state=1, **FAST)
    new = {
        "obs": {"again_growth_rate", "again_potential"},
        "layers": {"again_velocity", "again_drift"},
        "uns": {"again", "again_velocity_params"},
    }
    for attr in ("obsm", "layers", "uns"):
        current = dict(getattr(adata, attr))
        assert set(current) - set(snap[attr]) == new.get(attr, set()), attr
        _assert_equal_values({k: current[k] for k in snap[attr]}, snap[attr], attr)
    assert set(adata.obs.columns) - set(snap["obs"].columns) == new["obs"]
    pd.testing.assert_frame_equal(adata.obs[snap["obs"].columns], snap["obs"], check_exact=True)
    # both models can be rebuilt
    assert rt.RUOTModel.from_adata(adata).n_dims == 2
    assert rt.RUOTModel.from_adata(adata, key_added="again").n_dims == 3
