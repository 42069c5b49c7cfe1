"""`jacobian`: who regulates whom — the mean Jacobian of the fitted SDE drift, in genes.

Also the plumbing shared with :func:`ruotools.tl.growth_genes`: the cells selected by ``time=`` and
``groupby=``, the map from the fitted coordinates to genes, and the per-cell derivatives of the fitted
fields (torch autograd for a :class:`~ruotools.RUOTModel`, central differences for any other model).
"""

from __future__ import annotations

import time as _time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .. import _logging as logg
from .. import _validation as val
from .._keys import Keys
from ..model import RUOTModel
from ._common import fitted

#: Values of per-cell derivatives held at once (cells × d × d): bounds the memory of one chunk.
_VALUES_PER_CHUNK = 2_000_000
#: Above this many genes, a genes × genes matrix needs `genes=` (one float32 matrix of 5,000 genes is 100 MB).
MAX_GENES = 5_000
#: Step of the central differences of a model without autograd, relative to the coordinates' spread.
_FD_STEP = 1e-5


@dataclass
class Selection:
    """What a derivative tool works on.

    Attributes
    ----------
    model
        The model (a :class:`~ruotools.RUOTModel` or an object with ``drift``/``growth`` methods).
    x, t
        Fitted coordinates (n, d) and times (n,) of the selected cells.
    group
        Index of each selected cell's group in ``group_names`` (−1: no group).
    group_names
        Names of the groups that have selected cells, in the column's order.
    loadings
        Genes × d map from the fitted coordinates to ``adata.var_names`` (the PCA loadings, or the identity
        on the fitted genes of ``.X``); all-zero rows for genes outside the fit.
    fitted_genes
        Mask (n_vars,) of the genes the fit says something about.
    params
        h5ad-safe description of the selection (stored with the results).
    """

    model: object
    x: np.ndarray
    t: np.ndarray
    group: np.ndarray
    group_names: list[str]
    loadings: np.ndarray
    fitted_genes: np.ndarray
    params: dict


def select(adata, *, key_added: str, model, groupby, time, pcs_key: str, need: str) -> Selection:
    """Resolve the model, the cells of ``time``, the groups of ``groupby`` and the gene map; nothing is written.

    ``need`` is the model method the caller differentiates (``"drift"`` or ``"growth"``).
    """
    if model is None:
        model = RUOTModel.from_adata(adata, key_added)  # KeyError naming rt.tl.fit_ruot when missing
    elif not isinstance(model, RUOTModel):
        missing = [a for a in ("use_rep", "time_key", need) if not hasattr(model, a)]
        if missing:
            raise TypeError(
                f"`model` must be a RUOTModel, or an object with a `{need}(x, t)` method (NumPy in and out) and "
                f"`use_rep` / `time_key` attributes naming its coordinates and time column; it lacks {missing}."
            )
    model, x, t, cells = fitted(adata, key_added, model)
    use_rep, time_key, n_dims = str(model.use_rep), str(model.time_key), x.shape[1]
    params: dict = {"key_added": key_added, "use_rep": use_rep}
    if time is not None:
        wanted = val.time_points(time, "time")
        present = np.unique(t[cells])
        absent = [float(w) for w in wanted if not np.any(np.isclose(present, w))]
        if absent:
            raise ValueError(
                f"`time={time!r}`: no cell at {absent} in `adata.obs[{time_key!r}]`; its time points are "
                f"{[float(p) for p in present]}."
            )
        cells &= np.any(np.isclose(t[:, None], wanted[None, :]), axis=1)
        params["time"] = wanted
    if not cells.any():
        raise ValueError(
            f"No cell has a time point in `adata.obs[{time_key!r}]` and finite coordinates in {use_rep!r}."
        )
    codes, names = np.full(adata.n_obs, -1), []
    if groupby is not None:
        col = val.obs_column(adata, groupby, "groupby")
        cat = col if isinstance(col.dtype, pd.CategoricalDtype) else col.astype("category")
        all_codes = cat.cat.codes.to_numpy()
        kept = [k for k in range(len(cat.cat.categories)) if np.any(cells & (all_codes == k))]
        names = [str(cat.cat.categories[k]) for k in kept]
        remap = np.full(len(cat.cat.categories) + 1, -1)
        remap[kept] = np.arange(len(kept))
        codes = remap[all_codes]  # code −1 (missing) maps to the last entry, −1
        params["groupby"] = groupby
    loadings, fitted_genes = _gene_map(adata, use_rep, n_dims, pcs_key)
    params["n_cells"] = int(cells.sum())
    return Selection(model, x[cells], t[cells], codes[cells], names, loadings, fitted_genes, params)


def _gene_map(adata, use_rep: str, n_dims: int, pcs_key: str) -> tuple[np.ndarray, np.ndarray]:
    """Genes × d map from the fitted coordinates to genes, and the mask of the genes it covers."""
    if use_rep == "X":
        loadings = np.zeros((adata.n_vars, n_dims))
        loadings[np.arange(n_dims), np.arange(n_dims)] = 1.0
        return loadings, np.arange(adata.n_vars) < n_dims
    if use_rep != "X_pca" and pcs_key == "PCs":
        raise ValueError(
            f"The fit used `use_rep={use_rep!r}`, which has no map to genes; `adata.varm['PCs']` holds the loadings "
            "of 'X_pca'. Fit on `use_rep='X_pca'` (or on `.X`), or pass `pcs_key=` the `.varm` key of the loadings "
            "of the fitted representation."
        )
    if pcs_key not in adata.varm:
        raise KeyError(
            f"`adata.varm['{pcs_key}']` not found: the PCA loadings are needed to map the fitted coordinates to genes. "
            "Run `sc.pp.pca(adata)` before fitting (it writes `obsm['X_pca']` and `varm['PCs']`)."
        )
    pcs = np.asarray(adata.varm[pcs_key], dtype=np.float64)
    if pcs.ndim != 2 or pcs.shape[1] < n_dims:
        raise ValueError(
            f"`adata.varm['{pcs_key}']` has shape {pcs.shape}; the fit uses {n_dims} components. "
            "Were the PCA and the fit run on the same data?"
        )
    pcs = pcs[:, :n_dims]
    genes = np.any(pcs != 0, axis=1) & np.all(np.isfinite(pcs), axis=1)
    if not genes.any():
        raise ValueError(f"Every gene has a zero or non-finite loading in `adata.varm['{pcs_key}']`.")
    return np.where(genes[:, None], pcs, 0.0), genes


def derivative_means(sel: Selection, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Mean derivative over all selected cells (row 0) and over each group (rows 1…), in the fitted space.

    ``what="drift"``: Jacobians J[i, j] = ∂u_i/∂x_j (rows (d, d)); ``"growth"``: gradients ∂g/∂x_j (rows (d,)).
    User units: per unit time per unit of the coordinates. Also returns the number of cells of each row.
    """
    n, d = sel.x.shape
    shape = (d, d) if what == "drift" else (d,)
    sums = np.zeros((1 + len(sel.group_names), *shape))
    counts = np.zeros(1 + len(sel.group_names))
    chunk = max(1, _VALUES_PER_CHUNK // (d * d))
    for s in range(0, n, chunk):
        x, t, group = sel.x[s : s + chunk], sel.t[s : s + chunk], sel.group[s : s + chunk]
        if isinstance(sel.model, RUOTModel):
            deriv = _autograd(sel.model, x, t, what)
        else:
            deriv = _central_differences(sel.model, x, t, what, scale=_spread(sel.x))
        sums[0] += deriv.sum(axis=0)
        counts[0] += len(x)
        has = group >= 0
        np.add.at(sums, group[has] + 1, deriv[has])
        np.add.at(counts, group[has] + 1, 1)
    return sums / counts.reshape(-1, *([1] * len(shape))), counts


def _spread(x: np.ndarray) -> float:
    """Root-mean-square standard deviation of the coordinates (1 when they do not vary)."""
    scale = float(np.sqrt(np.mean(x.var(axis=0))))
    return scale if np.isfinite(scale) and scale > 0 else 1.0


def _autograd(model: RUOTModel, x: np.ndarray, t: np.ndarray, what: str) -> np.ndarray:
    """Per-cell derivatives of a fitted model by autograd, in user units: (n, d, d) or (n, d)."""
    st = model.standardizer
    xi = torch.as_tensor(st.x_to_internal(x), dtype=torch.float32, device=model.device).requires_grad_(True)
    ti = torch.as_tensor(st.t_to_internal(t), dtype=torch.float32, device=model.device)
    with torch.enable_grad():
        b, g = model.nets.drift_growth(xi, ti, create_graph=True)
        if what == "growth":
            # g_user = g / t_scale and x_user = x_mean + x_scale·x: ∂g_user/∂x_user = ∂g/∂x / (t_scale·x_scale)
            return _grad(g.sum(), xi).cpu().numpy().astype(np.float64) / (st.t_scale * st.x_scale)
        rows = [_grad(b[:, i].sum(), xi, retain=True) for i in range(b.shape[1])]
    # u_user = u·x_scale/t_scale: ∂u_user/∂x_user = ∂u/∂x / t_scale
    return torch.stack(rows, dim=1).cpu().numpy().astype(np.float64) / st.t_scale


def _grad(out: torch.Tensor, x: torch.Tensor, retain: bool = False) -> torch.Tensor:
    """∂out/∂x, zero where ``out`` does not depend on ``x``."""
    if not out.requires_grad:
        return torch.zeros_like(x)
    (grad,) = torch.autograd.grad(out, x, retain_graph=retain, allow_unused=True)
    return torch.zeros_like(x) if grad is None else grad.detach()


def _central_differences(model, x: np.ndarray, t: np.ndarray, what: str, *, scale: float) -> np.ndarray:
    """Per-cell derivatives of ``model.drift`` / ``model.growth`` (NumPy in and out) by central differences."""
    field = model.drift if what == "drift" else model.growth
    h = _FD_STEP * scale
    cols = []
    for j in range(x.shape[1]):
        step = np.zeros(x.shape[1])
        step[j] = h
        up = np.asarray(field(x + step, t), dtype=np.float64)
        down = np.asarray(field(x - step, t), dtype=np.float64)
        cols.append((up - down) / (2 * h))
    return np.stack(cols, axis=-1)  # drift: (n, d_i, d_j); growth: (n, d)


def gene_indices(adata, genes, fitted_genes: np.ndarray) -> np.ndarray:
    """Positions in ``adata.var_names`` of ``genes`` (``None``: every fitted gene); errors name the problem."""
    if genes is None:
        return np.flatnonzero(fitted_genes)
    names = [genes] if isinstance(genes, str) else list(genes)
    if not names:
        raise ValueError("`genes` is empty; pass gene names from `adata.var_names` (or `None` for all).")
    index = adata.var_names.get_indexer(names)
    unknown = [g for g, i in zip(names, index, strict=True) if i < 0]
    if unknown:
        raise KeyError(f"`genes`: {unknown[:10]} not in `adata.var_names`.")
    outside = [g for g, i in zip(names, index, strict=True) if not fitted_genes[i]]
    if outside:
        raise ValueError(
            f"`genes`: {outside[:10]} are outside the fit (zero loadings in the PCA, or columns of `.X` that were "
            "not fitted): the model says nothing about them."
        )
    return index


def jacobian(
    adata,
    *,
    groupby: str | None = None,
    time=None,
    genes=None,
    key_added: str = "ruot",
    model=None,
    pcs_key: str = "PCs",
) -> dict:
    r"""Mean Jacobian of the fitted SDE drift in genes: who regulates whom.

    J[i, j] = ∂u_i/∂x_j, where u is the SDE drift (the mean velocity of a cell, :meth:`ruotools.RUOTModel.drift`):
    J[i, j] > 0 means that more of gene j speeds up gene i (activation), < 0 slows it down (repression).
    Each cell's Jacobian is taken at its own position and time by autograd (in chunks) and averaged over the
    selected cells. Units: per unit of the user's time (the expression units cancel).

    For a fit on ``obsm['X_pca']``, the drift of the genes is that of the PCA reconstruction, u_genes =
    PCs · u_pca(PCsᵀ(y − μ)), so J_genes = PCs · J_pca · PCsᵀ (PCs: the loadings ``varm['PCs']``, genes ×
    components). The map is linear, so the mean is taken in PCA space and mapped once: memory is one
    genes × genes matrix per group, never one per cell. Only the genes of the PCA (non-zero, finite
    loadings) are covered. Note that with fewer components than genes, J_genes has rank at most the number
    of components: it is the regulation the fitted components can express. For a fit on ``.X``, the genes
    are the fitted columns.

    With ``flavor="var_ruot"`` the drift is a gradient, u = ∇λ, so J is the Hessian of λ: symmetric, J[i, j] =
    J[j, i] (and so is its map to genes). It says which genes interact, and with which sign where the two
    directions agree, but not who regulates whom: a regulation of i by j shows on both entries. For directed
    regulation use a ``"deepruot"`` fit, whose drift is not constrained. ``params["symmetric"]`` records it,
    and a warning is logged. On the 8-gene simulator of ``benchmarks/interpretation.py`` no symmetric matrix
    can score better than AUROC 0.887 and sign agreement 0.94 against the true directed edges
    (benchmarks/README.md).

    An unconstrained ``"deepruot"`` velocity has the opposite failure: it can read a gene without moving
    it, and on the bifurcating simulator of ``benchmarks/interpretation.py`` its largest entries sat on
    unregulated genes (edge AUROC 0.59 over three seeds, ``train_kwargs={"lambda_curl": 0}``). The default
    ``"deepruot"`` fit penalises the non-gradient part of v (``lambda_curl`` 0.01): AUROC 0.88 there and
    0.93 on the 8-gene linear network, with every edge's sign right on both; ``{"lambda_curl": 0.03}``
    scored 0.98 and 0.92, at some further cost in matching the snapshots (benchmarks/README.md, "A curl
    penalty for deepruot").

    Parameters
    ----------
    adata : anndata.AnnData
        Annotated data with a fit. Read: ``uns[key_added]['model']``, the fitted representation, the fit's
        time column, ``varm[pcs_key]`` for a fit on PCA, ``obs[groupby]``.
    groupby : str or None
        ``obs`` column: also average over the cells of each of its values.
    time : float, str, sequence or None
        Only the cells of these time point(s), as numbers or labels like those of the time column
        (``"day 2"``); ``None``: every cell with a time point.
    genes : sequence of str or None
        Gene names to keep (``None``: every gene of the fit; at most 5,000 — pass a subset beyond).
    key_added : str
        Key of the fit; the result goes to ``uns[f'{key_added}_jacobian']``.
    model : RUOTModel or object or None
        Model to use instead of the stored one: a :class:`~ruotools.RUOTModel`, or any object with a
        ``drift(x, t)`` method (NumPy (n, d) and (n,) in, (n, d) out, in the units of ``use_rep``) and
        attributes ``use_rep`` and ``time_key`` (then differentiated by central differences).
    pcs_key : str
        ``varm`` key of the loadings of the fitted representation.

    Returns
    -------
    dict
        Also written to ``uns['ruot_jacobian']`` (h5ad-safe): ``"genes"`` (names, (G,)), ``"mean"``
        (G × G float32, over the selected cells), ``"n_cells"``, and with ``groupby``: ``"group_names"``
        (K,), ``"groups"`` (K × G × G float32, ``groups[k]`` the mean over the cells of ``group_names[k]``;
        an array rather than a dict, so that any group name survives ``.h5ad``) and ``"group_n_cells"``;
        ``"params"`` (with ``"symmetric"``: whether J is symmetric by construction, true for ``"var_ruot"`` fits).

    Raises
    ------
    KeyError
        When there is no fit (run :func:`ruotools.tl.fit_ruot`), no loadings, or an unknown gene.

    Examples
    --------
    >>> sc.pp.pca(adata)  # doctest: +SKIP
    >>> rt.tl.fit_ruot(adata, time_key="day", use_rep="X_pca", n_dims=10)  # doctest: +SKIP
    >>> j = rt.tl.jacobian(adata, groupby="cell_type", genes=adata.var_names[:200])  # doctest: +SKIP
    >>> rt.pl.jacobian(adata, group="erythroid")  # doctest: +SKIP
    """
    start = _time.perf_counter()
    keys = Keys(key_added)
    sel = select(adata, key_added=key_added, model=model, groupby=groupby, time=time, pcs_key=pcs_key, need="drift")
    idx = gene_indices(adata, genes, sel.fitted_genes)
    if len(idx) > MAX_GENES:
        raise ValueError(
            f"The fit covers {len(idx)} genes: a {len(idx)} × {len(idx)} Jacobian needs "
            f"{len(idx) ** 2 * 4 / 1e9:.1f} GB per group. Pass `genes=` at most {MAX_GENES} names (e.g. the highly "
            "variable genes)."
        )
    symmetric = getattr(sel.model, "flavor", None) == "var_ruot"
    if symmetric:
        logg.warning(
            "This fit's flavor is 'var_ruot': its drift is a gradient (∇λ), so the Jacobian is symmetric "
            "(J[i, j] = J[j, i]) and cannot tell who regulates whom; fit `flavor='deepruot'` for directed regulation."
        )
    means, counts = derivative_means(sel, "drift")
    p = sel.loadings[idx]
    p_t = np.ascontiguousarray(p.T, dtype=np.float32)
    mapped = np.empty((len(means), len(idx), len(idx)), dtype=np.float32)
    for k, mean in enumerate(means):  # linear: the mean in the fitted space, mapped once per group
        np.matmul((p @ mean).astype(np.float32), p_t, out=mapped[k])  # no genes × genes temporary
    result = {
        "genes": np.asarray(adata.var_names[idx], dtype=str),
        "mean": mapped[0],
        "n_cells": int(counts[0]),
        "params": {**sel.params, "symmetric": symmetric},
    }
    if groupby is not None:
        result["group_names"] = np.asarray(sel.group_names, dtype=str)
        result["groups"] = mapped[1:]
        result["group_n_cells"] = counts[1:].astype(np.int64)
    adata.uns[keys.jacobian] = result
    logg.info(f"    added `adata.uns['{keys.jacobian}']` ({len(idx)} genes, {int(counts[0])} cells)", start=start)
    return result
