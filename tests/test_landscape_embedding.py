"""The landscape of a fit in PCA drawn on a UMAP: valleys where the cells are (issue #16, item 3).

A count matrix is simulated from a branching 2-D process observed at three times, lifted to 200 genes
by a random loading and Poisson counts, and preprocessed as users do (scanpy: normalize_total → log1p
→ PCA → neighbours → UMAP). ruotools is fitted on the PCA; the landscape is drawn on the UMAP.
"""

import anndata as ad
import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from scipy.spatial import cKDTree
from scipy.stats import gaussian_kde, spearmanr

import ruotools as rt

TIMES = (0.0, 1.0, 2.0)

# Enough training for the velocity to carry the mass from day 0 to the later days (≈ 5 s on one
# core): the landscape on an embedding is the model's own mass, so a model that has not learnt to
# move its cells (4 pre-training epochs) puts its day-2 valleys on the day-0 cells, as it should.
FIT = {
    "max_epochs": {"pretrain": 20, "refine": 1, "score": 1, "joint": 0},
    "hidden_dim": 32,
    "batch_size": 128,
    "show_progress_bar": False,
    "accelerator": "cpu",
}


def simulate_counts(n_per_time=300, n_genes=200, seed=0) -> ad.AnnData:
    """Poisson counts of a branching process: a stem that splits into two branches, seen at ``TIMES``.

    The hidden state z (2-D) moves along the stem and then one of two branches as the cells progress;
    the progress of a cell is its time plus noise. Gene g has the rate exp(b_g + z · L_g) times a size
    factor, with a random loading L (2 × n_genes). ``obsm['z_true']`` keeps the hidden state.
    """
    rng = np.random.default_rng(seed)
    z, t = [], []
    for tk in TIMES:
        progress = np.clip(tk / max(TIMES) + 0.15 * rng.standard_normal(n_per_time), 0.0, None)
        side = np.where(rng.integers(0, 2, n_per_time) == 0, 1.0, -1.0)
        stem, branch = np.minimum(progress, 0.4), np.maximum(progress - 0.4, 0.0)
        zk = np.column_stack([5.0 * stem + 3.5 * branch, 3.5 * side * branch])
        z.append(zk + 0.15 * rng.standard_normal(zk.shape))
        t.append(np.full(n_per_time, tk))
    z, t = np.concatenate(z), np.concatenate(t)
    loading = 0.6 * rng.standard_normal((2, n_genes))
    base = rng.normal(0.0, 1.0, n_genes)
    size = rng.uniform(0.5, 1.5, (len(z), 1))
    counts = rng.poisson(np.exp(base + z @ loading) * size).astype(np.float32)
    obs = pd.DataFrame({"time": t}, index=[f"cell{i}" for i in range(len(t))])
    adata = ad.AnnData(counts, obs=obs, var=pd.DataFrame(index=[f"gene{g}" for g in range(n_genes)]))
    adata.obsm["z_true"] = z
    return adata


@pytest.fixture(scope="module")
def umap_fit():
    """The simulated counts preprocessed with scanpy, fitted on 10 principal components, with a UMAP."""
    import scanpy as sc

    adata = simulate_counts()
    sc.pp.normalize_total(adata)
    sc.pp.log1p(adata)
    sc.pp.pca(adata, n_comps=10, random_state=0)
    sc.pp.neighbors(adata, random_state=0)
    sc.tl.umap(adata, random_state=0)
    rt.tl.fit_ruot(adata, "time", use_rep="X_pca", random_state=0, **FIT)
    rt.tl.landscape(adata, basis="umap", grid_size=60)
    return adata


@pytest.fixture
def fitted(umap_fit):
    return umap_fit.copy()


def _grid_points(land) -> np.ndarray:
    gx, gy = np.meshgrid(land["grid_x"], land["grid_y"])
    return np.column_stack([gx.ravel(), gy.ravel()])


def test_valleys_are_where_each_time_points_cells_are(fitted):
    """Criterion of issue #16: over the unmasked grid, U correlates (Spearman ≥ 0.6) with −log of a
    kernel density estimate of that time's cells on the UMAP, at every time point."""
    land = fitted.uns["ruot_landscape"]
    assert land["params"]["method"] == "mass"
    assert land["basis"] == "umap"
    np.testing.assert_array_equal(land["time"], TIMES)
    emb = fitted.obsm["X_umap"]
    t = fitted.obs["time"].to_numpy()
    pts = _grid_points(land)
    rho = {}
    for k, tk in enumerate(TIMES):
        u = land["potential"][k].ravel()
        ok = np.isfinite(u)
        assert 0.2 < ok.mean() < 1.0  # a part of the grid is masked, most of the cells' region is not
        reference = -np.log(gaussian_kde(emb[t == tk].T)(pts[ok].T) + 1e-300)
        rho[tk] = spearmanr(u[ok], reference).statistic
    print("Spearman of U with −log KDE of each time's cells:", {k: round(v, 3) for k, v in rho.items()})
    assert all(r >= 0.6 for r in rho.values()), rho


def test_no_valley_away_from_the_cells(fitted):
    """No unmasked grid point far from every cell (more than 1.5 bandwidths) is as deep as the cells of
    the panel's time, and the deepest point of each panel lies within one bandwidth of one of its cells."""
    land = fitted.uns["ruot_landscape"]
    h = float(np.max(land["params"]["bandwidth"]))
    emb = fitted.obsm["X_umap"]
    t = fitted.obs["time"].to_numpy()
    pts = _grid_points(land)
    dist_any, _ = cKDTree(emb).query(pts)
    cell_u = land["cell_potential"]
    for k, tk in enumerate(TIMES):
        u = land["potential"][k].ravel()
        far = np.isfinite(u) & (dist_any > 1.5 * h)
        assert far.any()  # the test looks at something
        assert np.min(u[far]) > np.median(cell_u[t == tk]), tk
        deepest = pts[np.nanargmin(u)]
        assert cKDTree(emb[t == tk]).query(deepest)[0] < h, tk


def test_mask_is_exactly_the_points_far_from_every_cell(fitted):
    land = fitted.uns["ruot_landscape"]
    h = land["params"]["bandwidth"]
    masked = land["masked"]
    assert masked.shape == (60, 60)
    assert masked.dtype == bool
    assert np.array_equal(np.isnan(land["potential"]), np.broadcast_to(masked, land["potential"].shape))
    dist, _ = cKDTree(fitted.obsm["X_umap"] / h).query(_grid_points(land) / h)
    assert np.all(dist[masked.ravel()] > 3.0)  # Σ_i exp(−d_i²/2) < 0.01 needs every cell beyond 3.03 h
    assert not np.any(masked.ravel()[dist < 1.0])
    # −∇U is finite wherever a point and its four neighbours are unmasked
    padded = np.pad(masked, 1, constant_values=True)
    near_mask = padded[1:-1, :-2] | padded[1:-1, 2:] | padded[:-2, 1:-1] | padded[2:, 1:-1]
    inner = ~masked & ~near_mask
    assert inner.sum() > 100
    assert np.isfinite(land["gradient_x"][:, inner]).all()
    assert np.isfinite(land["gradient_y"][:, inner]).all()


def test_h5ad_round_trip_keeps_the_mask(fitted, tmp_path):
    path = tmp_path / "fit.h5ad"
    fitted.write_h5ad(path)
    back = ad.read_h5ad(path).uns["ruot_landscape"]
    land = fitted.uns["ruot_landscape"]
    np.testing.assert_array_equal(back["masked"], land["masked"])
    np.testing.assert_allclose(back["potential"], land["potential"], equal_nan=True)
    assert back["params"]["method"] == "mass"


# --------------------------------------------------------------------------- the drawing


def _pixel(fig, ax, xy) -> np.ndarray:
    """RGB (0–255) of the rendered figure at data coordinates ``xy`` of ``ax``."""
    fig.canvas.draw()
    buf = np.asarray(fig.canvas.buffer_rgba())
    px, py = ax.transData.transform(xy)
    return buf[round(buf.shape[0] - py), round(px), :3].astype(int)


def test_masked_points_are_drawn_blank_and_the_valleys_coloured(fitted):
    land = fitted.uns["ruot_landscape"]
    pts = _grid_points(land)
    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    rt.pl.landscape(fitted, time=2.0, ax=ax, show_cells=False, arrows=None, show=False)
    masked = land["masked"].ravel()
    border = np.zeros_like(land["masked"])
    border[[0, 1, -2, -1], :] = border[:, [0, 1, -2, -1]] = True  # on or next to the axes' frame
    inside = masked & ~border.ravel()
    dist, _ = cKDTree(pts[~masked]).query(pts[inside])
    step = np.diff(land["grid_x"])[0] + np.diff(land["grid_y"])[0]
    blank = pts[inside][np.argmax(dist)]  # the masked point farthest from the unmasked grid
    assert np.max(dist) > 2 * step
    np.testing.assert_array_equal(_pixel(fig, ax, blank), [255, 255, 255])
    u = land["potential"][2].ravel()
    valley = pts[np.nanargmin(u)]
    assert np.abs(_pixel(fig, ax, valley) - 255).max() > 60  # drawn in a colour of the map
    plt.close(fig)


def test_colour_bar_shows_the_clipping(fitted):
    fig = rt.pl.landscape(fitted, return_fig=True)
    (cbar_ax,) = [a for a in fig.axes if a.get_label() == "<colorbar>"]
    assert cbar_ax._colorbar.extend == "max"  # zmax="auto" cut the walls: an arrow at the top
    assert cbar_ax.get_ylabel() == "potential U = −log ρ"
    plt.close(fig)
    fig = rt.pl.landscape(fitted, zmax=None, return_fig=True)
    (cbar_ax,) = [a for a in fig.axes if a.get_label() == "<colorbar>"]
    assert cbar_ax._colorbar.extend == "neither"  # nothing clipped: no arrow
    plt.close(fig)


def test_surface_axis_label_clear_of_its_tick_labels(fitted):
    fig = rt.pl.landscape(fitted, kind="surface", return_fig=True)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        if ax.name != "3d":
            continue
        label = ax.zaxis.label.get_window_extent(renderer)
        ticks = [t.get_window_extent(renderer) for t in ax.zaxis.get_ticklabels() if t.get_visible() and t.get_text()]
        assert ticks
        assert not any(label.overlaps(b) for b in ticks)
    plt.close(fig)


def test_default_layout_wraps_after_three_panels(fitted):
    """A landscape per time point wraps into rows of three, so the figure (and its colour-bar text) is
    not shrunk beyond reading when shown at a notebook's width."""
    rt.tl.landscape(fitted, basis="umap", time=[0.0, 0.5, 1.0, 1.5, 2.0], grid_size=20)
    fig = rt.pl.landscape(fitted, return_fig=True)
    panels = [a for a in fig.axes if a.get_label() != "<colorbar>"]
    assert len(panels) == 5
    rows = {round(a.get_position().y0, 3) for a in panels}
    assert len(rows) == 2
    assert fig.get_size_inches()[0] < 15
    plt.close(fig)


def test_a_pooled_landscape_saved_by_an_earlier_version_still_draws(fitted):
    """Before the mass map, a landscape on an embedding was one map pooled over time (``time`` empty)."""
    land = fitted.uns["ruot_landscape"]
    old = {k: v for k, v in land.items() if k != "masked"}
    for key in ("potential", "gradient_x", "gradient_y"):
        old[key] = land[key][-1]
    old["time"] = np.empty(0)
    fitted.uns["ruot_landscape"] = old
    ax = rt.pl.landscape(fitted, show=False)
    assert ax.get_title() == "pooled over time"
    plt.close("all")
