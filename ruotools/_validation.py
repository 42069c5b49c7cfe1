"""Input checks with clear ``KeyError`` / ``TypeError`` / ``ValueError`` messages.

Every function here only reads ``adata``; nothing is modified. Slots are quoted as
``adata.obs['day']`` and each message says how to fix the input.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import sparse

from . import _logging as logg

#: Fewest cells with a valid time and finite coordinates a time point may have: one to train on
#: and one to validate on.
MIN_CELLS_PER_TIME = 2
ACCELERATORS = ("auto", "cpu", "cuda", "gpu", "mps")
#: Largest accepted ``random_state`` (the training loop derives seeds ``random_state + k`` from it).
MAX_SEED = 2**63 - 1 - 16


def check_anndata(adata) -> None:
    """Check that ``adata`` is an AnnData object that a fit can write to.

    A view of a backed AnnData is rejected (``ValueError``): writing the outputs would need a
    copy of the backed file. A view of an in-memory AnnData is accepted (the fit makes it an
    actual AnnData before writing, like scanpy). Duplicate ``obs_names`` only give a warning:
    every input and output is matched to cells by position.

    Parameters
    ----------
    adata
        The object passed as ``adata``.
    """
    from anndata import AnnData

    if not isinstance(adata, AnnData):
        raise TypeError(f"`adata` must be an AnnData object, got {type(adata).__name__}.")
    if adata.is_view and adata.isbacked:
        raise ValueError(
            "`adata` is a view of a backed AnnData, which cannot receive the outputs. Load the subset into "
            "memory first: `adata = adata.to_memory()`."
        )
    if not adata.obs_names.is_unique:
        n_dup = int(adata.obs_names.duplicated().sum())
        logg.warning(
            f"`adata.obs_names` has {n_dup} duplicate name(s); cells are matched by position. "
            "Call `adata.obs_names_make_unique()` so that tools taking cell names (e.g. `start=`) are unambiguous."
        )


def rep_slot(use_rep: str) -> str:
    """How a representation is quoted in messages: ``adata.X`` or ``adata.obsm['X_pca']``."""
    return "`adata.X`" if use_rep == "X" else f"`adata.obsm['{use_rep}']`"


def _first_columns(x, n: int) -> np.ndarray:
    """Return the first ``n`` columns of ``x`` as a dense array, densifying (or reading from disk) only those."""
    if isinstance(x, pd.DataFrame):
        return x.iloc[:, :n].to_numpy()
    if sparse.issparse(x):
        if x.format not in ("csr", "csc"):
            x = x.tocsr()
        return x[:, :n].toarray()
    # numpy arrays, and h5py datasets / sparse datasets of a backed AnnData (read only these columns)
    x = x[:, :n]
    if sparse.issparse(x):
        x = x.toarray()
    return np.asarray(x)


def resolve_rep(adata, use_rep: str | None, n_dims: int | None) -> tuple[np.ndarray, str, bool]:
    """Coordinates used for fitting.

    Sparse, backed (``h5py``) and integer or float16 representations are accepted; only the
    columns used are densified or read.

    Parameters
    ----------
    adata
        Annotated data; only read.
    use_rep
        ``"X"``, an ``obsm`` key, or ``None`` (``obsm['X_pca']`` if present, else ``.X`` when it
        has at most 50 columns).
    n_dims
        Number of leading columns to use (``None``: all).

    Returns
    -------
    x, use_rep, full_x
        Dense float64 array (n_obs, d), the resolved representation name (``"X"`` or an ``obsm`` key),
        and whether it is every column of ``.X``.
    """
    if use_rep is None:
        if "X_pca" in adata.obsm:
            use_rep = "X_pca"
        elif adata.X is None:
            raise KeyError(
                "No representation to fit: `adata.obsm['X_pca']` is missing and `adata.X` is empty. "
                "Run `sc.pp.pca(adata)` first, or pass `use_rep=` an `.obsm` key."
            )
        elif adata.n_vars <= 50:
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
    slot = rep_slot(use_rep)
    shape = tuple(getattr(x, "shape", np.shape(x)))
    if len(shape) != 2:
        raise ValueError(f"{slot} must be 2-D (cells × dims), got shape {shape}.")
    n_total = shape[1]
    if n_dims is not None:
        if not isinstance(n_dims, int | np.integer) or isinstance(n_dims, bool) or n_dims < 1:
            raise ValueError(f"`n_dims` must be a positive integer, got {n_dims!r}.")
        if n_dims > n_total:
            raise ValueError(f"`n_dims={n_dims}` exceeds the {n_total} columns of {slot}; pass `n_dims<={n_total}`.")
    if n_total == 0:
        raise ValueError(f"{slot} has no columns; nothing to fit.")
    x = _first_columns(x, n_total if n_dims is None else int(n_dims))
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool) or np.issubdtype(x.dtype, np.complexfloating):
        raise TypeError(f"{slot} must hold real numbers, got dtype {x.dtype}.")
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
    elif pd.api.types.is_complex_dtype(col.dtype):
        raise TypeError(f"`adata.obs['{time_key}']` holds complex numbers; it must hold real time points.")
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
        raise ValueError(
            f"`adata.obs['{time_key}']` contains infinite values; use NaN for cells without a time point "
            "(they are excluded)."
        )
    return t


def valid_cells(x: np.ndarray, t: np.ndarray, use_rep: str, time_key: str) -> np.ndarray:
    """Mask of the cells with a time point and finite coordinates; an error when there is none.

    Parameters
    ----------
    x
        Coordinates (n_obs, d).
    t
        Times (n_obs,), NaN where missing.
    use_rep, time_key
        Names used in the messages.

    Returns
    -------
    numpy.ndarray
        Boolean mask (n_obs,).
    """
    has_time = ~np.isnan(t)
    finite = np.all(np.isfinite(x), axis=1)
    if not has_time.any():
        raise ValueError(f"`adata.obs['{time_key}']` is NaN for every cell; nothing to fit.")
    if not finite.any():
        raise ValueError(
            f"{rep_slot(use_rep)} has a NaN or infinite coordinate in every cell; nothing to fit. "
            "Check the representation (e.g. recompute it after filtering)."
        )
    valid = has_time & finite
    if not valid.any():
        raise ValueError(
            f"No cell has both a time point in `adata.obs['{time_key}']` and finite coordinates in "
            f"{rep_slot(use_rep)}; nothing to fit."
        )
    return valid


def check_variance(x: np.ndarray, use_rep: str) -> None:
    """Reject coordinates where every cell used sits at one point (zero variance in every column)."""
    if not np.any(np.ptp(x, axis=0) > 0):
        raise ValueError(
            f"{rep_slot(use_rep)} has zero variance (every cell used has the same coordinates); "
            "nothing can be learned from it. Check `use_rep=` / `n_dims=`."
        )


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
    if isinstance(sigma, bool) or not isinstance(sigma, int | float | np.integer | np.floating):
        raise TypeError(f"`sigma` must be a number, got {type(sigma).__name__}.")
    if not np.isfinite(sigma) or sigma < 0:
        raise ValueError(f"`sigma` must be a finite number ≥ 0 (0 gives a deterministic model), got {sigma!r}.")


def _real(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"`{name}` must be a number, got {type(value).__name__}.")
    return float(value)


def check_fraction(value, name: str = "train_size") -> float:
    """Return ``value`` as a float, checking that it is a number in (0, 1]."""
    v = _real(value, name)
    if not 0 < v <= 1:
        raise ValueError(f"`{name}` must be in (0, 1], got {value!r}.")
    return v


def check_nonnegative(value, name: str) -> float:
    """Return ``value`` as a float, checking that it is a finite number ≥ 0."""
    v = _real(value, name)
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"`{name}` must be a finite number ≥ 0, got {value!r}.")
    return v


def check_positive(value, name: str) -> float:
    """Return ``value`` as a float, checking that it is a finite number > 0."""
    v = _real(value, name)
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"`{name}` must be a finite number > 0, got {value!r}.")
    return v


def check_count(value, name: str, minimum: int = 0) -> int:
    """Return ``value`` as an int, checking that it is an integer ≥ ``minimum`` (``bool`` and floats are rejected)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"`{name}` must be an integer, got {type(value).__name__} {value!r}.")
    if value < minimum:
        raise ValueError(f"`{name}` must be an integer ≥ {minimum}, got {value!r}.")
    return int(value)


def check_seed(value) -> int:
    """Return ``random_state`` as an int, checking that it is in [0, ``MAX_SEED``]."""
    seed = check_count(value, "random_state")
    if seed > MAX_SEED:
        raise ValueError(f"`random_state` must be at most {MAX_SEED}, got {value!r}.")
    return seed


def resolve_device(accelerator: str = "auto", device: str | int = "auto"):
    """Torch device from scvi-tools-style ``accelerator``/``device``; ``"auto"`` never picks MPS."""
    import torch

    if not isinstance(accelerator, str) or accelerator not in ACCELERATORS:
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
        chosen = torch.device(accelerator, int(device))
    elif isinstance(device, str):
        chosen = torch.device(device)
    else:
        raise TypeError(f"`device` must be 'auto', an integer index or a device string, got {device!r}.")
    if chosen.type == "cuda" and chosen.index is not None and chosen.index >= torch.cuda.device_count():
        shown = repr(device) if isinstance(device, str) else int(device)
        raise ValueError(f"`device={shown}` but only {torch.cuda.device_count()} CUDA device(s) are visible.")
    return chosen


STRATEGIES = ("single", "ddp")


def check_strategy(strategy: str, devices, device, checkpoint_dir, launched: bool) -> int:
    """Return the number of training processes for ``strategy``/``devices`` (1 for ``"single"``).

    ``launched`` says whether this process is one rank of a ``torchrun`` job: then the job's size
    is used and ``devices`` must be ``None`` or equal to it.
    """
    import os

    import torch

    if not isinstance(strategy, str) or strategy not in STRATEGIES:
        raise ValueError(f"`strategy` must be one of {list(STRATEGIES)}, got {strategy!r}.")
    if devices is not None and (isinstance(devices, bool) or not isinstance(devices, int | np.integer) or devices < 1):
        raise ValueError(f"`devices` must be a positive integer or None, got {devices!r}.")
    if strategy == "single":
        if devices not in (None, 1):
            raise ValueError(f"`devices={devices}` needs `strategy='ddp'` (data-parallel training).")
        return 1
    if checkpoint_dir is not None:
        raise ValueError("`checkpoint_dir` is not supported with `strategy='ddp'`; pass `checkpoint_dir=None`.")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"`strategy='ddp'` runs on CPU (gloo) or CUDA (NCCL), not on {device.type!r}.")
    if device.index is not None:
        raise ValueError(
            f"`device={str(device)!r}` picks one GPU, but with `strategy='ddp'` rank r trains on GPU r of its node; "
            "omit `device` (restrict the GPUs with CUDA_VISIBLE_DEVICES)."
        )
    if launched:
        world = int(os.environ["WORLD_SIZE"])
        if devices not in (None, world):
            raise ValueError(f"`devices={devices}` differs from the torchrun job's WORLD_SIZE={world}; omit `devices`.")
        return world
    if devices is None:
        devices = torch.cuda.device_count() if device.type == "cuda" else 2
    if device.type == "cuda" and devices > torch.cuda.device_count():
        raise ValueError(f"`devices={devices}` but only {torch.cuda.device_count()} CUDA device(s) are visible.")
    return int(devices)
