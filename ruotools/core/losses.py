"""Loss terms of METHOD.md §3 that are not transport costs.

All return scalars whose size does not depend on the number of particles.
"""

from __future__ import annotations

import math
import numbers

import torch

from .networks import RUOTNetworks
from .rng import draw_device, draw_rademacher


def mass_loss(
    x: torch.Tensor, log_mass: torch.Tensor, y: torch.Tensor, total: float, local: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Local and total mass mismatch at one snapshot.

    Each observed cell is assigned to its nearest predicted particle; a particle's target mass
    is ``total * count / len(y)``. The local term is the mean squared error of
    ``n·w / total`` (each particle's share relative to an equal share), the total term the
    squared relative error of ``Σw``; both are independent of the particle count and are
    returned separately, ``(local, total)``.

    Parameters
    ----------
    x
        Predicted particles (n, d).
    log_mass
        Their log-masses (n,); ``Σ exp(log_mass)`` predicts the population size relative to t0.
    y
        Observed cells (m, d).
    total
        Observed population size at this time relative to t0.
    local
        Compute the local term; ``False`` returns zero for it (no nearest-particle search).
    """
    n = len(x)
    w = torch.exp(log_mass)
    tot = ((w.sum() - total) / total).pow(2)
    if not local:
        return tot.new_zeros(()), tot
    with torch.no_grad():
        nearest = torch.cdist(y, x.detach()).argmin(dim=1)
        # a scatter-add, not bincount, whose output size (read from the data) costs a sync on a GPU
        ones = torch.ones_like(nearest, dtype=x.dtype)
        counts = torch.zeros(n, dtype=x.dtype, device=x.device).index_add_(0, nearest, ones)
        target = total * counts / len(y)
    return ((n / total) * (w - target)).pow(2).mean(), tot


def score_matching_loss(
    nets: RUOTNetworks,
    xa: torch.Tensor,
    xb: torch.Tensor,
    ta: float | torch.Tensor,
    tb: float | torch.Tensor,
    sigma: float,
    weights: torch.Tensor,
    generator: torch.Generator | None = None,
    bandwidth: tuple[float | torch.Tensor, float | torch.Tensor] = (0.0, 0.0),
) -> torch.Tensor:
    """Schrödinger-bridge score matching on paired endpoints (METHOD.md §4, phase 2), optionally smoothed.

    Draws ``τ ~ U(0, 1)`` and ``x_τ = (1−τ)x_a + τx_b + ς(τ) ε`` with
    ``ς(τ)² = σ²τ(1−τ) + h(τ)²`` and returns the weighted mean of ``|λ(τ)∇s(x_τ, t) + ε|² / d``
    with ``λ(τ) = 2ς(τ)/σ²``, whose minimiser is ``∇s = (σ²/2)∇log p_τ``.

    With ``bandwidth = (0, 0)`` this is the method's bridge score matching: p_τ is the mixture
    of Brownian bridges between the pairs. A positive bandwidth ``h(τ) = (1−τ)h_a + τh_b``
    convolves that mixture with a Gaussian kernel of width h, so that ``s`` learns the log of a
    kernel density of the cells rather than of a few hundred bridges of width σ√(τ(1−τ)): when
    σ is small next to the spacing of the particles, the bridge targets carry almost no
    information about where cells are dense (benchmarks/README.md).

    ``ta``, ``tb`` and the bandwidths are numbers or one value per pair (n,), so that several
    intervals can be trained in one batch.
    """
    n, d = xa.shape
    where = draw_device(generator)
    tau = torch.rand(n, 1, generator=generator, device=where, dtype=xa.dtype).to(xa.device)
    tau = tau.clamp(1e-3, 1 - 1e-3)
    eps = torch.randn(xa.shape, generator=generator, device=where, dtype=xa.dtype).to(xa.device)

    def column(value):
        if isinstance(value, numbers.Real):  # filled on the device: no copy from the host
            return torch.full((1, 1), float(value), dtype=xa.dtype, device=xa.device)
        return torch.as_tensor(value, dtype=xa.dtype, device=xa.device).reshape(-1, 1)

    h = (1 - tau) * column(bandwidth[0]) + tau * column(bandwidth[1])
    std = torch.sqrt(sigma**2 * tau * (1 - tau) + h * h)
    x_tau = (1 - tau) * xa + tau * xb + std * eps
    t = (column(ta) + tau * (column(tb) - column(ta)))[:, 0]
    _, grad = nets.score_grad(x_tau, t, create_graph=True)
    lam = 2 * std / sigma**2
    err = (lam * grad + eps).pow(2).sum(1) / d
    w = weights / weights.sum()
    return (w * err).sum()


def fokker_planck_residual(
    nets: RUOTNetworks,
    x: torch.Tensor,
    t: torch.Tensor,
    sigma: float,
    generator: torch.Generator | None = None,
    exact_max_dim: int = 10,
) -> torch.Tensor:
    """Mean absolute Fokker–Planck residual divided by ρ, with ρ = exp(2s/σ²).

    ``r/ρ = ∂_t log ρ + ∇·v + v·∇log ρ − g``, which is the residual of
    ``∂ρ/∂t + ∇·(ρv) − gρ`` divided by ρ: it never exponentiates s, so the free level of s
    cannot overflow it. The divergence is exact (one autograd pass per dimension) up to
    ``exact_max_dim`` dimensions and a Hutchinson estimate (Rademacher probe) above.
    """
    x = x.detach().requires_grad_(True)
    t = t.detach().reshape(-1).clone().requires_grad_(True)
    s = nets.score(x, t)
    log_rho = 2.0 * s / sigma**2
    dlog_dx, dlog_dt = torch.autograd.grad(log_rho.sum(), (x, t), create_graph=True)
    v, g = nets.fields(x, t)
    d = x.shape[1]
    if d <= exact_max_dim:
        div = sum(torch.autograd.grad(v[:, i].sum(), x, create_graph=True)[0][:, i] for i in range(d))
    else:
        probe = draw_rademacher(x, generator)
        (jvp,) = torch.autograd.grad((v * probe).sum(), x, create_graph=True)
        div = (jvp * probe).sum(1)
    residual = dlog_dt + div + (v * dlog_dx).sum(1) - g
    return residual.abs().mean()


def scott_bandwidth(x: torch.Tensor) -> float:
    """Scott's rule for an isotropic Gaussian kernel: ``n^(−1/(d+4))`` times the mean per-axis std."""
    n, d = x.shape
    return float(x.std(0).mean()) * n ** (-1.0 / (d + 4))


def log_kde(points: torch.Tensor, data: torch.Tensor, bandwidth: float, chunk: int = 4096) -> torch.Tensor:
    """Log-density of an isotropic Gaussian KDE of ``data`` at ``points`` (computed in chunks)."""
    n, d = data.shape
    norm = -math.log(n) - 0.5 * d * math.log(2 * math.pi * bandwidth**2)
    out = []
    for start in range(0, len(points), chunk):
        sq = torch.cdist(points[start : start + chunk], data).pow(2)
        out.append(torch.logsumexp(-0.5 * sq / bandwidth**2, dim=1) + norm)
    return torch.cat(out)


def initial_density_loss(
    nets: RUOTNetworks, x0: torch.Tensor, t0: float, sigma: float, target_log_density: torch.Tensor
) -> torch.Tensor:
    """Mean squared error between log ρ(x, t0) = 2 s(x, t0)/σ² and a KDE's log-density at t0 cells."""
    log_rho = 2.0 * nets.score(x0, t0) / sigma**2
    return (log_rho - target_log_density).pow(2).mean()


def jacobian_asymmetry(
    v: torch.Tensor,
    x: torch.Tensor,
    *,
    exact: bool,
    probes: int = 2,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Per-point ``½‖J − Jᵀ‖²_F`` of a field, ``J = ∂v/∂x``, shape (n,); differentiable (for training).

    ``v`` (n, d) are the field's values at ``x`` (n, d), computed with ``x.requires_grad``; each row
    may depend on its own point only. The field is a gradient exactly where this vanishes. ``exact``:
    ``J`` row by row (``d`` backward passes). Otherwise Hutchinson's unbiased estimate
    ``½ mean_p ‖Jzₚ − Jᵀzₚ‖²`` over ``probes`` Rademacher vectors: ``Jᵀz`` is one backward pass,
    ``Jz`` the backward pass of ``Jᵀu`` with respect to a dummy ``u``.
    """
    n, d = x.shape
    if exact:
        jac = torch.stack([torch.autograd.grad(v[:, i].sum(), x, create_graph=True)[0] for i in range(d)], 1)
        anti = jac - jac.transpose(1, 2)
        return 0.5 * (anti * anti).sum((1, 2))
    u = torch.zeros_like(v, requires_grad=True)
    (jtu,) = torch.autograd.grad((v * u).sum(), x, create_graph=True)
    total = x.new_zeros(n)
    for _ in range(probes):
        z = draw_rademacher(x, generator)
        (jtz,) = torch.autograd.grad((v * z).sum(), x, create_graph=True)
        (jz,) = torch.autograd.grad((jtu * z).sum(), u, create_graph=True)
        diff = jz - jtz
        total = total + 0.5 * (diff * diff).sum(1)
    return total / probes
