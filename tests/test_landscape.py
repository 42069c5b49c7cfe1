"""`rt.tl.landscape`: grid shapes, storage, the minimum of a known density, the model's mass on an embedding, errors."""

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
    assert land["masked"].shape == (40, 40)
    assert not land["masked"].any()  # the network's U is defined everywhere
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
    for key in ("grid_x", "grid_y", "potential", "masked", "time", "gradient_x", "gradient_y", "cell_potential"):
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


def test_mass_landscape_on_other_basis(fit_3d):
    adata = fit_3d.copy()
    land = rt.tl.landscape(adata, basis="umap", grid_size=30, padding=0.5)  # 3-D fit: the model's mass on the map
    assert land["params"]["method"] == "mass"
    assert land["basis"] == "umap"
    assert land["potential"].shape == land["gradient_x"].shape == (3, 30, 30)
    np.testing.assert_array_equal(land["time"], [0.0, 1.0, 2.0])
    assert land["params"]["bandwidth"].shape == (2,)
    assert land["params"]["start_time"] == 0.0
    assert land["masked"].shape == (30, 30)
    assert np.array_equal(np.isnan(land["potential"]), np.broadcast_to(land["masked"], (3, 30, 30)))
    # finite at the grid points nearest each cell
    emb = adata.obsm["X_umap"]
    j = np.abs(land["grid_x"][None, :] - emb[:, :1]).argmin(axis=1)
    i = np.abs(land["grid_y"][None, :] - emb[:, 1:]).argmin(axis=1)
    assert np.isfinite(land["potential"][:, i, j]).all()
    assert np.isfinite(land["cell_potential"]).all()
    # exp(−U) is a density of the model's mass: it integrates to the mass the model predicts at each time
    model = rt.RUOTModel.from_adata(adata)
    x0 = np.asarray(adata.X, dtype=np.float64)[adata.obs["time"].to_numpy() == 0.0]
    mass = np.exp(model.simulate(x0, [0.0, 1.0, 2.0], stochastic=False, n_steps_per_unit=20)["log_mass"]).sum(axis=1)
    cell = np.diff(land["grid_x"])[0] * np.diff(land["grid_y"])[0]
    np.testing.assert_allclose(np.nansum(np.exp(-land["potential"]), axis=(1, 2)) * cell, mass, rtol=0.03)
    # NaN far from every cell (the padded corners are empty for a Gaussian cloud with padding 1)
    far = rt.tl.landscape(adata, basis="X_umap", grid_size=30, padding=1.0, bandwidth=0.05)
    assert np.isnan(far["potential"][:, 0, 0]).all()
    assert far["masked"][0, 0]
    np.testing.assert_array_equal(far["params"]["bandwidth"], [0.05, 0.05])
    # one time → (G, G); the default basis of a 3-D fit is X_umap when present
    single = rt.tl.landscape(adata, time=1.0, grid_size=16)
    assert single["basis"] == "umap"
    assert single["potential"].shape == single["gradient_y"].shape == (16, 16)
    np.testing.assert_array_equal(single["time"], [1.0])
    # a time between the time points is the model's mass there
    between = rt.tl.landscape(adata, time=[0.5, 2.0], grid_size=16)
    assert between["potential"].shape == (2, 16, 16)
    np.testing.assert_array_equal(between["time"], [0.5, 2.0])
    assert np.isfinite(between["potential"][0]).any()


def test_mass_landscape_on_fitted_components(fit_3d):
    adata = fit_3d.copy()
    del adata.obsm["X_umap"]
    land = rt.tl.landscape(adata, grid_size=12)
    assert land["params"]["method"] == "mass"
    assert land["basis"] == "X"
    assert land["potential"].shape == (3, 12, 12)


class _ShiftModel:
    """Stand-in for a fitted 3-D model whose particles move by ``SHIFT`` per unit time; those starting with
    x₂ > 0 double their mass per unit time. Records the keywords ``simulate`` gets."""

    use_rep, n_dims, time_key = "X", 3, "time"
    time_points = np.array([0.0, 1.0])
    relative_mass = np.array([1.0, 1.5])
    SHIFT = np.array([10.0, 0.0, 0.0])

    class config:
        sigma = 0.1

    def __init__(self):
        self.calls = []

    def simulate(self, x0, times, *, log_mass0, **kwargs):
        self.calls.append(kwargs)
        dt = np.asarray(times, dtype=float) - times[0]
        growth = np.where(x0[:, 1] > 0, np.log(2.0), 0.0)
        return {
            "t": np.asarray(times, dtype=float),
            "X": x0[None] + dt[:, None, None] * self.SHIFT,
            "log_mass": log_mass0[None] + dt[:, None] * growth[None],
        }


def test_mass_landscape_is_the_kernel_density_of_the_mass_on_the_nearest_cells():
    """Particles from the day-0 cells land exactly on the day-1 cells: the map at day 1 is the Gaussian
    kernel density of those cells weighted by the particles' masses, and integrates to the total mass."""
    rng = np.random.default_rng(3)
    n = 40
    a0 = rng.uniform(-1.0, 1.0, size=(n, 3))
    x = np.concatenate([a0, a0 + _ShiftModel.SHIFT])
    obs = pd.DataFrame({"time": np.repeat([0.0, 1.0], n)}, index=[str(i) for i in range(2 * n)])
    adata = ad.AnnData(x.astype(np.float64), obs=obs)
    adata.obsm["X_umap"] = rng.normal(size=(2 * n, 2))
    model = _ShiftModel()
    h = 0.3
    land = rt.tl.landscape(adata, model=model, basis="umap", grid_size=80, padding=0.6, bandwidth=h,
                           stochastic=True, n_steps_per_unit=7, random_state=5)  # fmt: skip
    assert model.calls == [{"stochastic": True, "n_steps_per_unit": 7.0, "random_state": 5}]
    emb = adata.obsm["X_umap"]
    w1 = np.where(a0[:, 1] > 0, 2.0, 1.0) / n  # the mass of particle i, on day-1 cell i
    w0 = np.full(n, 1.0 / n)

    def density(points, centres, w):
        d2 = (((points[:, None, :] - centres[None]) / h) ** 2).sum(axis=-1)
        return (w[None] * np.exp(-0.5 * d2)).sum(axis=1) / (2 * np.pi * h * h)

    gx, gy = np.meshgrid(land["grid_x"], land["grid_y"])
    pts = np.column_stack([gx.ravel(), gy.ravel()])
    ok = ~land["masked"].ravel()
    for k, (centres, w) in enumerate([(emb[:n], w0), (emb[n:], w1)]):
        u = land["potential"][k].ravel()
        np.testing.assert_allclose(u[ok], -np.log(density(pts[ok], centres, w)), rtol=1e-10)
        cells = slice(0, n) if k == 0 else slice(n, 2 * n)
        np.testing.assert_allclose(land["cell_potential"][cells], -np.log(density(emb[cells], centres, w)), rtol=1e-10)
    cell = np.diff(land["grid_x"])[0] * np.diff(land["grid_y"])[0]
    total = np.nansum(np.exp(-land["potential"]), axis=(1, 2)) * cell
    np.testing.assert_allclose(total, [1.0, w1.sum()], rtol=0.01)
    # the mask: Σ_i exp(−d_i²/2h²) over all the cells below 0.01
    support = density(pts, emb, np.ones(2 * n)) * 2 * np.pi * h * h
    np.testing.assert_array_equal(land["masked"].ravel(), support < 0.01)
    with pytest.raises(ValueError, match="first fitted time point"):
        rt.tl.landscape(adata, model=model, basis="umap", time=-0.5)


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
    with pytest.raises(ValueError, match="n_steps_per_unit"):
        rt.tl.landscape(adata, n_steps_per_unit=0)
    with pytest.raises(ValueError, match="first fitted time point 0"):
        rt.tl.landscape(adata, time=[-1.0, 1.0])
    assert set(adata.uns) == before
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
