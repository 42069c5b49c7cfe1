"""`rt.tl.landscape`: grid shapes, storage, the minimum of a known density, kernel mapping, errors."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import ruotools as rt
from ruotools._keys import Keys

MEAN = np.array([1.0, -2.0])
STD = np.array([0.5, 0.3])


def _gaussian_adata(n_per_time=300, times=(0.0, 1.0, 2.0), dims=2, seed=0):
    """Cells from one fixed Gaussian at every time point (a stationary population)."""
    rng = np.random.default_rng(seed)
    mean = np.concatenate([MEAN, np.zeros(dims - 2)])
    std = np.concatenate([STD, np.full(dims - 2, 0.4)])
    x = np.concatenate([mean + std * rng.standard_normal((n_per_time, dims)) for _ in times])
    obs = pd.DataFrame({"time": np.repeat(np.asarray(times, dtype=float), n_per_time)})
    obs.index = obs.index.astype(str)
    return ad.AnnData(x.astype(np.float32), obs=obs)


@pytest.fixture(scope="module")
def gaussian_fit():
    """2-D stationary Gaussian, σ = 0.1, score trained longer than the tiny budget (≈ 10 s).

    Default score settings (gain 10, lr 1e-2), no initial-density term: with the former gain of 1
    the valley drifted by up to 0.54 σ_data at the end times unless ``lambda_init`` anchored it.
    """
    import torch

    torch.set_num_threads(1)
    adata = _gaussian_adata()
    kwargs = {
        "max_epochs": {"pretrain": 5, "refine": 1, "score": 40, "joint": 0},
        "hidden_dim": 16,
        "batch_size": 128,
        "show_progress_bar": False,
        "accelerator": "cpu",
    }
    model = rt.tl.fit_ruot(adata, "time", sigma=0.1, random_state=0, **kwargs)
    return adata, model


class _QuadraticModel:
    """Stand-in for a fitted 2-D model whose potential is a known anisotropic quadratic."""

    use_rep, n_dims, time_key = "X", 2, "time"
    time_points = np.array([0.0, 1.0, 2.0])

    class config:
        sigma = 0.1

    def potential(self, x, t):
        centre = MEAN + np.array([0.1, 0.0]) * np.asarray(t, dtype=float).reshape(-1, 1)
        return (((x - centre) / STD) ** 2).sum(axis=1)


@pytest.fixture(scope="module")
def fit_3d(tiny_fit_kwargs):
    import torch

    torch.set_num_threads(1)
    adata = _gaussian_adata(n_per_time=150, dims=3, seed=1)
    rt.tl.fit_ruot(adata, "time", sigma=0.1, random_state=0, **tiny_fit_kwargs)
    # a 2-D "embedding" that is not the fitted space: a rotation of the first two coordinates
    rot = np.array([[np.cos(0.5), -np.sin(0.5)], [np.sin(0.5), np.cos(0.5)]])
    adata.obsm["X_umap"] = np.asarray(adata.X[:, :2]) @ rot.T
    return adata


def test_network_landscape_shapes_and_storage(gaussian_fit, tmp_path):
    adata, model = gaussian_fit
    adata = adata.copy()
    land = rt.tl.landscape(adata, grid_size=40)
    assert land is adata.uns[Keys().landscape]
    assert land["params"]["method"] == "network"
    assert land["basis"] == "X"
    assert land["grid_x"].shape == land["grid_y"].shape == (40,)
    assert land["potential"].shape == (3, 40, 40)
    np.testing.assert_array_equal(land["time"], model.time_points)
    assert land["gradient_x"].shape == land["gradient_y"].shape == (3, 40, 40)
    assert np.isfinite(land["potential"]).all()
    # grid covers the cells plus padding
    x = np.asarray(adata.X)
    assert land["grid_x"][0] < x[:, 0].min()
    assert land["grid_x"][-1] > x[:, 0].max()
    # the per-cell potential is the one the fit wrote
    np.testing.assert_allclose(land["cell_potential"], adata.obs[Keys().potential], rtol=1e-4, atol=1e-4)
    # −∇U matches a finite difference of the stored potential along x
    u = land["potential"][0]
    np.testing.assert_allclose(
        land["gradient_x"][0][:, 1:-1], -(u[:, 2:] - u[:, :-2]) / (2 * np.diff(land["grid_x"])[0])
    )

    single = rt.tl.landscape(adata, time=1.0, grid_size=20)
    assert single["potential"].shape == (20, 20)
    assert single["gradient_y"].shape == (20, 20)
    np.testing.assert_array_equal(single["time"], [1.0])

    path = tmp_path / "land.h5ad"
    adata.write_h5ad(path)
    back = ad.read_h5ad(path).uns[Keys().landscape]
    for key in ("grid_x", "grid_y", "potential", "time", "gradient_x", "gradient_y", "cell_potential"):
        np.testing.assert_allclose(back[key], single[key], equal_nan=True)
    assert back["basis"] == "X"
    assert back["params"]["method"] == "network"


def test_landscape_grid_layout_with_known_potential():
    """potential[..., i, j] is U at (grid_x[j], grid_y[i]); the gradient points downhill."""
    adata = _gaussian_adata(n_per_time=50)
    land = rt.tl.landscape(adata, model=_QuadraticModel(), grid_size=201, padding=0.5)
    assert land["potential"].shape == (3, 201, 201)
    step = np.array([np.diff(land["grid_x"])[0], np.diff(land["grid_y"])[0]])
    for k, t in enumerate(land["time"]):
        u = land["potential"][k]
        i, j = np.unravel_index(np.argmin(u), u.shape)
        found = np.array([land["grid_x"][j], land["grid_y"][i]])
        c = MEAN + np.array([0.1 * t, 0.0])
        np.testing.assert_array_less(np.abs(found - c), step)
        # −∇U = −2 (x − c) / std²: exact for a quadratic with central differences (inside the grid)
        gx, gy = np.meshgrid(land["grid_x"], land["grid_y"])
        np.testing.assert_allclose(land["gradient_x"][k][1:-1, 1:-1], (-2 * (gx - c[0]) / STD[0] ** 2)[1:-1, 1:-1])
        np.testing.assert_allclose(land["gradient_y"][k][1:-1, 1:-1], (-2 * (gy - c[1]) / STD[1] ** 2)[1:-1, 1:-1])


def test_landscape_minimum_at_density_peak(gaussian_fit):
    """U = −log ρ of a stationary Gaussian has its minimum at the mean: within 0.2 σ_data per axis at
    every observed time."""
    adata, _ = gaussian_fit
    x = np.asarray(adata.X, dtype=float)
    mean, std = x.mean(axis=0), x.std(axis=0)
    land = rt.tl.landscape(adata.copy(), grid_size=100, padding=0.0)
    for k, t in enumerate(land["time"]):
        u = land["potential"][k]
        i, j = np.unravel_index(np.argmin(u), u.shape)
        offset = np.abs(np.array([land["grid_x"][j], land["grid_y"][i]]) - mean) / std
        assert np.all(offset < 0.2), (t, offset)


def test_kernel_landscape_on_other_basis(fit_3d):
    adata = fit_3d.copy()
    land = rt.tl.landscape(adata, basis="umap", grid_size=30)  # 3-D fit: kernel-mapped
    assert land["params"]["method"] == "kernel"
    assert land["basis"] == "umap"
    assert land["potential"].shape == (30, 30)
    assert land["time"].shape == (0,)
    assert land["params"]["bandwidth"].shape == (2,)
    # finite at the grid points nearest each cell
    emb = adata.obsm["X_umap"]
    j = np.abs(land["grid_x"][None, :] - emb[:, :1]).argmin(axis=1)
    i = np.abs(land["grid_y"][None, :] - emb[:, 1:]).argmin(axis=1)
    assert np.isfinite(land["potential"][i, j]).all()
    # and NaN far from every cell (the padded corners are empty for a Gaussian cloud with padding 1)
    far = rt.tl.landscape(adata, basis="X_umap", grid_size=30, padding=1.0, bandwidth=0.05)
    assert np.isnan(far["potential"][0, 0])
    # the kernel estimate stays within the range of the cell potentials
    fin = land["potential"][np.isfinite(land["potential"])]
    cu = land["cell_potential"]
    assert fin.min() >= cu.min() - 1e-6
    assert fin.max() <= cu.max() + 1e-6
    # several times → (T, G, G); the default basis of a 3-D fit is X_umap when present
    multi = rt.tl.landscape(adata, time=[0.0, 2.0], grid_size=16)
    assert multi["basis"] == "umap"
    assert multi["potential"].shape == (2, 16, 16)
    assert multi["gradient_x"].shape == (2, 16, 16)


def test_kernel_landscape_on_fitted_components(fit_3d):
    adata = fit_3d.copy()
    del adata.obsm["X_umap"]
    land = rt.tl.landscape(adata, grid_size=12)
    assert land["params"]["method"] == "kernel"
    assert land["basis"] == "X"
    assert land["potential"].shape == (12, 12)


def test_landscape_errors(fit_3d, gaussian_fit, tiny_fit_kwargs):
    adata = fit_3d.copy()
    del adata.obsm["X_umap"]
    before = set(adata.uns)
    with pytest.raises(KeyError, match=r"adata\.obsm\['X_umap'\]"):
        rt.tl.landscape(adata, basis="umap")
    assert set(adata.uns) == before
    with pytest.raises(ValueError, match="grid_size"):
        rt.tl.landscape(adata, grid_size=1)
    with pytest.raises(ValueError, match="bandwidth"):
        rt.tl.landscape(adata, bandwidth=-1.0)
    with pytest.raises(RuntimeError, match="fit_ruot"):
        rt.tl.landscape(_gaussian_adata(n_per_time=5))

    det = _gaussian_adata(n_per_time=40)
    kwargs = dict(tiny_fit_kwargs, max_epochs={"pretrain": 1, "refine": 0, "score": 0, "joint": 0})
    rt.tl.fit_ruot(det, "time", sigma=0, **kwargs)
    with pytest.raises(ValueError, match="deterministic"):
        rt.tl.landscape(det)


def test_landscape_has_its_valley_on_a_ring_of_cells():
    """Cells on a ring (a hole in the middle, like the hematopoiesis embedding): U must be lower on
    the ring than in the empty centre at every time. Bridge score matching with the model's small
    σ alone learnt a single bowl centred in the hole; smoothing the bridges by the cells' kernel
    bandwidth gives the valley (benchmarks/README.md)."""
    import torch

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    n, times = 400, (0.0, 1.0, 2.0)
    angle = rng.uniform(0, 2 * np.pi, size=n * len(times))
    x = np.column_stack([np.cos(angle), np.sin(angle)]) + 0.05 * rng.standard_normal((n * len(times), 2))
    obs = pd.DataFrame({"time": np.repeat(times, n)}, index=[str(i) for i in range(n * len(times))])
    adata = ad.AnnData(x.astype(np.float32), obs=obs)
    kwargs = {"max_epochs": {"pretrain": 3, "refine": 0, "score": 40, "joint": 0}, "hidden_dim": 32}
    rt.tl.fit_ruot(adata, "time", batch_size=128, show_progress_bar=False, accelerator="cpu", **kwargs)
    model = rt.RUOTModel.from_adata(adata)
    centre = np.zeros((1, 2))
    ring = np.column_stack([np.cos(np.linspace(0, 2 * np.pi, 24)), np.sin(np.linspace(0, 2 * np.pi, 24))])
    for t in times:
        u_ring = model.potential(ring, t)
        assert np.median(u_ring) < model.potential(centre, t)[0] - 1.0, t
