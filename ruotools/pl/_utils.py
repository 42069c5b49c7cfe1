"""Shared plumbing of the plots.

Panels, the scanpy-style ``ax``/``show``/``save``/``return_fig`` keywords, the basis a plot is drawn on,
and cell colours.

Everything here reads ``adata`` only; nothing is written to it.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib import colors as mcolors
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from scipy import sparse

from .. import _logging as logg
from .. import _validation as val
from .._keys import Keys, basis_from_rep

#: Size (width, height) in inches of one panel when ``figsize`` is not given.
PANEL_SIZE = (4.4, 3.8)

#: Component names of the usual embeddings (scanpy's axis labels).
_COMPONENT_NAMES = {"pca": "PC", "umap": "UMAP", "tsne": "tSNE", "diffmap": "DC", "phate": "PHATE", "spring": "SPRING"}


# --------------------------------------------------------------------------- shared docstrings

_DOC_PARAMS = {
    "figure_params": """figsize : tuple of float, optional
    Figure size in inches.
dpi : float, optional
    Figure resolution.""",
    "show_params": """show : bool or None
    Show the figure; ``None`` shows it unless ``ax`` is given.
save : str or pathlib.Path, optional
    Write the figure to this path (format from the suffix, e.g. ``.png``, ``.pdf``).
return_fig : bool
    Return the figure.""",
}


def doc_params(func):
    """Fill the ``{figure_params}`` and ``{show_params}`` lines of a plot's docstring (scanpy's keywords)."""
    doc = func.__doc__
    for key, text in _DOC_PARAMS.items():
        doc = doc.replace("    {" + key + "}", textwrap.indent(text, "    "))
    func.__doc__ = doc
    return func


# --------------------------------------------------------------------------- fit and basis


def fit_entry(adata, key_added: str) -> dict:
    """``adata.uns[key_added]`` written by :func:`ruotools.tl.fit_ruot`, or a ``KeyError`` saying how to get it."""
    key = Keys(key_added).uns
    fit = adata.uns.get(key)
    if not isinstance(fit, Mapping) or "model" not in fit:
        raise KeyError(
            f"`adata.uns['{key}']` not found: run `rt.tl.fit_ruot(adata, time_key=...)` first "
            "(or pass the `key_added` used when fitting)."
        )
    return fit


def fit_time_key(fit: Mapping) -> str:
    """Name of the time column the fit used."""
    return str(fit["model"]["time_key"])


def fit_times(adata, fit: Mapping) -> np.ndarray:
    """Numeric time of every cell (float64, NaN where missing)."""
    return val.resolve_time(adata, fit_time_key(fit))


def component_labels(adata, basis: str) -> tuple[str, str]:
    """Axis labels of a basis: var names for ``"X"``, ``PC1``/``PC2`` for ``"pca"``, ``UMAP1``/``UMAP2``, …."""
    if basis == "X":
        return str(adata.var_names[0]), str(adata.var_names[1])
    if basis.startswith("draw_graph_"):
        name = basis.removeprefix("draw_graph_").upper()
    else:
        name = _COMPONENT_NAMES.get(basis, basis)
    return f"{name}1", f"{name}2"


@dataclass(frozen=True)
class Basis:
    """2-D coordinates a plot is drawn on.

    Attributes
    ----------
    name
        Basis name (``"X"``, ``"pca"``, ``"umap"`` …).
    coords
        First two coordinates of every cell (n_obs, 2), float64.
    labels
        Axis labels.
    fitted
        Whether the basis is the fitted representation (its first two dimensions).
    """

    name: str
    coords: np.ndarray
    labels: tuple[str, str]
    fitted: bool


def resolve_basis(adata, basis: str | None, fit: Mapping) -> Basis:
    """Resolve the 2-D basis to draw on.

    ``None`` picks the fitted representation when it is 2-D, else ``obsm['X_umap']`` when present, else the
    first two fitted dimensions. ``"X"`` is ``.X``; ``"umap"`` and ``"X_umap"`` both mean ``obsm['X_umap']``;
    the fitted representation's basis (``"pca"`` after a fit on ``X_pca``) is recognised as the fitted space.
    ``fit`` needs ``"use_rep"``, and ``["model"]["dim"]`` when ``basis`` is ``None``.
    """
    use_rep = str(fit["use_rep"])
    fitted_basis = basis_from_rep(use_rep)
    if basis is None:
        basis = fitted_basis if int(fit["model"]["dim"]) == 2 or "X_umap" not in adata.obsm else "umap"
    if not isinstance(basis, str) or not basis:
        raise TypeError(f"`basis` must be a non-empty string such as 'umap', got {basis!r}.")
    if basis != "X" and basis.startswith("X_"):
        basis = basis[2:]
    fitted = basis in (fitted_basis, use_rep)
    if fitted:
        basis = fitted_basis
        x, _, _ = val.resolve_rep(adata, use_rep, None)
        coords = x[:, :2]
    elif basis == "X":
        x = adata.X.toarray() if sparse.issparse(adata.X) else np.asarray(adata.X)
        coords = x[:, :2].astype(np.float64)
    elif f"X_{basis}" not in adata.obsm and basis in adata.obsm:
        coords = np.asarray(adata.obsm[basis], dtype=np.float64)[:, :2]
    else:
        coords = val.embedding_2d(adata, basis)
    if coords.shape[1] < 2:
        raise ValueError(f"The basis {basis!r} has {coords.shape[1]} dimension(s); a 2-D plot needs two.")
    return Basis(basis, coords, component_labels(adata, basis), fitted)


def label_axes(ax: Axes, basis: Basis) -> None:
    """Name the axes after the basis and hide the tick labels (embedding units carry no meaning) unless fitted."""
    ax.set_xlabel(basis.labels[0])
    ax.set_ylabel(basis.labels[1])
    if not basis.fitted:
        ax.set_xticks([])
        ax.set_yticks([])


# --------------------------------------------------------------------------- colours


@dataclass(frozen=True)
class CellColors:
    """Colour values of the cells.

    Attributes
    ----------
    kind
        ``"none"``, ``"numeric"`` or ``"categorical"``.
    name
        Name of the column (legend or colourbar label).
    values
        Numeric values (n_obs,) or category codes (−1 for missing).
    categories
        Category names (categorical only).
    """

    kind: str
    name: str | None
    values: np.ndarray | None = None
    categories: tuple[str, ...] = ()


def cell_colors(adata, color: str | None) -> CellColors:
    """Colour values of ``obs[color]`` or of the gene ``color`` (``.X``); ``None`` means no colour."""
    if color is None:
        return CellColors("none", None)
    if not isinstance(color, str):
        raise TypeError(f"`color` must be an `.obs` column or a gene name, got {type(color).__name__}.")
    if color in adata.obs.columns:
        col = adata.obs[color]
        if isinstance(col.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(col.dtype):
            cat = col if isinstance(col.dtype, pd.CategoricalDtype) else col.astype("category")
            cats = tuple(str(c) for c in cat.cat.categories)
            return CellColors("categorical", color, cat.cat.codes.to_numpy(), cats)
        if pd.api.types.is_bool_dtype(col.dtype):
            cat = col.astype(str).astype("category")
            return CellColors("categorical", color, cat.cat.codes.to_numpy(), tuple(cat.cat.categories))
        return CellColors("numeric", color, col.to_numpy(dtype=np.float64, na_value=np.nan))
    if color in adata.var_names:
        x = adata[:, color].X
        x = x.toarray() if sparse.issparse(x) else np.asarray(x)
        return CellColors("numeric", color, x.ravel().astype(np.float64))
    raise KeyError(
        f"`color={color!r}` is neither an `.obs` column nor a gene in `adata.var_names`. "
        f"`.obs` columns: {list(adata.obs.columns)[:20]}."
    )


def category_colors(adata, spec: CellColors, palette) -> list:
    """Return one colour per category.

    From ``palette`` (a colormap name, a list or a dict), else ``uns['{color}_colors']`` when it has the right
    length, else tab10/tab20.
    """
    n = len(spec.categories)
    if palette is None:
        stored = adata.uns.get(f"{spec.name}_colors")
        if stored is not None and len(stored) == n:
            return [mcolors.to_rgba(c) for c in stored]
        palette = "tab10" if n <= 10 else "tab20" if n <= 20 else "turbo"
    if isinstance(palette, Mapping):
        missing = [c for c in spec.categories if c not in palette]
        if missing:
            raise ValueError(f"`palette` has no colour for the categories {missing[:5]}.")
        return [mcolors.to_rgba(palette[c]) for c in spec.categories]
    if isinstance(palette, str):
        cmap = plt.get_cmap(palette)
        if isinstance(cmap, mcolors.ListedColormap) and n <= cmap.N:
            return [cmap(i) for i in range(n)]
        return [cmap(v) for v in np.linspace(0, 1, n)]
    palette = list(palette)
    if len(palette) < n:
        raise ValueError(f"`palette` has {len(palette)} colours for {n} categories.")
    return [mcolors.to_rgba(c) for c in palette[:n]]


def default_size(n_cells: int) -> float:
    """Marker area of a scatter of ``n_cells`` cells (scanpy's rule, capped)."""
    return float(min(30.0, 120000.0 / max(n_cells, 1)))


def numeric_norm(values: np.ndarray, vmin=None, vmax=None, *, center: float | None = None) -> mcolors.Normalize:
    """Colour normalisation spanning the finite ``values`` (or ``vmin``/``vmax``).

    With ``center``, the scale is diverging: symmetric (±max|v − center|) when neither limit is given,
    else a :class:`~matplotlib.colors.TwoSlopeNorm` around ``center``.
    """
    finite = values[np.isfinite(values)]
    lo = float(finite.min()) if finite.size else 0.0
    hi = float(finite.max()) if finite.size else 1.0
    if center is None:
        lo, hi = (lo if vmin is None else vmin), (hi if vmax is None else vmax)
        return mcolors.Normalize(lo, hi if hi > lo else lo + 1.0)
    if vmin is None and vmax is None:
        half = max(abs(lo - center), abs(hi - center)) or 1.0
        return mcolors.Normalize(center - half, center + half)
    lo, hi = (lo if vmin is None else vmin), (hi if vmax is None else vmax)
    lo, hi = min(lo, center - 1e-12), max(hi, center + 1e-12)
    return mcolors.TwoSlopeNorm(center, vmin=lo, vmax=hi)


def scatter_cells(
    ax: Axes,
    xy: np.ndarray,
    spec: CellColors,
    *,
    adata,
    mask: np.ndarray | None = None,
    cmap="viridis",
    palette=None,
    norm: mcolors.Normalize | None = None,
    size: float | None = None,
    alpha: float = 1.0,
    default_color="lightgrey",
    zorder: float = 1,
    legend: bool = True,
    legend_loc: str = "right margin",
    rasterized: bool = True,
):
    """Scatter the cells ``xy`` (n_obs, 2) coloured by ``spec``; only ``mask`` cells when given.

    Returns the :class:`~matplotlib.collections.PathCollection` (numeric colours: its ``norm`` is the colour
    scale, for a colourbar).
    """
    keep = np.all(np.isfinite(xy), axis=1) if mask is None else mask & np.all(np.isfinite(xy), axis=1)
    s = default_size(int(keep.sum())) if size is None else size
    if spec.kind == "numeric":
        v = spec.values[keep]
        order = np.argsort(np.where(np.isfinite(v), 0, -1), kind="stable")  # NaN cells drawn first
        norm = numeric_norm(spec.values[np.isfinite(spec.values)]) if norm is None else norm
        pts = xy[keep][order]
        return ax.scatter(
            pts[:, 0], pts[:, 1], c=v[order], cmap=cmap, norm=norm, s=s, alpha=alpha, linewidths=0,
            plotnonfinite=True, zorder=zorder, rasterized=rasterized,
        )  # fmt: skip
    if spec.kind == "categorical":
        cols = np.array([*category_colors(adata, spec, palette), mcolors.to_rgba(default_color)])
        codes = spec.values[keep]
        sc = ax.scatter(
            xy[keep, 0], xy[keep, 1], c=cols[codes], s=s, alpha=alpha, linewidths=0, zorder=zorder,
            rasterized=rasterized,
        )  # fmt: skip
        if legend:
            present = np.unique(codes[codes >= 0])
            handles = [
                plt.Line2D([], [], ls="", marker="o", ms=6, color=cols[c], label=spec.categories[c]) for c in present
            ]
            if legend_loc == "right margin":
                leg = ax.legend(handles=handles, title=spec.name, loc="center left", bbox_to_anchor=(1.01, 0.5),
                                frameon=False)  # fmt: skip
            else:
                leg = ax.legend(handles=handles, title=spec.name, loc=legend_loc, frameon=False)
            leg.set_clip_on(False)  # an unclipped artist counts for the layout and `bbox_inches="tight"`
            ax.add_artist(leg)
        return sc
    return ax.scatter(
        xy[keep, 0], xy[keep, 1], c=default_color, s=s, alpha=alpha, linewidths=0, zorder=zorder,
        rasterized=rasterized,
    )  # fmt: skip


def colorbar_extend(*, low: bool = False, high: bool = False) -> str:
    """``extend`` of a colour bar: an arrow at each end whose values were clipped to the colour range."""
    return {(False, False): "neither", (True, False): "min", (False, True): "max", (True, True): "both"}[
        (bool(low), bool(high))
    ]


#: Font size of colour-bar labels and tick labels (points): as large as the axis labels, so the text stays
#: readable when a wide figure is shown scaled down to a notebook's width.
COLORBAR_FONTSIZE = 10.0


def add_colorbar(fig: Figure, mappable, axes, *, label: str, extend: str = "neither", shrink: float = 0.9,
                 pad: float = 0.02, aspect: float = 25.0):  # fmt: skip
    """Colour bar of ``mappable`` beside ``axes`` with readable text: label and ticks in ``COLORBAR_FONTSIZE``.

    ``extend`` draws arrows at the clipped ends (see :func:`colorbar_extend`). Returns the colour bar.
    """
    cbar = fig.colorbar(mappable, ax=axes, extend=extend, shrink=shrink, pad=pad, aspect=aspect)
    cbar.set_label(label, fontsize=COLORBAR_FONTSIZE)
    cbar.ax.tick_params(labelsize=COLORBAR_FONTSIZE)
    return cbar


def time_ticks(cbar, values: np.ndarray, max_ticks: int = 10) -> None:
    """Put colourbar ticks at the distinct time points when there are few of them."""
    uniq = np.unique(values[np.isfinite(values)])
    if 0 < len(uniq) <= max_ticks:
        cbar.set_ticks(uniq)
        cbar.set_ticklabels([f"{u:g}" for u in uniq])


# --------------------------------------------------------------------------- panels and the scanpy keywords


def set_titles(fig: Figure, axes: Sequence[Axes], title, default: Sequence[str], *, ax_given: bool) -> None:
    """Title the panels.

    ``title`` is one string (the title of a single panel, or the figure's title above several panels, which
    keep their own titles), one string per panel, or ``None`` for the defaults.
    """
    if title is None:
        titles = list(default)
    elif isinstance(title, str):
        if len(axes) > 1:
            if not ax_given:
                fig.suptitle(title)
            titles = list(default)
        else:
            titles = [title]
    else:
        titles = [str(t) for t in title]
        if len(titles) != len(axes):
            raise ValueError(f"`title` has {len(titles)} entries for {len(axes)} panels.")
    for a, t in zip(axes, titles, strict=True):
        a.set_title(t)


def make_panels(
    n: int,
    *,
    ax=None,
    figsize=None,
    dpi=None,
    ncols: int | None = None,
    panel_size: tuple[float, float] = PANEL_SIZE,
    projection: str | None = None,
) -> tuple[Figure, list[Axes], bool]:
    """Create a figure with ``n`` panels, or take the axes the user passed (one ``Axes`` or ``n`` of them).

    Returns the figure, the panels and whether the axes were given.
    """
    if ax is not None:
        axes = [ax] if isinstance(ax, Axes) else list(ax)
        if not all(isinstance(a, Axes) for a in axes):
            raise TypeError(f"`ax` must be a matplotlib Axes or a sequence of them, got {type(ax).__name__}.")
        if len(axes) != n:
            raise ValueError(
                f"This plot has {n} panel(s) but `ax` holds {len(axes)} axes: pass {n} axes, select a single "
                "panel (e.g. one `time`), or leave `ax=None`."
            )
        if projection == "3d" and any(a.name != "3d" for a in axes):
            raise ValueError("`kind='surface'` needs 3-D axes: `fig.add_subplot(projection='3d')`.")
        return axes[0].figure, axes, True
    ncols = min(n, 5) if ncols is None else max(1, min(int(ncols), n))
    nrows = int(np.ceil(n / ncols))
    if figsize is None:
        figsize = (panel_size[0] * ncols + 0.8, panel_size[1] * nrows)
    fig = plt.figure(figsize=figsize, dpi=dpi, layout="constrained")
    axes = [fig.add_subplot(nrows, ncols, i + 1, projection=projection) for i in range(n)]
    return fig, axes, False


def finish(fig: Figure, axes: list[Axes], *, ax_given: bool, show, save, return_fig: bool):
    """Save, show and return as scanpy does.

    ``save`` is a path (its suffix picks the format). ``return_fig=True`` returns the figure. ``show=None``
    shows the figure unless ``ax`` was given; a figure that is not shown is returned as its axes (one
    ``Axes`` for a single panel, else a list).
    """
    if save is not None and save is not False:
        path = Path(save)
        if path.suffix == "":
            raise ValueError(f"`save` must be a file path with an extension such as '.png', got {str(save)!r}.")
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, bbox_inches="tight")
        logg.info(f"    saved figure to {path}")
    if return_fig:
        return fig
    if show is None:
        show = not ax_given
    if show:
        plt.show()
        return None
    return axes[0] if len(axes) == 1 else axes
