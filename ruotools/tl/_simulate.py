"""`simulate`: weighted particles pushed through the fitted dynamics."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import _logging as logg
from ..model import RUOTModel
from ._common import fitted


@dataclass
class Trajectories:
    """Simulated weighted particles.

    Attributes
    ----------
    times
        Time points (T,), in the user's unit.
    positions
        Particle positions (T, N, d) in the fitted representation.
    log_mass
        Log-masses (T, N); ``exp`` sums to the predicted population size relative to the start.
    start_obs
        ``obs_names`` of the cells the particles started from (N,).

    Examples
    --------
    >>> traj = rt.tl.simulate(adata)  # doctest: +SKIP
    >>> traj.positions.shape  # (times, particles, dims)  # doctest: +SKIP
    >>> traj.total_mass[-1]  # predicted population size at the end, relative to the start  # doctest: +SKIP
    """

    times: np.ndarray
    positions: np.ndarray
    log_mass: np.ndarray
    start_obs: np.ndarray

    @property
    def weights(self) -> np.ndarray:
        """Particle masses (T, N)."""
        return np.exp(self.log_mass)

    @property
    def total_mass(self) -> np.ndarray:
        """Predicted population size relative to the start, per time (T,)."""
        return self.weights.sum(axis=1)

    def to_dict(self) -> dict:
        """h5ad-safe form stored in ``uns``."""
        return {"X": self.positions, "t": self.times, "log_mass": self.log_mass, "start_obs": self.start_obs}


def simulate(
    adata,
    *,
    model: RUOTModel | None = None,
    start=None,
    times=None,
    n_steps_per_unit: float = 100,
    stochastic: bool = True,
    n_particles: int | None = None,
    random_state: int = 0,
    key_added: str = "ruot_trajectories",
    model_key: str = "ruot",
) -> Trajectories:
    """Simulate cell trajectories with growth from the fitted dynamics.

    Parameters
    ----------
    adata
        Annotated data with a fit (``uns[model_key]``). Read: the fitted representation and time.
    model
        Model to use instead of the one stored in ``adata``.
    start
        Cells to start from: a boolean mask, integer positions or ``obs_names``. ``None`` means every
        cell of the first time point; start masses are ``1/N`` each.
    times
        Times (user unit) at which states are kept, starting at the start cells' time; ``None``
        gives 101 evenly spaced times from the first to the last time point.
    n_steps_per_unit
        Integration steps per unit of the user's time (100 is dt = 0.01).
    stochastic
        SDE (Euler–Maruyama, drift v + ∇s, noise σ) or the deterministic flow.
    n_particles
        Use a random subset of at most this many start cells.
    random_state
        Seed of the subset and of the noise.
    key_added
        ``uns`` key of the result.

    Returns
    -------
    Trajectories
        Also stored in ``adata.uns[key_added]`` as ``{"X", "t", "log_mass", "start_obs"}``.

    Examples
    --------
    >>> traj = rt.tl.simulate(adata)  # doctest: +SKIP
    >>> traj.positions.shape  # (times, particles, dims)  # doctest: +SKIP
    """
    model, x, t, valid = fitted(adata, model_key, model)
    if start is None:
        idx = np.flatnonzero(valid & (t == model.time_points[0]))
    else:
        idx = _start_indices(adata, start)
        if not np.all(valid[idx]):
            raise ValueError("Some start cells have a NaN time or non-finite coordinates.")
    if len(idx) == 0:
        raise ValueError("No start cells selected.")
    t_start = np.unique(t[idx])
    if len(t_start) != 1:
        raise ValueError(f"Start cells must share one time point; got {t_start.tolist()}.")
    if n_particles is not None and n_particles < len(idx):
        idx = np.sort(np.random.default_rng(random_state).choice(idx, n_particles, replace=False))
    if times is None:
        times = np.linspace(t_start[0], model.time_points[-1], 101)
    times = np.asarray(times, dtype=np.float64)
    if times[0] != t_start[0]:
        times = np.concatenate([[t_start[0]], times[times > t_start[0]]])
    out = model.simulate(
        x[idx], times, stochastic=stochastic, n_steps_per_unit=n_steps_per_unit, random_state=random_state
    )
    traj = Trajectories(out["t"], out["X"], out["log_mass"], np.asarray(adata.obs_names[idx], dtype=str))
    adata.uns[key_added] = traj.to_dict()
    logg.info(f"    added `adata.uns['{key_added}']` ({len(idx)} particles, {len(times)} times)")
    return traj


def _start_indices(adata, start) -> np.ndarray:
    arr = np.asarray(start)
    if arr.dtype == bool:
        if arr.shape != (adata.n_obs,):
            raise ValueError(f"A boolean `start` mask must have length {adata.n_obs}, got {arr.shape}.")
        return np.flatnonzero(arr)
    if np.issubdtype(arr.dtype, np.integer):
        if arr.size and (arr.min() < -adata.n_obs or arr.max() >= adata.n_obs):
            raise IndexError(f"`start` positions must be in [0, {adata.n_obs}).")
        return np.atleast_1d(arr) % adata.n_obs
    pos = adata.obs_names.get_indexer(np.atleast_1d(arr).astype(str))
    if np.any(pos < 0):
        missing = np.atleast_1d(arr)[pos < 0][:5].tolist()
        raise KeyError(f"`start` names {missing} are not in `adata.obs_names`.")
    return pos
