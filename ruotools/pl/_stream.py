"""`velocity_stream`: streamlines of the fitted velocity on a 2-D basis, drawn by scvelo."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure

from .._keys import Keys
from . import _utils as u

_INSTALL_HINT = "pip install 'ruotools[scvelo]'"


@u.doc_params
def velocity_stream(
    adata,
    *,
    basis: str | None = None,
    color: str | None = None,
    cmap=None,
    palette=None,
    density: float = 2.0,
    key_added: str = "ruot",
    title: str | None = None,
    figsize: tuple[float, float] | None = None,
    dpi: float | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | Path | None = None,
    return_fig: bool = False,
    **kwargs,
) -> Axes | Figure | None:
    """Plot streamlines of the fitted velocity on a 2-D basis, with scvelo.

    Delegates to :func:`scvelo.pl.velocity_embedding_stream` with ``vkey="ruot_velocity"`` and the
    velocity read from ``adata``, so nothing is recomputed and no velocity graph is needed. The call
    receives a lightweight copy of ``adata`` (sharing its data) holding the basis under
    ``obsm[f'X_{basis}']`` and the velocity under ``obsm[f'ruot_velocity_{basis}']``, so a fitted
    ``.X`` can be drawn and your ``adata`` is not modified. Cells coloured by a numeric column get
    a labelled colour bar beside the panel (ticks at the time points for the time column) instead
    of scvelo's small inset one (pass ``colorbar=True`` for scvelo's).

    Parameters
    ----------
    adata : anndata.AnnData
        Annotated data with a fit. Read: the basis; on the fitted space ``obsm['ruot_velocity_{basis}']``
        or ``layers['ruot_velocity']`` (a fit on ``.X``), on another basis
        ``obsm['ruot_velocity_{basis}']`` from :func:`ruotools.tl.velocity_embedding`; ``obs[color]``.
    basis : str or None
        2-D coordinates: ``None`` (the fitted representation when 2-D, else ``"umap"`` when present, else
        the first two fitted dimensions), ``"X"``, the fitted basis or any ``obsm`` embedding.
    color : str or None
        ``obs`` column or gene colouring the cells; ``None`` is the fit's time column.
    cmap : str or matplotlib.colors.Colormap, optional
        Colour map of numeric ``color`` values (scvelo's ``color_map``).
    palette : str or sequence, optional
        Colours of categories.
    density : float
        Density of the streamlines.
    key_added : str
        Key of the fit.
    title : str or None
        Panel title (default "velocity").
    {figure_params}
    ax : matplotlib.axes.Axes, optional
        Draw into these axes.
    {show_params}
    **kwargs
        Passed on to :func:`scvelo.pl.velocity_embedding_stream` (e.g. ``arrow_size``, ``linewidth``,
        ``smooth``, ``legend_loc``).

    Returns
    -------
    matplotlib.axes.Axes or matplotlib.figure.Figure or None
        The figure with ``return_fig=True``; the axes when not shown.

    Raises
    ------
    ImportError
        When scvelo is not installed (``pip install 'ruotools[scvelo]'``).
    KeyError
        When the velocity on ``basis`` is missing (run :func:`ruotools.tl.velocity_embedding`).

    Examples
    --------
    >>> import ruotools as rt
    >>> adata = rt.datasets.simulated_gene()  # doctest: +SKIP
    >>> rt.tl.fit_ruot(adata, "time")  # doctest: +SKIP
    >>> rt.pl.velocity_stream(adata)  # doctest: +SKIP
    >>> rt.tl.velocity_embedding(adata, basis="umap")  # doctest: +SKIP
    >>> rt.pl.velocity_stream(adata, basis="umap", color="cell_type")  # doctest: +SKIP
    """
    try:
        import scvelo as scv
    except ImportError as err:
        raise ImportError(
            f"`rt.pl.velocity_stream` draws with scvelo, which is not installed: `{_INSTALL_HINT}`."
        ) from err
    import anndata as ad

    keys = Keys(key_added)
    fit = u.fit_entry(adata, key_added)
    b = u.resolve_basis(adata, basis, fit)
    velocity = _velocity(adata, keys, b)
    vkey = keys.velocity_layer
    view = ad.AnnData(
        X=adata.X,
        obs=adata.obs.copy(),
        var=adata.var,
        uns={k: v for k, v in adata.uns.items() if str(k).endswith("_colors")},
        obsm={f"X_{b.name}": b.coords, f"{vkey}_{b.name}": velocity},
        layers=dict(adata.layers),
    )
    view.uns[f"{vkey}_params"] = {"embeddings": [b.name]}

    fig, axes, ax_given = u.make_panels(1, ax=ax, figsize=figsize, dpi=dpi)
    kwargs.setdefault("frameon", True)
    color = u.fit_time_key(fit) if color is None else color
    # scvelo's own colour bar is a small unlabelled inset; a numeric colour gets a full-height, labelled one
    own_colorbar = "colorbar" not in kwargs and u.cell_colors(adata, color).kind == "numeric"
    if own_colorbar:
        kwargs["colorbar"] = False
    with warnings.catch_warnings():
        # scvelo 0.3 indexes a pandas Series by position; the deprecation is scvelo's, not the user's
        warnings.filterwarnings("ignore", message="Series.__getitem__ treating keys", category=FutureWarning)
        scv.pl.velocity_embedding_stream(
            view, basis=b.name, vkey=vkey, V=velocity, color=color, color_map=cmap, palette=palette, density=density,
            xlabel=b.labels[0], ylabel=b.labels[1], title="velocity" if title is None else title, ax=axes[0],
            show=False, **kwargs,
        )  # fmt: skip
    if own_colorbar:
        _colorbar(fig, axes[0], color, is_time=color == u.fit_time_key(fit))
    return u.finish(fig, axes, ax_given=ax_given, show=show, save=save, return_fig=return_fig)


def _colorbar(fig: Figure, ax: Axes, label: str, *, is_time: bool) -> None:
    """Add a labelled colour bar beside ``ax`` for the cells scvelo coloured by a numeric column."""
    cells = [c for c in ax.collections if isinstance(c, PathCollection) and c.get_array() is not None]
    if not cells:
        return
    cbar = fig.colorbar(cells[0], ax=ax, label=label, shrink=0.8, pad=0.02)
    cbar.solids.set_alpha(1.0)  # scvelo draws the cells translucent; the scale should not be
    if is_time:
        u.time_ticks(cbar, np.asarray(cells[0].get_array(), dtype=np.float64))


def _velocity(adata, keys: Keys, b: u.Basis) -> np.ndarray:
    """Return the velocity on the basis (n_obs, 2), from ``obsm`` or, on a fitted ``.X``, ``layers``."""
    key = keys.velocity_obsm(b.name)
    if key in adata.obsm:
        v = np.asarray(adata.obsm[key], dtype=np.float64)
    elif b.fitted and keys.velocity_layer in adata.layers:
        v = adata.layers[keys.velocity_layer]
        v = np.asarray(v.toarray() if hasattr(v, "toarray") else v, dtype=np.float64)
    else:
        raise KeyError(
            f"`adata.obsm['{key}']` not found: run `rt.tl.velocity_embedding(adata, basis='{b.name}')` first."
        )
    if v.ndim != 2 or v.shape[1] < 2:
        raise ValueError(f"The velocity on {b.name!r} must have at least two columns, got shape {v.shape}.")
    return v[:, :2]
