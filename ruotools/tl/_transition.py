"""`velocity_transition_matrix`: a kNN Markov chain that follows the fitted velocity (for CellRank)."""

from __future__ import annotations

import numpy as np
from scipy import sparse

from .. import _logging as logg
from .. import _validation as val
from .._keys import Keys, outputs


def velocity_transition_matrix(
    adata,
    *,
    key_added: str = "ruot",
    n_neighbors: int = 30,
    softmax_scale: float | None = None,
    chunk_size: int = 8192,
) -> sparse.csr_matrix:
    r"""Row-stochastic transition matrix on a kNN graph, oriented by the fitted velocity.

    For each cell i with velocity v_i (in the fitted representation) and each of its
    ``n_neighbors`` nearest neighbours j (Euclidean, in the fitted representation, over all
    time points), the cosine similarity c_ij = cos(v_i, x_j − x_i) is turned into transition
    probabilities by a softmax over the neighbours, P_ij ∝ exp(λ · c_ij), as CellRank's
    ``VelocityKernel`` does with its deterministic model. Computed on neighbour lists in chunks of
    ``chunk_size`` cells: memory is O(n · n_neighbors), never n × n.

    CellRank 2.0.7's ``VelocityKernel`` fails on numpy 2; wrap this matrix in
    :class:`cellrank.kernels.PrecomputedKernel` instead (see Examples).

    Parameters
    ----------
    adata
        Annotated data with a fit. Read: the fitted representation and the velocity written by
        :func:`ruotools.tl.fit_ruot` (``obsm['ruot_velocity_{basis}']``, or
        ``layers['ruot_velocity']`` for a fit on all of ``.X``), and ``uns['ruot']``.
    key_added
        Key of the fit.
    n_neighbors
        Neighbours per cell (capped at the number of valid cells minus one).
    softmax_scale
        λ, the inverse temperature of the softmax; ``None`` uses 1 / median ``|c_ij|``, CellRank's
        estimate.
    chunk_size
        Cells processed at once.

    Returns
    -------
    scipy.sparse.csr_matrix
        (n_obs × n_obs), rows summing to one, in ``adata`` order. Cells with non-finite
        coordinates or velocity have a self-loop of weight 1 and are nobody's neighbour. Nothing
        is written to ``adata``.

    Examples
    --------
    >>> import cellrank as cr  # doctest: +SKIP
    >>> T = rt.tl.velocity_transition_matrix(adata)  # doctest: +SKIP
    >>> kernel = cr.kernels.PrecomputedKernel(T, adata=adata)  # doctest: +SKIP
    >>> g = cr.estimators.GPCCA(kernel)  # doctest: +SKIP
    """
    if n_neighbors < 1:
        raise ValueError(f"`n_neighbors` must be a positive integer, got {n_neighbors!r}.")
    if softmax_scale is not None and not (np.isfinite(softmax_scale) and softmax_scale > 0):
        raise ValueError(f"`softmax_scale` must be a positive number or None, got {softmax_scale!r}.")
    x, v = _coordinates_and_velocity(adata, key_added)
    n = adata.n_obs
    valid = np.flatnonzero(np.all(np.isfinite(x), axis=1) & np.all(np.isfinite(v), axis=1))
    if len(valid) < 2:
        raise ValueError("At least two cells with finite coordinates and velocity are needed.")
    from sklearn.neighbors import NearestNeighbors

    k = min(n_neighbors, len(valid) - 1)
    start = logg.info(f"computing velocity transition matrix ({k} neighbours)")
    xv, vv = x[valid], v[valid]
    knn = NearestNeighbors(n_neighbors=k + 1).fit(xv)
    nbrs = np.empty((len(valid), k), dtype=np.int64)
    cos = np.empty((len(valid), k))
    for c0 in range(0, len(valid), chunk_size):
        sl = slice(c0, min(c0 + chunk_size, len(valid)))
        _, idx = knn.kneighbors(xv[sl])
        nbrs[sl] = _drop_self(idx, np.arange(sl.start, sl.stop))
        disp = xv[nbrs[sl]] - xv[sl, None, :]
        num = np.einsum("ckd,cd->ck", disp, vv[sl])
        den = np.linalg.norm(disp, axis=2) * np.linalg.norm(vv[sl], axis=1)[:, None]
        cos[sl] = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    if softmax_scale is None:
        med = float(np.median(np.abs(cos)))
        softmax_scale = 1.0 / med if med > 0 else 1.0
    logits = softmax_scale * cos
    prob = np.exp(logits - logits.max(axis=1, keepdims=True))
    prob /= prob.sum(axis=1, keepdims=True)

    rows = np.concatenate([np.repeat(valid, k), np.setdiff1d(np.arange(n), valid)])
    cols = np.concatenate([valid[nbrs].ravel(), np.setdiff1d(np.arange(n), valid)])
    data = np.concatenate([prob.ravel(), np.ones(n - len(valid))])
    mat = sparse.csr_matrix((data, (rows, cols)), shape=(n, n))
    mat.sum_duplicates()
    logg.info(f"    transition matrix with softmax scale {softmax_scale:.3g}", start=start)
    return mat


def _drop_self(idx: np.ndarray, own: np.ndarray) -> np.ndarray:
    """Remove each row's own index from ``k + 1`` neighbours (the last one when a duplicate hides it)."""
    is_self = idx == own[:, None]
    drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), idx.shape[1] - 1)
    keep = np.ones(idx.shape, dtype=bool)
    keep[np.arange(len(idx)), drop] = False
    return idx[keep].reshape(len(idx), idx.shape[1] - 1)


def _coordinates_and_velocity(adata, key_added: str) -> tuple[np.ndarray, np.ndarray]:
    keys = Keys(key_added)
    if keys.uns not in adata.uns or "model" not in adata.uns[keys.uns]:
        raise RuntimeError(
            f"No fitted model: `adata.uns['{keys.uns}']` is missing. Run `rt.tl.fit_ruot(adata, time_key=...)` "
            "first (or pass the `key_added` used when fitting)."
        )
    uns = adata.uns[keys.uns]
    use_rep, dim = str(uns["use_rep"]), int(uns["model"]["dim"])
    x, _, _ = val.resolve_rep(adata, use_rep, None)
    full_x = use_rep == "X" and x.shape[1] == dim
    attr, key = outputs(keys, use_rep, full_x)["velocity"]
    store = getattr(adata, attr)
    if key not in store:
        raise KeyError(f"`adata.{attr}['{key}']` not found: the velocity of the fit; rerun `rt.tl.fit_ruot`.")
    v = store[key]
    v = v.toarray() if sparse.issparse(v) else np.asarray(v)
    return x[:, :dim], v[:, :dim].astype(np.float64)
