"""Fixed-step integration of weighted particles: position, log-mass and action together.

The deterministic flow uses classical Runge–Kutta (RK4) on the joint state
``(x, ℓ, m)``; the stochastic flow uses Euler–Maruyama on
``dx = (v + ∇s) dt + σ dW`` with ``dℓ = g dt`` and the action accumulated alongside.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import torch

from .networks import RUOTNetworks
from .rng import draw_noise

NoiseFn = Callable[[float, float, tuple, torch.Tensor], torch.Tensor]


def _n_steps(t0: float, t1: float, steps_per_unit: float) -> int:
    return max(1, math.ceil(abs(t1 - t0) * steps_per_unit - 1e-9))


def action_rate(
    nets: RUOTNetworks, x: torch.Tensor, t, log_mass: torch.Tensor, *, sigma: float, alpha: float, use_score: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Velocity, growth, action rate and (if ``use_score``) ∇s at ``(x, t)``.

    The action rate is ``[½|v|² + ½|∇s|² − (σ²/2 + s̃)·g + α g²]·e^ℓ`` where ``s̃`` is s minus its
    mass-weighted mean over the particles: the level of s is free (METHOD.md §7), so only its
    variation across the population enters.
    """
    v, g = nets.fields(x, t)
    rate = 0.5 * (v * v).sum(1) + alpha * g * g
    grad = None
    if use_score:
        s, grad = nets.score_grad(x, t, create_graph=torch.is_grad_enabled())
        w = torch.softmax(log_mass, 0)
        s_rel = s - (w * s).sum()
        rate = rate + 0.5 * (grad * grad).sum(1) - (0.5 * sigma**2 + s_rel) * g
    return v, g, rate * torch.exp(log_mass), grad


def integrate(
    nets: RUOTNetworks,
    x: torch.Tensor,
    log_mass: torch.Tensor,
    times: Sequence[float],
    *,
    steps_per_unit: float = 4,
    stochastic: bool = False,
    sigma: float = 0.0,
    alpha: float = 1.0,
    with_action: bool = False,
    generator: torch.Generator | None = None,
    noise: NoiseFn | None = None,
    record_every_step: bool = False,
    drift_action: bool = False,
) -> dict[str, list]:
    """Push weighted particles through ``times``.

    Parameters
    ----------
    nets
        The fields.
    x
        Start positions (n, d) at ``times[0]``.
    log_mass
        Start log-masses (n,).
    times
        Increasing times; states are returned at each of them.
    steps_per_unit
        Integration steps per unit of (internal) time; each interval gets at least one.
    stochastic
        Euler–Maruyama on the SDE with drift v + ∇s and noise ``sigma`` instead of RK4 on v.
    sigma
        Noise level.
    alpha
        Growth penalty in the action.
    with_action
        Accumulate the action (needs a growth-weighted integral; skipped otherwise).
    generator
        Random generator for the Brownian increments, drawn on its device (a generator on the
        particles' device draws them there, with no copy from the host); the default CPU generator
        when ``None``.
    noise
        Alternative source of increments: ``noise(t0, t1, shape, like) -> ΔW`` (e.g. a torchsde
        ``BrownianInterval``), used instead of ``generator``.
    record_every_step
        Also return the states at every integration step (for trajectories).
    drift_action
        Also accumulate each particle's path action in drift form, ``∫ e^ℓ [½|u|² + α g²] dt`` with
        ``u = nets.drift`` the SDE drift along the simulated path (trapezoidal rule), the same
        definition for every flavor (METHOD_LEAST_ACTION.md §6).

    Returns
    -------
    dict
        ``"t"``, ``"x"`` (list of (n, d)), ``"log_mass"`` (list of (n,)) and ``"action"`` (list of (n,),
        accumulated from ``times[0]``), one entry per requested (or recorded) time; with
        ``drift_action`` also ``"drift_action"`` (list of (n,), accumulated from ``times[0]``).
    """
    state_m = torch.zeros_like(log_mass)
    out = {"t": [float(times[0])], "x": [x], "log_mass": [log_mass], "action": [state_m]}
    here = None  # fields at the current stochastic state, reused by the next step
    path = _DriftAction(nets, alpha, log_mass) if drift_action else None
    if path is not None:
        path.start(x, float(times[0]), log_mass)
        out["drift_action"] = [path.total]
    for t0, t1 in itertools.pairwise(times):
        n = _n_steps(t0, t1, steps_per_unit)
        h = (t1 - t0) / n
        for i in range(n):
            t = t0 + i * h
            if stochastic:
                # Euler–Maruyama for x; trapezoidal rule for log-mass and action, whose integrands are
                # evaluated at the new state anyway (for the next step): a left Riemann sum of g
                # would bias the predicted mass whenever growth changes along the path
                if here is None:
                    here = action_rate(nets, x, t, log_mass, sigma=sigma, alpha=alpha, use_score=sigma > 0)
                v, g, rate, grad = here
                drift = v if grad is None else v + grad
                dw = noise(t, t + h, x.shape, x) if noise is not None else draw_noise(x, generator) * math.sqrt(h)
                x = x + h * drift + sigma * dw
                here = action_rate(nets, x, t + h, log_mass + h * g, sigma=sigma, alpha=alpha, use_score=sigma > 0)
                log_mass = log_mass + 0.5 * h * (g + here[1])
                if with_action:
                    state_m = state_m + 0.5 * h * (rate + here[2])
                if path is not None:
                    path.step(h, x, t + h, log_mass, drift=here[0] if here[3] is None else here[0] + here[3], g=here[1])
            else:
                x, log_mass, state_m = _rk4_step(nets, x, log_mass, state_m, t, h, sigma, alpha, with_action)
                if path is not None:
                    path.step(h, x, t + h, log_mass)
            if record_every_step and i < n - 1:
                out["t"].append(t + h)
                out["x"].append(x)
                out["log_mass"].append(log_mass)
                out["action"].append(state_m)
                if path is not None:
                    out["drift_action"].append(path.total)
        out["t"].append(float(t1))
        out["x"].append(x)
        out["log_mass"].append(log_mass)
        out["action"].append(state_m)
        if path is not None:
            out["drift_action"].append(path.total)
    return out


class _DriftAction:
    """Per-particle path action ``∫ e^ℓ [½|u|² + α g²] dt`` (u the SDE drift), by the trapezoidal rule."""

    def __init__(self, nets, alpha: float, log_mass: torch.Tensor):
        self.nets, self.alpha = nets, alpha
        self.total = torch.zeros_like(log_mass)
        self.rate = None  # at the current state; set by the first step

    def _rate(self, x, t, log_mass, drift=None, g=None) -> torch.Tensor:
        if drift is None:
            drift, g = self.nets.drift(x, t), self.nets.growth(x, t)
        return (0.5 * (drift * drift).sum(1) + self.alpha * g * g) * torch.exp(log_mass)

    def start(self, x, t, log_mass) -> None:
        self.rate = self._rate(x, t, log_mass)

    def step(self, h: float, x, t, log_mass, drift=None, g=None) -> None:
        new = self._rate(x, t, log_mass, drift, g)
        self.total = self.total + 0.5 * h * (self.rate + new)
        self.rate = new


def _rk4_step(nets, x, ell, m, t, h, sigma, alpha, with_action):
    def f(x_, ell_, t_):
        if with_action:
            v, g, rate, _ = action_rate(nets, x_, t_, ell_, sigma=sigma, alpha=alpha, use_score=False)
        else:
            (v, g), rate = nets.fields(x_, t_), None
        return v, g, rate

    v1, g1, r1 = f(x, ell, t)
    v2, g2, r2 = f(x + 0.5 * h * v1, ell + 0.5 * h * g1, t + 0.5 * h)
    v3, g3, r3 = f(x + 0.5 * h * v2, ell + 0.5 * h * g2, t + 0.5 * h)
    v4, g4, r4 = f(x + h * v3, ell + h * g3, t + h)
    x = x + (h / 6) * (v1 + 2 * v2 + 2 * v3 + v4)
    ell = ell + (h / 6) * (g1 + 2 * g2 + 2 * g3 + g4)
    if with_action:
        m = m + (h / 6) * (r1 + 2 * r2 + 2 * r3 + r4)
    return x, ell, m


def integrate_intervals(
    nets: RUOTNetworks,
    x: torch.Tensor,
    log_mass: torch.Tensor,
    t_start: torch.Tensor,
    duration: torch.Tensor,
    n_steps: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Push particles that each start at their own time over their own duration, all at once.

    Used for the *local* training mode, where the cells of every snapshot are pushed to the
    next one: particle ``i`` goes from ``t_start[i]`` to ``t_start[i] + duration[i]`` in
    ``n_steps`` RK4 steps of size ``duration[i] / n_steps``. All intervals share one batched
    network evaluation per stage.

    Returns
    -------
    x, log_mass
        End positions (n, d) and log-masses (n,).
    """
    h = (duration / n_steps).to(x.dtype)
    hx = h[:, None]
    for i in range(n_steps):
        t = t_start + i * h
        v1, g1 = nets.fields(x, t)
        v2, g2 = nets.fields(x + 0.5 * hx * v1, t + 0.5 * h)
        v3, g3 = nets.fields(x + 0.5 * hx * v2, t + 0.5 * h)
        v4, g4 = nets.fields(x + hx * v3, t + h)
        x = x + (hx / 6) * (v1 + 2 * v2 + 2 * v3 + v4)
        log_mass = log_mass + (h / 6) * (g1 + 2 * g2 + 2 * g3 + g4)
    return x, log_mass
