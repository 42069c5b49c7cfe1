"""`holdout_time`: refit without an interior time point and predict it."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from .. import _logging as logg
from .. import _validation as val
from .._keys import Keys
from ..core.ot import interpolate_ot, wasserstein
from ._common import without_geodesic_unless_given
from ._fit import fit_ruot


def holdout_time(
    adata,
    time_key: str,
    *,
    held_out=None,
    stochastic: bool = True,
    n_steps_per_unit: float = 100,
    max_cells: int | None = 5000,
    random_state: int = 0,
    key_added: str = "ruot",
    **fit_kwargs,
) -> pd.DataFrame:
    """Leave-one-time-point-out check: refit without ``t_k`` and compare the prediction with it.

    For each held-out interior time point ``t_k``, a model is fitted (with ``fit_kwargs``) on a copy
    of ``adata`` without the cells of ``t_k``; all cells of the first time point are pushed to
    ``t_k`` (masses ``1/N_0``) and compared with the held-out cells by exact OT, as in
    :func:`ruotools.tl.evaluate`. Two model-free references are reported alongside, so that you can
    see what the dynamics add:

    * ``nearest``: the observed snapshot nearest in time to ``t_k`` (the earlier one on a tie);
    * ``interp``: displacement interpolation of the exact OT matching between ``t_{k−1}`` and
      ``t_{k+1}`` at the fraction ``(t_k − t_{k−1}) / (t_{k+1} − t_{k−1})``.

    Parameters
    ----------
    adata
        Annotated data. Read: ``obs[time_key]`` and the representation; ``adata`` itself is not
        refitted, only copies (the refits' info messages, about what they add to their copy, are
        not printed; their warnings are).
    time_key
        ``obs`` column with the time points.
    held_out
        Time points to hold out (interior ones only), as numbers or labels like the time column's
        (``"day 2"``); ``None`` means every interior time point.
    stochastic
        Predict with the SDE (default) or the deterministic flow.
    n_steps_per_unit
        Integration steps per unit of the user's time.
    max_cells
        Compare at most this many random cells per side (exact OT is cubic); ``None`` for all.
    random_state
        Seed of the fits, the noise and the subsampling.
    key_added
        The table is stored in ``adata.uns[f"{key_added}_holdout"]``.
    **fit_kwargs
        Passed to :func:`ruotools.tl.fit_ruot` (e.g. ``use_rep``, ``sigma``, ``max_epochs``). The
        refits use the settings a fit of all the time points would: ``flavor="var_ruot"``'s geodesic
        target, on by default for two time points only, stays off in the refits of data with three
        or more (each refit has one time point fewer) unless ``train_kwargs`` gives
        ``lambda_geodesic``.

    Returns
    -------
    pandas.DataFrame
        Indexed by the held-out time, columns ``W1``, ``W2``, ``TMV`` (model), ``W1_nearest``,
        ``W2_nearest`` and ``W1_interp``, ``W2_interp`` (references).

    Examples
    --------
    >>> rt.tl.holdout_time(adata, "time", held_out=[2.0])  # doctest: +SKIP
    """
    t = val.resolve_time(adata, time_key, log=True)  # the refits' own messages are not shown
    x, use_rep, _ = val.resolve_rep(adata, fit_kwargs.get("use_rep"), fit_kwargs.get("n_dims"), for_fit=True)
    valid = ~np.isnan(t) & np.all(np.isfinite(x), axis=1)
    times, counts = val.check_time_points(t[valid], time_key)
    interior = times[1:-1]
    if len(interior) == 0:
        raise ValueError(f"`adata.obs['{time_key}']` has no interior time point to hold out (need ≥ 3 time points).")
    if held_out is None:
        held_out = interior
    held_out = val.time_points(held_out, "held_out")
    bad = [float(h) for h in held_out if h not in interior]
    if bad:
        raise ValueError(f"Can only hold out interior time points {interior.tolist()}; got {bad}.")
    fit_kwargs.setdefault("show_progress_bar", False)
    fit_kwargs["use_rep"] = use_rep
    # off, as in a fit of all the (three or more) time points, not as in one of the refit's fewer
    without_geodesic_unless_given(fit_kwargs)
    rng = np.random.default_rng(random_state)

    def cells(tk):
        pts = x[valid & (t == tk)]
        if max_cells is not None and len(pts) > max_cells:
            pts = pts[rng.choice(len(pts), max_cells, replace=False)]
        return pts

    rows = []
    for tk in held_out:
        k = int(np.flatnonzero(times == tk)[0])
        sub = adata[~(t == tk)].copy()
        start = logg.info(
            f"holding out {time_key} = {tk:g}: refitting on a copy without its {int((t == tk).sum())} cells"
        )
        # the refit writes to the copy only: its "added `adata...`" messages would describe the user's AnnData,
        # and the warning about the representation was given once above
        with logg.only_warnings(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"Fitting on .*: UMAP and t-SNE", category=UserWarning)
            model = fit_ruot(sub, time_key, random_state=random_state, key_added=key_added, **fit_kwargs)
        x0 = x[valid & (t == times[0])]
        if max_cells is not None and len(x0) > max_cells:
            x0 = x0[rng.choice(len(x0), max_cells, replace=False)]
        out = model.simulate(
            x0, [times[0], tk], stochastic=stochastic, n_steps_per_unit=n_steps_per_unit, random_state=random_state
        )
        pred, w = out["X"][-1], np.exp(out["log_mass"][-1])
        target = cells(tk)
        before, after = cells(times[k - 1]), cells(times[k + 1])
        nearest = before if tk - times[k - 1] <= times[k + 1] - tk else after
        frac = (tk - times[k - 1]) / (times[k + 1] - times[k - 1])
        interp, interp_w = interpolate_ot(before, after, frac)
        true_mass = counts[k] / counts[0]
        rows.append(
            {
                "time": tk,
                "W1": wasserstein(pred, target, w, None, p=1),
                "W2": wasserstein(pred, target, w, None, p=2),
                "TMV": abs(w.sum() - true_mass),
                "W1_nearest": wasserstein(nearest, target, p=1),
                "W2_nearest": wasserstein(nearest, target, p=2),
                "W1_interp": wasserstein(interp, target, interp_w, None, p=1),
                "W2_interp": wasserstein(interp, target, interp_w, None, p=2),
            }
        )
        logg.info(
            f"    W1 at {tk:g}: model {rows[-1]['W1']:.3f}, nearest {rows[-1]['W1_nearest']:.3f}, "
            f"interpolation {rows[-1]['W1_interp']:.3f}",
            start=start,
        )
    table = pd.DataFrame(rows).set_index("time")
    adata.uns[Keys(key_added).holdout] = {
        "time": table.index.to_numpy(dtype=np.float64),
        **{c: table[c].to_numpy(dtype=np.float64) for c in table.columns},
        "stochastic": bool(stochastic),
    }
    logg.info(f"    added `adata.uns['{Keys(key_added).holdout}']`")
    return table
