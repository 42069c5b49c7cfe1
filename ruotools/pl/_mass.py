"""`mass`: predicted population size over continuous time against the observed snapshot sizes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .._keys import Keys
from ..get._trajectories import mass as _mass_table
from . import _utils as u


@u.doc_params
def mass(
    adata,
    *,
    color="#1f4e79",
    observed_color="#d1495b",
    logy: bool = False,
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
    """Plot the predicted population size over time against the observed relative sizes.

    The line is the total predicted mass of the simulated particles, Σ exp(log_mass), which is 1 at the
    start of the simulation (:func:`ruotools.get.mass`). The points are the population sizes the fit
    matched at each snapshot (``relative_mass`` of the fit: cell-count ratios unless given), relative
    to the simulation's start time.

    Parameters
    ----------
    adata : anndata.AnnData
        Annotated data with a fit and trajectories. Read: ``uns['ruot_trajectories']``
        (:func:`ruotools.tl.simulate`) and ``uns['ruot']`` (time points, relative sizes, time column).
        Nothing is written.
    color : color
        Colour of the predicted line.
    observed_color : color
        Colour of the observed points.
    logy : bool
        Logarithmic y-axis.
    key : str or None
        ``uns`` key of the trajectories; default ``f'{key_added}_trajectories'``.
    key_added : str
        Key of the fit.
    title : str or None
        Panel title (default "population size").
    {figure_params}
    ax : matplotlib.axes.Axes, optional
        Draw into these axes.
    {show_params}

    Returns
    -------
    matplotlib.axes.Axes or matplotlib.figure.Figure or None
        The figure with ``return_fig=True``; the axes when not shown. Its lines are the prediction
        (label ``"predicted"``) and the observed points (label ``"observed"``).

    Raises
    ------
    KeyError
        When :func:`ruotools.tl.simulate` (or the fit) has not been run.

    Examples
    --------
    >>> import ruotools as rt
    >>> adata = rt.datasets.simulated_gene()  # doctest: +SKIP
    >>> rt.tl.fit_ruot(adata, "time")  # doctest: +SKIP
    >>> rt.tl.simulate(adata)  # doctest: +SKIP
    >>> rt.pl.mass(adata)  # doctest: +SKIP
    """
    fit = u.fit_entry(adata, key_added)
    key = Keys(key_added).trajectories if key is None else key
    table = _mass_table(adata, key, key_added=key_added)
    times, total = table["time"].to_numpy(), table["total_mass"].to_numpy()
    tp = np.asarray(fit["model"]["time_points"], dtype=np.float64)
    rel = np.asarray(fit["model"]["relative_mass"], dtype=np.float64)
    ref = np.flatnonzero(np.isclose(tp, times[0]))
    inside = (tp >= times[0] - 1e-9) & (tp <= times[-1] + 1e-9)
    obs_t = tp[inside] if len(ref) else np.empty(0)
    obs_m = rel[inside] / rel[ref[0]] if len(ref) else np.empty(0)

    fig, axes, ax_given = u.make_panels(1, ax=ax, figsize=figsize, dpi=dpi, panel_size=(4.6, 3.4))
    a = axes[0]
    a.plot(times, total, color=color, lw=2, label="predicted", zorder=2)
    a.plot(obs_t, obs_m, ls="", marker="o", ms=7, mfc=observed_color, mec="white", mew=1.0, label="observed",
           zorder=3)  # fmt: skip
    if logy:
        a.set_yscale("log")
    a.set_xlabel(u.fit_time_key(fit))
    a.set_ylabel(f"population size (relative to {u.fit_time_key(fit)} = {times[0]:g})")
    a.grid(alpha=0.3, lw=0.5)
    a.legend(frameon=False)
    u.set_titles(fig, axes, title, ["population size"], ax_given=ax_given)
    return u.finish(fig, axes, ax_given=ax_given, show=show, save=save, return_fig=return_fig)
