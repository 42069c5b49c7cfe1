"""Input checks with clear ``KeyError`` / ``TypeError`` / ``ValueError`` messages.

Every function here only reads ``adata``; nothing is modified.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import sparse

MIN_CELLS_PER_TIME = 2
ACCELERATORS = ("auto", "cpu", "cuda", "gpu", "mps")


def resolve_rep(adata, use_rep: str | None, n_dims: int | None) -> tuple[np.ndarray, str, bool]:
    """Coordinates used for fitting.

    Returns
    -------
    x, use_rep, full_x
        Dense float64 array (n_obs, d), the resolved representation name (``"X"`` or an ``obsm`` key),
        and whether it is every column of ``.X``.
    """
    if use_rep is None:
        if "X_pca" in adata.obsm:
            use_rep = "X_pca"
        elif adata.X is not None and adata.n_vars <= 50:
            use_rep = "X"
        else:
            raise KeyError(
                f"No representation to fit: `adata.obsm['X_pca']` is missing and `adata.X` has {adata.n_vars} "
                "columns (> 50). Run `sc.pp.pca(adata)` first, or pass `use_rep=` an `.obsm` key."
            )
    if not isinstance(use_rep, str):
        raise TypeError(f"`use_rep` must be a string (an `.obsm` key or 'X'), got {type(use_rep).__name__}.")
    if use_rep == "X":
        if adata.X is None:
            raise KeyError("`adata.X` is empty; pass `use_rep=` an `.obsm` key.")
        x = adata.X
    else:
        if use_rep not in adata.obsm:
            raise KeyError(
                f"`adata.obsm['{use_rep}']` not found (available: {list(adata.obsm.keys())}). "
                "Compute it first (e.g. `sc.pp.pca(adata)` for 'X_pca') or pass `use_rep='X'`."
            )
        x = adata.obsm[use_rep]
    if isinstance(x, pd.DataFrame):
        x = x.to_numpy()
    if sparse.issparse(x):
        x = x.toarray()
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"The representation {use_rep!r} must be 2-D (cells × dims), got shape {x.shape}.")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise TypeError(f"The representation {use_rep!r} must be numeric, got dtype {x.dtype}.")
    n_total = x.shape[1]
    if n_dims is not None:
        if not isinstance(n_dims, int | np.integer) or isinstance(n_dims, bool) or n_dims < 1:
            raise ValueError(f"`n_dims` must be a positive integer, got {n_dims!r}.")
        if n_dims > n_total:
            raise ValueError(f"`n_dims={n_dims}` exceeds the {n_total} columns of the representation {use_rep!r}.")
        x = x[:, :n_dims]
    return x.astype(np.float64), use_rep, use_rep == "X" and x.shape[1] == n_total


def obs_column(adata, key, arg: str) -> pd.Series:
    """``adata.obs[key]``, with a ``TypeError``/``KeyError`` naming the argument ``arg`` and the fix."""
    if not isinstance(key, str):
        raise TypeError(f"`{arg}` must be a string naming an `.obs` column, got {type(key).__name__}.")
    if key not in adata.obs.columns:
        raise KeyError(
            f"`adata.obs['{key}']` not found. Pass `{arg}=` one of the `.obs` columns: {list(adata.obs.columns)[:20]}."
        )
    return adata.obs[key]


def embedding_2d(adata, basis: str) -> np.ndarray:
    """First two columns of ``adata.obsm[f"X_{basis}"]`` as float64, with a ``KeyError`` telling how to compute it."""
    key = f"X_{basis}"
    if key not in adata.obsm:
        raise KeyError(
            f"`adata.obsm['{key}']` not found (available: {list(adata.obsm.keys())}). Compute the embedding first "
            "(e.g. `sc.pp.neighbors(adata); sc.tl.umap(adata)` for 'umap')."
        )
    coords = np.asarray(adata.obsm[key], dtype=np.float64)
    if coords.ndim != 2 or coords.shape[1] < 2:
        raise ValueError(f"`adata.obsm['{key}']` must have at least two columns, got shape {coords.shape}.")
    return coords[:, :2]


def resolve_time(adata, time_key: str) -> np.ndarray:
    """Numeric copy of ``adata.obs[time_key]`` (float64, NaN where missing); the column is untouched."""
    col = obs_column(adata, time_key, "time_key")
    if isinstance(col.dtype, pd.CategoricalDtype):
        cats = pd.Series(col.cat.categories)
        values = pd.to_numeric(cats.astype(str), errors="coerce")
        bad = cats[values.isna() & cats.notna()].tolist()
        if bad:
            raise TypeError(
                f"`adata.obs['{time_key}']` must hold numeric time points; categories {bad[:5]} are not numbers. "
                "Convert it, e.g. `adata.obs['day'] = adata.obs['day'].str.removeprefix('day ').astype(float)`."
            )
        codes = col.cat.codes.to_numpy()
        t = np.where(codes >= 0, values.to_numpy(dtype=np.float64)[np.maximum(codes, 0)], np.nan)
    elif pd.api.types.is_bool_dtype(col.dtype):
        raise TypeError(f"`adata.obs['{time_key}']` is boolean; it must hold numeric time points.")
    elif pd.api.types.is_numeric_dtype(col.dtype):
        t = col.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        values = pd.to_numeric(col.astype(object), errors="coerce")
        bad = col[values.isna() & col.notna()].unique().tolist()
        if bad:
            raise TypeError(
                f"`adata.obs['{time_key}']` must hold numeric time points; values {bad[:5]} are not numbers."
            )
        t = values.to_numpy(dtype=np.float64, na_value=np.nan)
    if np.isinf(t).any():
        raise ValueError(f"`adata.obs['{time_key}']` contains infinite values.")
    return t


def check_time_points(t: np.ndarray, time_key: str) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique time points and their cell counts; at least two with enough cells each."""
    times, counts = np.unique(t[~np.isnan(t)], return_counts=True)
    if len(times) < 2:
        raise ValueError(
            f"`adata.obs['{time_key}']` has {len(times)} time point(s) among cells with valid coordinates; "
            "at least two are needed to learn dynamics."
        )
    small = times[counts < MIN_CELLS_PER_TIME]
    if len(small):
        raise ValueError(
            f"Time point(s) {small.tolist()} of `adata.obs['{time_key}']` have fewer than {MIN_CELLS_PER_TIME} "
            "cells with valid coordinates; remove them or merge them with a neighbouring time point."
        )
    return times, counts


def check_relative_mass(relative_mass, times: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Return the population size per time point relative to the first; cell-count ratio when ``None``."""
    if relative_mass is None:
        return counts / counts[0]
    if not isinstance(relative_mass, Mapping):
        raise TypeError("`relative_mass` must be a mapping {time point: size relative to the first time point}.")
    lookup = {float(k): float(v) for k, v in relative_mass.items()}
    missing = [float(t) for t in times if float(t) not in lookup]
    if missing:
        raise KeyError(f"`relative_mass` has no entry for time point(s) {missing}.")
    masses = np.array([lookup[float(t)] for t in times])
    if not np.all(np.isfinite(masses)) or np.any(masses <= 0):
        raise ValueError(f"`relative_mass` values must be positive and finite, got {masses.tolist()}.")
    return masses / masses[0]


def check_sigma(sigma) -> None:
    """``sigma`` is ``None`` (automatic) or a finite number ≥ 0."""
    if sigma is None:
        return
    if isinstance(sigma, bool) or not isinstance(sigma, int | float | np.number):
        raise TypeError(f"`sigma` must be a number, got {type(sigma).__name__}.")
    if not np.isfinite(sigma) or sigma < 0:
        raise ValueError(f"`sigma` must be a finite number ≥ 0 (0 gives a deterministic model), got {sigma!r}.")


def resolve_device(accelerator: str = "auto", device: str | int = "auto"):
    """Torch device from scvi-tools-style ``accelerator``/``device``; ``"auto"`` never picks MPS."""
    import torch

    if accelerator not in ACCELERATORS:
        raise ValueError(f"`accelerator` must be one of {list(ACCELERATORS)}, got {accelerator!r}.")
    if accelerator == "auto":
        accelerator = "cuda" if torch.cuda.is_available() else "cpu"
    if accelerator == "gpu":
        accelerator = "cuda"
    if accelerator == "cuda" and not torch.cuda.is_available():
        raise ValueError("`accelerator='cuda'` was requested but CUDA is not available; use 'auto' or 'cpu'.")
    if accelerator == "mps" and not torch.backends.mps.is_available():
        raise ValueError("`accelerator='mps'` was requested but MPS is not available; use 'auto' or 'cpu'.")
    if accelerator == "cpu" or device == "auto":
        return torch.device(accelerator)
    if isinstance(device, int | np.integer):
        return torch.device(accelerator, int(device))
    if isinstance(device, str):
        return torch.device(device)
    raise TypeError(f"`device` must be 'auto', an integer index or a device string, got {device!r}.")
