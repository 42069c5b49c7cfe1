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


def test_trajectories_on_another_basis_by_knn(plotted, monkeypatch):
    from ruotools.pl import _trajectories

    monkeypatch.setattr(_trajectories, "_SCALE_CELLS", 10**6)  # the scale from every cell, as recomputed below
    rot = np.array([[0.0, -1.0], [1.0, 0.0]])
    plotted.obsm["X_umap"] = np.asarray(plotted.X, dtype=np.float64) @ rot.T * 3.0 + 5.0
    ax = rt.pl.trajectories(plotted, basis="umap", max_jump=None, show=False)  # the mapping alone (no breaks)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("UMAP1", "UMAP2")
    mapped = np.stack([p.vertices for p in _trajectory_lines(ax).get_paths()])  # (N, T, 2)
    pos = plotted.uns["ruot_trajectories"]["X"]  # (T, N, 2)
    # particles start on observed cells: there the kNN regression recovers the linear map closely
    exact_start = pos[0] @ rot.T * 3.0 + 5.0
    span = np.ptp(plotted.obsm["X_umap"], axis=0).max()
    assert np.median(np.abs(mapped[:, 0] - exact_start)) < 0.02 * span
    # everywhere: the mean embedding of those of the 10 nearest cells (fitted space) within 3 d of the nearest's,
    # d the median embedding distance between cells and their 10 nearest cells
    from sklearn.neighbors import NearestNeighbors

    x = np.asarray(plotted.X, dtype=np.float64)
    emb = plotted.obsm["X_umap"]
    knn = NearestNeighbors(n_neighbors=11).fit(x)
    _, cell_nn = knn.kneighbors(x)
    d = np.median(np.linalg.norm(emb[cell_nn[:, 1:]] - emb[:, None], axis=2))
    _, idx = knn.kneighbors(pos[-1], n_neighbors=10)
    near = emb[idx]
    keep = np.linalg.norm(near - near[:, :1], axis=2) <= 3 * d
    assert not keep.all()  # some far neighbours are left out: the test tells the rule from a plain mean
    expected = np.array([n[k].mean(axis=0) for n, k in zip(near, keep, strict=True)])
    np.testing.assert_allclose(mapped[:, -1], expected)


def _two_blocks():
    """Cells evenly filling two touching blocks of the fitted 2-D space (x1 < 1.5 and x1 > 1.5), with an embedding
    equal to the fitted space except that the right block is moved 40 units away: two islands far apart on the
    embedding whose cells are neighbours in the fitted space. The fit entry holds what the plots read.
    """
    rng = np.random.default_rng(0)
    g1, g2 = np.meshgrid(np.linspace(0.0, 3.0, 60), np.linspace(0.0, 1.0, 20))
    x = np.column_stack([g1.ravel(), g2.ravel()]) + rng.normal(0.0, 0.005, (g1.size, 2))
    right = x[:, 0] > 1.5
    obs = pd.DataFrame({"time": np.zeros(len(x))}, index=[f"c{i}" for i in range(len(x))])
    adata = ad.AnnData(x.astype(np.float32), obs=obs)
    adata.obsm["X_umap"] = x + np.where(right, 40.0, 0.0)[:, None] * np.array([1.0, 0.0])
    adata.uns["ruot"] = {"model": {"time_key": "time", "dim": 2}, "use_rep": "X"}
    return adata


def test_trajectories_break_jumps_between_islands():
    adata = _two_blocks()
    # 12 particles walk straight across the blocks (x1 from 0.2 to 2.8) in 31 steps; 12 stay in the left block
    s = np.linspace(0.0, 1.0, 31)[:, None, None]
    start = np.column_stack([np.full(12, 0.2), np.linspace(0.2, 0.8, 12)])
    crossing = start[None] + s * np.array([2.6, 0.0])
    staying = start[None] + s * np.array([0.5, 0.0])
    adata.uns["walk"] = {
        "X": np.concatenate([crossing, staying], axis=1), "t": np.linspace(0.0, 1.0, 31),
        "log_mass": np.zeros((31, 24)), "start_obs": np.asarray(adata.obs_names[:24]),
    }  # fmt: skip
    ax = rt.pl.trajectories(adata, basis="umap", key="walk", n_trajectories=None, show=False)
    paths = [p.vertices for p in _trajectory_lines(ax).get_paths()]
    assert len(paths) == 24
    for path in paths[:12]:  # one break (one NaN vertex) where the walk changes island, nothing else
        assert len(path) == 32
        gap = np.flatnonzero(np.isnan(path).any(axis=1))
        assert len(gap) == 1
        before, after = path[: gap[0]], path[gap[0] + 1 :]
        assert before[:, 0].max() < 20 < after[:, 0].min()  # each piece stays on its island
    for path in paths[12:]:
        assert len(path) == 31
        assert np.isfinite(path).all()
    # every drawn vertex lies among the cells, never in the empty space between the islands
    from scipy.spatial import cKDTree

    vertices = np.concatenate(paths)
    dist, _ = cKDTree(adata.obsm["X_umap"]).query(vertices[np.isfinite(vertices).all(axis=1)])
    assert dist.max() < 0.1
    # max_jump=None draws the jump
    ax = rt.pl.trajectories(adata, basis="umap", key="walk", n_trajectories=None, max_jump=None, show=False)
    assert all(np.isfinite(p.vertices).all() for p in _trajectory_lines(ax).get_paths())
    with pytest.raises(ValueError, match="max_jump"):
        rt.pl.trajectories(adata, basis="umap", key="walk", max_jump=0, show=False)


def test_trajectories_keep_every_step_of_a_coarse_simulation_on_a_smooth_embedding(plotted):
    """Steps of a whole time interval are long, but as long on the embedding as in the fitted space: kept."""
    plotted.obsm["X_umap"] = np.asarray(plotted.X, dtype=np.float64) * np.array([2.0, 0.5]) + 3.0
    rt.tl.simulate(plotted, n_particles=40, times=[0.0, 1.0, 2.0, 3.0, 4.0], key_added="coarse")
    ax = rt.pl.trajectories(plotted, basis="umap", key="coarse", show=False)
    assert all(np.isfinite(p.vertices).all() and len(p.vertices) == 5 for p in _trajectory_lines(ax).get_paths())


def test_trajectories_default_subset_and_lighter_lines(gene_fitted):
    adata, _ = gene_fitted
    rt.tl.simulate(adata, n_particles=160, times=[0.0, 2.0, 4.0], stochastic=False)
    lc = _trajectory_lines(rt.pl.trajectories(adata, show=False))
    assert len(lc.get_paths()) == 100  # 100 of 160 by default
    alphas = lc.get_colors()[:, 3]
    assert 0.05 <= np.median(alphas) <= 0.35
    assert len(_trajectory_lines(rt.pl.trajectories(adata, n_trajectories=None, show=False)).get_paths()) == 160


def test_categorical_legend_in_the_right_margin_is_saved(plotted, tmp_path):
    plotted.obs["branch"] = pd.Categorical(np.where(plotted.X[:, 1] > 1.0, "upper", "lower"))
    fig = rt.pl.trajectories(plotted, color="branch", return_fig=True)
    (legend,) = [a for a in fig.axes[0].artists if isinstance(a, matplotlib.legend.Legend)]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box, figure_box = legend.get_window_extent(renderer), fig.get_tightbbox(renderer).transformed(fig.dpi_scale_trans)
    # the legend is right of the axes and inside what `save` (bbox_inches="tight") writes
    assert box.x0 > fig.axes[0].get_window_extent(renderer).x1
    assert figure_box.x1 >= box.x1 - 1
    assert figure_box.x0 <= box.x0


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
    rt.tl.landscape(plotted, basis="umap", grid_size=20)  # the model's mass on the map, per time: NaN far from cells
    ax = rt.pl.landscape(plotted, time=4, show=False)
    assert ax.get_title() == "time = 4"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("UMAP1", "UMAP2")
    ax3d = rt.pl.landscape(plotted, kind="surface", time=4, cell_height="potential", show=False)
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


def test_potential_colour_scale_is_robust_to_outliers(plotted):
    u = plotted.obs["ruot_potential"].to_numpy().copy()
    u[0] = np.nanmax(u) + 100.0  # one extreme cell
    plotted.obs["ruot_potential"] = u
    ax = rt.pl.potential(plotted, per_time=False, show=False)
    sc = ax.collections[-1]
    # 1st–99th percentiles: the outlier does not set the scale, and both ends are clipped (arrows)
    assert (sc.norm.vmin, sc.norm.vmax) == pytest.approx(tuple(np.percentile(u, [1, 99])))
    assert sc.norm.vmax < np.nanmax(u) - 50
    assert sc.colorbar is not None
    assert sc.colorbar.extend == "both"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("x1", "x2")
    # given limits beyond the data on one side: arrows only on the clipped side
    top = rt.pl.potential(plotted, per_time=False, vmin=np.nanmin(u) - 1.0, vmax=0.0, show=False)
    assert top.collections[-1].colorbar.extend == "max"
    wide = rt.pl.potential(plotted, per_time=False, vmin=np.nanmin(u) - 1, vmax=np.nanmax(u) + 1, show=False)
    assert wide.collections[-1].colorbar.extend == "neither"
    # the colour bar's text is not shrunk below the default size
    label = sc.colorbar.ax.get_yticklabels()[0]
    assert label.get_fontsize() >= matplotlib.rcParams["font.size"] - 1e-9


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


def test_metrics_draw_the_w1_references(plotted):
    stored = plotted.uns["ruot"]["metrics"]
    fig = rt.pl.metrics(plotted, return_fig=True)
    w1 = fig.axes[0]
    lines = {line.get_label(): line for line in w1.get_lines()}
    np.testing.assert_allclose(lines["sampling floor: two halves of the snapshot"].get_ydata(), stored["W1_floor"])
    np.testing.assert_allclose(lines["no motion: the previous snapshot"].get_ydata(), stored["W1_nearest"])
    assert w1.collections  # the band under the floor
    assert w1.get_ylim()[1] >= np.nanmax(stored["W1_nearest"])  # no-motion stays in view
    (legend,) = fig.legends  # below the panels, explaining how to read them
    texts = [t.get_text() for t in legend.get_texts()]
    assert texts == ["model: predicted cells", "sampling floor: two halves of the snapshot",
                     "no motion: the previous snapshot"]  # fmt: skip
    assert "floor" in legend.get_title().get_text()
    assert "no motion" in legend.get_title().get_text()
    # other panels carry no references; one panel gets its legend inside
    assert len(fig.axes[1].get_lines()) == 1
    ax = rt.pl.metrics(plotted, metrics="W1", show=False)
    assert ax.get_legend() is not None
    assert len(ax.get_legend().get_texts()) == 3
    bare = rt.pl.metrics(plotted, references=False, return_fig=True)
    assert len(bare.axes[0].get_lines()) == 1
    assert not bare.legends
    # an evaluation without the references (ruotools < 0.2) is drawn as before
    for key in ("W1_floor", "W1_nearest"):
        del plotted.uns["ruot"]["metrics"][key]
    old = rt.pl.metrics(plotted, return_fig=True)
    assert len(old.axes[0].get_lines()) == 1
    assert not old.legends


def test_history_stars_the_start_when_no_epoch_validated_better(plotted):
    hist = plotted.uns["ruot"]["history"]["joint"]
    val = np.asarray(hist["val"], dtype=np.float64)
    hist["best_val"] = float(np.nanmin(val)) - 0.5  # the state before the phase scored best: it was kept
    ax = rt.pl.history(plotted, phases="joint", show=False)
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert "best (kept)" not in lines
    assert lines["best (kept): the start"].get_xdata()[0] == 0
    assert lines["best (kept): the start"].get_ydata()[0] == hist["best_val"]
    assert ax.get_xlim()[0] < 0
    hist["best_val"] = float(np.nanmin(val))  # an epoch was kept: starred where it is
    lines = {line.get_label(): line for line in rt.pl.history(plotted, phases="joint", show=False).get_lines()}
    assert lines["best (kept)"].get_xdata()[0] == np.nanargmin(val) + 1


def test_history_explains_its_curves(plotted):
    fig = rt.pl.history(plotted, return_fig=True)
    note = fig.get_supxlabel()
    assert "different quantities" in note
    assert "(max epochs)" in note
    assert "held-back cells: W2 + 5" in note  # a deepruot fit validates by W2
    assert "max_epochs" in rt.pl.history.__doc__
    assert "different quantities" in rt.pl.history.__doc__
    assert not rt.pl.history(plotted, note=False, return_fig=True).get_supxlabel()
    # a one-epoch phase has integer epoch ticks only
    refine = fig.axes[1]
    assert len(plotted.uns["ruot"]["history"]["refine"]["loss"]) == 1
    ticks = [v for v in refine.get_xticks() if refine.get_xlim()[0] <= v <= refine.get_xlim()[1]]
    assert ticks == [1.0]
    # into given axes: no note (the figure is the user's)
    _, axs = plt.subplots(1, 4)
    rt.pl.history(plotted, ax=axs, show=False)
    assert not axs[0].figure.get_supxlabel()


def test_velocity_stream_labelled_colorbar(plotted):
    pytest.importorskip("scvelo")
    ax = rt.pl.velocity_stream(plotted, show=False)
    cbars = [c.colorbar for c in ax.collections if getattr(c, "colorbar", None) is not None]
    assert len(cbars) == 1
    assert cbars[0].ax.get_ylabel() == "time"
    assert [t.get_text() for t in cbars[0].ax.get_yticklabels()] == ["0", "1", "2", "3", "4"]


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
