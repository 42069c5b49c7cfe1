"""Tidy tables of simulated trajectories, predicted mass, growth rates and gene trends.

These getters only read ``adata`` (no model, no torch), so they work on a reloaded ``.h5ad``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import sparse

from .. import _validation as val
from .._keys import Keys

_TRAJ = Keys().trajectories  # default key of rt.tl.simulate


def trajectories(adata, key: str = _TRAJ) -> pd.DataFrame:
    """Return the simulated particles as a long table, one row per particle and time.

    Parameters
    ----------
    adata
        Annotated data. Read: ``uns[key]`` written by :func:`ruotools.tl.simulate`.
    key
        ``uns`` key of the trajectories (``key_added`` of :func:`ruotools.tl.simulate`).

    Returns
    -------
    pandas.DataFrame
        Columns ``particle`` (int), ``start_obs`` (the start cell's ``obs_name``), ``time`` (user
        unit), ``weight`` (predicted mass, summing over particles to the population size relative
        to the start), ``log_mass`` and ``dim_1`` … ``dim_d`` (position in the fitted
        representation); sorted by time, then particle.

    Examples
    --------
    >>> rt.tl.simulate(adata)  # doctest: +SKIP
    >>> df = rt.get.trajectories(adata)  # doctest: +SKIP
    >>> df.groupby("time")["weight"].sum()  # doctest: +SKIP
    """
    traj = _stored(adata, key)
    pos, times, log_mass = traj["X"], traj["t"], traj["log_mass"]
    n_t, n_p, d = pos.shape
    df = pd.DataFrame(
        {
            "particle": np.tile(np.arange(n_p), n_t),
            "start_obs": np.tile(np.asarray(traj["start_obs"], dtype=str), n_t),
            "time": np.repeat(times, n_p),
            "weight": np.exp(log_mass).ravel(),
            "log_mass": log_mass.ravel(),
        }
    )
    coords = pd.DataFrame(pos.reshape(n_t * n_p, d), columns=[f"dim_{i + 1}" for i in range(d)])
    return pd.concat([df, coords], axis=1)


def mass(adata, key: str = _TRAJ, *, key_added: str = "ruot") -> pd.DataFrame:
    """Predicted population size over time, relative to the start of the simulation.

    Parameters
    ----------
    adata
        Annotated data. Read: ``uns[key]`` (:func:`ruotools.tl.simulate`) and, if present,
        ``uns[key_added]`` (the fit's time points and observed relative sizes).
    key
        ``uns`` key of the trajectories.
    key_added
        Key of the fit, for the ``observed`` column.

    Returns
    -------
    pandas.DataFrame
        Columns ``time``, ``total_mass`` (sum of the particles' predicted masses; 1 at the start)
        and ``observed`` (the fit's population size relative to the start time at the fitted time
        points, NaN at other times or without a fit).

    Examples
    --------
    >>> rt.get.mass(adata).plot(x="time", y="total_mass")  # doctest: +SKIP
    """
    traj = _stored(adata, key)
    times = np.asarray(traj["t"], dtype=np.float64)
    total = np.exp(np.asarray(traj["log_mass"], dtype=np.float64)).sum(axis=1)
    observed = np.full(len(times), np.nan)
    fit = adata.uns.get(Keys(key_added).uns)
    if isinstance(fit, dict) and "model" in fit:
        tp = np.asarray(fit["model"]["time_points"], dtype=np.float64)
        rel = np.asarray(fit["model"]["relative_mass"], dtype=np.float64)
        ref = np.flatnonzero(np.isclose(tp, times[0]))
        if len(ref):
            for i, tv in enumerate(times):
                hit = np.flatnonzero(np.isclose(tp, tv))
                if len(hit):
                    observed[i] = rel[hit[0]] / rel[ref[0]]
    return pd.DataFrame({"time": times, "total_mass": total, "observed": observed})


def growth(adata, groupby: str | None = None, *, key_added: str = "ruot") -> pd.DataFrame:
    """Growth rates of the cells summarised per time point (and group).

    Parameters
    ----------
    adata
        Annotated data with a fit. Read: ``obs['ruot_growth_rate']`` (``key_added="ruot"``), the fit's
        ``obs[time_key]`` and ``obs[groupby]``.
    groupby
        Optional ``obs`` column to split each time point by (e.g. clusters).
    key_added
        Key of the fit.

    Returns
    -------
    pandas.DataFrame
        Columns ``time``, ``groupby`` (when given), ``n_cells``, ``mean`` and ``median`` growth rate
        in log-mass per unit of the user's time (cells with a NaN rate are left out).

    Examples
    --------
    >>> rt.get.growth(adata, groupby="cell_type")  # doctest: +SKIP
    """
    keys = Keys(key_added)
    fit = _fit(adata, key_added)
    if keys.growth not in adata.obs.columns:
        raise KeyError(f"`adata.obs['{keys.growth}']` not found: run `rt.tl.fit_ruot` (with `growth=True`) first.")
    df = pd.DataFrame(
        {"time": val.resolve_time(adata, str(fit["model"]["time_key"])), "rate": adata.obs[keys.growth].to_numpy()}
    )
    by = ["time"]
    if groupby is not None:
        if groupby not in adata.obs.columns:
            raise KeyError(f"`adata.obs['{groupby}']` not found; pass `groupby=` an `.obs` column.")
        df[groupby] = adata.obs[groupby].to_numpy()
        by.append(groupby)
    df = df[np.isfinite(df["rate"].to_numpy(dtype=np.float64)) & df["time"].notna()]
    out = df.groupby(by, observed=True, sort=True)["rate"].agg(n_cells="size", mean="mean", median="median")
    return out.reset_index()


def gene_trends(
    adata,
    genes: str | Sequence[str],
    *,
    key: str = _TRAJ,
    key_added: str = "ruot",
    use_raw: bool = False,
    layer: str | None = None,
    n_neighbors: int = 15,
    chunk_size: int = 4096,
) -> pd.DataFrame:
    """Mass-weighted mean expression along the simulated trajectories.

    Each particle position is given the mean expression of its ``n_neighbors`` nearest observed
    cells in the fitted representation; at each time the particles are averaged with their
    predicted masses as weights.

    Parameters
    ----------
    adata
        Annotated data with a fit and trajectories. Read: ``uns[key]``, ``uns[key_added]``, the
        fitted representation and the expression of ``genes`` (``.X``, ``layers[layer]`` or ``.raw``).
    genes
        Gene name(s) in ``var_names`` (``raw.var_names`` with ``use_raw=True``).
    key
        ``uns`` key of the trajectories.
    key_added
        Key of the fit (its representation).
    use_raw, layer
        Read expression from ``adata.raw`` or a layer instead of ``.X``.
    n_neighbors
        Observed cells averaged per particle.
    chunk_size
        Particles processed at once.

    Returns
    -------
    pandas.DataFrame
        Columns ``time``, ``gene`` and ``expression`` (mass-weighted mean), one row per time and gene.

    Examples
    --------
    >>> rt.get.gene_trends(adata, ["Gata1", "Spi1"]).pivot(index="time", columns="gene")  # doctest: +SKIP
    """
    from sklearn.neighbors import NearestNeighbors

    genes = [genes] if isinstance(genes, str) else list(genes)
    traj = _stored(adata, key)
    fit = _fit(adata, key_added)
    x, _, _ = val.resolve_rep(adata, str(fit["use_rep"]), None)
    x = x[:, : int(fit["model"]["dim"])]
    if traj["X"].shape[2] != x.shape[1]:
        raise ValueError(
            f"The trajectories in `adata.uns['{key}']` have {traj['X'].shape[2]} dimensions; the fit "
            f"`adata.uns['{key_added}']` has {x.shape[1]}."
        )
    expr = _expression(adata, genes, use_raw, layer)
    ok = np.all(np.isfinite(x), axis=1)
    x, expr = x[ok], expr[ok]
    knn = NearestNeighbors(n_neighbors=min(n_neighbors, len(x))).fit(x)
    rows = []
    for k, tv in enumerate(np.asarray(traj["t"], dtype=np.float64)):
        pos, w = traj["X"][k], np.exp(np.asarray(traj["log_mass"][k], dtype=np.float64))
        keep = np.all(np.isfinite(pos), axis=1) & np.isfinite(w)
        pos, w = pos[keep], w[keep]
        acc = np.zeros(len(genes))
        for c0 in range(0, len(pos), chunk_size):
            _, idx = knn.kneighbors(pos[c0 : c0 + chunk_size])
            acc += w[c0 : c0 + chunk_size] @ expr[idx].mean(axis=1)
        mean = acc / w.sum() if w.sum() > 0 else np.full(len(genes), np.nan)
        rows.append(pd.DataFrame({"time": tv, "gene": genes, "expression": mean}))
    return pd.concat(rows, ignore_index=True)


def _stored(adata, key: str) -> dict:
    if key not in adata.uns:
        raise KeyError(f"`adata.uns['{key}']` not found: run `rt.tl.simulate(adata, key_added='{key}')` first.")
    traj = adata.uns[key]
    return {name: np.asarray(traj[name]) for name in ("X", "t", "log_mass", "start_obs")}


def _fit(adata, key_added: str) -> dict:
    key = Keys(key_added).uns
    if key not in adata.uns or "model" not in adata.uns[key]:
        raise KeyError(
            f"`adata.uns['{key}']` not found: run `rt.tl.fit_ruot(adata, time_key=...)` first "
            "(or pass the `key_added` used when fitting)."
        )
    return adata.uns[key]


def _expression(adata, genes: list[str], use_raw: bool, layer: str | None) -> np.ndarray:
    if use_raw and layer is not None:
        raise ValueError("Pass either `use_raw=True` or `layer=`, not both.")
    if use_raw:
        if adata.raw is None:
            raise KeyError("`adata.raw` is empty; use `use_raw=False`.")
        names, where = adata.raw.var_names, "adata.raw.var_names"
    else:
        names, where = adata.var_names, "adata.var_names"
    missing = [g for g in genes if g not in names]
    if missing:
        raise KeyError(f"Gene(s) {missing[:5]} not found in `{where}`.")
    pos = names.get_indexer(genes)
    if use_raw:
        mat = adata.raw.X[:, pos]
    elif layer is not None:
        if layer not in adata.layers:
            raise KeyError(f"`adata.layers['{layer}']` not found (available: {list(adata.layers.keys())}).")
        mat = adata.layers[layer][:, pos]
    else:
        mat = adata.X[:, pos]
    mat = mat.toarray() if sparse.issparse(mat) else np.asarray(mat)
    return mat.astype(np.float64)
