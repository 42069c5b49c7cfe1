"""Read a dataset shipped inside the package into an :class:`~anndata.AnnData`."""

from __future__ import annotations

from importlib.resources import files
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from anndata import AnnData

_PAPER = (
    "Zhang, Li & Zhou, 'Learning stochastic dynamics from snapshots through regularized "
    "unbalanced optimal transport', ICLR 2025 (DeepRUOT)"
)

#: Bundled files (``data/{name}.csv.gz``) and what they hold. Each CSV has a column ``samples``
#: (the time point) followed by the coordinates ``x1 … xd``.
_REGISTRY: dict[str, dict[str, str]] = {
    "simulation_gene_data": {
        "name": "simulated_gene",
        "description": (
            "Simulated three-gene regulatory network with cell division and death, observed at "
            "5 time points (0-4) in 2 dimensions; 3,031 cells."
        ),
        "source": f"Simulation benchmark of {_PAPER}.",
    },
    "mouse_hematopoiesis": {
        "name": "mouse_hematopoiesis",
        "description": (
            "Mouse hematopoiesis lineage-tracing time course (days 2, 4, 6 coded as 0, 1, 2) in a 2-D "
            "embedding; 10,998 cells."
        ),
        "source": f"Weinreb et al., Science 2020 (LARRY lineage tracing), as preprocessed for {_PAPER}.",
    },
    "gaussian_10d": {
        "name": "gaussian_mixture",
        "description": (
            "Gaussian mixture at 2 time points (0, 1) in 10 dimensions: one cluster bifurcates, the "
            "other proliferates (population grows 2.8x); 1,900 cells."
        ),
        "source": f"High-dimensional Gaussian benchmark of {_PAPER}.",
    },
    "gaussian_20d": {
        "name": "gaussian_mixture",
        "description": (
            "Gaussian mixture at 2 time points (0, 1) in 20 dimensions: one cluster bifurcates, the "
            "other proliferates (population grows 2.8x); 1,900 cells."
        ),
        "source": f"High-dimensional Gaussian benchmark of {_PAPER}.",
    },
}


def _load(name: str) -> AnnData:
    """Load the bundled file ``data/{name}.csv.gz``.

    Parameters
    ----------
    name
        File stem, one of the keys of ``_REGISTRY``.

    Returns
    -------
    AnnData with ``.X`` the coordinates (float32, var names ``x1 … xd``), ``obs['time']`` (float64),
    obs names ``cell_0 … cell_{n-1}`` in file order and ``uns['dataset']`` describing the data.
    """
    import anndata as ad
    import numpy as np
    import pandas as pd

    if name not in _REGISTRY:
        raise ValueError(f"Unknown bundled dataset {name!r}; available: {sorted(_REGISTRY)}.")
    with (files(__package__) / "data" / f"{name}.csv.gz").open("rb") as fh:
        df = pd.read_csv(fh, compression="gzip", float_precision="round_trip")

    coords = df.drop(columns="samples")
    obs = pd.DataFrame(
        {"time": df["samples"].to_numpy(dtype=np.float64)},
        index=pd.Index([f"cell_{i}" for i in range(len(df))]),
    )
    var = pd.DataFrame(index=pd.Index(coords.columns.astype(str)))
    adata = ad.AnnData(X=coords.to_numpy(dtype=np.float32), obs=obs, var=var)
    adata.uns["dataset"] = dict(_REGISTRY[name])
    return adata
