"""Input checks with clear ``KeyError`` / ``TypeError`` / ``ValueError`` messages.

Every function here only reads ``adata``; nothing is modified. Slots are quoted as
``adata.obs['day']`` and each message says how to fix the input.
"""

from __future__ import annotations

import math
import re
import warnings
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


def resolve_rep(
    adata, use_rep: str | None, n_dims: int | None, *, for_fit: bool = False, stacklevel: int = 3
) -> tuple[np.ndarray, str, bool]:
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
    for_fit
        The coordinates are to be fitted: a representation named like a UMAP or t-SNE embedding
        (``"umap"``, ``"tsne"`` or ``"t-sne"`` in its name, any case) gives a ``UserWarning``, as
        distances there are not meaningful for optimal transport.
    stacklevel
        ``stacklevel`` of that warning (3: the caller of the function that calls this one).

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
    if for_fit and _EMBEDDING_NAME.search(use_rep):
        warnings.warn(
            f"Fitting on {slot}: UMAP and t-SNE distort distances (they keep neighbourhoods, not lengths), so "
            "transport costs, velocities and growth rates there are not meaningful. Fit on a linear "
            "representation such as `use_rep='X_pca'` and show the results on the embedding with `basis=`.",
            UserWarning,
            stacklevel=stacklevel,
        )
    return x.astype(np.float64), use_rep, use_rep == "X" and x.shape[1] == n_total


#: Names of non-linear 2-D embeddings whose distances mean nothing to optimal transport.
_EMBEDDING_NAME = re.compile(r"umap|t-?sne", re.IGNORECASE)


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


#: A number inside a time label: digits with an optional decimal part ("2", "7.5", ".5").
_LABEL_NUMBER = re.compile(r"\d+(?:\.\d+)?|\.\d+")
#: A whole label that is a plain number ("3", " -1 ", "2.5", "1e3").
_PLAIN_NUMBER = re.compile(r"[+\-−]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+\-]?\d+)?")
#: Labels read as a missing time point (what ``astype(str)`` makes of NaN, and the empty label).
_MISSING_LABELS = ("", "nan")
#: What may stand right before a minus sign: the label's start, white space or an opening bracket / ``=``.
_BEFORE_MINUS = "([=:"
#: Examples of accepted labels, for messages.
LABEL_EXAMPLES = "'D0', 'day 2', 'E7.5', '48h'"


def time_label_value(label) -> tuple[float | None, str | None]:
    """Read one time label as a number.

    A number is taken as it is; a string that is a plain number (``" 3 "``, ``"-1"``, ``"2.5"``)
    is that number; any other string must contain exactly one number (digits with an optional
    decimal part), which is its value: ``"D0"`` → 0, ``"day 2"`` → 2, ``"E7.5"`` → 7.5, ``"48h"``
    → 48, ``"day_10"`` → 10. A ``-`` right before the number is a minus sign at the start of the
    label or after a space (``"day -1"`` → −1); after a digit it separates two numbers (``"2-4"``);
    after a letter (``"D-1"``) it is ambiguous (a minus sign or a separator) and the label is not read.
    ``""`` and ``"nan"`` are a missing time point (NaN).

    Parameters
    ----------
    label
        A category or value of a time column, or a key of ``relative_mass``.

    Returns
    -------
    value, problem
        ``(number, None)``, or ``(None, reason)`` when the label cannot be read; ``reason`` says why
        (no number, several numbers, an ambiguous sign, a boolean).
    """
    if isinstance(label, bool | np.bool_):
        return None, "a boolean"
    if isinstance(label, int | float | np.integer | np.floating):
        return float(label), None
    if isinstance(label, complex | np.complexfloating):
        return None, "a complex number"
    text = str(label).strip()
    if text.lower() in _MISSING_LABELS:
        return np.nan, None
    if _PLAIN_NUMBER.fullmatch(text) or text.lower().lstrip("+-") in ("inf", "infinity"):
        return float(text.replace("−", "-")), None
    found, ambiguous = [], False
    for match in _LABEL_NUMBER.finditer(text):
        value, i = float(match.group()), match.start()
        if i > 0 and text[i - 1] in "-−":
            before = text[: i - 1]
            if not before or before[-1].isspace() or before[-1] in _BEFORE_MINUS:
                value = -value
            elif not before[-1].isdigit():
                ambiguous, value = True, -value
        found.append(value)
    if not found:
        return None, "no number"
    if len(found) > 1:
        return None, f"several numbers: {', '.join(f'{v:g}' for v in found)}"
    if ambiguous:
        return None, "a '-' between a letter and the number: a minus sign or a separator?"
    return found[0], None


def _suggested_value(label) -> float:
    """Return the first number of a label that cannot be read (with its sign), NaN when it holds none."""
    text = str(label).strip()
    match = _LABEL_NUMBER.search(text)
    if match is None:
        return np.nan
    i = match.start()
    negative = i > 0 and text[i - 1] in "-−" and not (i > 1 and text[i - 2].isdigit())
    return -float(match.group()) if negative else float(match.group())


def _fix_for_labels(time_key: str, labels: list, values: dict) -> str:
    """Runnable code mapping every label of ``obs[time_key]`` to a number, for the message of a ``TypeError``.

    ``values`` holds the labels that were read; the others get their first number (NaN when they have
    none). When that leaves fewer than two time points, every label gets its position instead.
    """
    mapping = {str(label): values[label] if label in values else _suggested_value(label) for label in labels}
    finite = {v for v in mapping.values() if np.isfinite(v)}
    placeholders = len(finite) < 2
    if placeholders:
        mapping = {str(label): float(i) for i, label in enumerate(labels)}
    items = ", ".join(f"{k!r}: {'float(nan)' if np.isnan(v) else repr(float(v))}" for k, v in mapping.items())
    items = items.replace("float(nan)", "float('nan')")
    new_key = f"{time_key}_numeric"
    code = f"adata.obs[{new_key!r}] = adata.obs[{time_key!r}].astype(str).map({{{items}}}).astype(float)"
    check = (
        "placeholders in the labels' order: replace them by the actual times"
        if placeholders
        else "check the values; cells mapped to NaN are left out"
    )
    return f"Map every label to its time, e.g. `{code}` ({check}), then pass `time_key={new_key!r}`."


def _label_table(time_key: str, labels: list, log: bool) -> dict:
    """``{label: number}`` for the labels of a non-numeric time column; a ``TypeError`` when one cannot be read."""
    values, problems = {}, {}
    for label in labels:
        value, problem = time_label_value(label)
        if problem is None:
            values[label] = value
        else:
            problems[label] = problem
    if problems:
        shown = "; ".join(f"{str(label)!r} ({why})" for label, why in list(problems.items())[:5])
        more = f" and {len(problems) - 5} more" if len(problems) > 5 else ""
        raise TypeError(
            f"`adata.obs[{time_key!r}]` must hold time points: numbers, or labels that each contain exactly one "
            f"number ({LABEL_EXAMPLES}). These labels cannot be read: {shown}{more}. "
            + _fix_for_labels(time_key, labels, values)
        )
    parsed = [label for label in labels if not isinstance(label, int | float | np.integer | np.floating)]
    if log and any(not _PLAIN_NUMBER.fullmatch(str(label).strip()) for label in parsed):
        pairs = sorted(((values[label], str(label)) for label in parsed), key=lambda p: (np.isnan(p[0]), p[0]))
        mapping = ", ".join(f'"{label}" → {value!r}' for value, label in pairs)
        logg.info(f"time labels of `adata.obs[{time_key!r}]` read as numbers: {mapping}")
    return values


def resolve_time(adata, time_key: str, *, log: bool = False) -> np.ndarray:
    """Numeric copy of ``adata.obs[time_key]`` (float64, NaN where missing); the column is untouched.

    Numbers are used as they are; categorical, object or string columns may hold numbers or
    labels that each contain exactly one number (``"D0"``, ``"day 2"``, ``"E7.5"``; see
    :func:`time_label_value`). A label that cannot be read is a ``TypeError`` whose message holds
    code that maps every label to a number.

    Parameters
    ----------
    adata
        Annotated data; only read.
    time_key
        The ``obs`` column.
    log
        Log how labels were read (``"day 2" → 2.0``), when some are not plain numbers.

    Returns
    -------
    numpy.ndarray
        Time of each cell (n_obs,).
    """
    col = obs_column(adata, time_key, "time_key")
    dtype = col.dtype
    if pd.api.types.is_bool_dtype(dtype):
        raise TypeError(f"`adata.obs['{time_key}']` is boolean; it must hold numeric time points.")
    if pd.api.types.is_complex_dtype(dtype):
        raise TypeError(f"`adata.obs['{time_key}']` holds complex numbers; it must hold real time points.")
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        raise TypeError(
            f"`adata.obs['{time_key}']` holds dates or durations ({dtype}); it must hold numeric time points. "
            f"Convert them to a number of days, e.g. `adata.obs['{time_key}_days'] = (adata.obs['{time_key}'] - "
            f"adata.obs['{time_key}'].min()) / pd.Timedelta(days=1)`, then pass `time_key='{time_key}_days'`."
        )
    if pd.api.types.is_numeric_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype):
        t = col.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        if isinstance(dtype, pd.CategoricalDtype):
            codes, labels = col.cat.codes.to_numpy(), list(col.cat.categories)
        else:
            codes, uniques = pd.factorize(col.astype(object), use_na_sentinel=True)
            labels = list(uniques)
        values = _label_table(time_key, labels, log)
        lookup = np.array([values[label] for label in labels] + [np.nan], dtype=np.float64)
        t = lookup[np.where(codes >= 0, codes, len(labels))]
    if np.isinf(t).any():
        raise ValueError(
            f"`adata.obs['{time_key}']` contains infinite values; use NaN for cells without a time point "
            "(they are excluded)."
        )
    return t


def time_points(value, name: str) -> np.ndarray:
    """Time point(s) passed to a tool (``time=``, ``held_out=``): numbers or labels as in the time column.

    Parameters
    ----------
    value
        A number, a label (``"day 2"``), or a sequence of them.
    name
        The argument's name, for the messages.

    Returns
    -------
    numpy.ndarray
        The time points (float64, 1-D).
    """
    items = [value] if isinstance(value, str) or np.ndim(value) == 0 else list(np.asarray(value, dtype=object).ravel())
    out = []
    for item in items:
        number, problem = time_label_value(item)
        if problem is not None:
            raise TypeError(
                f"`{name}` must be time point(s): numbers, or labels that each contain exactly one number "
                f"({LABEL_EXAMPLES}); {str(item)!r} has {problem}."
            )
        out.append(number)
    return np.asarray(out, dtype=np.float64)


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


#: Largest change of the cell count between consecutive time points that the default ``relative_mass``
#: (cell-count ratios) takes without a warning; a time point with under 20 % of a neighbour's cells exceeds it.
MAX_COUNT_RATIO = 3.0


def check_relative_mass(relative_mass, times: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Return the population size per time point relative to the first; cell-count ratio when ``None``.

    Keys may be numbers or labels read like the time column's (``"day 2"`` → 2; see
    :func:`time_label_value`); every error names the argument ``relative_mass``.
    """
    if relative_mass is None:
        return counts / counts[0]
    if not isinstance(relative_mass, Mapping):
        raise TypeError(
            "`relative_mass` must be a mapping {time point: size relative to the first time point}, "
            f"got {type(relative_mass).__name__}."
        )
    lookup: dict[float, float] = {}
    for key, value in relative_mass.items():
        number, problem = time_label_value(key)
        if problem is not None or not np.isfinite(number):
            why = problem or "no finite time point"
            raise TypeError(
                f"`relative_mass` keys must be time points: numbers, or labels that each contain exactly one number "
                f"({LABEL_EXAMPLES}); key {key!r} has {why}."
            )
        if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.integer | np.floating):
            raise TypeError(f"`relative_mass` values must be numbers; the value of {key!r} is {value!r}.")
        if number in lookup and lookup[number] != float(value):
            raise ValueError(
                f"`relative_mass` gives time point {number:g} two different sizes ({lookup[number]:g} and "
                f"{float(value):g}); keep one key per time point."
            )
        lookup[number] = float(value)
    missing = [float(t) for t in times if float(t) not in lookup]
    if missing:
        raise KeyError(
            f"`relative_mass` has no entry for time point(s) {missing} (its keys read as "
            f"{sorted(lookup)}); give one for each of {[float(t) for t in times]}."
        )
    masses = np.array([lookup[float(t)] for t in times])
    if not np.all(np.isfinite(masses)) or np.any(masses <= 0):
        raise ValueError(f"`relative_mass` values must be positive and finite, got {masses.tolist()}.")
    return masses / masses[0]


def extreme_count_changes(times: np.ndarray, counts: np.ndarray, time_key: str) -> str | None:
    """Warning text when cell counts imply an extreme population change, else ``None``.

    The rule: the number of cells changes by more than :data:`MAX_COUNT_RATIO` (3×) between two
    consecutive time points, whatever their spacing (which covers every time point with fewer than
    20 % of the cells of a neighbour). Used when ``relative_mass`` is not given and growth is fitted.
    """
    ratios = counts[1:] / counts[:-1]
    steep = np.flatnonzero((ratios > MAX_COUNT_RATIO) | (ratios < 1.0 / MAX_COUNT_RATIO))
    if len(steep) == 0:
        return None
    pairs = ", ".join(
        f"{counts[k]} → {counts[k + 1]} cells from {time_key} {times[k]:g} to {times[k + 1]:g} ({ratios[k]:.2g}×)"
        for k in steep[:4]
    )
    more = f" and {len(steep) - 4} more" if len(steep) > 4 else ""
    return (
        "`relative_mass` is not given, so the population size at each time point is taken proportional to the "
        f"number of cells sampled there (cell-count ratios), and the counts imply an extreme change: {pairs}{more} "
        f"(more than {MAX_COUNT_RATIO:g}× between consecutive time points). The fitted growth rates follow these "
        "ratios. If the cells sampled do not track the population size, pass `relative_mass={time point: size "
        "relative to the first}` (e.g. from cell counts of the culture or tissue), or `growth=False` for a "
        "constant population."
    )


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
