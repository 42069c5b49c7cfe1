"""`growth_genes`: which genes drive growth — the mean gradient of the fitted growth rate, in genes."""

from __future__ import annotations

import time as _time

import numpy as np
import pandas as pd

from .. import _logging as logg
from .._keys import Keys
from ..model import RUOTModel
from ._jacobian import derivative_means, select

#: Name of the rows of the ranking that average over every selected cell.
ALL_CELLS = "all cells"


def growth_genes(
    adata,
    *,
    groupby: str | None = None,
    time=None,
    key_added: str = "ruot",
    model=None,
    pcs_key: str = "PCs",
) -> pd.DataFrame:
    r"""Genes that drive growth: the mean gradient of the fitted growth rate g with respect to each gene.

    ∂g/∂gene > 0: cells with more of the gene grow faster (or die less); < 0: they grow slower. Each
    cell's gradient is taken at its own position and time by autograd and averaged over the selected
    cells. For a fit on ``obsm['X_pca']``, g depends on the genes through the PCA coordinates
    x = PCsᵀ(y − μ), so ∇_genes g = PCs · ∇_pca g (PCs: the loadings ``varm['PCs']``); the mean is
    taken in PCA space and mapped once. For a fit on ``.X`` the genes are the fitted columns. Units:
    log-mass per unit of the user's time per unit of expression (of the data the PCA was computed on).

    With ``flavor="var_ruot"`` growth and drift come from one potential (g = λ / (2α) + c(t), u = ∇λ), so
    ∇g = u / (2α·s²) in the user's units (s: the fit's coordinate scale): the growth gradient is the mean
    drift, rescaled, and the ranking orders the genes by their mean velocity. That is the flavor's
    least-action prior, not separate evidence about what drives growth; ``params["tied_to_drift"]``
    records it and a warning is logged. A ``"deepruot"`` fit learns growth independently of the drift.

    Parameters
    ----------
    adata : anndata.AnnData
        Annotated data with a fit. Read: ``uns[key_added]['model']``, the fitted representation, the fit's
        time column, ``varm[pcs_key]`` for a fit on PCA, ``obs[groupby]``.
    groupby : str or None
        ``obs`` column: also rank the genes for the cells of each of its values.
    time : float, str, sequence or None
        Only the cells of these time point(s), as numbers or labels like those of the time column;
        ``None``: every cell with a time point.
    key_added : str
        Key of the fit (prefix of the keys written).
    model : RUOTModel or object or None
        Model to use instead of the stored one: a :class:`~ruotools.RUOTModel`, or any object with a
        ``growth(x, t)`` method (NumPy (n, d) and (n,) in, (n,) out, in the units of ``use_rep``) and
        attributes ``use_rep`` and ``time_key`` (then differentiated by central differences).
    pcs_key : str
        ``varm`` key of the loadings of the fitted representation.

    Returns
    -------
    pandas.DataFrame
        The ranking: columns ``group`` (``"all cells"`` for the mean over every selected cell, then each
        value of ``groupby``), ``gene``, ``gradient``, ``rank`` (1 = most positive, within the group) and
        ``n_cells``; the genes outside the fit are left out. Written to ``uns['ruot_growth_genes']``
        (``{"ranking": DataFrame, "params": dict}``), and the mean over every selected cell to
        ``var['ruot_growth_gradient']`` (NaN for genes outside the fit). ``params["tied_to_drift"]``: whether
        the gradient is the mean drift rescaled (``"var_ruot"`` fits).

    Raises
    ------
    KeyError
        When there is no fit (run :func:`ruotools.tl.fit_ruot`) or no loadings.
    ValueError
        When the fit has no growth (``growth=False``).

    Notes
    -----
    What the ranking can and cannot tell (benchmarks/README.md, section "Interpretation"):

    * Genes that vary together share a driver's gradient, and an anti-correlated partner of the driver
      comes out with the opposite sign. ``rank`` answers "which gene's increase raises growth most" (for
      genes that lower growth, read it from the end); read a strongly negative partner of the top gene as
      its mirror, not as a second driver.
    * A gene that barely varies among the selected cells (a lineage marker within its lineage) gets a
      gradient the snapshots hardly constrain; weigh the gradients by each gene's spread over the cells,
      computed from the expression data (gradient × std: the effect of a typical change of the gene).
    * Where the per-cell growth is not identifiable from the snapshots
      (:func:`ruotools.tl.growth_identifiability`), neither is its gradient.

    On three simulated networks with a known driver (3 seeds each, default ``"deepruot"`` fits; the growth
    of two of them is not identifiable) the true driver was ranked first in 5 of 9 fits and within the
    first three in all 9; ``"var_ruot"`` fits ranked it first in all 9, by the flavor's prior.

    Examples
    --------
    >>> rt.tl.fit_ruot(adata, time_key="day", use_rep="X_pca", n_dims=10)  # doctest: +SKIP
    >>> rt.tl.growth_genes(adata, groupby="cell_type").head()  # doctest: +SKIP
    >>> rt.pl.growth_genes(adata, n_top=10)  # doctest: +SKIP
    """
    start = _time.perf_counter()
    keys = Keys(key_added)
    sel = select(adata, key_added=key_added, model=model, groupby=groupby, time=time, pcs_key=pcs_key, need="growth")
    if isinstance(sel.model, RUOTModel) and not sel.model.config.growth:
        raise ValueError("The fit has no growth (`growth=False`): its growth rate is 0 everywhere. Fit with growth.")
    if ALL_CELLS in sel.group_names:
        raise ValueError(
            f"`adata.obs[{groupby!r}]` has a value {ALL_CELLS!r}, the name of the overall ranking; rename it."
        )
    tied = getattr(sel.model, "flavor", None) == "var_ruot"
    if tied:
        logg.warning(
            "This fit's flavor is 'var_ruot': its growth rate is λ / (2α) and its drift ∇λ, so the growth gradient "
            "is the mean drift rescaled and the ranking orders genes by their mean velocity; fit "
            "`flavor='deepruot'` for a growth rate learned apart from the drift."
        )
    means, counts = derivative_means(sel, "growth")
    genes = np.flatnonzero(sel.fitted_genes)
    gene_grad = means @ sel.loadings[genes].T  # (1 + K, genes)
    names = np.asarray(adata.var_names[genes], dtype=str)
    tables = []
    for k, group in enumerate([ALL_CELLS, *sel.group_names]):
        order = np.argsort(-gene_grad[k], kind="stable")
        tables.append(
            pd.DataFrame(
                {
                    "group": group,
                    "gene": names[order],
                    "gradient": gene_grad[k, order],
                    "rank": np.arange(1, len(order) + 1),
                    "n_cells": int(counts[k]),
                }
            )
        )
    ranking = pd.concat(tables, ignore_index=True)
    column = np.full(adata.n_vars, np.nan)
    column[genes] = gene_grad[0]

    # everything is computed: write
    adata.var[keys.growth_gradient] = column
    adata.uns[keys.growth_genes] = {"ranking": ranking, "params": {**sel.params, "tied_to_drift": tied}}
    logg.info(
        f"    added `adata.var['{keys.growth_gradient}']` ({len(genes)} of {adata.n_vars} genes) and "
        f"`adata.uns['{keys.growth_genes}']`",
        start=start,
    )
    return ranking
