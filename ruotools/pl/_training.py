"""`history` (training losses per phase) and `metrics` (W1 / W2 / TMV per time point)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib import ticker as mticker
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .._keys import Keys
from . import _utils as u

#: Training phases in the order they run (METHOD.md; ``least_action`` is the ``var_ruot`` flavor's);
#: other stored phases follow in stored order.
_PHASES = ("pretrain", "refine", "least_action", "score", "joint")

#: ``logy=None`` uses a log axis when the positive losses of a panel span at least this factor.
_LOG_SPAN = 5.0

_METRIC_LABELS = {
    "W1": "W1 (fitted-space units)",
    "W2": "W2 (fitted-space units)",
    "TMV": "total mass variation",
    "RME": "relative mass error",
    "action": "path action from the first time",
}


@u.doc_params
def history(
    adata,
    *,
    phases: Sequence[str] | None = None,
    logy: bool | None = None,
    palette=("#1f4e79", "#d1495b"),
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
    """Plot the training and validation losses of each training phase.

    One panel per phase (``pretrain``, ``refine``, ``score``, ``joint``; ``least_action``, ``score``
    for a ``var_ruot`` fit): the training loss per epoch and, when recorded, the validation loss, with
    the epoch of the best validation loss (the state kept) marked. The first epochs of ``pretrain``
    and ``least_action`` (the local stage, which pushes each snapshot to the next one as a warm start
    and whose states are never kept) have no validation loss and are shaded. The
    y-axis is logarithmic where every value is positive.

    Parameters
    ----------
    adata : anndata.AnnData
        Annotated data with a fit. Read: ``uns['ruot']['history']`` (:func:`ruotools.tl.fit_ruot`).
        Nothing is written.
    phases : sequence of str or None
        Phases to draw (default: all stored ones).
    logy : bool or None
        Logarithmic y-axis; ``None`` uses one on panels whose values are all positive and span at least a
        factor of 5 (a narrower range reads better on a linear axis).
    palette : sequence of two colors
        Colours of the training and validation curves.
    ncols : int or None
        Panels per row (default: up to 5).
    key_added : str
        Key of the fit.
    title : str, sequence of str or None
        Panel titles (default: the phase and why it stopped); one string above several panels is the
        figure title.
    {figure_params}
    ax : matplotlib.axes.Axes or sequence of Axes, optional
        Draw into these axes, one per phase.
    {show_params}

    Returns
    -------
    matplotlib.axes.Axes, list of Axes, matplotlib.figure.Figure or None
        The figure with ``return_fig=True``; the axes (a list for several phases) when not shown.

    Raises
    ------
    KeyError
        When the fit or its history is missing, or a requested phase was not trained.

    Examples
    --------
    >>> import ruotools as rt
    >>> adata = rt.datasets.simulated_gene()  # doctest: +SKIP
    >>> rt.tl.fit_ruot(adata, "time")  # doctest: +SKIP
    >>> rt.pl.history(adata)  # doctest: +SKIP
    """
    fit = u.fit_entry(adata, key_added)
    hist = fit.get("history")
    if not isinstance(hist, Mapping) or not hist:
        raise KeyError(f"`adata.uns['{Keys(key_added).uns}']['history']` not found: it is written by `rt.tl.fit_ruot`.")
    if phases is None:
        phases = [p for p in _PHASES if p in hist] + [p for p in hist if p not in _PHASES]
    else:
        phases = [phases] if isinstance(phases, str) else list(phases)
        missing = [p for p in phases if p not in hist]
        if missing:
            raise KeyError(f"Phase(s) {missing} not in the training history (stored: {list(hist)}).")
    train_color, val_color = palette
    fig, axes, ax_given = u.make_panels(len(phases), ax=ax, figsize=figsize, dpi=dpi, ncols=ncols,
                                        panel_size=(3.6, 3.0))  # fmt: skip
    defaults = []
    for a, phase in zip(axes, phases, strict=True):
        rec = hist[phase]
        loss = np.asarray(rec.get("loss", []), dtype=np.float64)
        val = np.asarray(rec.get("val", []), dtype=np.float64)
        epochs = np.arange(1, len(loss) + 1)
        a.plot(epochs, loss, color=train_color, marker="o", ms=3, lw=1.5, label="training")
        if val.size and np.isfinite(val).any():
            n_unvalidated = int(np.argmax(np.isfinite(val)))
            if n_unvalidated:
                # pre-training's local stage: a warm start, not validated (its states are never kept)
                a.axvspan(0.5, n_unvalidated + 0.5, color="0.5", alpha=0.12, lw=0, label="local stage")
            a.plot(np.arange(1, len(val) + 1), val, color=val_color, marker="o", ms=3, lw=1.5, label="validation")
            best = int(np.nanargmin(val))
            a.plot(best + 1, val[best], ls="", marker="*", ms=11, color=val_color, mec="black", mew=0.5,
                   label="best (kept)")  # fmt: skip
        values = np.concatenate([loss, val])
        values = values[np.isfinite(values)]
        auto_log = values.size > 0 and np.all(values > 0) and values.max() >= _LOG_SPAN * values.min()
        if logy or (logy is None and auto_log):
            a.set_yscale("log")
            # ticks at 1, 2, 5 × 10^k written as plain numbers (0.5, 2, 10): readable on narrow ranges too
            a.yaxis.set_major_locator(mticker.LogLocator(subs=(1.0, 2.0, 5.0)))
            a.yaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:g}"))
            a.yaxis.set_minor_formatter(mticker.NullFormatter())
        a.set_xlabel("epoch")
        a.xaxis.set_major_locator(mticker.MaxNLocator(integer=True))
        a.set_ylabel("loss")
        a.grid(alpha=0.3, lw=0.5, which="both")
        a.legend(frameon=False, fontsize="small")
        defaults.append(_phase_title(phase, rec.get("stopped")))
    u.set_titles(fig, axes, title, defaults, ax_given=ax_given)
    return u.finish(fig, axes, ax_given=ax_given, show=show, save=save, return_fig=return_fig)


def _phase_title(phase: str, stopped) -> str:
    """Panel title such as ``"pretrain (early stopping)"`` from the stored reason the phase stopped."""
    if not isinstance(stopped, str) or not stopped:
        return str(phase)
    return f"{phase} ({stopped.split(':')[0].replace('_', ' ').strip()})"


@u.doc_params
def metrics(
    adata,
    *,
    metrics: Sequence[str] | None = None,
    color="#1f4e79",
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
    r"""Plot the accuracy of the fit at each time point, as computed by :func:`ruotools.tl.evaluate`.

    One panel per metric: W1 and W2 (Wasserstein distances between the predicted and the observed
    cells, in units of the fitted representation), TMV (total mass variation, \\|predicted −
    observed relative size\\|) and the path action of the simulated particles from the first time
    (:func:`ruotools.tl.evaluate`), against time; with error bars (± one standard deviation) when the
    evaluation had several repeats.

    Parameters
    ----------
    adata : anndata.AnnData
        Annotated data with an evaluation. Read: ``uns['ruot']['metrics']``. Nothing is written.
    metrics : sequence of str or None
        Metrics to draw, among ``"W1"``, ``"W2"``, ``"TMV"``, ``"RME"`` and ``"action"``; default
        ``W1``, ``W2``, ``TMV`` and, when stored, ``action``.
    color : color
        Colour of the lines.
    ncols : int or None
        Panels per row (default: up to 5).
    key_added : str
        Key of the fit.
    title : str, sequence of str or None
        Panel titles (default: the metric); one string above several panels is the figure title.
    {figure_params}
    ax : matplotlib.axes.Axes or sequence of Axes, optional
        Draw into these axes, one per metric.
    {show_params}

    Returns
    -------
    matplotlib.axes.Axes, list of Axes, matplotlib.figure.Figure or None
        The figure with ``return_fig=True``; the axes (a list for several metrics) when not shown.

    Raises
    ------
    KeyError
        When :func:`ruotools.tl.evaluate` has not been run, or a metric is not stored.

    Examples
    --------
    >>> import ruotools as rt
    >>> adata = rt.datasets.simulated_gene()  # doctest: +SKIP
    >>> rt.tl.fit_ruot(adata, "time")  # doctest: +SKIP
    >>> rt.tl.evaluate(adata, n_repeats=3)  # doctest: +SKIP
    >>> rt.pl.metrics(adata)  # doctest: +SKIP
    """
    fit = u.fit_entry(adata, key_added)
    table = fit.get("metrics")
    if not isinstance(table, Mapping) or "time" not in table:
        raise KeyError(f"`adata.uns['{Keys(key_added).uns}']['metrics']` not found: run `rt.tl.evaluate(adata)` first.")
    if metrics is None:
        metrics = [m for m in ("W1", "W2", "TMV", "action") if m in table or m != "action"]
    names = [metrics] if isinstance(metrics, str) else list(metrics)
    missing = [m for m in names if m not in table]
    if missing:
        stored = [k for k in table if k not in ("time", "stochastic") and not str(k).endswith("_std")]
        where = f"`adata.uns['{Keys(key_added).uns}']['metrics']`"
        raise KeyError(f"Metric(s) {missing} not in {where} (stored: {stored}).")
    t = np.asarray(table["time"], dtype=np.float64)
    fig, axes, ax_given = u.make_panels(len(names), ax=ax, figsize=figsize, dpi=dpi, ncols=ncols,
                                        panel_size=(3.4, 3.0))  # fmt: skip
    for a, m in zip(axes, names, strict=True):
        y = np.asarray(table[m], dtype=np.float64)
        std = table.get(f"{m}_std")
        std = np.zeros_like(y) if std is None else np.nan_to_num(np.asarray(std, dtype=np.float64))
        if np.any(std > 0):
            a.errorbar(t, y, yerr=std, color=color, marker="o", ms=5, lw=1.5, capsize=3)
        else:
            a.plot(t, y, color=color, marker="o", ms=5, lw=1.5)
        a.set_xlabel(u.fit_time_key(fit))
        a.set_ylabel(_METRIC_LABELS.get(m, m))
        a.set_xticks(t)
        a.set_xticklabels([f"{v:g}" for v in t])
        top = np.nanmax(y + std) if np.isfinite(y).any() else 1.0
        a.set_ylim(0, 1.12 * top if top > 0 else 1.0)
        a.grid(alpha=0.3, lw=0.5)
    u.set_titles(fig, axes, title, names, ax_given=ax_given)
    return u.finish(fig, axes, ax_given=ax_given, show=show, save=save, return_fig=return_fig)
