"""Time labels ("D0", "day 2") and honest growth (issue 16, items 1 and 2).

A time column of labels that each hold exactly one number is read as those numbers (the column
is never modified, the mapping is logged); other labels are a ``TypeError`` whose suggested fix is
run here. ``relative_mass`` keys are read the same way. Without ``relative_mass``, cell counts
that change by more than 3× between consecutive time points give a ``UserWarning``.
"""

import logging
import re
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import ruotools as rt
from ruotools import _validation as val

FAST = {"max_epochs": 1, "hidden_dim": 8, "batch_size": 16, "show_progress_bar": False, "accelerator": "cpu"}

# label → number, as found in real time courses
READABLE = [
    ("D0", 0.0),
    ("D14", 14.0),
    ("day 2", 2.0),
    ("Day0", 0.0),
    ("Day 3.5", 3.5),
    ("day_10", 10.0),
    ("E7.5", 7.5),
    ("E10.25", 10.25),
    ("P7", 7.0),
    ("t3", 3.0),
    ("48h", 48.0),
    ("12hr", 12.0),
    ("0 h", 0.0),
    ("iPSC_D3", 3.0),
    ("Day 0 (ctrl)", 0.0),
    ("day -1", -1.0),
    ("-1", -1.0),
    (" 3 ", 3.0),
    ("2.5", 2.5),
    ("1e3", 1000.0),
    ("−2", -2.0),  # Unicode minus
    (4, 4.0),
    (np.float32(1.5), 1.5),
]

# label → the reason given in the message
UNREADABLE = [
    ("ctrl", "no number"),
    ("untreated", "no number"),
    ("day2_rep1", "several numbers: 2, 1"),
    ("2-4", "several numbers: 2, 4"),
    ("D0_batch2", "several numbers: 0, 2"),
    ("7,5", "several numbers: 7, 5"),
    ("D-1", "minus sign or a separator"),
    (True, "a boolean"),
]


def labelled(labels, n_per_label=12, n_dims=2, seed=0, times=None, kind="categorical"):
    """AnnData whose ``obs['day']`` holds ``labels`` (n_per_label cells each), cells drifting with time."""
    rng = np.random.default_rng(seed)
    times = np.arange(len(labels), dtype=np.float64) if times is None else np.asarray(times, dtype=np.float64)
    t = np.repeat(times, n_per_label)
    x = rng.normal(size=(len(t), n_dims)) + t[:, None]
    adata = ad.AnnData(x.astype(np.float32))
    column = np.repeat(np.asarray(labels, dtype=object), n_per_label)
    if kind == "categorical":
        adata.obs["day"] = pd.Categorical(column)
    elif kind == "string":
        adata.obs["day"] = pd.array(column, dtype="string")
    else:
        adata.obs["day"] = column
    return adata


@pytest.mark.parametrize(("label", "number"), READABLE, ids=[repr(label) for label, _ in READABLE])
def test_label_table(label, number):
    assert val.time_label_value(label) == (number, None)
    # a column of it, next to a plain number, reads the same
    adata = labelled([label, "100"], n_per_label=2, kind="object")
    np.testing.assert_array_equal(val.resolve_time(adata, "day"), [number, number, 100.0, 100.0])


@pytest.mark.parametrize(("label", "reason"), UNREADABLE, ids=[repr(label) for label, _ in UNREADABLE])
def test_unreadable_labels(label, reason):
    value, problem = val.time_label_value(label)
    assert value is None
    assert reason in problem
    adata = labelled(["D0", label], n_per_label=2, kind="object")
    with pytest.raises(TypeError, match=re.escape(f"{str(label)!r} ({problem})")):
        val.resolve_time(adata, "day")


@pytest.mark.parametrize("label", ["", "nan", " NaN "])
def test_missing_labels_are_nan(label):
    assert np.isnan(val.time_label_value(label)[0])


@pytest.mark.parametrize("kind", ["categorical", "string", "object"])
def test_fit_reads_labels_logs_the_mapping_once_and_keeps_the_column(kind, ruotools_log):
    adata = labelled(["day 0", "day 2", "day 4.5"], times=[0.0, 2.0, 4.5], kind=kind)
    before = adata.obs["day"].copy(deep=True)
    model = rt.tl.fit_ruot(adata, "day", use_rep="X", **FAST)
    np.testing.assert_array_equal(model.time_points, [0.0, 2.0, 4.5])
    np.testing.assert_array_equal(adata.uns["ruot"]["time_points"], [0.0, 2.0, 4.5])
    pd.testing.assert_series_equal(adata.obs["day"], before, check_exact=True, check_categorical=True)
    assert adata.obs["day"].dtype == before.dtype
    mapping = [r for r in ruotools_log.records if "read as numbers" in r.getMessage()]
    assert len(mapping) == 1
    assert mapping[0].levelno == logging.INFO
    assert '"day 0" → 0.0, "day 2" → 2.0, "day 4.5" → 4.5' in mapping[0].getMessage()
    # a tool reading the fitted time column later agrees, without logging the mapping again
    ruotools_log.clear()
    table = rt.tl.evaluate(adata, stochastic=False)
    assert list(table.index) == [2.0, 4.5]
    assert not [r for r in ruotools_log.records if "read as numbers" in r.getMessage()]


def test_plain_numbers_log_nothing(ruotools_log):
    adata = labelled(["0", "1", "2"])
    np.testing.assert_array_equal(np.unique(val.resolve_time(adata, "day", log=True)), [0.0, 1.0, 2.0])
    assert not [r for r in ruotools_log.records if "read as numbers" in r.getMessage()]


# --------------------------------------------------------------------------- the suggested fix runs


def _suggested_fix(message: str) -> tuple[str, str]:
    """The code of the message's fix and the time_key it says to pass."""
    code = re.search(r"`(adata\.obs\[[^`]* = [^`]*)`", message).group(1)
    key = re.search(r"pass `time_key='([^']+)'`", message).group(1)
    return code, key


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        # one unreadable label with several numbers, one without any: first number, NaN (left out)
        (["ctrl", "day 0", "day2_rep1", "day 4"], [0.0, 2.0, 4.0]),
        # a range and an ambiguous sign
        (["D-1", "D0", "2-4"], [-1.0, 0.0, 2.0]),
        # no label holds a number: placeholders in the order of the categories
        (["ctrl", "treated", "late"], [0.0, 1.0, 2.0]),
    ],
)
@pytest.mark.parametrize("kind", ["categorical", "object"])
def test_the_suggested_fix_works(labels, expected, kind):
    adata = labelled(labels, kind=kind)
    before = adata.obs["day"].copy(deep=True)
    with pytest.raises(TypeError, match="Map every label to its time") as err:
        rt.tl.fit_ruot(adata, "day", use_rep="X", **FAST)
    pd.testing.assert_series_equal(adata.obs["day"], before, check_exact=True)
    assert "ruot" not in adata.uns
    code, key = _suggested_fix(str(err.value))
    exec(code, {"adata": adata})
    assert key == "day_numeric"
    assert adata.obs[key].dtype == np.float64
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the placeholders' cell counts are arbitrary
        model = rt.tl.fit_ruot(adata, key, use_rep="X", **FAST)
    np.testing.assert_array_equal(model.time_points, expected)


def test_the_suggested_fix_for_dates_works():
    adata = labelled(["0", "1", "3"], times=[0.0, 1.0, 3.0])
    adata.obs["date"] = pd.to_datetime("2024-03-01") + pd.to_timedelta(val.resolve_time(adata, "day"), unit="D")
    with pytest.raises(TypeError, match="holds dates or durations") as err:
        rt.tl.fit_ruot(adata, "date", use_rep="X", **FAST)
    code = re.search(r"`(adata\.obs\[[^`]* = [^`]*)`", str(err.value)).group(1)
    key = re.search(r"pass `time_key='([^']+)'`", str(err.value)).group(1)
    exec(code, {"adata": adata, "pd": pd})
    model = rt.tl.fit_ruot(adata, key, use_rep="X", **FAST)
    np.testing.assert_array_equal(model.time_points, [0.0, 1.0, 3.0])


# --------------------------------------------------------------------------- relative_mass keys


def test_relative_mass_keys_are_read_like_labels():
    adata = labelled(["day 0", "day 2", "day 4"], times=[0.0, 2.0, 4.0])
    rt.tl.fit_ruot(adata, "day", use_rep="X", relative_mass={"day 0": 2, "D2": 3.6, 4: 6.2}, **FAST)
    params = adata.uns["ruot"]["params"]
    np.testing.assert_allclose(params["relative_mass"], [1.0, 1.8, 3.1])
    assert bool(params["relative_mass_given"]) is True
    # on a numeric column too
    adata.obs["t"] = val.resolve_time(adata, "day")
    rt.tl.fit_ruot(adata, "t", use_rep="X", relative_mass={"day 0": 1, "day 2": 1.8, "day 4": 3.1}, **FAST)
    np.testing.assert_allclose(adata.uns["ruot"]["params"]["relative_mass"], [1.0, 1.8, 3.1])


@pytest.mark.parametrize(
    ("relative_mass", "error", "match"),
    [
        ({"ctrl": 1, "day 2": 1.8, "day 4": 3}, TypeError, r"`relative_mass` keys must be time points.*'ctrl' has no"),
        ({"day 0": 1, "day2_rep1": 1.8, "day 4": 3}, TypeError, r"`relative_mass` keys.*'day2_rep1' has several"),
        ({"day 0": 1, "day 2": 1.8, "day 4": "3"}, TypeError, r"`relative_mass` values must be numbers"),
        ({"day 0": 1, "day 2": 1.8, 2: 2.0, 4: 3}, ValueError, r"`relative_mass` gives time point 2 two different"),
        ({"day 0": 1, "day 2": 1.8}, KeyError, r"`relative_mass` has no entry for time point\(s\) \[4\.0\]"),
        ({"day 0": 1, "day 2": -1, "day 4": 3}, ValueError, r"`relative_mass` values must be positive"),
        ([1, 1.8, 3], TypeError, r"`relative_mass` must be a mapping"),
    ],
)
def test_relative_mass_errors_name_the_argument(relative_mass, error, match):
    adata = labelled(["day 0", "day 2", "day 4"], times=[0.0, 2.0, 4.0])
    before = adata.copy()
    with pytest.raises(error, match=match):
        rt.tl.fit_ruot(adata, "day", use_rep="X", relative_mass=relative_mass, **FAST)
    assert set(adata.uns) == set(before.uns)
    pd.testing.assert_frame_equal(adata.obs, before.obs)


def test_the_same_time_twice_with_the_same_size_is_accepted():
    masses = val.check_relative_mass({"day 2": 2.0, 2: 2.0, "D0": 1.0}, np.array([0.0, 2.0]), np.array([5, 5]))
    np.testing.assert_array_equal(masses, [1.0, 2.0])


# --------------------------------------------------------------------------- time points passed to tools


def test_time_points_of_tools_accept_labels():
    np.testing.assert_array_equal(val.time_points("day 2", "time"), [2.0])
    np.testing.assert_array_equal(val.time_points(["D0", 4, 2.5], "time"), [0.0, 4.0, 2.5])
    np.testing.assert_array_equal(val.time_points(np.array([1.0, 3.0]), "time"), [1.0, 3.0])
    with pytest.raises(TypeError, match=r"`held_out` must be time point\(s\).*'ctrl' has no number"):
        val.time_points(["day 2", "ctrl"], "held_out")


def test_holdout_time_takes_a_label(ruotools_log):
    adata = labelled(["D0", "D1", "D2"], n_per_label=16)
    table = rt.tl.holdout_time(adata, "day", held_out="D1", use_rep="X", **FAST)
    assert list(table.index) == [1.0]
    mapping = [r.getMessage() for r in ruotools_log.records if "read as numbers" in r.getMessage()]
    assert mapping == ['time labels of `adata.obs[\'day\']` read as numbers: "D0" → 0.0, "D1" → 1.0, "D2" → 2.0']
    with pytest.raises(ValueError, match="interior time points"):
        rt.tl.holdout_time(adata, "day", held_out="D2", use_rep="X", **FAST)


def test_landscape_takes_a_label():
    adata = labelled(["day 0", "day 1", "day 2"], n_per_label=16)
    rt.tl.fit_ruot(adata, "day", use_rep="X", sigma=0.5, **FAST)
    by_label = rt.tl.landscape(adata, time="day 1", grid_size=6)
    by_number = rt.tl.landscape(adata, time=1.0, grid_size=6)
    np.testing.assert_array_equal(by_label["time"], [1.0])
    np.testing.assert_array_equal(by_label["potential"], by_number["potential"])
    fig = rt.pl.landscape(adata, time="day 1", return_fig=True)
    assert len(fig.axes) >= 1
    with pytest.raises(TypeError, match="`time` must be time point"):
        rt.pl.landscape(adata, time="ctrl", return_fig=True)


# --------------------------------------------------------------------------- honest growth


@pytest.mark.parametrize(
    ("counts", "warns"),
    [
        ([500, 1400], False),  # gaussian_mixture: 2.8×
        ([100, 300, 900], False),  # exactly 3× per gap
        ([100, 301], True),
        ([100, 200, 30, 100], True),  # 15 % of a neighbour
        ([100, 19, 100], True),  # under 20 % of both neighbours
        ([300, 99], True),  # a drop beyond 3×
        ([100, 110, 95, 120], False),
    ],
)
def test_the_count_ratio_rule(counts, warns):
    times = np.cumsum([0.0, 1.0, 5.0, 0.5])[: len(counts)]  # uneven gaps
    message = val.extreme_count_changes(times, np.asarray(counts), "day")
    assert (message is not None) == warns
    if warns:
        assert "`relative_mass` is not given" in message
        assert "proportional to the number of cells sampled" in message


def test_the_rule_ignores_the_spacing_of_time_points():
    counts = np.array([100, 400])
    assert val.extreme_count_changes(np.array([0.0, 1.0]), counts, "t") is not None
    assert val.extreme_count_changes(np.array([0.0, 100.0]), counts, "t") is not None


def test_bundled_datasets_do_not_trigger_the_warning():
    for adata in (
        rt.datasets.simulated_gene(),
        rt.datasets.mouse_hematopoiesis(),
        rt.datasets.gaussian_mixture(),
        rt.datasets.synthetic_branching(n_cells=2000, n_dims=4, n_times=5),
    ):
        t = val.resolve_time(adata, "time")
        times, counts = np.unique(t[~np.isnan(t)], return_counts=True)
        assert val.extreme_count_changes(times, counts, "time") is None


def _few_cells_on_day_2():
    """30, 4 and 30 cells at D0, D2, D4."""
    adata = labelled(["D0", "D2", "D4"], times=[0.0, 2.0, 4.0], n_per_label=30)
    return adata[np.r_[0:30, 30:34, 60:90]].copy()


def test_fit_warns_when_counts_imply_an_extreme_change():
    adata = _few_cells_on_day_2()
    with pytest.warns(UserWarning, match=r"`relative_mass` is not given.*30 → 4 cells from day 0 to 2") as record:
        rt.tl.fit_ruot(adata, "day", use_rep="X", **FAST)
    (ours,) = [w for w in record if "relative_mass" in str(w.message)]
    assert ours.filename == __file__  # points at the caller's line
    assert "4 → 30 cells from day 2 to 4" in str(ours.message)
    assert bool(adata.uns["ruot"]["params"]["relative_mass_given"]) is False


@pytest.mark.parametrize(
    "kwargs", [{"relative_mass": {"D0": 1, "D2": 1.1, "D4": 1.2}}, {"growth": False}], ids=["given", "no growth"]
)
def test_no_warning_with_relative_mass_or_without_growth(kwargs):
    adata = _few_cells_on_day_2()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        rt.tl.fit_ruot(adata, "day", use_rep="X", **FAST, **kwargs)
    params = adata.uns["ruot"]["params"]
    assert bool(params["relative_mass_given"]) == ("relative_mass" in kwargs)
    assert bool(params["growth"]) == ("growth" not in kwargs)


def test_no_warning_for_a_failed_call():
    adata = _few_cells_on_day_2()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        with pytest.raises(ValueError, match="alpha"):
            rt.tl.fit_ruot(adata, "day", use_rep="X", flavor="var_ruot", alpha=0.0, **FAST)
