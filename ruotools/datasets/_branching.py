"""Branching-particle simulation shared by the simulators with ground truth (pure numpy).

Cells follow an Itô SDE ``dx = u(x) dt + σ dW`` (Euler–Maruyama) and divide or die at
state-dependent rates: in a step of length ``h`` a cell divides with probability ``b(x) h``
(its daughter starts at the same state) and dies with probability ``d(x) h``. The population
therefore grows at the per-cell net rate ``g(x) = b(x) − d(x)``, and its size at time ``t``
is, in expectation, ``N(0) exp(∫₀ᵗ ḡ(s) ds)`` with ``ḡ`` the population mean of ``g``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: largest event probability ``(b + d) h`` allowed in one step; above it the step is too coarse
MAX_EVENT_PROBABILITY = 0.5


@dataclass
class Snapshots:
    """What :func:`simulate_population` returns.

    Attributes
    ----------
    states
        One array ``(n_k, d)`` per snapshot time: the sampled cells' states (float64).
    labels
        One int array ``(n_k,)`` per snapshot time: the label each cell inherited from its ancestor.
    population_size
        ``(T,)`` the whole population's size at each snapshot time (before any subsampling).
    expected_log_mass
        ``(T,)`` ``∫ ḡ(s) ds`` from the first time to each snapshot time, ``ḡ`` the population
        mean net growth rate at each step: the expected ``log(N(t) / N(t₀))``.
    """

    states: list[np.ndarray]
    labels: list[np.ndarray]
    population_size: np.ndarray
    expected_log_mass: np.ndarray


def simulate_population(
    x0: np.ndarray,
    labels0: np.ndarray,
    times: np.ndarray,
    *,
    drift: Callable[[np.ndarray], np.ndarray],
    rates: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    sigma: float,
    dt: float,
    rng: np.random.Generator,
    nonnegative: bool = False,
    sample_fraction: float = 1.0,
    max_population: int = 200_000,
) -> Snapshots:
    """Simulate a branching population of SDE particles and record it at ``times``.

    Parameters
    ----------
    x0
        ``(n0, d)`` initial states, recorded as the snapshot at ``times[0]``.
    labels0
        ``(n0,)`` integer labels that daughters inherit (e.g. the initial cluster).
    times
        Increasing snapshot times.
    drift
        ``u(x)``: ``(n, d) → (n, d)``.
    rates
        ``x ↦ (b(x), d(x))``: division and death rates per unit time, each ``(n,)`` and ≥ 0.
    sigma
        Noise amplitude (the same for every coordinate).
    dt
        Largest step; each interval is split into equal steps of at most ``dt``.
    rng
        Random generator (all randomness is drawn from it, so a seed fixes the result).
    nonnegative
        Clip the states at 0 after every step (expression levels).
    sample_fraction
        Fraction of the population kept in each snapshot (without replacement, at least 1 cell).
    max_population
        Stop with an error when the population exceeds this size.

    Returns
    -------
    Snapshots
        The sampled states and labels per time, the true population sizes and the expected log-mass.

    Raises
    ------
    RuntimeError
        If the population dies out or outgrows ``max_population``.
    ValueError
        If the rates make an event in one step more likely than ``MAX_EVENT_PROBABILITY``.
    """
    x = np.array(x0, dtype=np.float64)
    lab = np.asarray(labels0).copy()
    sizes, log_mass, states, labels = [x.shape[0]], [0.0], [], []
    _record(x, lab, sample_fraction, rng, states, labels)
    integral = 0.0
    for t_start, t_end in itertools.pairwise(times):
        n_steps = max(1, int(np.ceil((t_end - t_start) / dt - 1e-9)))
        h = (t_end - t_start) / n_steps
        for _ in range(n_steps):
            u = drift(x)
            birth, death = rates(x)
            if float(np.max((birth + death) * h)) > MAX_EVENT_PROBABILITY:
                raise ValueError(
                    f"Division/death rates up to {float(np.max(birth + death)):.3g} per unit time are too fast "
                    f"for the step dt={dt}; pass a smaller `dt` or lower the growth rates."
                )
            integral += float(np.mean(birth - death)) * h
            x = x + u * h + sigma * np.sqrt(h) * rng.standard_normal(x.shape)
            if nonnegative:
                np.maximum(x, 0.0, out=x)
            draw = rng.random(x.shape[0])
            divides = draw < birth * h
            dies = (draw >= birth * h) & (draw < (birth + death) * h)
            keep = ~dies
            x = np.concatenate([x[keep], x[divides]])
            lab = np.concatenate([lab[keep], lab[divides]])
            if x.shape[0] == 0:
                raise RuntimeError(f"The population died out before t={t_end:g}; lower the death rates.")
            if x.shape[0] > max_population:
                raise RuntimeError(
                    f"The population exceeded {max_population} cells before t={t_end:g}; lower the growth "
                    "rates or the initial number of cells."
                )
        sizes.append(x.shape[0])
        log_mass.append(integral)
        _record(x, lab, sample_fraction, rng, states, labels)
    return Snapshots(states, labels, np.asarray(sizes, dtype=np.int64), np.asarray(log_mass, dtype=np.float64))


def _record(x, lab, fraction, rng, states, labels) -> None:
    """Append a (sub)sample of the population to ``states`` and ``labels``."""
    if fraction >= 1.0:
        states.append(x.copy())
        labels.append(lab.copy())
        return
    n_keep = max(1, round(fraction * x.shape[0]))
    idx = np.sort(rng.choice(x.shape[0], size=n_keep, replace=False))
    states.append(x[idx])
    labels.append(lab[idx])


def check_times(times) -> np.ndarray:
    """Return ``times`` as a float64 array of at least 2 strictly increasing, finite values ≥ 0."""
    try:
        arr = np.asarray(times, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"`times` must be a sequence of numbers, got {times!r}.") from None
    if arr.ndim != 1 or arr.size < 2:
        raise ValueError(f"`times` must list at least 2 time points, got {times!r}.")
    if not np.isfinite(arr).all() or arr[0] < 0 or np.any(np.diff(arr) <= 0):
        raise ValueError(f"`times` must be finite, ≥ 0 and strictly increasing, got {times!r}.")
    return arr


def check_real(value, name: str, *, minimum: float | None = None, exclusive: bool = False) -> float:
    """Return ``value`` as a float, checking that it is a finite real number above ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"`{name}` must be a number, got {type(value).__name__} {value!r}.")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"`{name}` must be finite, got {value!r}.")
    if minimum is not None and (value <= minimum if exclusive else value < minimum):
        sign = ">" if exclusive else "≥"
        raise ValueError(f"`{name}` must be {sign} {minimum:g}, got {value!r}.")
    return value


def check_fraction(value) -> float:
    """Return ``sample_fraction`` as a float in (0, 1]."""
    value = check_real(value, "sample_fraction", minimum=0.0, exclusive=True)
    if value > 1.0:
        raise ValueError(f"`sample_fraction` must be in (0, 1], got {value!r}.")
    return value


def stack(snapshots: Snapshots, times: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stack the snapshots: coordinates rounded to float32 (as stored in ``.X``), times, labels."""
    x = np.concatenate(snapshots.states).astype(np.float32)
    t = np.repeat(times, [len(s) for s in snapshots.states]).astype(np.float64)
    labels = np.concatenate(snapshots.labels)
    return x, t, labels
