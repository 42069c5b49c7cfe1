"""The least-action flavor (Var-RUOT, METHOD_LEAST_ACTION.md): one potential λ for drift and growth.

Conventions (standardised units, as everywhere in :mod:`ruotools.core`): the growth cost is
``α·g²`` (METHOD.md), so the first-order conditions of the action ∫∫[½|u|² + α g²]ρ dx dt give

* the SDE drift ``u = ∇λ``;
* the growth rate ``g = λ / (2α)`` (the paper's ``g = λ/α'`` with its ``α' = 2α``);
* the Hamilton–Jacobi–Bellman residual
  ``R = ∂ₜλ + ½|∇λ|² + (σ²/2)Δλ + gλ − αg² = ∂ₜλ + ½|∇λ|² + (σ²/2)Δλ + λ²/(4α)``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch

from .dynamics import _n_steps
from .networks import RUOTNetworks, StackedMLP
from .rng import draw_noise, draw_rademacher


class LeastActionNetworks(RUOTNetworks):
    """The fields of a ``var_ruot`` fit: a scalar potential λ(x, t) and a score s(x, t).

    λ gives the SDE drift ``∇λ`` and the growth rate ``λ / (2α)``; the score network (fitted after λ)
    gives the log-density, hence the probability-flow velocity ``v = ∇λ − ∇s`` that :meth:`fields`
    returns, so that every tool written for :class:`RUOTNetworks` (whose SDE drift is ``v + ∇s``)
    simulates this flavor unchanged. The time-only growth offset c(t) of the total-mass calibration
    is added to g (equivalently, ``2α·c(t)`` to λ: it moves no particle).

    Parameters
    ----------
    dim, hidden_dim, n_layers, growth, sigma, score_gain
        As for :class:`RUOTNetworks`; ``flow_net`` is λ's network (one scalar head, output layer
        started at zero: no drift and uniform growth at the start).
    alpha
        Growth penalty α of the action ``α·g²``; ``g = λ / (2α)``.
    """

    def __init__(self, dim: int, *args, alpha: float = 1.0, **kwargs):
        if kwargs.get("growth", True) and alpha <= 0:
            raise ValueError("The least-action flavor with growth needs `alpha` > 0 (its growth rate is λ / (2α)).")
        self.alpha = float(alpha)
        super().__init__(dim, *args, **kwargs)

    def _flow_net(self, dim: int, hidden_dim: int, n_layers: int) -> StackedMLP:
        net = StackedMLP(dim, [1], hidden_dim, n_layers)
        net.head_parameters_zero_(0)
        return net

    @staticmethod
    def _flavor_settings(config) -> dict:
        return {"alpha": config.alpha}

    def potential(self, x: torch.Tensor, t) -> torch.Tensor:
        """λ(x, t), shape (n,) (without the growth offset)."""
        return self.flow_net(x, t)[0][:, 0]

    def growth_from_potential(self, lam: torch.Tensor, t, like: torch.Tensor) -> torch.Tensor:
        """Growth rate ``λ / (2α)`` plus the calibrated offset c(t); zero for a balanced model."""
        if not self.has_growth:
            return torch.zeros_like(lam)
        g = lam / (2.0 * self.alpha)
        if self.growth_offset_times.numel():
            g = g + self.growth_offset(t, like)
        return g

    def drift_growth(self, x: torch.Tensor, t, create_graph: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """SDE drift ∇λ (n, d) and growth rate (n,) at ``(x, t)``.

        With ``create_graph`` the drift is differentiable (training back-propagates through it);
        ``x`` keeps its own graph when it has one.
        """
        with torch.enable_grad():
            xg = x if x.requires_grad else x.detach().requires_grad_(True)
            lam = self.potential(xg, t)
            (grad,) = torch.autograd.grad(lam.sum(), xg, create_graph=create_graph)
        if not create_graph:
            lam = lam.detach()
        return grad, self.growth_from_potential(lam, t, x)

    def fields(self, x: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor]:
        """Probability-flow velocity ``∇λ − ∇s`` (n, d) and growth rate (n,); no graph is kept."""
        u, g = self.drift_growth(x, t)
        if self.stochastic:
            u = u - self.score_grad(x, t)[1]
        return u, g

    def drift(self, x: torch.Tensor, t) -> torch.Tensor:
        """SDE drift ∇λ, shape (n, d)."""
        return self.drift_growth(x, t)[0]

    def init_growth(self, rate: float) -> None:
        """Start at the uniform growth ``rate``: λ ≡ 2α·rate (output weights zero)."""
        self.flow_net.head_parameters_zero_(0)
        if self.has_growth:
            with torch.no_grad():
                self.flow_net._layers()[-1][1][0, :, 0] = 2.0 * self.alpha * rate

    def freeze_growth_grads(self) -> None:
        """Nothing to freeze: drift and growth come from the same λ (no ``refine`` phase)."""


def laplacian(
    grad: torch.Tensor,
    x: torch.Tensor,
    *,
    exact: bool,
    probes: int = 4,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Laplacian Δλ (n,) from ``grad`` = ∇λ at ``x`` (computed with ``create_graph=True``).

    ``exact``: the trace of the Hessian, one backward pass per dimension. Otherwise Hutchinson's
    unbiased estimate ``mean_p zₚᵀ H zₚ`` over ``probes`` Rademacher vectors (one pass each). The
    result is differentiable (for training).
    """
    n, d = x.shape
    if not grad.requires_grad:  # ∇λ does not depend on x (λ affine in x): Δλ = 0
        return x.new_zeros(n)

    def hessian_times(vector_sum):
        return torch.autograd.grad(vector_sum, x, create_graph=True, materialize_grads=True)[0]

    if exact:
        return torch.stack([hessian_times(grad[:, i].sum())[:, i] for i in range(d)], 1).sum(1)
    total = x.new_zeros(n)
    for _ in range(probes):
        z = draw_rademacher(x, generator)
        total = total + (z * hessian_times((grad * z).sum())).sum(1)
    return total / probes


def hjb_residual(
    nets: LeastActionNetworks,
    x: torch.Tensor,
    t: torch.Tensor,
    *,
    sigma: float,
    exact_laplacian: bool,
    probes: int = 4,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """HJB residual ``R = ∂ₜλ + ½|∇λ|² + (σ²/2)Δλ + λ²/(4α)`` (last term with growth only), shape (n,).

    ``x`` (n, d) and ``t`` (n,) are detached evaluation points; ∂ₜλ comes from autograd with respect
    to the per-point time, Δλ from :func:`laplacian`. The result is differentiable in λ's weights.
    The growth offset c(t) is not part of λ here (it is set after training).
    """
    x = x.detach().requires_grad_(True)
    t = t.detach().to(x).requires_grad_(True)
    lam = nets.potential(x, t)
    gx, gt = torch.autograd.grad(lam.sum(), (x, t), create_graph=True)
    r = gt + 0.5 * (gx * gx).sum(1)
    if sigma > 0:
        r = r + 0.5 * sigma**2 * laplacian(gx, x, exact=exact_laplacian, probes=probes, generator=generator)
    if nets.has_growth:
        r = r + lam * lam / (4.0 * nets.alpha)
    return r


class PotentialPaths:
    """Particles of ``dX = ∇λ dt + σ dW``, ``dℓ = g dt`` with their path action, differentiably.

    Each step is classical RK4 on the drift, the log-mass and each particle's action rate
    ``e^ℓ [½|∇λ|² + αg²]``, plus the Brownian increment ``σ·ΔW``. With additive noise this keeps
    RK4's accuracy in the drift, so a field trained with a few steps per unit moves cells the same way
    at the fine steps of :func:`ruotools.tl.evaluate` (with Euler–Maruyama at 10 steps per unit
    the gene network's W1 was 0.089 / 0.116 / 0.108 / 0.082, with RK4 at 2 steps per unit
    0.087 / 0.111 / 0.094 / 0.074, in 8 instead of 10 drift evaluations per unit of time).
    ``t`` is a number or one time per particle; so is each step size ``h``. ``action`` is the sum over
    particles of their action so far; ``states`` every step's detached ``(x, t, log_mass)``.
    ``noise``: the standard normal increments of the steps, one ``x``-shaped tensor each, drawn
    beforehand (:func:`draw_noise`); by default each step draws its own from ``generator``.
    """

    def __init__(self, nets, x, log_mass, t, *, sigma: float, alpha: float, generator=None, noise=None):
        self.nets, self.sigma, self.alpha, self.generator = nets, sigma, alpha, generator
        self.noise = None if noise is None else iter(noise)
        self.x, self.log_mass, self.t = x, log_mass, t
        self.action = x.new_zeros(())
        self.states = [(x.detach(), t, log_mass.detach())]

    def _rate(self, u, g, log_mass) -> torch.Tensor:
        return (0.5 * (u * u).sum(1) + self.alpha * g * g) * torch.exp(log_mass)

    def step(self, h) -> None:
        """Advance every particle by ``h`` (a number, or one step size per particle)."""
        x, ell, t, gen = self.x, self.log_mass, self.t, self.generator
        hx = h[:, None] if torch.is_tensor(h) else h
        k1, g1 = self.nets.drift_growth(x, t, create_graph=True)  # evaluated here: the end state's is never used
        r1 = self._rate(k1, g1, ell)
        k2, g2 = self.nets.drift_growth(x + 0.5 * hx * k1, t + 0.5 * h, create_graph=True)
        r2 = self._rate(k2, g2, ell + 0.5 * h * g1)
        k3, g3 = self.nets.drift_growth(x + 0.5 * hx * k2, t + 0.5 * h, create_graph=True)
        r3 = self._rate(k3, g3, ell + 0.5 * h * g2)
        k4, g4 = self.nets.drift_growth(x + hx * k3, t + h, create_graph=True)
        r4 = self._rate(k4, g4, ell + h * g3)
        dw = draw_noise(x, gen) if self.noise is None else next(self.noise)
        root_h = torch.sqrt(h)[:, None] if torch.is_tensor(h) else math.sqrt(h)
        self.x = x + (hx / 6) * (k1 + 2 * k2 + 2 * k3 + k4) + self.sigma * root_h * dw
        self.log_mass = ell + (h / 6) * (g1 + 2 * g2 + 2 * g3 + g4)
        self.action = self.action + ((h / 6) * (r1 + 2 * r2 + 2 * r3 + r4)).sum()
        self.t = t + h
        self.states.append((self.x.detach(), self.t, self.log_mass.detach()))


def integrate_potential(
    nets: LeastActionNetworks,
    x: torch.Tensor,
    log_mass: torch.Tensor,
    times: Sequence[float],
    *,
    steps_per_unit: float,
    sigma: float,
    alpha: float,
    generator: torch.Generator | None = None,
    noise: Sequence[torch.Tensor] | None = None,
) -> dict:
    """Push particles from ``times[0]`` through ``times`` along ∇λ (:class:`PotentialPaths`).

    ``noise``: the steps' pre-drawn increments, as for :class:`PotentialPaths`
    (:func:`path_steps` steps in all).

    Returns
    -------
    dict
        ``"x"``, ``"log_mass"`` at each of ``times``; ``"action"`` (scalar tensor, ∫ from ``times[0]``
        to ``times[-1]``); ``"states"``: every step's detached ``(x, t, log_mass)`` (for the HJB residual).
    """
    paths = PotentialPaths(
        nets, x, log_mass, float(times[0]), sigma=sigma, alpha=alpha, generator=generator, noise=noise
    )
    out = {"x": [x], "log_mass": [log_mass]}
    for t0, t1 in itertools.pairwise(times):
        n = _n_steps(t0, t1, steps_per_unit)
        for _ in range(n):
            paths.step((t1 - t0) / n)
        out["x"].append(paths.x)
        out["log_mass"].append(paths.log_mass)
    return {**out, "action": paths.action, "states": paths.states}


def path_steps(times: Sequence[float], steps_per_unit: float) -> int:
    """Return the number of steps :func:`integrate_potential` takes from ``times[0]`` to ``times[-1]``."""
    return sum(_n_steps(t0, t1, steps_per_unit) for t0, t1 in itertools.pairwise(times))
