import anndata as ad
import numpy as np
import pytest

from ruotools import datasets

EXPECTED = {
    "simulated_gene": (datasets.simulated_gene, 2, {0.0: 400, 1.0: 442, 2.0: 530, 3.0: 690, 4.0: 969}),
    "mouse_hematopoiesis": (datasets.mouse_hematopoiesis, 2, {0.0: 1429, 1.0: 3781, 2.0: 5788}),
    "gaussian_10d": (lambda: datasets.gaussian_mixture(n_dims=10), 10, {0.0: 500, 1.0: 1400}),
    "gaussian_20d": (datasets.gaussian_mixture, 20, {0.0: 500, 1.0: 1400}),
    "gaussian_50d": (lambda: datasets.gaussian_mixture(n_dims=50), 50, {0.0: 500, 1.0: 1400}),
    "gaussian_100d": (lambda: datasets.gaussian_mixture(n_dims=100), 100, {0.0: 500, 1.0: 1400}),
}


@pytest.fixture(params=list(EXPECTED))
def loaded(request):
    load, n_dims, counts = EXPECTED[request.param]
    return load(), n_dims, counts


def test_shape_dtypes_and_names(loaded):
    adata, n_dims, counts = loaded
    assert isinstance(adata, ad.AnnData)
    assert adata.shape == (sum(counts.values()), n_dims)
    assert isinstance(adata.X, np.ndarray)
    assert adata.X.dtype == np.float32
    assert np.isfinite(adata.X).all()
    assert list(adata.var_names) == [f"x{i}" for i in range(1, n_dims + 1)]
    assert adata.obs_names[0] == "cell_0"
    assert adata.obs_names[-1] == f"cell_{adata.n_obs - 1}"
    assert adata.obs_names.is_unique
    assert adata.obs["time"].dtype == np.float64
    assert adata.obs["time"].value_counts().to_dict() == counts


def test_uns_describes_the_data(loaded):
    adata, _, _ = loaded
    info = adata.uns["dataset"]
    assert set(info) >= {"name", "description", "source"}
    assert all(isinstance(value, str) and value for value in info.values())


def test_simulated_gene_first_row():
    adata = datasets.simulated_gene()
    assert adata.obs["time"].iloc[0] == 0.0
    np.testing.assert_allclose(adata.X[0], [2.0496714153011233, 0.18617356988288156], rtol=1e-6)


def test_gaussian_mixture_layout():
    # the first two dimensions carry the dynamics, the others are small noise
    for n_dims in (10, 20, 50, 100):
        adata = datasets.gaussian_mixture(n_dims=n_dims)
        assert adata.X[:, 2:].std(axis=0).max() < 0.1
        assert adata.X[:, :2].std(axis=0).min() > 0.3


def test_gaussian_mixture_high_dims_extend_the_20d_set():
    base = datasets.gaussian_mixture(n_dims=20)
    for n_dims in (50, 100):
        adata = datasets.gaussian_mixture(n_dims=n_dims)
        np.testing.assert_array_equal(adata.X[:, :20], base.X)
        np.testing.assert_array_equal(adata.obs["time"], base.obs["time"])
        # the added coordinates are noise like the shipped ones: centred, the same spread, uncorrelated with time
        extra = adata.X[:, 20:]
        assert abs(extra.std() - base.X[:, 2:].std()) < 0.002
        assert np.abs(extra.mean(axis=0)).max() < 0.02
        np.testing.assert_array_equal(extra, datasets.gaussian_mixture(n_dims=n_dims).X[:, 20:])
        assert adata.uns["dataset"]["name"] == f"gaussian_{n_dims}d"
    # nested: the 50-dimensional set is the first 50 coordinates of the 100-dimensional one
    np.testing.assert_array_equal(
        datasets.gaussian_mixture(n_dims=50).X, datasets.gaussian_mixture(n_dims=100).X[:, :50]
    )


@pytest.mark.parametrize("n_dims", [5, 0, 15, 200, True, 50.5])
def test_gaussian_mixture_rejects_other_dims(n_dims):
    with pytest.raises(ValueError, match=r"one of \[10, 20, 50, 100\]"):
        datasets.gaussian_mixture(n_dims=n_dims)


def test_loads_are_independent():
    first = datasets.simulated_gene()
    second = datasets.simulated_gene()
    first.X[0, 0] = 123.0
    first.obs.loc["cell_0", "time"] = 9.0
    first.uns["dataset"]["name"] = "changed"
    assert second.X[0, 0] != 123.0
    assert second.obs["time"].iloc[0] == 0.0
    assert second.uns["dataset"]["name"] == "simulated_gene"
    assert datasets.simulated_gene().uns["dataset"]["name"] == "simulated_gene"


def test_h5ad_round_trip(tmp_path):
    adata = datasets.simulated_gene()
    path = tmp_path / "gene.h5ad"
    adata.write_h5ad(path)
    back = ad.read_h5ad(path)
    np.testing.assert_array_equal(back.X, adata.X)
    assert back.X.dtype == np.float32
    assert back.obs["time"].dtype == np.float64
    np.testing.assert_array_equal(back.obs["time"].to_numpy(), adata.obs["time"].to_numpy())
    assert list(back.obs_names) == list(adata.obs_names)
    assert list(back.var_names) == list(adata.var_names)
    assert dict(back.uns["dataset"]) == adata.uns["dataset"]


def test_synthetic_branching_sizes_growth_and_seed():
    import ruotools as rt

    a = rt.datasets.synthetic_branching(n_cells=5000, n_dims=12, n_times=4, random_state=3)
    assert a.shape == (5000, 12)
    counts = a.obs["time"].value_counts().sort_index().to_numpy()
    # counts follow the population size 0.5·e^{0.4t} + 0.5·e^{−0.2t} (largest remainders)
    t = np.arange(4.0)
    size = 0.5 * np.exp(0.4 * t) + 0.5 * np.exp(-0.2 * t)
    np.testing.assert_allclose(counts, 5000 * size / size.sum(), atol=1)
    share_a = (a.obs["branch"] == "A").groupby(a.obs["time"]).mean().to_numpy()
    assert np.all(np.diff(share_a) > 0)  # the growing branch takes over
    b = rt.datasets.synthetic_branching(n_cells=5000, n_dims=12, n_times=4, random_state=3)
    np.testing.assert_array_equal(a.X, b.X)
    assert not np.array_equal(a.X, rt.datasets.synthetic_branching(5000, 12, 4, random_state=4).X)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"n_dims": 1}, ValueError, r"`n_dims` must be an integer ≥ 2, got 1"),
        ({"n_times": 2.0}, TypeError, r"`n_times` must be an integer, got float 2.0"),
        ({"n_cells": 5, "n_times": 3}, ValueError, r"`n_cells` must be an integer ≥ 6, got 5"),
        ({"noise": -1.0}, ValueError, r"`noise` must be a finite number ≥ 0"),
    ],
)
def test_synthetic_branching_errors(kwargs, error, message):
    import ruotools as rt

    with pytest.raises(error, match=message):
        rt.datasets.synthetic_branching(**kwargs)
