"""`jacobian` and `growth_genes`: the regulation and the growth drivers read off a fit, from AnnData only."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib import colors as mcolors
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from .._keys import Keys
from ..tl._growth_genes import ALL_CELLS
from . import _utils as u

#: Colours of the bars of genes that raise / lower growth (the ends of ``RdBu_r``).
_RAISES, _LOWERS = "#c0392b", "#2e6da4"
#: Heatmaps with at most this many rows and columns show their values in the cells by default.
_ANNOTATE_MAX = 12


def _entry(adata, key: str, tool: str) -> Mapping:
    entry = adata.uns.get(key)
    if not isinstance(entry, Mapping):
        raise KeyError(f"`adata.uns['{key}']` not found: run `rt.tl.{tool}(adata)` first.")
    return entry


@u.doc_params
def jacobian(
    adata,
    *,
    group=None,
    top: int = 30,
    diagonal: bool = False,
    annotate: bool | None = None,
    cmap="RdBu_r",
    key_added: str = "ruot",
    title: str | None = None,
    figsize: tuple[float, float] | None = None,
    dpi: float | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | Path | None = None,
    return_fig: bool = False,
) -> Axes | Figure | None:
    """Heatmap of the strongest gene–gene interactions of the fitted drift's mean Jacobian.

    The ``top`` entries J[i, j] = ∂u_i/∂x_j of largest magnitude are picked; the rows are the genes they
    act on ("effect on", gene i) and the columns their regulators (gene j), in the order of their strongest
    interaction, and every entry between them is drawn. Red: gene j activates gene i (J > 0); blue: it
    represses it. The colour scale is centred at 0 and symmetric. For a ``"var_ruot"`` fit the matrix itself is
    symmetric (its drift is a gradient, :func:`ruotools.tl.jacobian`), and the default title says so.

    Parameters
    ----------
    adata : anndata.AnnData
        Annotated data. Read: ``uns[f'{key_added}_jacobian']`` written by :func:`ruotools.tl.jacobian`.
        Nothing is written.
    group : str or None
        A value of the ``groupby`` column given to :func:`ruotools.tl.jacobian`; ``None``: the mean over all
        the selected cells.
    top : int
        Number of interactions to pick.
    diagonal : bool
        Also rank self-effects J[i, i] (mostly each gene's own decay, which would crowd out the
        regulation). When ``False`` they are left out of the ranking and drawn hatched grey.
    annotate : bool or None
        Write the values in the cells; ``None``: when at most 12 rows and columns.
    cmap : str or matplotlib.colors.Colormap
        Diverging colour map.
    key_added : str
        Key of the fit.
    title : str or None
        Title (default: the cells averaged over).
    {figure_params}
    ax : matplotlib.axes.Axes, optional
        Draw into this axes.
    {show_params}

    Returns
    -------
    matplotlib.axes.Axes, matplotlib.figure.Figure or None
        The figure with ``return_fig=True``; the axes when not shown.

    Examples
    --------
    >>> rt.tl.jacobian(adata, groupby="cell_type")  # doctest: +SKIP
    >>> rt.pl.jacobian(adata, group="erythroid", top=20)  # doctest: +SKIP
    """
    if not isinstance(top, int | np.integer) or isinstance(top, bool) or top < 1:
        raise ValueError(f"`top` must be a positive integer, got {top!r}.")
    entry = _entry(adata, Keys(key_added).jacobian, "jacobian")
    genes = np.asarray(entry["genes"]).astype(str)
    j, label, n_cells = _matrix(entry, group)
    rank = np.abs(j)
    rank[~np.isfinite(rank)] = -1.0
    if not diagonal:
        np.fill_diagonal(rank, -1.0)
    order = np.argsort(-rank, axis=None, kind="stable")[: min(int(top), int((rank >= 0).sum()))]
    if not len(order):
        raise ValueError("The Jacobian has no finite off-diagonal entry to show.")
    rows_i, cols_i = np.unravel_index(order, j.shape)
    rows, cols = list(dict.fromkeys(rows_i.tolist())), list(dict.fromkeys(cols_i.tolist()))
    sub = j[np.ix_(rows, cols)].astype(np.float64)
    if not diagonal:
        sub[np.asarray(rows)[:, None] == np.asarray(cols)[None, :]] = np.nan
    finite = sub[np.isfinite(sub)]
    half = float(np.abs(finite).max()) if finite.size and np.abs(finite).max() > 0 else 1.0
    norm = mcolors.Normalize(-half, half)

    if figsize is None and ax is None:
        figsize = (max(4.0, 2.4 + 0.32 * len(cols)), max(3.2, 1.6 + 0.3 * len(rows)))
    fig, axes, ax_given = u.make_panels(1, ax=ax, figsize=figsize, dpi=dpi)
    a = axes[0]
    cm = (matplotlib.colormaps[cmap] if isinstance(cmap, str) else cmap).with_extremes(bad="#d9d9d9")
    im = a.imshow(np.ma.masked_invalid(sub), cmap=cm, norm=norm, aspect="auto", interpolation="nearest")
    size = 10 if max(len(rows), len(cols)) <= 20 else 8 if max(len(rows), len(cols)) <= 35 else 6
    a.set_xticks(np.arange(len(cols)), genes[cols], rotation=90, fontsize=size)
    a.set_yticks(np.arange(len(rows)), genes[rows], fontsize=size)
    a.set_xticks(np.arange(len(cols) + 1) - 0.5, minor=True)
    a.set_yticks(np.arange(len(rows) + 1) - 0.5, minor=True)
    a.grid(which="minor", color="white", linewidth=0.8)
    a.tick_params(which="minor", length=0)
    for r, c in zip(*np.nonzero(~np.isfinite(sub)), strict=True):  # self-effects left out: hatched
        a.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, facecolor="none", edgecolor="#8c8c8c", hatch="///", lw=0))
    a.set_xlabel("regulator (gene j)")
    a.set_ylabel("effect on (gene i)")
    if annotate or (annotate is None and max(len(rows), len(cols)) <= _ANNOTATE_MAX):
        for (r, c), v in np.ndenumerate(sub):
            if np.isfinite(v):
                dark = abs(v) > 0.6 * half
                a.text(c, r, f"{v:.2g}", ha="center", va="center", fontsize=8, color="white" if dark else "black")
    u.add_colorbar(fig, im, a, label="J = ∂u_i/∂x_j (per unit time)", shrink=1.0)
    default = f"drift Jacobian: {_cells_label(entry, label)} ({n_cells} cells)\ntop {len(order)} |J|" + (
        "" if diagonal else ", i ≠ j"
    )
    if bool(entry.get("params", {}).get("symmetric", False)):
        default += "\nvar_ruot: symmetric, no direction"
    a.set_title(default if title is None else title)
    return u.finish(fig, axes, ax_given=ax_given, show=show, save=save, return_fig=return_fig)


def _matrix(entry: Mapping, group) -> tuple[np.ndarray, str, int]:
    """Return the mean Jacobian of ``group`` (``None``: all cells), its label and its number of cells."""
    if group is None:
        return np.asarray(entry["mean"]), ALL_CELLS, int(entry["n_cells"])
    if "group_names" not in entry:
        raise ValueError(
            f"`group={group!r}` but the Jacobian has no groups: run `rt.tl.jacobian(adata, groupby=...)` first."
        )
    names = [str(n) for n in np.asarray(entry["group_names"]).tolist()]
    k = _find_group(names, group)
    if k is None:
        raise KeyError(f"`group={group!r}` is not among the Jacobian's groups: {names[:20]}.")
    return np.asarray(entry["groups"][k]), names[k], int(np.asarray(entry["group_n_cells"])[k])


def _find_group(names: list[str], group) -> int | None:
    """Position of ``group`` among the stored group names (by name, or by value for numbers: 2 finds "2.0")."""
    if str(group) in names:
        return names.index(str(group))
    if isinstance(group, int | float | np.integer | np.floating) and not isinstance(group, bool):
        for k, name in enumerate(names):
            try:
                if float(name) == float(group):
                    return k
            except ValueError:
                continue
    return None


def _cells_label(entry: Mapping, label: str) -> str:
    """Which cells a result averages over, e.g. ``"cell_type = B at time 2"``, from its stored params."""
    params = entry.get("params", {})
    if label != ALL_CELLS and "groupby" in params:
        label = f"{params['groupby']} = {label}"
    if "time" in params:
        label += " at time " + ", ".join(f"{v:g}" for v in np.atleast_1d(np.asarray(params["time"], dtype=float)))
    return label


@u.doc_params
def growth_genes(
    adata,
    *,
    group=None,
    n_top: int = 10,
    key_added: str = "ruot",
    title: str | None = None,
    figsize: tuple[float, float] | None = None,
    dpi: float | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | Path | None = None,
    return_fig: bool = False,
) -> Axes | Figure | None:
    """Bar plot of the genes that most raise and most lower the fitted growth rate.

    The ``n_top`` genes with the largest positive mean gradient ∂g/∂gene (red, on top: more of the gene,
    faster growth) and the ``n_top`` with the most negative one (blue, below: slower growth or death), from
    :func:`ruotools.tl.growth_genes`. For a ``"var_ruot"`` fit the gradient is the mean drift rescaled (growth
    and drift come from one potential), and the default title says so.

    Parameters
    ----------
    adata : anndata.AnnData
        Annotated data. Read: ``uns[f'{key_added}_growth_genes']``. Nothing is written.
    group : str or None
        A value of the ``groupby`` column given to :func:`ruotools.tl.growth_genes`; ``None``: the mean over
        all the selected cells.
    n_top : int
        Genes shown on each side.
    key_added : str
        Key of the fit.
    title : str or None
        Title (default: the cells averaged over).
    {figure_params}
    ax : matplotlib.axes.Axes, optional
        Draw into this axes.
    {show_params}

    Returns
    -------
    matplotlib.axes.Axes, matplotlib.figure.Figure or None
        The figure with ``return_fig=True``; the axes when not shown.

    Examples
    --------
    >>> rt.tl.growth_genes(adata)  # doctest: +SKIP
    >>> rt.pl.growth_genes(adata, n_top=15)  # doctest: +SKIP
    """
    if not isinstance(n_top, int | np.integer) or isinstance(n_top, bool) or n_top < 1:
        raise ValueError(f"`n_top` must be a positive integer, got {n_top!r}.")
    entry = _entry(adata, Keys(key_added).growth_genes, "growth_genes")
    table = pd.DataFrame(entry["ranking"])
    groups = list(dict.fromkeys(table["group"].astype(str)))
    k = 0 if group is None else _find_group(groups[1:], group)
    if k is None:
        raise KeyError(f"`group={group!r}` is not in the ranking; its groups are {groups[1:21]}.")
    label = groups[k if group is None else k + 1]
    rows = table[table["group"].astype(str) == label]
    grad = rows["gradient"].to_numpy(dtype=np.float64)
    names = rows["gene"].astype(str).to_numpy()
    ok = np.isfinite(grad)
    grad, names = grad[ok], names[ok]
    order = np.argsort(-grad, kind="stable")
    pos = [i for i in order if grad[i] > 0][: int(n_top)]
    neg = [i for i in order if grad[i] < 0][-int(n_top) :]
    shown = pos + neg
    if not shown:
        raise ValueError(f"Every growth gradient of {label!r} is zero: the fitted growth rate does not vary.")

    if figsize is None and ax is None:
        figsize = (6.4, max(2.6, 1.3 + 0.26 * len(shown)))
    fig, axes, ax_given = u.make_panels(1, ax=ax, figsize=figsize, dpi=dpi)
    a = axes[0]
    y = np.arange(len(shown))[::-1]
    a.barh(y, grad[shown], color=[_RAISES if grad[i] > 0 else _LOWERS for i in shown], height=0.75)
    a.set_yticks(y, names[shown], fontsize=10 if len(shown) <= 30 else 7)
    a.axvline(0.0, color="black", linewidth=0.8)
    a.set_ylim(-0.6, len(shown) - 0.4)
    a.set_xlabel("mean ∂g/∂gene\n(log-mass per unit time per unit expression)")
    # right of the axes: inside, bars of one sign fill the whole height and the legend would cover them
    signs = ((_RAISES, "raises growth", grad[shown] > 0), (_LOWERS, "lowers growth", grad[shown] < 0))
    a.legend(
        handles=[Patch(color=c, label=text) for c, text, present in signs if present.any()],
        loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, frameon=False, fontsize=9,
    )  # fmt: skip
    n_cells = int(rows["n_cells"].iloc[0]) if "n_cells" in rows else None
    cells = f" ({n_cells} cells)" if n_cells is not None else ""
    default = f"growth-driver genes: {_cells_label(entry, label)}{cells}"
    if bool(entry.get("params", {}).get("tied_to_drift", False)):
        default += "\nvar_ruot: the mean drift, rescaled"
    a.set_title(default if title is None else title)
    return u.finish(fig, axes, ax_given=ax_given, show=show, save=save, return_fig=return_fig)
