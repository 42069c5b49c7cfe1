"""Example time courses shipped with ruotools; they load offline in well under a second.

Every loader returns a new :class:`~anndata.AnnData` with

* ``.X``: the coordinates (``float32``), var names ``x1 … xd``;
* ``obs['time']``: the time point of each cell (``float64``);
* ``uns['dataset']``: a dict with ``name``, ``description`` and ``source``.

The simulators with ground truth, :func:`three_gene_network`, :func:`regulatory_network` and its
preset :func:`bifurcating_network`, also store each cell's true growth rate (``obs['true_growth']``),
drift (``obsm['true_drift']``) and drift Jacobian (``obsm['true_jacobian']``), and the model in
``uns['truth']``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData

from ._load import _load
from ._simulators import bifurcating_network, regulatory_network, three_gene_network
from ._synthetic import synthetic_branching

#: dimensions offered by :func:`gaussian_mixture`
GAUSSIAN_DIMS = (10, 20, 50, 100)
#: standard deviation of the noise coordinates added above 20 dimensions (that of the shipped ones)
NOISE_STD = 0.0707

__all__ = [
    "bifurcating_network",
    "gaussian_mixture",
    "mouse_hematopoiesis",
    "regulatory_network",
    "simulated_gene",
    "synthetic_branching",
    "three_gene_network",
]


def simulated_gene() -> AnnData:
    """Load a simulated three-gene regulatory network with growth and death.

    Trajectories of a stochastic three-gene network in which cells divide and die at rates that
    depend on their state, sampled at 5 time points (0, 1, 2, 3, 4) and shown in 2 dimensions.
    3,031 cells (400, 442, 530, 690 and 969 per time point): the population grows 2.4-fold.
    This is the main simulation benchmark of the DeepRUOT paper (Zhang, Li & Zhou, ICLR 2025).

    Returns
    -------
    anndata.AnnData
        Shape ``(3031, 2)``: ``.X`` the coordinates (float32), ``obs['time']`` (float64),
        ``uns['dataset']`` a description of the data.

    See Also
    --------
    three_gene_network : a re-creation of this simulation with the true drift, Jacobian and growth rates.

    Examples
    --------
    >>> import ruotools as rt
    >>> adata = rt.datasets.simulated_gene()
    >>> adata.shape
    (3031, 2)
    >>> sorted(adata.obs["time"].unique().tolist())
    [0.0, 1.0, 2.0, 3.0, 4.0]
    """
    return _load("simulation_gene_data")


def mouse_hematopoiesis() -> AnnData:
    """Load the mouse hematopoiesis lineage-tracing time course in a 2-D embedding.

    Hematopoietic progenitors profiled by Weinreb et al. (Science 2020) on days 2, 4 and 6 of
    culture, here coded as times 0, 1 and 2, in the 2-D embedding used by the DeepRUOT paper
    (Zhang, Li & Zhou, ICLR 2025). 10,998 cells (1,429, 3,781 and 5,788 per time point): the
    cell count grows about 4-fold as progenitors proliferate and differentiate.

    Returns
    -------
    anndata.AnnData
        Shape ``(10998, 2)``: ``.X`` the coordinates (float32), ``obs['time']`` (float64),
        ``uns['dataset']`` a description of the data.

    Examples
    --------
    >>> import ruotools as rt
    >>> adata = rt.datasets.mouse_hematopoiesis()
    >>> adata.shape
    (10998, 2)
    >>> adata.obs["time"].value_counts().sort_index().tolist()
    [1429, 3781, 5788]
    """
    return _load("mouse_hematopoiesis")


def gaussian_mixture(n_dims: int = 20) -> AnnData:
    """Load a Gaussian mixture with a bifurcation and a proliferating cluster, in 10 to 100 dimensions.

    At time 0 the cells form two Gaussian clusters (400 and 100 cells). By time 1 the larger
    cluster has split into two branches while the smaller one has grown to 1,000 cells, so the
    population grows 2.8-fold (500 → 1,400; 1,900 cells in all). The first two coordinates carry
    the dynamics; the others are small isotropic noise. A high-dimensional benchmark of the
    DeepRUOT paper (Zhang, Li & Zhou, ICLR 2025), which ships the 10- and 20-dimensional files.
    The 50- and 100-dimensional sets are the 20-dimensional one with further noise coordinates
    drawn the same way (independent normal, standard deviation ``NOISE_STD`` = 0.0707, that of the
    shipped noise coordinates; a fixed seed, so every call returns the same data, and the 50-dimensional
    set is the first 50 coordinates of the 100-dimensional one).

    Parameters
    ----------
    n_dims
        Number of dimensions: ``10``, ``20``, ``50`` or ``100``.

    Returns
    -------
    anndata.AnnData
        Shape ``(1900, n_dims)``: ``.X`` the coordinates (float32), ``obs['time']`` (float64),
        ``uns['dataset']`` a description of the data.

    Raises
    ------
    ValueError
        If ``n_dims`` is not one of 10, 20, 50, 100.

    Examples
    --------
    >>> import ruotools as rt
    >>> adata = rt.datasets.gaussian_mixture(n_dims=10)
    >>> adata.shape
    (1900, 10)
    """
    if isinstance(n_dims, bool) or n_dims not in GAUSSIAN_DIMS:
        raise ValueError(f"`n_dims` must be one of {list(GAUSSIAN_DIMS)}, got {n_dims!r}.")
    n_dims = int(n_dims)
    if n_dims <= 20:
        return _load(f"gaussian_{n_dims}d")
    base = _load("gaussian_20d")
    # one draw for the largest set: every smaller set is its first columns
    extra = np.random.default_rng(0).normal(0.0, NOISE_STD, size=(base.n_obs, max(GAUSSIAN_DIMS) - base.n_vars))
    extra = extra[:, : n_dims - base.n_vars].astype(np.float32)
    adata = AnnData(
        np.hstack([np.asarray(base.X), extra]),
        obs=base.obs.copy(),
        var=pd.DataFrame(index=[f"x{i + 1}" for i in range(n_dims)]),
        uns={"dataset": dict(base.uns["dataset"])},
    )
    adata.uns["dataset"]["name"] = f"gaussian_{n_dims}d"
    adata.uns["dataset"]["description"] = (
        f"{base.uns['dataset']['description']} Extended to {n_dims} dimensions with "
        f"{n_dims - base.n_vars} further noise coordinates (normal, sd {NOISE_STD})."
    )
    return adata
