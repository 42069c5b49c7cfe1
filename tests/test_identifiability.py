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
        table = rt.tl.growth_identifiability(adata, "time", use_rep="X", relative_mass={0: 1, 1: 2, 2: 4}, **FIT)
    assert (table["excess"] < 0.25).all()
    assert not table["identifiable"].any()


def test_growth_argument_is_refused_and_threshold_checked():
    adata = _two_clusters(grow=False)
    with pytest.raises(TypeError, match="`growth` is set by growth_identifiability"):
        rt.tl.growth_identifiability(adata, "time", growth=False)
    with pytest.raises(ValueError, match="min_excess"):
        rt.tl.growth_identifiability(adata, "time", min_excess=float("nan"))
    assert "ruot_growth_identifiability" not in adata.uns
