import sys

import anndata as ad
import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

import ruotools as rt


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def _plotted_session(_gene_fit_session):
    adata = _gene_fit_session[0].copy()
    rt.tl.simulate(adata, n_particles=40, times=np.linspace(0.0, 4.0, 21))
    rt.tl.landscape(adata, grid_size=25)
    rt.tl.evaluate(adata, max_cells=300)
    return adata


@pytest.fixture
def plotted(_plotted_session):
    """``simulated_gene`` with a tiny fit, 40 simulated particles, a 25 × 25 landscape per time and metrics."""
    return _plotted_session.copy()


def _trajectory_lines(ax) -> LineCollection:
    (lc,) = [c for c in ax.collections if c.get_label() == "trajectories"]
    return lc


def _surface_vertices(ax) -> np.ndarray:
    """3-D vertices (n_faces, n_vertices, 3) of the ``plot_surface`` collection of ``ax``; NaN marks the
    padding of ragged faces."""
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    (poly,) = [c for c in ax.collections if isinstance(c, Poly3DCollection)]
    faces = getattr(poly, "_faces", None)
    if faces is not None:
        faces = np.array(faces, dtype=float)
        invalid = getattr(poly, "_invalid_vertices", False)  # matplotlib ≥ 3.10 pads ragged faces
        if np.ndim(invalid):
            faces[np.broadcast_to(np.asarray(invalid)[..., None], faces.shape)] = np.nan
        return faces
    vec = np.asarray(poly._vec)  # older matplotlib: homogeneous (4, n) vertices and per-face slices
    return np.stack([vec[:3, sl].T for sl in poly._segslices])


def _rgba(fig) -> np.ndarray:
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba()).copy()


# --------------------------------------------------------------------------- what the plots hold


def test_pl_is_a_lazy_submodule():
    assert "pl" in rt.__all__
    assert callable(rt.pl.trajectories)


def test_trajectories_one_line_per_particle(plotted):
    traj = plotted.uns["ruot_trajectories"]
    ax = rt.pl.trajectories(plotted, show=False)
    assert isinstance(ax, Axes)
    lc = _trajectory_lines(ax)
    segments = lc.get_segments()
    assert len(segments) == traj["X"].shape[1] == 40
    np.testing.assert_allclose(np.stack(segments), np.swapaxes(traj["X"][..., :2], 0, 1))
    # line width grows with the particle's final mass
    final = np.exp(traj["log_mass"][-1])
    widths = np.asarray(lc.get_linewidths())
    assert np.all(np.diff(widths[np.argsort(final)]) >= -1e-12)
    assert widths.max() > widths.min()
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("x1", "x2")
    # the cells are coloured by time with a colourbar spanning the time points
    cells = ax.collections[0]
    assert (cells.norm.vmin, cells.norm.vmax) == (0.0, 4.0)
    assert cells.colorbar is not None


def test_trajectories_subset_and_categorical_color(plotted):
    plotted.obs["branch"] = pd.Categorical(np.where(plotted.X[:, 1] > 1.0, "upper", "lower"))
    ax = rt.pl.trajectories(plotted, color="branch", n_trajectories=10, show=False)
    assert len(_trajectory_lines(ax).get_segments()) == 10
    texts = {t.get_text() for leg in ax.findobj(matplotlib.legend.Legend) for t in leg.get_texts()}
    assert {"upper", "lower"} <= texts


def test_trajectories_on_another_basis_by_knn(plotted):
    rot = np.array([[0.0, -1.0], [1.0, 0.0]])
    plotted.obsm["X_umap"] = np.asarray(plotted.X, dtype=np.float64) @ rot.T * 3.0 + 5.0
    ax = rt.pl.trajectories(plotted, basis="umap", show=False)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("UMAP1", "UMAP2")
    mapped = np.stack(_trajectory_lines(ax).get_segments())  # (N, T, 2)
    pos = plotted.uns["ruot_trajectories"]["X"]  # (T, N, 2)
    # particles start on observed cells: there the kNN regression recovers the linear map closely
    exact_start = pos[0] @ rot.T * 3.0 + 5.0
    span = np.ptp(plotted.obsm["X_umap"], axis=0).max()
    assert np.median(np.abs(mapped[:, 0] - exact_start)) < 0.02 * span
    # everywhere: the mean embedding of the 10 nearest cells in the fitted space
    from sklearn.neighbors import NearestNeighbors

    x = np.asarray(plotted.X, dtype=np.float64)
    _, idx = NearestNeighbors(n_neighbors=10).fit(x).kneighbors(pos[-1])
    np.testing.assert_allclose(mapped[:, -1], plotted.obsm["X_umap"][idx].mean(axis=1))


def test_landscape_contour_panels_and_labels(plotted):
    axes = rt.pl.landscape(plotted, show=False)
    assert len(axes) == 5
    assert [a.get_title() for a in axes] == [f"time = {t:g}" for t in range(5)]
    assert all((a.get_xlabel(), a.get_ylabel()) == ("x1", "x2") for a in axes)
    two = rt.pl.landscape(plotted, time=[0, 4], arrows="stream", show=False)
    assert len(two) == 2
    one = rt.pl.landscape(plotted, time=4, show=False)
    assert isinstance(one, Axes)
    with pytest.raises(ValueError, match=r"time=2\.5"):
        rt.pl.landscape(plotted, time=2.5, show=False)


def test_landscape_surface_heights_equal_the_stored_grid(plotted):
    land = plotted.uns["ruot_landscape"]
    ax = rt.pl.landscape(plotted, kind="surface", time=4, zmax=None, show=False)
    assert ax.name == "3d"
    verts = _surface_vertices(ax).reshape(-1, 3)
    verts = verts[np.isfinite(verts).all(axis=1)]
    j = np.abs(land["grid_x"][None, :] - verts[:, :1]).argmin(axis=1)
    i = np.abs(land["grid_y"][None, :] - verts[:, 1:2]).argmin(axis=1)
    np.testing.assert_allclose(verts[:, 2], land["potential"][4][i, j])
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("x1", "x2")
    # the default cap keeps the valleys and cuts the walls
    capped = rt.pl.landscape(plotted, kind="surface", time=4, show=False)
    top = capped.get_zlim()[1]
    assert top < np.nanmax(land["potential"][4])
    z = _surface_vertices(capped)[..., 2]
    assert np.nanmax(z) <= top + 1e-9


def test_landscape_mapped_onto_an_embedding(plotted):
    plotted.obsm["X_umap"] = np.asarray(plotted.X, dtype=np.float64) * 2.0 - 1.0
    rt.tl.landscape(plotted, basis="umap", grid_size=20)  # kernel map pooled over time: NaN far from cells
    ax = rt.pl.landscape(plotted, show=False)
    assert ax.get_title() == "pooled over time"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("UMAP1", "UMAP2")
    ax3d = rt.pl.landscape(plotted, kind="surface", cell_height="potential", show=False)
    z = _surface_vertices(ax3d)[..., 2]
    assert np.isfinite(z).any()


def test_growth_colour_scale_symmetric_about_zero(plotted):
    g = plotted.obs["ruot_growth_rate"].to_numpy()
    axes = rt.pl.growth(plotted, show=False)
    assert len(axes) == 5
    assert [a.get_title() for a in axes] == [f"time = {t}" for t in range(5)]
    norm = axes[0].collections[-1].norm
    assert norm.vmin == pytest.approx(-np.abs(g).max())
    assert norm.vmax == pytest.approx(np.abs(g).max())
    pooled = rt.pl.growth(plotted, per_time=False, show=False)
    assert isinstance(pooled, Axes)
    plotted.obs["half"] = np.where(np.arange(plotted.n_obs) % 2 == 0, "even", "odd")
    assert len(rt.pl.growth(plotted, groupby="half", show=False)) == 2


def test_potential_colour_scale_spans_the_data(plotted):
    u = plotted.obs["ruot_potential"].to_numpy()
    ax = rt.pl.potential(plotted, per_time=False, show=False)
    sc = ax.collections[-1]
    assert (sc.norm.vmin, sc.norm.vmax) == pytest.approx((np.nanmin(u), np.nanmax(u)))
    assert sc.colorbar is not None
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("x1", "x2")


def test_mass_predicted_and_observed(plotted):
    ax = rt.pl.mass(plotted, show=False)
    lines = {line.get_label(): line for line in ax.get_lines()}
    table = rt.get.mass(plotted)
    np.testing.assert_allclose(lines["predicted"].get_ydata(), table["total_mass"])
    rel = plotted.uns["ruot"]["model"]["relative_mass"]
    np.testing.assert_allclose(lines["observed"].get_xdata(), [0, 1, 2, 3, 4])
    np.testing.assert_allclose(lines["observed"].get_ydata(), rel / rel[0])


def test_history_and_metrics(plotted):
    axes = rt.pl.history(plotted, show=False)
    hist = plotted.uns["ruot"]["history"]
    assert [a.get_title().split()[0] for a in axes] == ["pretrain", "refine", "score", "joint"]
    np.testing.assert_allclose(axes[0].get_lines()[0].get_ydata(), hist["pretrain"]["loss"])
    # pre-training's local stage is not validated: shaded, and the star marks the kept (trajectory-stage) state
    val = np.asarray(hist["pretrain"]["val"])
    n_local = int(np.argmax(np.isfinite(val)))
    assert n_local > 0
    lines = {line.get_label(): line for line in axes[0].get_lines()}
    np.testing.assert_array_equal(lines["validation"].get_ydata(), val)
    assert lines["best (kept)"].get_xdata()[0] == np.nanargmin(val) + 1 > n_local
    (span,) = [p for p in axes[0].patches if p.get_label() == "local stage"]
    xs = [span.get_x(), span.get_x() + span.get_width()] if hasattr(span, "get_width") else span.get_xy()[:, 0]
    assert (min(xs), max(xs)) == (0.5, n_local + 0.5)
    assert not [p for p in axes[1].patches if p.get_label() == "local stage"]
    axes = rt.pl.metrics(plotted, show=False)
    assert [a.get_title() for a in axes] == ["W1", "W2", "TMV", "action"]
    np.testing.assert_allclose(axes[0].get_lines()[0].get_ydata(), plotted.uns["ruot"]["metrics"]["W1"])
    np.testing.assert_allclose(axes[3].get_lines()[0].get_ydata(), plotted.uns["ruot"]["metrics"]["action"])
    del plotted.uns["ruot"]["metrics"]["action"]  # evaluated by an older version: the default skips it
    assert [a.get_title() for a in rt.pl.metrics(plotted, show=False)] == ["W1", "W2", "TMV"]
    with pytest.raises(KeyError, match="nope"):
        rt.pl.history(plotted, phases=["nope"], show=False)


def test_velocity_stream_delegates_to_scvelo(plotted):
    pytest.importorskip("scvelo")
    ax = rt.pl.velocity_stream(plotted, show=False)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("x1", "x2")
    assert len(ax.collections) > 1  # cells + streamlines
    assert "X_X" not in plotted.obsm  # the user's AnnData is left alone


def test_velocity_stream_without_scvelo(plotted, monkeypatch):
    monkeypatch.setitem(sys.modules, "scvelo", None)
    with pytest.raises(ImportError, match=r"pip install 'ruotools\[scvelo\]'"):
        rt.pl.velocity_stream(plotted, show=False)


def test_velocity_stream_needs_the_embedded_velocity(plotted):
    pytest.importorskip("scvelo")
    plotted.obsm["X_umap"] = np.asarray(plotted.X) * 2.0
    with pytest.raises(KeyError, match=r"rt\.tl\.velocity_embedding\(adata, basis='umap'\)"):
        rt.pl.velocity_stream(plotted, basis="umap", show=False)


# --------------------------------------------------------------------------- missing results


def test_clear_key_errors_when_tools_have_not_run(gene_fitted):
    adata, _ = gene_fitted
    with pytest.raises(KeyError, match=r"rt\.tl\.simulate"):
        rt.pl.trajectories(adata, show=False)
    with pytest.raises(KeyError, match=r"rt\.tl\.simulate"):
        rt.pl.mass(adata, show=False)
    with pytest.raises(KeyError, match=r"rt\.tl\.landscape"):
        rt.pl.landscape(adata, show=False)
    with pytest.raises(KeyError, match=r"rt\.tl\.evaluate"):
        rt.pl.metrics(adata, show=False)
    bare = rt.datasets.simulated_gene()
    for plot in (rt.pl.growth, rt.pl.potential, rt.pl.history):
        with pytest.raises(KeyError, match=r"rt\.tl\.fit_ruot"):
            plot(bare, show=False)


# --------------------------------------------------------------------------- scanpy keywords


def test_ax_show_return_fig_and_save(plotted, tmp_path):
    _, ax = plt.subplots()
    out = rt.pl.trajectories(plotted, ax=ax)  # show=None with ax: not shown, the axes come back
    assert out is ax
    assert _trajectory_lines(ax) is not None
    fig2 = rt.pl.mass(plotted, return_fig=True)
    assert isinstance(fig2, Figure)
    _, axs = plt.subplots(1, 5)
    assert rt.pl.growth(plotted, ax=axs, show=False) == list(axs)
    with pytest.raises(ValueError, match="5 panel"):
        rt.pl.growth(plotted, ax=ax, show=False)
    with pytest.raises(ValueError, match="3-D axes"):
        rt.pl.landscape(plotted, kind="surface", time=0, ax=ax, show=False)
    path = tmp_path / "sub" / "landscape.png"
    rt.pl.landscape(plotted, time=[0, 4], save=path, show=False)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 1000


def test_plots_of_a_reloaded_h5ad_are_identical(plotted, tmp_path):
    path = tmp_path / "fitted.h5ad"
    plotted.write_h5ad(path)
    reloaded = ad.read_h5ad(path)
    uns_before, obs_before = set(plotted.uns), list(plotted.obs.columns)
    calls = [
        (rt.pl.trajectories, {}),
        (rt.pl.landscape, {"time": [0, 4]}),
        (rt.pl.landscape, {"kind": "surface", "time": 2}),
        (rt.pl.growth, {}),
        (rt.pl.potential, {"per_time": False}),
        (rt.pl.mass, {}),
        (rt.pl.history, {}),
        (rt.pl.metrics, {}),
    ]
    for plot, kwargs in calls:
        before = _rgba(plot(plotted, return_fig=True, dpi=40, **kwargs))
        after = _rgba(plot(reloaded, return_fig=True, dpi=40, **kwargs))
        assert before.shape == after.shape
        assert np.array_equal(before, after), plot.__name__
        plt.close("all")
    assert set(plotted.uns) == uns_before
    assert list(plotted.obs.columns) == obs_before
