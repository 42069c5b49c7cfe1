"""Time-conditioned networks for the velocity, growth and score fields."""

from __future__ import annotations

import torch
from torch import nn


class TimeMLP(nn.Module):
    """Multi-layer perceptron on ``[x, t]``.

    Parameters
    ----------
    dim
        Dimension ``d`` of the state ``x``.
    out_dim
        Output dimension.
    hidden_dim
        Width of every hidden layer.
    n_layers
        Number of hidden layers.
    """

    def __init__(self, dim: int, out_dim: int, hidden_dim: int = 128, n_layers: int = 3):
        super().__init__()
        layers: list[nn.Module] = []
        width = dim + 1
        for _ in range(n_layers):
            layers += [nn.Linear(width, hidden_dim), nn.SiLU()]
            width = hidden_dim
        layers.append(nn.Linear(width, out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        """Evaluate at positions ``x`` (n, d) and time ``t`` (scalar or (n,)); returns (n, out_dim)."""
        if not torch.is_tensor(t) or t.ndim == 0:
            t = torch.full((x.shape[0], 1), float(t), dtype=x.dtype, device=x.device)
        else:
            t = t.reshape(-1, 1).to(x.dtype)
        return self.net(torch.cat([x, t], dim=1))


class RUOTNetworks(nn.Module):
    """The three fields of a RUOT model, all in standardised coordinates and time.

    Parameters
    ----------
    dim
        Dimension of the representation.
    hidden_dim, n_layers
        Size of each of the three MLPs.
    growth
        Whether a growth network is learned; ``False`` gives a balanced model (g ≡ 0).
    sigma
        Noise level. The score network's output is multiplied by ``σ/2`` so that the network
        itself learns ``σ·log ρ``-sized values whose gradients are of order one.

    Notes
    -----
    ``velocity(x, t)`` is the probability-flow velocity v, ``growth(x, t)`` the log-mass rate g
    and ``score(x, t)`` the scalar s = (σ²/2)·log ρ whose gradient corrects v to the SDE drift.
    """

    def __init__(self, dim: int, hidden_dim: int = 128, n_layers: int = 3, growth: bool = True, sigma: float = 0.1):
        super().__init__()
        self.dim = dim
        self.score_scale = 0.5 * sigma if sigma > 0 else 1.0
        self.has_growth = growth
        self.velocity_net = TimeMLP(dim, dim, hidden_dim, n_layers)
        self.growth_net = TimeMLP(dim, 1, hidden_dim, n_layers) if growth else None
        self.score_net = TimeMLP(dim, 1, hidden_dim, n_layers)
        if self.growth_net is not None:
            # start from zero growth: the balanced solution is the natural initial guess
            last = self.growth_net.net[-1]
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)

    def velocity(self, x: torch.Tensor, t) -> torch.Tensor:
        """Velocity v(x, t), shape (n, d)."""
        return self.velocity_net(x, t)

    def growth(self, x: torch.Tensor, t) -> torch.Tensor:
        """Growth rate g(x, t), shape (n,)."""
        if self.growth_net is None:
            return x.new_zeros(x.shape[0])
        return self.growth_net(x, t)[:, 0]

    def score(self, x: torch.Tensor, t) -> torch.Tensor:
        """Score potential s(x, t), shape (n,)."""
        return self.score_scale * self.score_net(x, t)[:, 0]

    def score_grad(self, x: torch.Tensor, t, create_graph: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(s, ∇s)`` at ``x``; with ``create_graph`` the gradient is differentiable."""
        with torch.enable_grad():
            if not x.requires_grad:
                x = x.detach().requires_grad_(True)
            s = self.score(x, t)
            (grad,) = torch.autograd.grad(s.sum(), x, create_graph=create_graph)
        return s, grad
