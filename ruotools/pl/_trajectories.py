"""`trajectories`: simulated weighted particles over the observed cells."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib import colors as mcolors
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from .. import _validation as val
from .._keys import Keys
from ..get._trajectories import _stored
from . import _utils as u

#: Range of the line-width factor √(mass / mean mass): very light and very heavy particles stay visible.
_WIDTH_FACTOR = (0.3, 3.0)

#: A mapped position averages the neighbours within this many typical embedding distances d of the nearest one.
_RADIUS = 3.0

#: Cells that set the embedding's scale (d, R) of the mapping and of the jump rule.
_SCALE_CELLS = 2000


@u.doc_params
def trajectories(
    adata,
    *,
    basis: str | None = None,
    color: str | None = None,
    cmap="viridis",
    palette=None,
    n_trajectories: int | None = 100,
    trajectory_color="black",
    linewidth: float = 0.5,
    alpha: float | None = None,
    scale_by_mass: bool = True,
    size: float | None = None,
    n_neighbors: int = 10,
    max_jump: float | None = 6.0,
    random_state: int = 0,
    key: str | None = None,
    key_added: str = "ruot",
    title: str | None = None,
    figsize: tuple[float, float] | None = None,
    dpi: float | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | Path | None = None,
    return_fig: bool = False,
) -> Axes | Figure | None:
    r"""Plot the simulated trajectories over the observed cells.

    The observed cells are drawn coloured by time (or any ``color``), the particles simulated by
    :func:`ruotools.tl.simulate` on top of them as lines, one per particle, from a marked start to a
    marked end. A particle's line width and opacity grow with its predicted mass at the end of the
    simulation, ``exp(log_mass)``: the square root of the mass relative to the mean, clipped to
    [0.3, 3]; end markers have an area proportional to it. Whatever was stored is drawn: an SDE or
    an ODE simulation, from any start cells.

    By default a random subset of 100 particles is drawn, light enough for the cells to stay
    visible under the bundle.

    On the fitted representation (``basis`` ``None`` for a 2-D fit, or the fitted basis) the lines are
    the particles' first two coordinates. On any other 2-D basis (e.g. ``"umap"``) each simulated
    position is mapped by k-nearest-neighbour regression: among its ``n_neighbors`` nearest observed
    cells in the fitted representation, those whose embedding lies within 3 d of the nearest one's
    are averaged, where d is the median embedding distance between a cell and its ``n_neighbors``
    nearest cells in the fitted space (a typical neighbour distance on the embedding). A position
    then sits among the cells of one region of the embedding, never in the empty space between
    two islands that its neighbours straddle.

    An embedding such as UMAP can tear apart regions that are close in the fitted space (separate
    islands), so a short step of a particle can land far away on it. Such a step is not drawn, the
    line is broken there (a NaN vertex in the particle's path): a step is broken when its length on
    the embedding exceeds ``max_jump`` × (d + R·\\|Δx\\|), with \\|Δx\\| the step's length in the fitted
    space and R the median ratio of embedding to fitted-space distance between neighbouring cells,
    i.e. when it is ``max_jump`` times longer than cells that far apart in the fitted space are on
    the embedding. The default 6 kept every step of simulations of a count matrix (PCA → UMAP),
    between observed time points too, and broke the jumps between its islands, about 20 times longer.
    A particle far from every cell, whose nearest cells switch from one group to another across
    empty space, is broken the same way.

    Parameters
    ----------
    adata : anndata.AnnData
        Annotated data with a fit and trajectories. Read: ``uns['ruot_trajectories']``
        (:func:`ruotools.tl.simulate`), ``uns['ruot']``, the fitted representation (for a mapped basis),
        ``obsm[f'X_{basis}']`` and ``obs[color]``. Nothing is written.
    basis : str or None
        2-D coordinates: ``None`` (the fitted representation when 2-D, else ``"umap"`` when present, else
        the first two fitted dimensions), ``"X"``, the fitted basis (``"pca"`` for a fit on ``X_pca``) or
        any ``obsm`` embedding (``"umap"`` or ``"X_umap"``).
    color : str or None
        ``obs`` column or gene colouring the cells; ``None`` is the fit's time column. Numeric values
        use ``cmap`` and a colourbar, categories ``palette`` and a legend.
    cmap : str or matplotlib.colors.Colormap
        Colour map of numeric ``color`` values.
    palette : str, sequence or mapping, optional
        Colours of categories: a colormap name, a list, or a dict category → colour; default
        ``uns[f'{color}_colors']`` when present, else tab10/tab20.
    n_trajectories : int or None
        Draw a random subset of this many particles (default 100; all when ``None``).
    trajectory_color : color
        Colour of the lines and markers.
    linewidth : float
        Line width of a particle of mean mass.
    alpha : float or None
        Opacity of a particle of mean mass; ``None`` adapts it to the number N of lines drawn,
        min(0.35, max(0.05, 3/√N)) (0.3 for 100 lines), so that dense bundles do not hide the cells.
    scale_by_mass : bool
        Scale width, opacity and end-marker size with the particle's mass; ``False`` draws all alike.
    size : float or None
        Marker area of the cells (default from the number of cells).
    n_neighbors : int
        Neighbours of the kNN regression onto a basis other than the fitted one.
    max_jump : float or None
        On a basis other than the fitted one, break a line at a step this many times longer on the
        embedding than expected from its length in the fitted space (the rule above); ``None`` draws
        every step.
    random_state : int
        Seed of the ``n_trajectories`` subset.
    key : str or None
        ``uns`` key of the trajectories (``key_added`` of :func:`ruotools.tl.simulate`); default
        ``f'{key_added}_trajectories'``.
    key_added : str
        Key of the fit.
    title : str or None
        Panel title (default "simulated trajectories").
    {figure_params}
    ax : matplotlib.axes.Axes, optional
        Draw into these axes instead of a new figure.
    {show_params}

    Returns
    -------
    matplotlib.axes.Axes or matplotlib.figure.Figure or None
        The figure with ``return_fig=True``; the axes when not shown; else ``None``. The trajectories
        are the :class:`~matplotlib.collections.LineCollection` labelled ``"trajectories"`` (one path
        per particle, with a NaN vertex where a jump is broken).

    Raises
    ------
    KeyError
        When :func:`ruotools.tl.simulate` (or the fit) has not been run, or ``basis``/``color`` is missing.

    Examples
    --------
    >>> import ruotools as rt
    >>> adata = rt.datasets.simulated_gene()  # doctest: +SKIP
    >>> rt.tl.fit_ruot(adata, "time")  # doctest: +SKIP
    >>> rt.tl.simulate(adata)  # doctest: +SKIP
    >>> rt.pl.trajectories(adata)  # doctest: +SKIP
    >>> rt.pl.trajectories(adata, basis="umap", color="cell_type", save="traj.png")  # doctest: +SKIP
    """
    fit = u.fit_entry(adata, key_added)
    key = Keys(key_added).trajectories if key is None else key
    traj = _stored(adata, key)
    b = u.resolve_basis(adata, basis, fit)
    pos = np.asarray(traj["X"], dtype=np.float64)  # (T, N, d)
    mass = np.exp(np.asarray(traj["log_mass"], dtype=np.float64))  # (T, N)
    if n_trajectories is not None and n_trajectories < pos.shape[1]:
        if n_trajectories < 1:
            raise ValueError(f"`n_trajectories` must be a positive integer, got {n_trajectories!r}.")
        pick = np.sort(np.random.default_rng(random_state).choice(pos.shape[1], n_trajectories, replace=False))
        pos, mass = pos[:, pick], mass[:, pick]
    if max_jump is not None and not (isinstance(max_jump, int | float) and np.isfinite(max_jump) and max_jump > 0):
        raise ValueError(f"`max_jump` must be a positive number or None, got {max_jump!r}.")
    if b.fitted:
        lines = np.swapaxes(pos[..., :2], 0, 1)  # (N, T, 2)
        paths = list(lines)
    else:
        mapped, scale = _map_to_basis(adata, fit, pos, b.coords, n_neighbors)
        lines = np.swapaxes(mapped, 0, 1)
        paths = list(lines) if max_jump is None else _break_jumps(lines, np.swapaxes(pos, 0, 1), scale, max_jump)

    fig, axes, ax_given = u.make_panels(1, ax=ax, figsize=figsize, dpi=dpi)
    ax0 = axes[0]
    spec = u.cell_colors(adata, u.fit_time_key(fit) if color is None else color)
    cells = u.scatter_cells(
        ax0, b.coords, spec, adata=adata, cmap=cmap, palette=palette, size=size, alpha=0.8, zorder=1
    )
    if spec.kind == "numeric":
        cbar = fig.colorbar(cells, ax=ax0, label=spec.name, shrink=0.8, pad=0.02)
        if color is None:
            u.time_ticks(cbar, spec.values)

    n_lines = lines.shape[0]
    alpha = float(np.clip(3.0 / np.sqrt(max(n_lines, 1)), 0.05, 0.35)) if alpha is None else float(alpha)
    end_mass = mass[-1]
    rel = end_mass / np.nanmean(end_mass) if scale_by_mass and np.nanmean(end_mass) > 0 else np.ones_like(end_mass)
    factor = np.clip(np.sqrt(np.nan_to_num(rel, nan=0.0)), *_WIDTH_FACTOR)
    rgba = np.tile(mcolors.to_rgba(trajectory_color), (len(factor), 1))
    rgba[:, 3] = np.clip(alpha * factor, 0.05, 1.0)
    lc = LineCollection(paths, linewidths=linewidth * factor, colors=rgba, zorder=2, capstyle="round")
    lc.set_label("trajectories")
    ax0.add_collection(lc)
    t = np.asarray(traj["t"], dtype=np.float64)
    ax0.scatter(
        lines[:, 0, 0], lines[:, 0, 1], s=7, marker="o", facecolors="white", edgecolors=trajectory_color,
        linewidths=0.5, zorder=3, label=f"start (t = {t[0]:g})",
    )  # fmt: skip
    ax0.scatter(
        lines[:, -1, 0], lines[:, -1, 1], s=8 * factor**2, marker="o", color=trajectory_color, linewidths=0,
        zorder=3, label=f"end (t = {t[-1]:g})",
    )  # fmt: skip
    handles = [lc, *ax0.collections[-2:]]
    ax0.legend(handles=handles, loc="best", frameon=True, framealpha=0.8, fontsize="small", markerscale=1.2)
    ax0.autoscale_view()
    u.label_axes(ax0, b)
    u.set_titles(fig, axes, title, ["simulated trajectories"], ax_given=ax_given)
    return u.finish(fig, axes, ax_given=ax_given, show=show, save=save, return_fig=return_fig)


def _map_to_basis(
    adata, fit: Mapping, pos: np.ndarray, emb: np.ndarray, n_neighbors: int
) -> tuple[np.ndarray, tuple[float, float]]:
    """Map positions ``pos`` (T, N, d) in the fitted representation to the embedding ``emb`` (n_obs, 2).

    Each position gets the mean embedding of those of its ``n_neighbors`` nearest observed cells (in the
    fitted space) whose embedding lies within ``_RADIUS`` × d of the nearest one's. Returns the mapped
    positions (T, N, 2), NaN for non-finite positions, and the scale ``(d, R)`` of the embedding: d the
    median embedding distance between a cell and its ``n_neighbors`` nearest cells in the fitted space, R the
    median ratio of their embedding to fitted-space distances (over at most ``_SCALE_CELLS`` cells).
    """
    from sklearn.neighbors import NearestNeighbors

    if isinstance(n_neighbors, bool) or not isinstance(n_neighbors, int | np.integer) or n_neighbors < 1:
        raise ValueError(f"`n_neighbors` must be a positive integer, got {n_neighbors!r}.")
    x, _, _ = val.resolve_rep(adata, str(fit["use_rep"]), None)
    x = x[:, : pos.shape[2]]
    ok = np.all(np.isfinite(x), axis=1) & np.all(np.isfinite(emb), axis=1)
    if ok.sum() == 0:
        raise ValueError("No cell has finite coordinates in both the fitted representation and the basis.")
    x_ok, emb_ok = x[ok], emb[ok]
    k = min(int(n_neighbors), len(x_ok))
    knn = NearestNeighbors(n_neighbors=k).fit(x_ok)
    scale = _embedding_scale(knn, x_ok, emb_ok, k)
    flat = pos.reshape(-1, pos.shape[2])
    out = np.full((len(flat), 2), np.nan)
    fin = np.flatnonzero(np.all(np.isfinite(flat), axis=1))
    for s in range(0, len(fin), 65536):
        sel = fin[s : s + 65536]
        _, idx = knn.kneighbors(flat[sel])
        near = emb_ok[idx]  # (n, k, 2), nearest first
        keep = np.linalg.norm(near - near[:, :1], axis=2) <= _RADIUS * scale[0]
        out[sel] = (near * keep[..., None]).sum(axis=1) / keep.sum(axis=1, keepdims=True)
    return out.reshape(pos.shape[0], pos.shape[1], 2), scale


def _embedding_scale(knn, x: np.ndarray, emb: np.ndarray, k: int) -> tuple[float, float]:
    """Return the scale ``(d, R)`` of the embedding ``emb`` against the fitted space ``x``.

    d is the median embedding distance between cells and their ``k`` nearest cells in the fitted space, R the
    median ratio of embedding to fitted-space distance of those pairs (over at most ``_SCALE_CELLS`` cells, a
    fixed random subset).
    """
    cells = np.arange(len(x))
    if len(cells) > _SCALE_CELLS:
        cells = np.sort(np.random.default_rng(0).choice(cells, _SCALE_CELLS, replace=False))
    dist, idx = knn.kneighbors(x[cells], n_neighbors=min(k + 1, len(x)))
    dist, idx = dist[:, 1:], idx[:, 1:]  # without the cell itself
    d_emb = np.linalg.norm(emb[idx] - emb[cells][:, None], axis=2)
    pos_emb, pos_x = d_emb[d_emb > 0], dist[dist > 0]
    d = float(np.median(pos_emb)) if pos_emb.size else 1.0
    both = (d_emb > 0) & (dist > 0)
    if both.any():
        ratio = float(np.median(d_emb[both] / dist[both]))
    else:
        ratio = d / float(np.median(pos_x)) if pos_x.size else 1.0
    return d, ratio


def _break_jumps(lines: np.ndarray, pos: np.ndarray, scale: tuple[float, float], max_jump: float) -> list[np.ndarray]:
    """Return the paths ``lines`` (N, T, 2) broken at their jumps.

    A NaN vertex is inserted into every step longer on the embedding than ``max_jump`` × (d + R·|Δx|), |Δx| the
    step's length in the fitted space (``pos``, (N, T, d)).
    """
    d, ratio = scale
    step_emb = np.linalg.norm(np.diff(lines, axis=1), axis=2)  # (N, T-1)
    step_fit = np.linalg.norm(np.diff(pos, axis=1), axis=2)
    with np.errstate(invalid="ignore"):
        broken = step_emb > max_jump * (d + ratio * step_fit)
    paths = []
    for line, cut in zip(lines, broken, strict=True):
        at = np.flatnonzero(cut) + 1
        paths.append(np.insert(line, at, np.nan, axis=0) if at.size else line)
    return paths
