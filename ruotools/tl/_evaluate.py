"""`evaluate`: W1 / W2 / TMV of the fitted dynamics against every later snapshot (METHOD.md §6)."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import numpy as np
import pandas as pd

from .. import _logging as logg
from .._keys import Keys
from ..core.ot import wasserstein
from ..model import RUOTModel
from ._common import fitted

#: Random splits of a snapshot into halves whose W1 values are averaged into ``W1_floor``.
_FLOOR_SPLITS = 5
#: The references of the last few data sets evaluated (they depend on the data only), by content digest.
_REFERENCE_CACHE: OrderedDict[str, dict[str, np.ndarray]] = OrderedDict()
_REFERENCE_CACHE_SIZE = 8
_REFERENCE_LOCK = threading.Lock()


def evaluate(
    adata,
    *,
    model: RUOTModel | None = None,
    key_added: str = "ruot",
    stochastic: bool = True,
    n_repeats: int = 1,
    n_steps_per_unit: float = 100,
    max_cells: int | None = 10000,
    random_state: int = 0,
    action_alpha: float | None = None,
) -> pd.DataFrame:
    r"""Accuracy of the fitted dynamics at every observed time after the first.

    All cells of the first time point start with mass ``1/N_0`` and are pushed forward
    (Euler–Maruyama at dt = 0.01 by default); at each later time point ``t_k`` the predicted
    particles, with their normalised predicted masses, are compared with the observed cells
    (uniform weights) by exact optimal transport (POT's network simplex).

    Parameters
    ----------
    adata
        Annotated data with a fit. Read: the fitted representation and time column.
    model
        Model to evaluate instead of the stored one.
    key_added
        Key of the fit; the table is stored in ``uns[key_added]['metrics']``.
    stochastic
        Simulate the SDE (default) or the deterministic flow.
    n_repeats
        Independent simulations (different noise); the table reports their mean and, with more
        than one, ``*_std`` columns.
    n_steps_per_unit
        Integration steps per unit of the user's time.
    max_cells
        Compare at most this many random cells per side (exact OT is cubic); ``None`` for all.
    random_state
        Seed of the noise and of the subsampling.
    action_alpha
        α of the ``action`` column's growth term (standardised units); ``None``: the fit's
        ``alpha``. Give one value to compare the actions of fits with different ``alpha`` (the
        ``var_ruot`` default is 3, the ``deepruot`` default 1) under one definition; the
        particles themselves follow the fit either way.

    Returns
    -------
    pandas.DataFrame
        Indexed by time point, columns ``W1`` (Euclidean cost), its two references ``W1_floor`` and
        ``W1_nearest`` (below), ``W2`` (square root of the squared-Euclidean cost), ``TMV`` =
        \\|Σw(t_k) − N_k/N_0\\|, ``RME`` = TMV / (N_k/N_0) and
        ``action``, the path action of the simulated particles from the first time to t_k,
        ``∫ (1/N) Σᵢ wᵢ [½|uᵢ|² + α·scale²·gᵢ²] dt``, with wᵢ each particle's mass relative to its
        start, uᵢ the SDE drift (v + ∇s for ``"deepruot"``, ∇λ for ``"var_ruot"``: the same
        definition for both flavors, so that their actions compare), gᵢ the growth rate, α
        ``action_alpha`` (default the fit's growth penalty) and ``scale`` the standardisation scale
        of the representation (α is set in standardised units), in the user's units (squared
        coordinate units per time unit).

        The references put W1 on a scale; they depend on the data only, not on the model (no
        ``*_std`` columns), and are computed like ``W1`` (exact OT with Euclidean cost, uniform
        weights, at most ``max_cells`` random cells per side):

        * ``W1_floor``, the sampling floor: W1 between two random halves of the observed cells of
          t_k, averaged over 5 random splits (one split varies several-fold on clustered data; NaN
          with fewer than two cells). Two samples of the same population are this far apart by
          chance alone; the halves are half the size of the snapshot, so the floor is a slightly
          generous one. The splits are seeded by ``random_state`` and the time point's index, hence
          reproducible.
        * ``W1_nearest``, "no motion": W1 between the observed cells of the previous time point
          t_(k−1) and those of t_k, the error of a model that predicts no change over the interval.

        A W1 near the floor means the prediction is as close to the snapshot as a second sample of
        it would be; a W1 near (or above) ``W1_nearest`` means the model predicts the snapshot no
        better than the previous snapshot does.

    Examples
    --------
    >>> rt.tl.evaluate(adata)  # doctest: +SKIP
    """
    if n_repeats < 1:
        raise ValueError(f"`n_repeats` must be ≥ 1, got {n_repeats}.")
    model, x, t, valid = fitted(adata, key_added, model)
    action_alpha = model.config.alpha if action_alpha is None else action_alpha
    rng = np.random.default_rng(random_state)
    times = model.time_points
    start = np.flatnonzero(valid & (t == times[0]))
    if max_cells is not None and len(start) > max_cells:
        start = np.sort(rng.choice(start, max_cells, replace=False))
    rows = []
    for rep in range(n_repeats):
        out = model.simulate(
            x[start],
            times,
            stochastic=stochastic,
            n_steps_per_unit=n_steps_per_unit,
            random_state=random_state + rep,
            with_action=True,
            action_alpha=action_alpha,
        )
        for k in range(1, len(times)):
            obs = x[valid & (t == times[k])]
            if max_cells is not None and len(obs) > max_cells:
                obs = obs[rng.choice(len(obs), max_cells, replace=False)]
            w = np.exp(out["log_mass"][k])
            tmv = abs(w.sum() - model.relative_mass[k])
            rows.append(
                {
                    "time": times[k],
                    "W1": wasserstein(out["X"][k], obs, w, None, p=1),
                    "W2": wasserstein(out["X"][k], obs, w, None, p=2),
                    "TMV": tmv,
                    "RME": tmv / model.relative_mass[k],
                    "action": out["action"][k].sum(),  # start masses 1/N: Σ e^ℓ ∫... = (1/N) Σ w ∫...
                }
            )
    df = pd.DataFrame(rows).groupby("time")
    table = df.mean()
    if n_repeats > 1:
        table = table.join(df.std(ddof=1).add_suffix("_std"))
    table.index.name = "time"
    refs = _references(x, t, valid, times, max_cells, random_state)
    for pos, name in enumerate(("W1_floor", "W1_nearest"), start=1):
        table.insert(table.columns.get_loc("W1") + pos, name, refs[name])
    keys = Keys(key_added)
    if keys.uns in adata.uns:
        adata.uns[keys.uns]["metrics"] = {
            "time": table.index.to_numpy(dtype=np.float64),
            **{c: table[c].to_numpy(dtype=np.float64) for c in table.columns},
            "stochastic": bool(stochastic),
            "action_alpha": float(action_alpha),
        }
        logg.info(f"    added `adata.uns['{keys.uns}']['metrics']`")
    return table


def _references(
    x: np.ndarray, t: np.ndarray, valid: np.ndarray, times: np.ndarray, max_cells: int | None, random_state: int
) -> dict[str, np.ndarray]:
    """:func:`_compute_references`, remembered for the last few data sets (by a digest of their content).

    The references cost most of an evaluation (5 exact OT problems per time point; 12 of 19 s on the
    mouse data) and do not depend on the model: evaluating several fits of the same data, or the same
    fit again, computes them once.
    """
    digest = hashlib.sha256()
    for array in (x, t, valid, times):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array.tobytes())
    digest.update(f"{max_cells}|{int(random_state)}".encode())
    key = digest.hexdigest()
    with _REFERENCE_LOCK:
        refs = _REFERENCE_CACHE.get(key)
        if refs is not None:
            _REFERENCE_CACHE.move_to_end(key)
    if refs is None:
        refs = _compute_references(x, t, valid, times, max_cells, random_state)
        with _REFERENCE_LOCK:
            _REFERENCE_CACHE[key] = refs
            while len(_REFERENCE_CACHE) > _REFERENCE_CACHE_SIZE:
                _REFERENCE_CACHE.popitem(last=False)
    return {name: values.copy() for name, values in refs.items()}


def _compute_references(
    x: np.ndarray, t: np.ndarray, valid: np.ndarray, times: np.ndarray, max_cells: int | None, random_state: int
) -> dict[str, np.ndarray]:
    """Return ``W1_floor`` and ``W1_nearest`` at ``times[1:]``.

    They are the mean W1 between two random halves of the cells of t_k over ``_FLOOR_SPLITS`` splits, and W1
    between the cells of t_(k−1) and those of t_k (at most ``max_cells`` random cells per side). The generator of
    time point k draws the splits' permutations (each followed by the subsampling of its halves), then the
    subsamples of t_(k−1) and t_k.

    Each time point draws from its own generator, seeded by ``(random_state, k)``: the values do not depend on
    the simulation, on ``n_repeats`` or on the other time points, and the model's subsampling is untouched.
    """
    floor, nearest = [], []
    for k in range(1, len(times)):
        rng = np.random.default_rng([int(random_state), k])
        obs = np.flatnonzero(valid & (t == times[k]))
        prev = np.flatnonzero(valid & (t == times[k - 1]))
        splits = []
        for _ in range(_FLOOR_SPLITS):
            halves = np.array_split(rng.permutation(obs), [len(obs) // 2])
            halves = [_subsample(h, max_cells, rng) for h in halves]
            splits.append(wasserstein(x[halves[0]], x[halves[1]], p=1) if min(map(len, halves)) > 0 else np.nan)
        floor.append(float(np.mean(splits)))
        a, b = _subsample(prev, max_cells, rng), _subsample(obs, max_cells, rng)
        nearest.append(wasserstein(x[a], x[b], p=1) if len(a) and len(b) else np.nan)
    return {"W1_floor": np.asarray(floor, dtype=np.float64), "W1_nearest": np.asarray(nearest, dtype=np.float64)}


def _subsample(idx: np.ndarray, max_cells: int | None, rng: np.random.Generator) -> np.ndarray:
    """At most ``max_cells`` of the indices ``idx``, drawn without replacement (all when ``None``)."""
    if max_cells is None or len(idx) <= max_cells:
        return idx
    return np.sort(rng.choice(idx, max_cells, replace=False))
