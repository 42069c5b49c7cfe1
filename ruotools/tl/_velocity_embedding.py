"""`velocity_embedding`: the fitted velocity drawn on a 2-D embedding (scvelo's ``{vkey}_{basis}``)."""

from __future__ import annotations

import time

import numpy as np

from .. import _logging as logg
from .. import _validation as val
from .._keys import Keys, basis_from_rep, outputs
from .._settings import settings
from ..model import RUOTModel
from ._common import fitted


def velocity_embedding(
    adata,
    basis: str = "umap",
    *,
    key_added: str = "ruot",
    n_neighbors: int = 30,
    softmax_scale: float = 10.0,
    model: RUOTModel | None = None,
) -> np.ndarray:
    r"""Project the fitted velocity onto a 2-D embedding, for scvelo's and ruotools' stream plots.

    When ``basis`` is the fitted representation itself (e.g. ``"pca"`` after a fit on
    ``X_pca``), the velocity is exact: a copy of the fitted one, whose columns are the first
    ``n_dims`` columns of ``obsm['X_pca']``.

    Otherwise the velocity is projected as scvelo does (Bergen et al. 2020): for each cell *i*
    and its ``n_neighbors`` nearest neighbours *j* in the fitted representation, the cosine
    c_ij between the velocity v_i and the displacement x_j − x_i gives transition
    probabilities p_ij = softmax_j(``softmax_scale`` · c_ij); the embedded velocity is

    .. math:: \tilde v_i = \sum_j p_{ij} (e_j - e_i) - \frac{1}{k} \sum_j (e_j - e_i),

    the expected displacement in the embedding minus the one of a random step (scvelo's
    correction, so a cell without direction gets no arrow). Unlike scvelo, the embedding
    displacements are not normalised to unit length, and the result is rescaled by one factor
    so that its median norm equals the median norm of v times the ratio of the median
    neighbour distance in the embedding to the one in the fitted representation: arrows are
    then roughly in embedding units per unit of the user's time. Only the direction field is
    meaningful; the scale is a convention.

    Parameters
    ----------
    adata
        Annotated data with a fit. Read: ``obsm[f'X_{basis}']``, the fitted representation and
        the fitted velocity (``obsm['ruot_velocity_{fitted basis}']`` or
        ``layers['ruot_velocity']``; recomputed from the model when absent).
    basis
        Embedding, ``"umap"`` or ``"X_umap"`` alike: ``obsm[f'X_{basis}']`` (first two columns).
    key_added
        Key of the fit (prefix of the keys read and written).
    n_neighbors
        Neighbours per cell in the fitted representation (kNN projection only).
    softmax_scale
        Inverse temperature of the softmax over cosines (scvelo's ``scale``, default 10); larger
        values concentrate the transition on the best-aligned neighbours.
    model
        Model to use instead of the one stored in ``adata``.

    Returns
    -------
    numpy.ndarray
        Embedded velocity (n_obs, 2), float32 (n_obs × ``n_dims`` in the exact case); NaN for
        cells excluded from the fit or with non-finite embedding coordinates. Written to
        ``obsm['ruot_velocity_{basis}']``, and ``basis`` is added to
        ``uns['ruot_velocity_params']['embeddings']``, so
        ``scv.pl.velocity_embedding_stream(adata, basis=basis, vkey="ruot_velocity")`` draws it
        without recomputing anything.

    Examples
    --------
    >>> import scanpy as sc  # doctest: +SKIP
    >>> sc.pp.neighbors(adata); sc.tl.umap(adata)  # doctest: +SKIP
    >>> rt.tl.velocity_embedding(adata, basis="umap")  # doctest: +SKIP
    >>> scv.pl.velocity_embedding_stream(adata, basis="umap", vkey="ruot_velocity")  # doctest: +SKIP
    """
    start = time.perf_counter()
    keys = Keys(key_added)
    if not isinstance(basis, str) or not basis:
        raise TypeError(f"`basis` must be a non-empty string such as 'umap', got {basis!r}.")
    basis = basis[2:] if basis.startswith("X_") else basis
    if not isinstance(n_neighbors, int | np.integer) or isinstance(n_neighbors, bool) or n_neighbors < 1:
        raise ValueError(f"`n_neighbors` must be a positive integer, got {n_neighbors!r}.")
    if not np.isfinite(softmax_scale) or softmax_scale <= 0:
        raise ValueError(f"`softmax_scale` must be a positive number, got {softmax_scale!r}.")
    model, x, t, valid = fitted(adata, key_added, model)
    v = rep_velocity(adata, keys, model, x, t, valid)
    valid = valid & np.all(np.isfinite(v), axis=1)

    if basis == basis_from_rep(model.use_rep):
        v_emb = v.astype(np.float32, copy=True)
        method = "exact"
    else:
        emb = val.embedding_2d(adata, basis)
        valid = valid & np.all(np.isfinite(emb), axis=1)
        if valid.sum() < 2:
            raise ValueError("Fewer than two cells have a finite velocity and embedding; nothing to project.")
        v_emb = np.full((adata.n_obs, 2), np.nan, dtype=np.float32)
        v_emb[valid] = _knn_projection(x[valid], v[valid], emb[valid], n_neighbors, softmax_scale)
        method = "knn"

    # everything is computed: write
    obsm_key = keys.velocity_obsm(basis)
    adata.obsm[obsm_key] = v_emb
    params = adata.uns.get(keys.velocity_params)
    params = dict(params) if params is not None else {}
    embeddings = [str(b) for b in np.atleast_1d(params.get("embeddings", [])).tolist()]
    if basis not in embeddings:
        embeddings.append(basis)
    params["embeddings"] = embeddings
    adata.uns[keys.velocity_params] = params
    logg.info(
        f"    added `adata.obsm['{obsm_key}']` ({method} projection) and '{basis}' to "
        f"`adata.uns['{keys.velocity_params}']['embeddings']`",
        start=start,
    )
    return v_emb


def rep_velocity(adata, keys: Keys, model: RUOTModel, x: np.ndarray, t: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Fitted velocity (n_obs, n_dims) in the fitted representation: the stored one, else from the model."""
    full_x = model.use_rep == "X" and model.n_dims == adata.n_vars
    attr, key = outputs(keys, model.use_rep, full_x)["velocity"]
    store = getattr(adata, attr)
    if key in store:
        v = store[key]
        v = v.toarray() if hasattr(v, "toarray") else np.asarray(v)
        if v.shape == x.shape:
            return v.astype(np.float64)
    v = np.full(x.shape, np.nan)
    idx = np.flatnonzero(valid)
    for s in range(0, len(idx), settings.chunk_size):
        sel = idx[s : s + settings.chunk_size]
        v[sel] = model.velocity(x[sel], t[sel])
    return v


def _knn_projection(x: np.ndarray, v: np.ndarray, emb: np.ndarray, n_neighbors: int, softmax_scale: float):
    """Transition-probability projection of velocities ``v`` at ``x`` onto the embedding ``emb`` (all finite)."""
    from sklearn.neighbors import NearestNeighbors

    k = min(n_neighbors, len(x) - 1)
    nn = NearestNeighbors(n_neighbors=k).fit(x)
    dist, nbrs = nn.kneighbors()  # (n, k), the query cell itself excluded
    v_norm = np.linalg.norm(v, axis=1)
    out = np.empty((len(x), 2))
    d_emb = np.empty(nbrs.shape)
    chunk = max(1, settings.chunk_size // max(k, 1))
    for s in range(0, len(x), chunk):
        sl = slice(s, s + chunk)
        dx = x[nbrs[sl]] - x[sl, None, :]  # (c, k, d)
        denom = np.linalg.norm(dx, axis=2) * v_norm[sl, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            cos = np.where(denom > 0, np.einsum("ckd,cd->ck", dx, v[sl]) / denom, 0.0)
        logits = softmax_scale * cos
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        de = emb[nbrs[sl]] - emb[sl, None, :]  # (c, k, 2)
        out[sl] = np.einsum("ck,cke->ce", p, de) - de.mean(axis=1)
        d_emb[sl] = np.linalg.norm(de, axis=2)
    # one global factor: median arrow length = median speed × (embedding / representation neighbour distance)
    ratio = np.median(d_emb) / np.median(dist) if np.median(dist) > 0 else 1.0
    med_out = np.median(np.linalg.norm(out, axis=1))
    if med_out > 0:
        out *= np.median(v_norm) * ratio / med_out
    return out
