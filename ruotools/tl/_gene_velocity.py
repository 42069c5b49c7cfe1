"""`gene_velocity`: the PCA-space velocity mapped back to genes, for scvelo's and CellRank's tools."""

from __future__ import annotations

import time

import numpy as np

from .. import _logging as logg
from .._keys import Keys
from .._settings import settings
from ._common import fitted
from ._velocity_embedding import rep_velocity


def gene_velocity(adata, *, key_added: str = "ruot", pcs_key: str = "PCs") -> np.ndarray:
    r"""Gene-space velocity from a fit on PCA coordinates: V_genes = V_pca · PCsᵀ.

    A fit on ``obsm['X_pca']`` learns the velocity of the principal components; multiplying by
    the loadings (``varm['PCs']``, genes × components, first ``n_dims`` columns) gives the
    velocity of the PCA reconstruction of the expression in ``.X`` (the units of the data the
    PCA was computed on, per unit of the user's time). The centring of the PCA drops out.

    Genes left out of the PCA — e.g. the genes that are not ``highly_variable`` when
    ``sc.pp.pca`` used ``mask_var="highly_variable"`` (its default when that column exists), which
    have all-zero loadings, or genes with non-finite loadings — get a velocity of **NaN** in every
    cell: the fit says nothing about them (a 0 would claim that they do not change). They are
    flagged ``False`` in ``var['ruot_velocity_genes']``, which scvelo and CellRank read to restrict
    their cosine similarities to the flagged genes (``scv.tl.velocity_graph`` also drops every gene
    column that contains a NaN). Select the fitted genes with
    ``layer[:, adata.var['ruot_velocity_genes'].to_numpy()]`` or use NaN-aware reductions
    (``np.nanmean``).

    Cells excluded from the fit (NaN time or coordinates) get a velocity of **0** for the fitted
    genes, not NaN: since ``scv.tl.velocity_graph`` drops every gene column that contains a NaN,
    NaN rows would remove all genes.

    Parameters
    ----------
    adata
        Annotated data fitted with ``use_rep="X_pca"``. Read: ``varm[pcs_key]`` and the fitted
        velocity ``obsm['ruot_velocity_pca']`` (recomputed from the model when absent).
    key_added
        Key of the fit (prefix of the keys read and written).
    pcs_key
        ``varm`` key of the loadings (genes × components) of the fitted representation.

    Returns
    -------
    numpy.ndarray
        Velocity (n_obs, n_vars), dense float32, per unit of the user's time; NaN in the columns
        of genes outside the PCA (see above). Written to ``layers['ruot_velocity']``; also
        ``var['ruot_velocity_genes']`` (bool, genes with a non-zero, finite loading) and
        ``uns['ruot_velocity_params']`` (created when missing). The layer is dense: n_obs × n_vars
        × 4 bytes.

    Notes
    -----
    ``scv.tl.velocity_graph(adata, vkey="ruot_velocity", xkey=...)`` compares each velocity
    with expression differences to the neighbours taken from ``layers[xkey]`` (default
    ``"Ms"``, falling back to ``"spliced"``). Without spliced counts, put the expression the
    PCA was computed on in a layer and name it: ``adata.layers["expression"] = adata.X`` then
    ``xkey="expression"``. ``velocity_graph`` also removes the ``embeddings`` entry of
    ``uns['ruot_velocity_params']``, so scvelo's plots then re-project from its graph. CellRank:
    ``cr.kernels.VelocityKernel(adata, vkey="ruot_velocity", xkey="expression")``, or directly in
    PCA space with ``attr="obsm", xkey="X_pca", vkey="ruot_velocity_pca"``.

    Examples
    --------
    >>> sc.pp.pca(adata)  # doctest: +SKIP
    >>> rt.tl.fit_ruot(adata, time_key="day", use_rep="X_pca", n_dims=10)  # doctest: +SKIP
    >>> rt.tl.gene_velocity(adata)  # doctest: +SKIP
    >>> adata.layers["expression"] = adata.X  # doctest: +SKIP
    >>> scv.tl.velocity_graph(adata, vkey="ruot_velocity", xkey="expression")  # doctest: +SKIP
    """
    start = time.perf_counter()
    keys = Keys(key_added)
    model, x, t, valid = fitted(adata, key_added, model=None)
    if model.use_rep == "X":
        raise ValueError(
            f"The fit used `use_rep='X'`: the gene-space velocity is already `adata.layers['{keys.velocity_layer}']` "
            f"(or `adata.obsm['{keys.velocity_obsm('X')}']` for a subset of the genes). `gene_velocity` maps a "
            "PCA-space velocity back to genes: fit with `use_rep='X_pca'` to use it."
        )
    if model.use_rep != "X_pca" and pcs_key == "PCs":
        raise ValueError(
            f"The fit used `use_rep={model.use_rep!r}`; `adata.varm['PCs']` holds the loadings of 'X_pca'. Fit with "
            "`use_rep='X_pca'`, or pass `pcs_key=` the `.varm` key of the loadings of the fitted PCA."
        )
    if pcs_key not in adata.varm:
        raise KeyError(
            f"`adata.varm['{pcs_key}']` not found: the PCA loadings are needed to map the velocity to genes. "
            "Run `sc.pp.pca(adata)` before fitting (it writes `obsm['X_pca']` and `varm['PCs']`)."
        )
    pcs = np.asarray(adata.varm[pcs_key], dtype=np.float64)
    if pcs.ndim != 2 or pcs.shape[1] < model.n_dims:
        raise ValueError(
            f"`adata.varm['{pcs_key}']` has shape {pcs.shape}; the fit uses {model.n_dims} components. "
            "Were the PCA and the fit run on the same data?"
        )
    pcs = pcs[:, : model.n_dims]
    v = rep_velocity(adata, keys, model, x, t, valid)
    ok = valid & np.all(np.isfinite(v), axis=1)
    v = np.where(ok[:, None], v, 0.0)

    layer = np.empty((adata.n_obs, adata.n_vars), dtype=np.float32)
    chunk = max(1, settings.chunk_size * 64 // max(adata.n_vars, 1))
    for s in range(0, adata.n_obs, chunk):
        layer[s : s + chunk] = v[s : s + chunk] @ pcs.T
    genes = np.any(pcs != 0, axis=1) & np.all(np.isfinite(pcs), axis=1)
    if not genes.any():
        raise ValueError(f"Every gene has a zero or non-finite loading in `adata.varm['{pcs_key}']`.")
    layer[:, ~genes] = np.nan  # outside the fitted PCA: unknown, not "no change"

    # everything is computed: write
    adata.layers[keys.velocity_layer] = layer
    adata.var[keys.velocity_genes] = genes
    if keys.velocity_params not in adata.uns:
        adata.uns[keys.velocity_params] = {"embeddings": []}
    n_out = int((~genes).sum())
    outside = f"; NaN for the {n_out} outside the PCA" if n_out else ""
    logg.info(
        f"    added `adata.layers['{keys.velocity_layer}']` ({int(genes.sum())} of {adata.n_vars} genes{outside}) and "
        f"`adata.var['{keys.velocity_genes}']`",
        start=start,
    )
    return layer
