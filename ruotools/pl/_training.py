"""`history` (training losses per phase) and `metrics` (W1 / W2 / TMV per time point)."""

from __future__ import annotations

import textwrap
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

#: Reference columns of :func:`ruotools.tl.evaluate` drawn on the W1 panel (the floor first).
_W1_REFERENCES = ("W1_floor", "W1_nearest")

#: Title of the W1 legend below the panels: how to read W1 against its references.
_W1_NOTE = "W1 panel: a good fit lies near the sampling floor, well below no motion"

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
    note: bool = True,
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
    the epoch of the best validation loss (the state kept) marked; at epoch 0 when no epoch validated
    better than the state the phase started from, which is then the one kept. The first epochs of ``pretrain``
    and ``least_action`` (the local stage, which pushes each snapshot to the next one as a warm start
    and whose states are never kept) have no validation loss and are shaded. The
    y-axis is logarithmic where every value is positive.

    **The two curves are different quantities**, so compare each curve's trend, not their levels:

    * *training* is the phase's objective, averaged over the epoch's mini-batches of training cells:
      the weighted sum of the transport cost, the mass terms and the phase's other terms (action,
      score matching …), in standardised units;
    * *validation* is one score on the cells held back from training (``train_size``; for a
      ``var_ruot`` fit, on all cells of each snapshot: ``validation_cells``), the same in every
      phase but ``score``: the mean over intervals of the distance between the predicted and
      those observed cells (W2; W1 for ``ot_cost="euclidean"``, the ``var_ruot`` default) plus 5 ×
      the relative error of the predicted population size; in the ``score`` phase, the
      score-matching loss on those cells. It picks the state that is kept (starred) and decides
      early stopping.

    A panel's title says why the phase ended: ``(early stopping)`` — the validation score stopped
    improving for ``patience`` epochs; ``(max epochs)`` — the phase ran all of its ``max_epochs``
    without early stopping, so its validation score may still have been improving (a larger
    ``max_epochs`` for that phase may help); ``(skipped)`` — ``max_epochs`` was 0. A note below
    the panels repeats this (``note=False`` leaves it out).

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
    note : bool
        Write, below the panels, what the two curves are and what the titles' reasons mean (only in a
        figure this function creates, not into given ``ax``).
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
    n_cols = min(len(phases), 5) if ncols is None else max(1, min(int(ncols), len(phases)))
    # fits from before the matching cost was stored used W2
    params = fit.get("params", {})
    distance = "W1" if params.get("ot_cost") == "euclidean" else "W2"
    cells = "all cells" if params.get("validation_cells") == "all" else "held-back cells"
    text = _history_note(n_cols, distance, cells) if note and ax is None else None
    if figsize is None and text is not None:  # the panels' default size, plus the note's lines
        n_rows = -(-len(phases) // n_cols)
        figsize = (3.6 * n_cols + 0.8, 3.0 * n_rows + 0.18 * (text.count("\n") + 1))
    fig, axes, ax_given = u.make_panels(len(phases), ax=ax, figsize=figsize, dpi=dpi, ncols=n_cols,
                                        panel_size=(3.6, 3.0))  # fmt: skip
    defaults = []
    for a, phase in zip(axes, phases, strict=True):
        rec = hist[phase]
        loss = np.asarray(rec.get("loss", []), dtype=np.float64)
        val = np.asarray(rec.get("val", []), dtype=np.float64)
        epochs = np.arange(1, len(loss) + 1)
        kept_start = False
        a.plot(epochs, loss, color=train_color, marker="o", ms=3, lw=1.5, label="training")
        if val.size and np.isfinite(val).any():
            n_unvalidated = int(np.argmax(np.isfinite(val)))
            if n_unvalidated:
                # pre-training's local stage: a warm start, not validated (its states are never kept)
                a.axvspan(0.5, n_unvalidated + 0.5, color="0.5", alpha=0.12, lw=0, label="local stage")
            a.plot(np.arange(1, len(val) + 1), val, color=val_color, marker="o", ms=3, lw=1.5, label="validation")
            best = int(np.nanargmin(val))
            start = float(rec.get("best_val", np.nan))
            kept_start = start < val[best]  # no epoch validated better than the state the phase started from
            x, y, label = (0, start, "best (kept): the start") if kept_start else (best + 1, val[best], "best (kept)")
            a.plot(x, y, ls="", marker="*", ms=11, color=val_color, mec="black", mew=0.5, label=label)
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
        a.set_xlim(-0.5 if kept_start else 0.5, max(len(loss), len(val), 1) + 0.5)
        a.xaxis.set_major_locator(mticker.MaxNLocator(integer=True, min_n_ticks=1))
        a.set_ylabel("loss")
        a.grid(alpha=0.3, lw=0.5, which="both")
        a.legend(frameon=False, fontsize="small")
        defaults.append(_phase_title(phase, rec.get("stopped")))
    u.set_titles(fig, axes, title, defaults, ax_given=ax_given)
    if text is not None:
        fig.supxlabel(text, fontsize="small", color="0.25")
    return u.finish(fig, axes, ax_given=ax_given, show=show, save=save, return_fig=return_fig)


def _history_note(n_cols: int, distance: str = "W2", cells: str = "held-back cells") -> str:
    """Return the note below :func:`history`'s panels (the fit's validation ``distance`` and ``cells``), wrapped."""
    text = (
        f"Training loss (training batches) and validation score ({cells}: {distance} + 5 × mass error; score "
        "phase: score matching) are different quantities: compare trends, not levels. ★ = the state kept. "
        "(max epochs): every epoch ran, no early stop; more epochs may help."
    )
    return textwrap.fill(text, 62 * n_cols)


def _phase_title(phase: str, stopped) -> str:
    """Panel title such as ``"pretrain (early stopping)"`` from the stored reason the phase stopped."""
    if not isinstance(stopped, str) or not stopped:
        return str(phase)
    return f"{phase} ({stopped.split(':')[0].split(';')[0].replace('_', ' ').strip()})"


@u.doc_params
def metrics(
    adata,
    *,
    metrics: Sequence[str] | None = None,
    references: bool = True,
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

    The W1 panel carries the two references of :func:`ruotools.tl.evaluate` when they are stored,
    which give W1 a scale: the **sampling floor** ``W1_floor`` (grey band: W1 between two random
    halves of the observed cells, the distance due to sampling alone) and **no motion**
    ``W1_nearest`` (dashed: W1 between the previous snapshot and this one, the error of predicting
    no change). A good fit lies near the floor, well below no motion; the legend says so.

    Parameters
    ----------
    adata : anndata.AnnData
        Annotated data with an evaluation. Read: ``uns['ruot']['metrics']``. Nothing is written.
    metrics : sequence of str or None
        Metrics to draw, among ``"W1"``, ``"W2"``, ``"TMV"``, ``"RME"`` and ``"action"``; default
        ``W1``, ``W2``, ``TMV`` and, when stored, ``action``.
    references : bool
        Draw the references ``W1_floor`` and ``W1_nearest`` on the W1 panel (when stored; an evaluation
        by ruotools < 0.2 has none).
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
        stored = [k for k in table if k not in ("time", "stochastic", "action_alpha") and not str(k).endswith("_std")]
        where = f"`adata.uns['{Keys(key_added).uns}']['metrics']`"
        raise KeyError(f"Metric(s) {missing} not in {where} (stored: {stored}).")
    t = np.asarray(table["time"], dtype=np.float64)
    fig, axes, ax_given = u.make_panels(len(names), ax=ax, figsize=figsize, dpi=dpi, ncols=ncols,
                                        panel_size=(3.4, 3.0))  # fmt: skip
    legend = None
    for a, m in zip(axes, names, strict=True):
        y = np.asarray(table[m], dtype=np.float64)
        std = table.get(f"{m}_std")
        std = np.zeros_like(y) if std is None else np.nan_to_num(np.asarray(std, dtype=np.float64))
        label = "model: predicted cells"
        if np.any(std > 0):
            handle = a.errorbar(t, y, yerr=std, color=color, marker="o", ms=5, lw=1.5, capsize=3, label=label,
                                zorder=3)  # fmt: skip
        else:
            (handle,) = a.plot(t, y, color=color, marker="o", ms=5, lw=1.5, label=label, zorder=3)
        top = y + std
        if m == "W1" and references and all(k in table for k in _W1_REFERENCES):
            top = np.concatenate([top, *(np.asarray(table[k], dtype=np.float64) for k in _W1_REFERENCES)])
            ref_handles, ref_labels = _draw_w1_references(a, t, table)
            legend = (a, [handle, *ref_handles], [label, *ref_labels])
        a.set_xlabel(u.fit_time_key(fit))
        label_y = _METRIC_LABELS.get(m, m)
        if m == "action" and "action_alpha" in table:  # the growth weight it was computed with
            label_y = f"{label_y}\n(α = {float(table['action_alpha']):g})"
        a.set_ylabel(label_y)
        a.set_xticks(t)
        a.set_xticklabels([f"{v:g}" for v in t])
        top = np.nanmax(top) if np.isfinite(top).any() else 1.0
        a.set_ylim(0, 1.12 * top if top > 0 else 1.0)
        a.grid(alpha=0.3, lw=0.5)
    if legend is not None:
        a, handles, labels = legend
        if len(axes) > 1 and not ax_given:  # below the panels: it explains the W1 panel without covering it
            fig.legend(handles, labels, loc="outside lower center", ncols=3 if len(axes) >= 3 else 1, frameon=False,
                       fontsize="small", title=_W1_NOTE, title_fontsize="small")  # fmt: skip
        else:  # inside, above the curves: room made at the top
            a.set_ylim(0, a.get_ylim()[1] / 1.12 * 1.7)
            a.legend(handles, labels, loc="upper left", frameon=True, framealpha=0.85, fontsize="small")
    u.set_titles(fig, axes, title, names, ax_given=ax_given)
    return u.finish(fig, axes, ax_given=ax_given, show=show, save=save, return_fig=return_fig)


def _draw_w1_references(a: Axes, t: np.ndarray, table: Mapping) -> tuple[list, list[str]]:
    """Draw ``W1_floor`` (band from 0) and ``W1_nearest`` (dashed) on the W1 panel.

    Returns their legend handles (the floor's is its band with its line) and labels.
    """
    floor = np.asarray(table["W1_floor"], dtype=np.float64)
    nearest = np.asarray(table["W1_nearest"], dtype=np.float64)
    band = a.fill_between(t, 0, floor, color="0.6", alpha=0.25, lw=0, zorder=1)
    (floor_line,) = a.plot(t, floor, color="0.45", ls="-", lw=1, marker="s", ms=3, zorder=2,
                           label="sampling floor: two halves of the snapshot")  # fmt: skip
    (nearest_line,) = a.plot(t, nearest, color="0.25", ls="--", lw=1.2, marker="x", ms=5, zorder=2,
                             label="no motion: the previous snapshot")  # fmt: skip
    # the legend shows the band with its line
    return [(band, floor_line), nearest_line], [floor_line.get_label(), nearest_line.get_label()]
