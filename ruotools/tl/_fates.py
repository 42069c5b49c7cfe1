"""`fate_probabilities`: growth-weighted share of each cell's descendants in each final cluster."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import _logging as logg
from .. import _validation as val
from .._keys import Keys
from ..model import RUOTModel
from ._common import fitted


def fate_probabilities(
    adata,
    cluster_key: str,
    *,
    key_added: str = "ruot",
    model: RUOTModel | None = None,
    n_samples: int = 8,
    stochastic: bool = True,
    n_steps_per_unit: float = 20,
    n_neighbors: int = 15,
    batch_size: int = 4096,
    random_state: int = 0,
) -> pd.DataFrame:
    """Probability that a cell's descendants end in each cluster of the last time point.

    Every valid cell is pushed forward with the fitted dynamics from its own time point to the
    last fitted time point, starting with mass 1 (``n_samples`` independent SDE paths per cell,
    one path for the deterministic flow). Each endpoint is assigned to the clusters of the last
    time point's cells by a soft k-nearest-neighbour vote in the fitted representation (the
    fraction of its ``n_neighbors`` nearest labelled last-time cells in each cluster), and counts
    with its predicted mass ``exp(log_mass)``: descendants that divide count more, dying ones
    less. The probability of a cluster is its mass-weighted share, so each row sums to one.

    Cells of the last time point get a one-hot row of their own cluster; a last-time cell without
    a label (NaN) gets the soft vote of its neighbours instead.

    How far to trust the fates of undecided progenitors depends on the flavor. On a simulated
    bifurcation whose truth is known (``benchmarks/interpretation.py``, bifurcating network, three
    fit seeds), the fitted P(lineage) of the first time point's cells has Spearman 0.49 with the true
    one for a default ``"deepruot"`` fit and 0.66 for a ``"var_ruot"`` fit. A ``"deepruot"`` velocity is
    a free field that can read a gene without moving it; without its default penalty on the part of v
    that is not a gradient (``train_kwargs={"lambda_curl": 0}``) it decides each progenitor's lineage by
    whatever genes vary at the start, including genes with no part in the decision (Spearman 0.27 with
    the truth; largest absolute Spearman correlation with an unregulated gene 0.48 on average, against
    0.03 in the truth). The default penalty, 0.01, lowers that correlation to 0.35, ``{"lambda_curl":
    0.03}`` to 0.15 (fates 0.67) and ``"var_ruot"`` to 0.03–0.05 (two runs): fit with 0.03, or with ``"var_ruot"``, when
    fates are the question. All put too little mass into the lineage that grows (0.59 for the default,
    0.59 with 0.03 and 0.68 for ``"var_ruot"``, against 0.84), as growth and fate bias trade off in
    snapshots.

    Parameters
    ----------
    adata
        Annotated data with a fit. Read: the fitted representation, ``obs[time_key]`` of the fit and
        ``obs[cluster_key]``.
    cluster_key
        ``obs`` column (categorical or strings) with the clusters; the clusters present among the
        last time point's cells are the possible fates.
    key_added
        Key of the fit; the result is written under ``Keys(key_added).fate_probabilities``.
    model
        Model to use instead of the one stored in ``adata``.
    n_samples
        Stochastic paths per cell (ignored, i.e. 1, for the deterministic flow).
    stochastic
        Simulate the SDE (drift v + ∇s, noise σ) instead of the deterministic flow.
    n_steps_per_unit
        Integration steps per unit of the user's time.
    n_neighbors
        Neighbours (among the labelled last-time cells) in the vote.
    batch_size
        Particles simulated at once (``batch_size // n_samples`` cells); bounds memory. The noise is
        seeded per batch, so results depend on it (and on ``random_state``) but are reproducible.
    random_state
        Seed of the Brownian increments.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``obs_names``, one column per cluster (names as strings), rows summing to one;
        NaN rows for cells excluded from the fit. Also written to ``adata``
        (``key_added="ruot"``): ``obsm['ruot_fate_probabilities']`` (float32, n_obs × n_clusters)
        and ``uns['ruot_fate_probabilities']`` ``{"names": cluster names, "params": {...}}``.

    Examples
    --------
    >>> fates = rt.tl.fate_probabilities(adata, "cell_type")  # doctest: +SKIP
    >>> fates.idxmax(axis=1).value_counts()  # doctest: +SKIP
    """
    from sklearn.neighbors import NearestNeighbors

    labels = _cluster_labels(adata, cluster_key)
    if n_samples < 1 or n_neighbors < 1 or batch_size < 1:
        raise ValueError("`n_samples`, `n_neighbors` and `batch_size` must be positive integers.")
    model, x, t, valid = fitted(adata, key_added, model)
    t_last = float(model.time_points[-1])
    last = valid & (t == t_last)
    ref = np.flatnonzero(last & labels.notna().to_numpy())
    if len(ref) == 0:
        raise ValueError(
            f"No cell of the last time point ({t_last:g}) has a cluster in `adata.obs['{cluster_key}']`; "
            "the fates are the clusters present at the last time point."
        )
    names, codes = _names_and_codes(labels, ref)
    n_clusters = len(names)
    knn = NearestNeighbors(n_neighbors=min(n_neighbors, len(ref))).fit(x[ref])

    def vote(points: np.ndarray) -> np.ndarray:
        _, nbrs = knn.kneighbors(points)
        share = np.zeros((len(points), n_clusters))
        np.add.at(share, (np.repeat(np.arange(len(points)), nbrs.shape[1]), codes[nbrs].ravel()), 1.0)
        return share / nbrs.shape[1]

    start = logg.info(f"computing fate probabilities into {n_clusters} clusters of `adata.obs['{cluster_key}']`")
    probs = np.full((adata.n_obs, n_clusters), np.nan)
    probs[ref] = np.eye(n_clusters)[codes]
    rest = np.flatnonzero(valid & (t >= t_last))
    rest = rest[~np.isin(rest, ref)]
    if len(rest):
        probs[rest] = vote(x[rest])

    n_paths = n_samples if stochastic and model.config.sigma > 0 else 1
    per_batch = max(1, batch_size // n_paths)
    seed = int(random_state)
    for t0 in np.unique(t[valid & (t < t_last)]):
        idx = np.flatnonzero(valid & (t == t0))
        for b0 in range(0, len(idx), per_batch):
            cells = idx[b0 : b0 + per_batch]
            x0 = np.repeat(x[cells], n_paths, axis=0)
            out = model.simulate(
                x0,
                [t0, t_last],
                log_mass0=np.zeros(len(x0)),
                stochastic=stochastic,
                n_steps_per_unit=n_steps_per_unit,
                random_state=seed,
            )
            seed += 1
            probs[cells] = _weighted_vote(out["X"][-1], out["log_mass"][-1], n_paths, n_clusters, vote)
    n_bad = int(np.sum(valid & np.isnan(probs).any(axis=1)))
    if n_bad:
        logg.warning(f"{n_bad} cell(s) got NaN fate probabilities (non-finite simulated descendants).")

    keys = Keys(key_added)
    params = {
        "cluster_key": cluster_key,
        "key_added": key_added,
        "n_samples": int(n_paths),
        "stochastic": bool(stochastic),
        "n_steps_per_unit": float(n_steps_per_unit),
        "n_neighbors": int(n_neighbors),
        "batch_size": int(batch_size),
        "random_state": int(random_state),
        "time_point": t_last,
    }
    adata.obsm[keys.fate_probabilities] = probs.astype(np.float32)
    adata.uns[keys.fate_probabilities] = {"names": np.asarray(names, dtype=str), "params": params}
    logg.info(
        f"    added `adata.obsm['{keys.fate_probabilities}']`, `adata.uns['{keys.fate_probabilities}']`", start=start
    )
    return pd.DataFrame(probs, index=adata.obs_names.copy(), columns=pd.Index(names, dtype=str))


def _weighted_vote(endpoints: np.ndarray, log_mass: np.ndarray, n_paths: int, n_clusters: int, vote) -> np.ndarray:
    """Mass-weighted mean vote per cell of ``n_paths`` consecutive endpoints; NaN when none is finite."""
    ok = np.all(np.isfinite(endpoints), axis=1) & np.isfinite(log_mass)
    share = np.zeros((len(endpoints), n_clusters))
    if ok.any():
        share[ok] = vote(endpoints[ok])
    n_cells = len(endpoints) // n_paths
    lm = np.where(ok, log_mass, -np.inf).reshape(n_cells, n_paths)
    # masses relative to each cell's heaviest path: no overflow, and a cell whose paths all died still counts
    top = lm.max(axis=1, keepdims=True)
    w = np.exp(lm - np.where(np.isfinite(top), top, 0.0))
    total = w.sum(axis=1, keepdims=True)
    out = np.einsum("cp,cpk->ck", w, share.reshape(n_cells, n_paths, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return out / total


def _cluster_labels(adata, cluster_key) -> pd.Series:
    col = val.obs_column(adata, cluster_key, "cluster_key")
    if isinstance(col.dtype, pd.CategoricalDtype):
        return col
    if pd.api.types.is_string_dtype(col.dtype) or pd.api.types.is_object_dtype(col.dtype):
        return col.astype("category")
    raise TypeError(
        f"`adata.obs['{cluster_key}']` must be categorical or hold strings (cluster names), got dtype {col.dtype}. "
        f"Convert it, e.g. `adata.obs['{cluster_key}'] = adata.obs['{cluster_key}'].astype(str).astype('category')`."
    )


def _names_and_codes(labels: pd.Series, ref: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Clusters present among the reference cells (in category order) and each reference cell's code."""
    cats = labels.cat.categories
    raw = labels.cat.codes.to_numpy()[ref]
    present = np.unique(raw)
    remap = np.full(len(cats), -1)
    remap[present] = np.arange(len(present))
    return [str(c) for c in cats[present]], remap[raw]
