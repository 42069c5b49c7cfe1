"""The least-action path between two snapshots without a model: the Hellinger–Kantorovich geodesic.

The cheapest way to carry μ₀ into μ₁ in a time Δt by moving and growing, with the cost
∫∫ (½|v|² + δ²g²/8) dμ dt, is ½ HK_δ²(μ₀, μ₁) / Δt, where HK_δ is the Hellinger–Kantorovich
(Wasserstein–Fisher–Rao) distance (Liero, Mielke & Savaré, Invent. Math. 2018). With δ² = 8α (our
units) that cost is the path action of a fit with growth weight α. Its static form is an optimal
entropy-transport problem,

    HK_δ² = δ² · min_P  ∫ ℓ(|x − y| / δ) dP + KL(P₀ | μ₀) + KL(P₁ | μ₁),   ℓ(d) = −log cos²(min(d, π/2)),

with the generalised KL (mass terms included), and its dual

    HK_δ² = δ² · sup { Σ a (1 − e^{−f}) + Σ b (1 − e^{−g}) : f_i + g_j ≤ ℓ_ij }.

:func:`hk_squared` maximises the dual with the constraint kept by a soft c-transform
(g = −ε log Σ_i e^{(f_i − ℓ_ij)/ε} ≤ min_i (ℓ_ij − f_i); the objective is then smooth and concave in f),
finishes with exact c-transforms (a certified lower bound) and returns the plan of the soft transform
(an upper bound). :func:`hk_interpolate` moves the mass along the geodesic that plan defines, and
:func:`midpoint_targets` samples it halfway between consecutive snapshots: the targets of the
``lambda_geodesic`` term of a ``var_ruot`` fit.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize

#: ℓ beyond π/2 is infinite; capping it only tightens the dual constraint, so the bound stays valid.
COST_CAP = 1e4
#: gradient entries are of the order of the cells' masses (1 / n): stop on the change of the value only
LBFGS = {"maxiter": 10_000, "ftol": 1e-13, "gtol": 0.0}


def hk_cost(d: np.ndarray) -> np.ndarray:
    """ℓ(d) = −log cos²(d) for d < π/2, capped at :data:`COST_CAP` beyond."""
    c = np.full(d.shape, COST_CAP)
    inside = d < np.pi / 2
    c[inside] = np.minimum(-2.0 * np.log(np.cos(d[inside])), COST_CAP)
    return c


def hk_squared(x0, a, x1, b, delta: float, eps: float = 1e-4, return_plan: bool = False):
    """Lower and upper bound of HK_δ²(Σ aᵢ δ_{x0ᵢ}, Σ bⱼ δ_{x1ⱼ}).

    Parameters
    ----------
    x0, x1
        Support points, shapes (n0, d) and (n1, d).
    a, b
        Their masses (any totals).
    delta
        Length scale δ: transport beyond πδ/2 is never cheaper than destroying and creating mass.
    eps
        Smoothing of the soft c-transform during the optimisation, in units of ℓ ≈ (distance / δ)²:
        well below the costs that matter (the default suits δ of the order of the data's spread).
    return_plan
        Also return the plan.

    Returns
    -------
    tuple of float
        ``(lower, upper)``: the value of a feasible dual pair and of a plan; with ``return_plan`` also
        the plan (n0, n1), a NumPy array.
    """
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    x0, x1 = torch.as_tensor(x0, dtype=torch.float64), torch.as_tensor(x1, dtype=torch.float64)
    dist = torch.cdist(x0, x1, compute_mode="donot_use_mm_for_euclid_dist")
    cost = torch.as_tensor(hk_cost(dist.numpy() / delta))  # (n0, n1), float64 throughout

    def soft_g(f, eps):
        z = (f[:, None] - cost) / eps
        lse = torch.logsumexp(z, dim=0)
        return -eps * lse, torch.exp(z - lse)  # g (n1,) and the softmax over i (n0, n1)

    def negative_dual(f_np, eps):
        f = torch.from_numpy(f_np)
        g, soft = soft_g(f, eps)
        value = a @ (1 - torch.exp(-f)) + b @ (1 - torch.exp(-g))
        grad = a * torch.exp(-f) - soft @ (b * torch.exp(-g))
        return -float(value), -grad.numpy()

    f = np.zeros(len(a))
    for e in (eps * 100, eps * 10, eps):  # warm starts: the smoother problems converge in few steps
        f = minimize(negative_dual, f, args=(e,), jac=True, method="L-BFGS-B", options=LBFGS).x
    f = torch.from_numpy(f)
    g, soft = soft_g(f, eps)
    plan = soft * (b * torch.exp(-g))[None, :]
    # exact c-transforms: feasible, and each can only raise the dual value
    g = torch.amin(cost - f[:, None], dim=0)
    f = torch.amin(cost - g[None, :], dim=1)
    lower = a @ (1 - torch.exp(-f)) + b @ (1 - torch.exp(-g))

    def kl(p, q):
        pos = p > 0
        return float(torch.sum(p[pos] * torch.log(p[pos] / q[pos])) - p.sum() + q.sum())

    upper = float(torch.sum(plan * cost)) + kl(plan.sum(1), a) + kl(plan.sum(0), b)
    if return_plan:
        return delta**2 * float(lower), delta**2 * upper, plan.numpy()
    return delta**2 * float(lower), delta**2 * upper


def hk_interpolate(x0, a, x1, b, delta: float, fraction: float, min_share: float = 1e-6, eps: float = 1e-4):
    """Return the least-action (Hellinger–Kantorovich) interpolant at ``fraction`` of the way from μ₀ to μ₁.

    Each pair (i, j) of the optimal plan P carries μ₀'s mass r₀² = P_ij a_i / P₀_i at x_i into μ₁'s
    r₁² = P_ij b_j / P₁_j at y_j along the straight line of the cone: z(s) = (1 − s) r₀ + s r₁ e^{iθ},
    θ = |x_i − y_j| / δ; at s the pair sits at x_i + (arg z / θ)(y_j − x_i) with mass |z|² (LMS 2018).
    Mass without a partner (rows or columns of P without mass, or pairs below ``min_share`` of the plan's
    mass, which are dropped) is destroyed in place at x_i, (1 − s)² of it left at s, or created in place
    at y_j, s² of it.

    Parameters
    ----------
    x0, a, x1, b, delta
        As for :func:`hk_squared`.
    fraction
        Where along the geodesic, from 0 (μ₀) to 1 (μ₁).
    min_share
        Pairs of the plan below this share of its mass are dropped (their mass counts as without a partner).
    eps
        The smoothing of :func:`hk_squared`.

    Returns
    -------
    points, weights
        (p, d) positions and (p,) masses.
    """
    x0, x1 = np.asarray(x0, np.float64), np.asarray(x1, np.float64)
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    plan = hk_squared(x0, a, x1, b, delta, eps=eps, return_plan=True)[2]
    i, j = np.nonzero(plan > min_share * plan.sum())
    p = plan[i, j]
    r0 = np.sqrt(p * a[i] / plan.sum(1)[i])
    r1 = np.sqrt(p * b[j] / plan.sum(0)[j])
    theta = np.minimum(np.linalg.norm(x1[j] - x0[i], axis=1) / delta, np.pi / 2)
    re, im = (1 - fraction) * r0 + fraction * r1 * np.cos(theta), fraction * r1 * np.sin(theta)
    share = np.divide(np.arctan2(im, re), theta, out=np.full(len(p), fraction), where=theta > 0)
    left0 = np.clip(a - np.bincount(i, weights=r0**2, minlength=len(a)), 0.0, None)
    left1 = np.clip(b - np.bincount(j, weights=r1**2, minlength=len(b)), 0.0, None)
    points = np.concatenate([x0[i] + share[:, None] * (x1[j] - x0[i]), x0, x1])
    weights = np.concatenate([re**2 + im**2, (1 - fraction) ** 2 * left0, fraction**2 * left1])
    keep = weights > 0
    return points[keep], weights[keep]


def midpoint_targets(
    xs, masses, alpha: float, n_cells: int = 1000, eps: float = 1e-3, random_state: int = 0
) -> list[np.ndarray]:
    """Cells drawn from the least-action geodesic halfway between each pair of consecutive snapshots.

    Parameters
    ----------
    xs
        One (n_k, d) array per snapshot, in standardised units.
    masses
        Population size of each snapshot relative to the first.
    alpha
        Growth weight of the path action in standardised units: δ² = 8α.
    n_cells
        At most this many cells of each snapshot enter the plan (a random subset), and this many points
        are drawn from each interpolant (by mass, with replacement).
    eps
        Smoothing of the plan (:func:`hk_squared`), in units of (distance / δ)².
    random_state
        Seed of the subsets and the draws.

    Returns
    -------
    list of numpy.ndarray
        One (n_cells, d) float32 array per interval.
    """
    rng = np.random.default_rng(random_state)
    delta = float(np.sqrt(8.0 * alpha))

    def subset(x):
        x = np.asarray(x, np.float64)
        return x if len(x) <= n_cells else x[rng.choice(len(x), n_cells, replace=False)]

    out = []
    for k in range(len(xs) - 1):
        x0, x1 = subset(xs[k]), subset(xs[k + 1])
        a, b = np.full(len(x0), masses[k] / len(x0)), np.full(len(x1), masses[k + 1] / len(x1))
        points, weights = hk_interpolate(x0, a, x1, b, delta, 0.5, eps=eps)
        out.append(points[rng.choice(len(points), n_cells, p=weights / weights.sum())].astype(np.float32))
    return out
