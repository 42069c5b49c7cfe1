"""`growth` and `potential`: per-cell outputs of the fit on a 2-D basis, one panel per time point or pooled."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .._keys import Keys
from . import _utils as u

_GROWTH_LABEL = "growth rate g (log-mass per unit time)"
_POTENTIAL_LABEL = "potential U = −log ρ"

#: Percentiles of the values shown that bound the potential's default colour scale.
_ROBUST_PERCENTILES = (1.0, 99.0)


@u.doc_params
def growth(
    adata,
    *,
    basis: str | None = None,
    per_time: bool = True,
    groupby: str | None = None,
    cmap="RdBu_r",
    vmin: float | None = None,
    vmax: float | None = None,
    size: float | None = None,
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
    """Plot the cells coloured by their fitted growth rate g.

    g is the log-mass change per unit of the user's time (> 0: the cell's lineage expands, < 0: it
    shrinks). The colour scale is diverging and centred at zero: symmetric, ±max|g|, unless ``vmin`` or
    ``vmax`` is given (then a :class:`~matplotlib.colors.TwoSlopeNorm` around 0). All panels share it.

    Parameters
    ----------
    adata : anndata.AnnData
        Annotated data with a fit. Read: ``obs['ruot_growth_rate']``, ``uns['ruot']`` (time column and
        representation), the basis and ``obs[groupby]``. Nothing is written.
    basis : str or None
        2-D coordinates: ``None`` (the fitted representation when 2-D, else ``"umap"`` when present, else
        the first two fitted dimensions), ``"X"``, the fitted basis or any ``obsm`` embedding.
    per_time : bool
        One panel per time point (the other cells in light grey behind); ``False`` pools all cells in one
        panel.
    groupby : str or None
        ``obs`` column whose values give the panels instead of the time points.
    cmap : str or matplotlib.colors.Colormap
        Diverging colour map.
    vmin, vmax : float or None
        Limits of the colour scale; values beyond a given limit are clipped, which the colour bar's
        arrows show.
    size : float or None
        Marker area (default from the number of cells).
    ncols : int or None
        Panels per row (default: up to 5).
    key_added : str
        Key of the fit.
    title : str, sequence of str or None
        Panel titles (default: the group of each panel); one string above several panels is the figure title.
    {figure_params}
    ax : matplotlib.axes.Axes or sequence of Axes, optional
        Draw into these axes, one per panel.
    {show_params}

    Returns
    -------
    matplotlib.axes.Axes, list of Axes, matplotlib.figure.Figure or None
        The figure with ``return_fig=True``; the axes (a list for several panels) when not shown.

    Raises
    ------
    KeyError
        When the fit (or its growth rate) is missing.

    Examples
    --------
    >>> import ruotools as rt
    >>> adata = rt.datasets.simulated_gene()  # doctest: +SKIP
    >>> rt.tl.fit_ruot(adata, "time")  # doctest: +SKIP
    >>> rt.pl.growth(adata)  # doctest: +SKIP
    >>> rt.pl.growth(adata, per_time=False, basis="umap", save="growth.png")  # doctest: +SKIP
    """
    return _cell_plot(
        adata, Keys(key_added).growth, _GROWTH_LABEL, center=0.0, basis=basis, per_time=per_time,
        groupby=groupby, cmap=cmap, vmin=vmin, vmax=vmax, size=size, ncols=ncols, key_added=key_added,
        title=title, figsize=figsize, dpi=dpi, ax=ax, show=show, save=save, return_fig=return_fig,
    )  # fmt: skip


@u.doc_params
def potential(
    adata,
    *,
    basis: str | None = None,
    per_time: bool = True,
    groupby: str | None = None,
    cmap="viridis",
    vmin: float | None = None,
    vmax: float | None = None,
    size: float | None = None,
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
    """Plot the cells coloured by their landscape potential U = −log ρ.

    U is the potential of each cell at its own time (its free constant set so that each time point's
    cells have the same mean): low values are valleys, where cells are dense. The colour scale is
    shared by all panels and robust to outliers: by default it spans the 1st to the 99th percentile
    of the values shown (a few cells in sparse regions have extreme U on real data and would
    otherwise flatten every other cell into one colour); cells beyond it take the end colours and
    the colour bar ends in arrows on the clipped side(s).

    Parameters
    ----------
    adata : anndata.AnnData
        Annotated data with a fit. Read: ``obs['ruot_potential']``, ``uns['ruot']`` (time column and
        representation), the basis and ``obs[groupby]``. Nothing is written.
    basis : str or None
        2-D coordinates, as in :func:`ruotools.pl.growth`.
    per_time : bool
        One panel per time point; ``False`` pools all cells in one panel.
    groupby : str or None
        ``obs`` column whose values give the panels instead of the time points.
    cmap : str or matplotlib.colors.Colormap
        Colour map.
    vmin, vmax : float or None
        Limits of the colour scale; ``None`` is the 1st (``vmin``) or 99th (``vmax``) percentile of
        the values shown. Values beyond a limit are clipped, which the colour bar's arrows show.
    size : float or None
        Marker area (default from the number of cells).
    ncols : int or None
        Panels per row (default: up to 5).
    key_added : str
        Key of the fit.
    title : str, sequence of str or None
        Panel titles; one string above several panels is the figure title.
    {figure_params}
    ax : matplotlib.axes.Axes or sequence of Axes, optional
        Draw into these axes, one per panel.
    {show_params}

    Returns
    -------
    matplotlib.axes.Axes, list of Axes, matplotlib.figure.Figure or None
        The figure with ``return_fig=True``; the axes (a list for several panels) when not shown.

    Raises
    ------
    KeyError
        When the fit (or its potential, absent for ``sigma=0``) is missing.

    Examples
    --------
    >>> import ruotools as rt
    >>> adata = rt.datasets.mouse_hematopoiesis()  # doctest: +SKIP
    >>> rt.tl.fit_ruot(adata, "time")  # doctest: +SKIP
    >>> rt.pl.potential(adata, per_time=False)  # doctest: +SKIP
    """
    return _cell_plot(
        adata, Keys(key_added).potential, _POTENTIAL_LABEL, center=None, basis=basis, per_time=per_time,
        groupby=groupby, cmap=cmap, vmin=vmin, vmax=vmax, size=size, ncols=ncols, key_added=key_added,
        title=title, figsize=figsize, dpi=dpi, ax=ax, show=show, save=save, return_fig=return_fig,
    )  # fmt: skip


def _cell_plot(adata, column, label, *, center, basis, per_time, groupby, cmap, vmin, vmax, size, ncols,
               key_added, title, figsize, dpi, ax, show, save, return_fig):  # fmt: skip
    fit = u.fit_entry(adata, key_added)
    if column not in adata.obs.columns:
        hint = " (with `growth=True`)" if column == Keys(key_added).growth else " (with `sigma > 0`)"
        raise KeyError(f"`adata.obs['{column}']` not found: run `rt.tl.fit_ruot(adata, time_key=...)`{hint} first.")
    values = adata.obs[column].to_numpy(dtype=np.float64, na_value=np.nan)
    b = u.resolve_basis(adata, basis, fit)
    groups = _groups(adata, fit, per_time, groupby)
    shown = np.zeros(adata.n_obs, bool)
    for _, mask in groups:
        shown |= mask
    finite = values[shown & np.isfinite(values)]
    if center is None and finite.size:  # robust range: a few extreme cells do not set the scale
        vmin = float(np.percentile(finite, _ROBUST_PERCENTILES[0])) if vmin is None else vmin
        vmax = float(np.percentile(finite, _ROBUST_PERCENTILES[1])) if vmax is None else vmax
    norm = u.numeric_norm(values[shown], vmin, vmax, center=center)
    extend = _extend(finite, norm)

    fig, axes, ax_given = u.make_panels(len(groups), ax=ax, figsize=figsize, dpi=dpi, ncols=ncols)
    s = u.default_size(int(np.isfinite(b.coords).all(axis=1).sum())) if size is None else size
    order = np.argsort(np.abs(values - (center or 0.0)) if center is not None else np.zeros(len(values)), kind="stable")
    xy, ordered = b.coords[order], u.CellColors("numeric", label, values[order])
    sc = None
    for a, (_, mask) in zip(axes, groups, strict=True):
        if len(groups) > 1:
            u.scatter_cells(a, b.coords, u.CellColors("none", None), adata=adata, mask=~mask, size=s * 0.5,
                            default_color="#e6e6e6", zorder=0)  # fmt: skip
        sc = u.scatter_cells(a, xy, ordered, adata=adata, mask=mask[order], cmap=cmap, norm=norm, size=s, zorder=1)
        u.label_axes(a, b)
    fig.colorbar(sc, ax=axes, label=label, shrink=0.9 if len(axes) > 1 else 1.0, pad=0.02, extend=extend)
    u.set_titles(fig, axes, title, [name for name, _ in groups], ax_given=ax_given)
    return u.finish(fig, axes, ax_given=ax_given, show=show, save=save, return_fig=return_fig)


def _extend(values: np.ndarray, norm) -> str:
    """Return the colour bar's ``extend``: arrows on the side(s) where the finite ``values`` lie beyond ``norm``."""
    if not values.size:
        return "neither"
    return u.colorbar_extend(low=values.min() < norm.vmin, high=values.max() > norm.vmax)


def _groups(adata, fit: Mapping, per_time: bool, groupby: str | None) -> list[tuple[str, np.ndarray]]:
    """Panels: (title, cell mask) per time point, per value of ``obs[groupby]``, or one pooled panel."""
    if groupby is not None:
        col = adata.obs[groupby] if groupby in adata.obs.columns else None
        if col is None:
            raise KeyError(f"`adata.obs['{groupby}']` not found; pass `groupby=` an `.obs` column.")
        if isinstance(col.dtype, pd.CategoricalDtype):
            values = list(col.cat.categories)
        else:
            values = sorted(col.dropna().unique().tolist())
        arr = col.to_numpy()
        return [(f"{groupby} = {v}", np.asarray(arr == v, dtype=bool)) for v in values if np.any(arr == v)]
    if per_time:
        t = u.fit_times(adata, fit)
        name = u.fit_time_key(fit)
        return [(f"{name} = {tv:g}", t == tv) for tv in np.unique(t[np.isfinite(t)])]
    return [("all cells", np.ones(adata.n_obs, bool))]
