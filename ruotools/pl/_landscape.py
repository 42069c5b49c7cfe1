"""`landscape`: the Waddington potential as filled contours with −∇U arrows, or as a shaded 3-D surface."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib import colors as mcolors
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .. import _validation as val
from .._keys import Keys
from . import _utils as u

_KINDS = ("contour", "surface")
_ARROWS = ("quiver", "stream", None)
_POTENTIAL_LABEL = "potential U = −log ρ"
#: Panels per row when ``ncols`` is not given.
MAX_DEFAULT_COLUMNS = 3


@dataclass(frozen=True)
class _Panel:
    potential: np.ndarray  # (G, G), as stored
    grad_x: np.ndarray
    grad_y: np.ndarray
    time: float | None  # None: pooled over the cells' own times
    cells: np.ndarray  # boolean mask of the cells drawn on this panel


@u.doc_params
def landscape(
    adata,
    *,
    kind: str = "contour",
    time=None,
    color: str | None = None,
    cmap="viridis",
    palette=None,
    levels: int = 20,
    zmax="auto",
    arrows: str | None = "quiver",
    arrow_density: int = 22,
    show_cells: bool = True,
    cell_height: str = "grid",
    cell_color="white",
    size: float | None = None,
    elev: float = 38.0,
    azim: float = -120.0,
    ncols: int | None = None,
    key_added: str = "ruot",
    title=None,
    figsize: tuple[float, float] | None = None,
    dpi: float | None = None,
    ax=None,
    show: bool | None = None,
    save: str | Path | None = None,
    return_fig: bool = False,
) -> Axes | list[Axes] | Figure | None:
    """Plot the Waddington landscape U = −log ρ computed by :func:`ruotools.tl.landscape`.

    ``kind="contour"`` draws filled contours of U with the downhill field −∇U as arrows (``quiver``,
    subsampled to about ``arrow_density`` arrows per axis, length ∝ slope up to its 90th percentile;
    or ``stream`` lines) and the cells on top. ``kind="surface"`` draws U as a shaded 3-D surface with
    the cells on it. One panel per stored time when the potential is (T, G, G), else one panel.

    Valleys (low U) are where the model puts its cells. For a fit drawn on its own 2-D space, U is the
    model's −log ρ with the same mean over the cells of every time point; on an embedding (a UMAP of a
    PCA fit), U is −log of the density of the model's mass on the embedding, and grid points with no
    cell nearby are masked and drawn blank (see :func:`ruotools.tl.landscape`). Away from the cells U
    rises steeply; ``zmax="auto"`` caps what is drawn at the highest value of U under the cells (99th
    percentile) plus half the range of U below it, the same cap on every panel, so the valleys are not
    flattened by the walls. Above the cap, contours are drawn in the top colour and the surface is a
    flat plateau; the colour bar then has an arrow at its top.

    Each panel shows the cells observed at the panel's time (all cells for a pooled map, or a time
    without observations). On the surface a cell sits at the surface's height at its position
    (``cell_height="grid"``, bilinear interpolation) or at its own potential ``cell_potential``
    (``"potential"``: U of the cell at its own observed time).

    Parameters
    ----------
    adata : anndata.AnnData
        Annotated data with a landscape. Read: ``uns['ruot_landscape']`` (grid, potential, gradient,
        basis, cell potential), ``uns['ruot']`` (the time column), the landscape's basis
        (``obsm[f'X_{basis}']`` or the fitted representation) and ``obs[color]``. Nothing is written.
    kind : {"contour", "surface"}
        Filled contours with arrows, or a 3-D surface.
    time : float, sequence of float or None
        Stored time(s) to draw; ``None`` draws every stored time. Times not stored raise a
        ``ValueError`` (compute them with ``rt.tl.landscape(adata, time=...)``).
    color : str or None
        ``obs`` column or gene colouring the cells; ``None`` draws them in ``cell_color``. The legend of
        categories is drawn right of the colour bar (in the last panel when ``ax`` is given).
    cmap : str or matplotlib.colors.Colormap
        Colour map of the potential (and of numeric ``color``).
    palette : str, sequence or mapping, optional
        Colours of the categories of ``color``.
    levels : int
        Number of filled contour levels.
    zmax : "auto", float or None
        Highest potential drawn (see above); ``None`` draws every value as stored.
    arrows : {"quiver", "stream", None}
        How to draw −∇U on contour panels.
    arrow_density : int
        Arrows per axis (``"quiver"``).
    show_cells : bool
        Draw the cells.
    cell_height : {"grid", "potential"}
        Height of the cells on a surface.
    cell_color : color
        Colour of the cells when ``color`` is ``None``.
    size : float or None
        Marker area of the cells.
    elev, azim : float
        Viewing angles of the surface, in degrees.
    ncols : int or None
        Panels per row (default: up to 3, so the figure stays readable at a notebook's width).
    key_added : str
        Key of the fit.
    title : str, sequence of str or None
        Panel titles (default: the time of each panel); one string above several panels is the figure title.
    {figure_params}
    ax : matplotlib.axes.Axes or sequence of Axes, optional
        Draw into these axes (3-D axes for a surface), one per panel.
    {show_params}

    Returns
    -------
    matplotlib.axes.Axes, list of Axes, matplotlib.figure.Figure or None
        The figure with ``return_fig=True``; the axes (a list for several panels) when not shown.

    Raises
    ------
    KeyError
        When :func:`ruotools.tl.landscape` has not been run.

    Examples
    --------
    >>> import ruotools as rt
    >>> adata = rt.datasets.simulated_gene()  # doctest: +SKIP
    >>> rt.tl.fit_ruot(adata, "time")  # doctest: +SKIP
    >>> rt.tl.landscape(adata)  # doctest: +SKIP
    >>> rt.pl.landscape(adata, time=[0, 4])  # doctest: +SKIP
    >>> rt.pl.landscape(adata, kind="surface", time=4, save="landscape.png")  # doctest: +SKIP
    """
    if kind not in _KINDS:
        raise ValueError(f"`kind` must be one of {_KINDS}, got {kind!r}.")
    if arrows not in _ARROWS:
        raise ValueError(f"`arrows` must be one of {_ARROWS}, got {arrows!r}.")
    if cell_height not in ("grid", "potential"):
        raise ValueError(f"`cell_height` must be 'grid' or 'potential', got {cell_height!r}.")
    key = Keys(key_added).landscape
    land = adata.uns.get(key)
    if not isinstance(land, Mapping):
        raise KeyError(f"`adata.uns['{key}']` not found: run `rt.tl.landscape(adata)` first.")
    fit = u.fit_entry(adata, key_added)
    b = u.resolve_basis(adata, str(land["basis"]), {"use_rep": land["params"]["use_rep"]})
    gx, gy = np.asarray(land["grid_x"], dtype=np.float64), np.asarray(land["grid_y"], dtype=np.float64)
    panels = _panels(land, u.fit_times(adata, fit), time)

    cap = _cap(panels, b.coords, gx, gy, zmax)
    shown = [_capped(p.potential, cap) for p in panels]
    lo = min(float(np.nanmin(s)) for s in shown)
    hi = max(float(np.nanmax(s)) for s in shown)
    norm = mcolors.Normalize(lo, hi if hi > lo else lo + 1.0)
    spec = u.cell_colors(adata, color)

    # at most three panels per row by default: a wider figure, scaled down to a notebook's or a page's
    # width, would make every text in it (the colour bar's included) too small to read
    ncols = min(len(panels), MAX_DEFAULT_COLUMNS) if ncols is None else ncols
    fig, axes, ax_given = u.make_panels(
        len(panels), ax=ax, figsize=figsize, dpi=dpi, ncols=ncols, projection="3d" if kind == "surface" else None
    )
    for a, p, z in zip(axes, panels, shown, strict=True):
        draw = _surface if kind == "surface" else _contour
        draw(
            a, p, z, gx, gy, b, spec, adata=adata, norm=norm, cmap=cmap, palette=palette, levels=levels,
            arrows=arrows, arrow_density=arrow_density, show_cells=show_cells, cell_height=cell_height,
            cell_color=cell_color, size=size, cell_potential=np.asarray(land["cell_potential"], dtype=np.float64),
        )  # fmt: skip
        if kind == "surface":
            a.view_init(elev=elev, azim=azim)
    clipped = cap is not None and any(np.nanmax(p.potential) > cap for p in panels if np.isfinite(p.potential).any())
    u.add_colorbar(
        fig, _mappable(norm, cmap), axes, label=_POTENTIAL_LABEL, extend=u.colorbar_extend(high=clipped),
        shrink=0.7 if kind == "surface" else 0.9,
    )  # fmt: skip
    if show_cells and spec.kind == "categorical":
        _category_legend(fig, axes, adata, spec, palette, panels, ax_given=ax_given)
    time_key = u.fit_time_key(fit)
    default = ["pooled over time" if p.time is None else f"{time_key} = {p.time:g}" for p in panels]
    u.set_titles(fig, axes, title, default, ax_given=ax_given)
    return u.finish(fig, axes, ax_given=ax_given, show=show, save=save, return_fig=return_fig)


def _mappable(norm, cmap):
    from matplotlib.cm import ScalarMappable

    sm = ScalarMappable(norm=norm, cmap=cmap)
    sm.set_array([])
    return sm


def _panels(land: Mapping, t_cells: np.ndarray, time) -> list[_Panel]:
    pot = np.asarray(land["potential"], dtype=np.float64)
    grad_x = np.asarray(land["gradient_x"], dtype=np.float64)
    grad_y = np.asarray(land["gradient_y"], dtype=np.float64)
    stored = np.atleast_1d(np.asarray(land.get("time", []), dtype=np.float64))
    if pot.ndim == 2:
        pot, grad_x, grad_y = pot[None], grad_x[None], grad_y[None]
        stored = stored[:1] if len(stored) else np.array([np.nan])
    if time is None:
        idx = list(range(len(pot)))
    else:
        idx = []
        for tv in val.time_points(time, "time"):
            hit = np.flatnonzero(np.isclose(stored, tv))
            if len(hit) == 0:
                avail = [f"{s:g}" for s in stored if np.isfinite(s)]
                raise ValueError(
                    f"The stored landscape has no time {tv:g} (stored: {avail or 'pooled over time'}). "
                    f"Run `rt.tl.landscape(adata, time={tv:g})` first."
                )
            idx.append(int(hit[0]))
    out = []
    for i in idx:
        tv = float(stored[i]) if np.isfinite(stored[i]) else None
        cells = np.isclose(t_cells, tv) if tv is not None else np.zeros(len(t_cells), bool)
        if not cells.any():
            cells = np.isfinite(t_cells)
        out.append(_Panel(pot[i], grad_x[i], grad_y[i], tv, cells))
    return out


def _capped(z: np.ndarray, cap: float | None) -> np.ndarray:
    """``z`` with values above ``cap`` set to ``cap`` (a flat plateau: cut walls look ragged on a surface)."""
    if cap is None:
        return z
    return np.where(z > cap, cap, z)


def _interpolate(z: np.ndarray, gx: np.ndarray, gy: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Bilinear interpolation of ``z`` (G_y, G_x) at the points ``xy`` (n, 2); NaN outside the grid."""
    from scipy.interpolate import RegularGridInterpolator

    f = RegularGridInterpolator((gy, gx), z, method="linear", bounds_error=False, fill_value=np.nan)
    out = np.full(len(xy), np.nan)
    ok = np.all(np.isfinite(xy), axis=1)
    out[ok] = f(xy[ok][:, ::-1])
    return out


def _cap(panels: list[_Panel], coords, gx, gy, zmax) -> float | None:
    """Return the highest potential drawn, shared by all panels (``None``: no cap)."""
    if zmax is None:
        return None
    if not (isinstance(zmax, str) and zmax == "auto"):
        zmax = float(zmax)
        if not np.isfinite(zmax):
            raise ValueError(f"`zmax` must be 'auto', a finite number or None, got {zmax!r}.")
        return zmax
    caps = []
    for p in panels:
        under = _interpolate(p.potential, gx, gy, coords[p.cells])
        under = under[np.isfinite(under)]
        if under.size == 0:
            continue
        top, bottom = float(np.percentile(under, 99)), float(np.nanmin(p.potential))
        caps.append(top + 0.5 * (top - bottom))
    return max(caps) if caps else None


def _category_legend(fig, axes, adata, spec, palette, panels, *, ax_given: bool) -> None:
    """Legend of the categories of the drawn cells: right of the colour bar, or in the last given axes."""
    import matplotlib.pyplot as plt

    cols = u.category_colors(adata, spec, palette)
    drawn = np.logical_or.reduce([p.cells for p in panels])
    present = np.unique(spec.values[drawn & (spec.values >= 0)])
    handles = [plt.Line2D([], [], ls="", marker="o", ms=6, color=cols[c], label=spec.categories[c]) for c in present]
    if not handles:
        return
    if ax_given:
        axes[-1].legend(handles=handles, title=spec.name, loc="best", frameon=True, framealpha=0.8, fontsize="small")
    else:
        fig.legend(handles=handles, title=spec.name, loc="outside right upper", frameon=False)


def _contour_cell_size(n: int) -> float:
    """Marker area of ``n`` cells drawn over contours.

    Small, and at most about 4,000 pt² of markers in all, so that thousands of cells do not hide the
    valleys they lie in.
    """
    return min(0.35 * u.default_size(n), 4000.0 / max(n, 1))


def _draw_cells(a, xy, spec, cells, *, adata, cmap, palette, size, cell_color, z=None):
    """Scatter the ``cells`` (a mask) on a 2-D panel, or on a 3-D one at heights ``z`` (n_obs,)."""
    if z is None:
        return u.scatter_cells(
            a, xy, spec, adata=adata, mask=cells, cmap=cmap, palette=palette,
            size=_contour_cell_size(int(cells.sum())) if size is None else size,
            alpha=0.6, default_color=cell_color, zorder=3, legend=False,
        )  # fmt: skip
    keep = cells & np.all(np.isfinite(xy), axis=1) & np.isfinite(z)
    s = u.default_size(int(keep.sum())) * 0.4 if size is None else size
    if spec.kind == "numeric":
        c = spec.values[keep]
        kwargs = {"c": c, "cmap": cmap, "norm": u.numeric_norm(spec.values)}
    elif spec.kind == "categorical":
        cols = np.array([*u.category_colors(adata, spec, palette), mcolors.to_rgba("lightgrey")])
        kwargs = {"c": cols[spec.values[keep]]}
    else:
        kwargs = {"c": cell_color, "edgecolors": "black", "linewidths": 0.1}
    return a.scatter(xy[keep, 0], xy[keep, 1], z[keep], s=s, depthshade=False, alpha=0.9, zorder=5, **kwargs)


def _contour(a, p, z, gx, gy, b, spec, *, adata, norm, cmap, palette, levels, arrows, arrow_density,
             show_cells, cell_height, cell_color, size, cell_potential):  # fmt: skip
    lv = np.linspace(norm.vmin, norm.vmax, int(levels) + 1)
    a.contourf(gx, gy, z, levels=lv, cmap=cmap, norm=norm, zorder=0)
    a.contour(gx, gy, z, levels=lv, colors="black", linewidths=0.25, alpha=0.35, zorder=1)
    inside = np.isfinite(z) & (p.potential <= norm.vmax)
    if arrows == "quiver":
        _quiver(a, p, gx, gy, inside, arrow_density)
    elif arrows == "stream":
        u_, v_ = np.where(inside, p.grad_x, np.nan), np.where(inside, p.grad_y, np.nan)
        a.streamplot(gx, gy, u_, v_, density=1.1, color="black", linewidth=0.5, arrowsize=0.7, zorder=2)
    if show_cells:
        _draw_cells(a, b.coords, spec, p.cells, adata=adata, cmap=cmap, palette=palette, size=size,
                    cell_color=cell_color)  # fmt: skip
    a.set_xlim(gx[0], gx[-1])
    a.set_ylim(gy[0], gy[-1])
    u.label_axes(a, b)


def _quiver(a, p, gx, gy, inside, density):
    """−∇U arrows on a subsampled grid; length ∝ slope, capped at its 90th percentile (so walls don't dominate)."""
    step = max(1, round(len(gx) / max(int(density), 1)))
    sl = (slice(step // 2, None, step), slice(step // 2, None, step))
    ux, uy = p.grad_x[sl], p.grad_y[sl]
    keep = inside[sl] & np.isfinite(ux) & np.isfinite(uy)
    mag = np.hypot(ux, uy)
    if not keep.any() or not np.any(mag[keep] > 0):
        return
    ref = np.percentile(mag[keep], 90)
    ref = ref if ref > 0 else mag[keep].max()
    spacing = 0.85 * step * 0.5 * ((gx[-1] - gx[0]) / (len(gx) - 1) + (gy[-1] - gy[0]) / (len(gy) - 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.where(mag > 0, spacing * np.minimum(mag / ref, 1.0) / mag, 0.0)
    xx, yy = np.meshgrid(gx, gy)
    a.quiver(
        xx[sl][keep], yy[sl][keep], (ux * scale)[keep], (uy * scale)[keep], angles="xy", scale_units="xy",
        scale=1.0, width=0.0035, headwidth=3.5, headlength=4.0, color="black", alpha=0.6, zorder=2,
    )  # fmt: skip


def _surface(a, p, z, gx, gy, b, spec, *, adata, norm, cmap, palette, levels, arrows, arrow_density,
             show_cells, cell_height, cell_color, size, cell_potential):  # fmt: skip
    from matplotlib.colors import LightSource

    xx, yy = np.meshgrid(gx, gy)
    shade_z = _fill_nearest(z)  # masked points take their nearest value: no false wall shaded along the mask
    rgb = LightSource(azdeg=315, altdeg=35).shade(
        shade_z, cmap=_colormap(cmap), norm=norm, blend_mode="soft", vert_exag=_vert_exag(shade_z, gx, gy)
    )
    rgb[~np.isfinite(z)] = 0.0
    a.plot_surface(
        xx, yy, z, facecolors=rgb, rcount=len(gy), ccount=len(gx), linewidth=0, antialiased=False, shade=False,
        zorder=1,
    )  # fmt: skip
    a.computed_zorder = False
    if show_cells:
        on_grid = cell_height == "grid"
        heights = _interpolate(z, gx, gy, b.coords) if on_grid else np.minimum(cell_potential, norm.vmax)
        lift = 0.01 * (norm.vmax - norm.vmin)
        _draw_cells(a, b.coords, spec, p.cells, adata=adata, cmap=cmap, palette=palette, size=size,
                    cell_color=cell_color, z=heights + lift)  # fmt: skip
    a.set_xlim(gx[0], gx[-1])
    a.set_ylim(gy[0], gy[-1])
    a.set_zlim(norm.vmin, norm.vmax)
    a.set_xlabel(b.labels[0], labelpad=-6)
    a.set_ylabel(b.labels[1], labelpad=-6)
    # tick labels pulled in towards the box (pad −2); the U label keeps its default distance from them,
    # and five z ticks at most, so neither the label nor the tick labels overlap
    a.zaxis.set_major_locator(MaxNLocator(nbins=5))
    a.set_zlabel("U", labelpad=0)
    a.tick_params(labelsize="x-small", pad=-2)
    if not b.fitted:  # embedding coordinates carry no units
        a.set_xticklabels([])
        a.set_yticklabels([])


def _fill_nearest(z: np.ndarray) -> np.ndarray:
    """``z`` with each non-finite point replaced by the value of the nearest finite one (unchanged if none)."""
    bad = ~np.isfinite(z)
    if not bad.any() or bad.all():
        return z
    from scipy import ndimage

    idx = ndimage.distance_transform_edt(bad, return_distances=False, return_indices=True)
    return z[tuple(idx)]


def _colormap(cmap):
    """Return the colormap object of a name or colormap."""
    import matplotlib.pyplot as plt

    return plt.get_cmap(cmap)


def _vert_exag(z: np.ndarray, gx: np.ndarray, gy: np.ndarray) -> float:
    """Vertical exaggeration that makes the hill shading independent of the units of U and of the basis."""
    zr = float(np.nanmax(z) - np.nanmin(z))
    xr = float(max(gx[-1] - gx[0], gy[-1] - gy[0]))
    return 0.6 * xr / zr if zr > 0 and xr > 0 else 1.0
