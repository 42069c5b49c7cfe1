"""Time-conditioned networks for the velocity, growth and score fields."""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn


def _time_input(x: torch.Tensor, t) -> torch.Tensor:
    if not torch.is_tensor(t) or t.ndim == 0:
        t = torch.full((x.shape[0], 1), float(t), dtype=x.dtype, device=x.device)
    else:
        t = t.reshape(-1, 1).to(x.dtype)
    return torch.cat([x, t], dim=1)


class StackedMLP(nn.Module):
    """Several independent MLPs on the same input ``[x, t]``, evaluated in one batched pass.

    Each head has its own weights (stacked along a leading head axis), so heads can be trained
    or frozen separately, but all heads cost one batched matrix product per layer — about
    half the kernel launches of separate networks, which dominates at the particle counts
    used here.

    Parameters
    ----------
    dim
        Dimension ``d`` of the state ``x``.
    out_dims
        Output dimension of each head.
    hidden_dim
        Width of every hidden layer.
    n_layers
        Number of hidden layers (≥ 1).
    """

    def __init__(self, dim: int, out_dims: list[int], hidden_dim: int = 64, n_layers: int = 3):
        super().__init__()
        self.out_dims = list(out_dims)
        heads, out_max = len(out_dims), max(out_dims)
        widths = [dim + 1] + [hidden_dim] * n_layers + [out_max]
        self.n_linear = len(widths) - 1
        for i, (fan_in, fan_out) in enumerate(itertools.pairwise(widths)):
            bound = 1.0 / math.sqrt(fan_in)
            self.register_parameter(f"w{i}", nn.Parameter(torch.empty(heads, fan_in, fan_out).uniform_(-bound, bound)))
            self.register_parameter(f"b{i}", nn.Parameter(torch.empty(heads, 1, fan_out).uniform_(-bound, bound)))

    def _layers(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        p = self._parameters
        return [(p[f"w{i}"], p[f"b{i}"]) for i in range(self.n_linear)]

    def forward(self, x: torch.Tensor, t, detach_heads: tuple[int, ...] = ()) -> list[torch.Tensor]:
        """Evaluate every head at ``x`` (n, d) and time ``t`` (scalar or (n,)); one (n, out_dim) per head.

        Heads listed in ``detach_heads`` see ``x`` detached: their outputs carry no gradient back to
        whatever produced ``x`` (their own weights still get gradients).
        """
        layers = self._layers()
        w, b = layers[0]
        z = _time_input(x, t)
        if detach_heads and z.requires_grad:
            z = torch.stack([z.detach() if i in detach_heads else z for i in range(len(self.out_dims))])
        else:
            z = z.unsqueeze(0)
        h = torch.matmul(z, w) + b
        for w, b in layers[1:]:
            h = torch.baddbmm(b, nn.functional.silu(h), w)
        return [h[i, :, :k] for i, k in enumerate(self.out_dims)]

    def zero_head_grads(self, head: int) -> None:
        """Zero the gradients of one head (to keep it fixed under a fresh optimiser)."""
        for w, b in self._layers():
            for p in (w, b):
                if p.grad is not None:
                    p.grad[head].zero_()

    def head_parameters_zero_(self, head: int) -> None:
        """Set the output layer of one head to zero (the head then outputs 0 everywhere)."""
        with torch.no_grad():
            w, b = self._layers()[-1]
            w[head].zero_()
            b[head].zero_()


class RUOTNetworks(nn.Module):
    """The three fields of a RUOT model, all in standardised coordinates and time.

    Parameters
    ----------
    dim
        Dimension of the representation.
    hidden_dim, n_layers
        Size of each field's MLP.
    growth
        Whether a growth network is learned; ``False`` gives a balanced model (g ≡ 0).
    sigma
        Noise level. The score network's output is multiplied by ``score_gain·σ/2``: the network
        then learns ``σ·log ρ / score_gain``, whose gradients are of order one.
    score_gain
        See ``sigma``. Log-density gradients of clustered cells are of order 10 in standardised
        units; a gain of 10 lets the score network reach them in a few hundred steps (with gain 1
        the score phase barely moved in 100 steps and the landscape had no valleys at the cells).

    Notes
    -----
    ``velocity(x, t)`` is the probability-flow velocity v, ``growth(x, t)`` the log-mass rate g
    and ``score(x, t)`` the scalar s = (σ²/2)·log ρ whose gradient corrects v to the SDE drift.
    v and g share one :class:`StackedMLP` (head 0 and head 1), s has its own.
    """

    GROWTH_HEAD = 1

    def __init__(
        self,
        dim: int,
        hidden_dim: int = 64,
        n_layers: int = 3,
        growth: bool = True,
        sigma: float = 0.1,
        score_gain: float = 1.0,
    ):
        super().__init__()
        self.dim = dim
        self.has_growth = growth
        self.score_scale = score_gain * 0.5 * sigma if sigma > 0 else 1.0
        self.flow_net = StackedMLP(dim, [dim, 1] if growth else [dim], hidden_dim, n_layers)
        self.score_net = StackedMLP(dim, [1], hidden_dim, n_layers)
        # start from a flat log-density: no random drift correction before the score is learnt
        self.score_net.head_parameters_zero_(0)
        if growth:
            # start from zero growth: the balanced solution is the natural initial guess
            self.flow_net.head_parameters_zero_(self.GROWTH_HEAD)

    @classmethod
    def from_config(cls, dim: int, config) -> RUOTNetworks:
        """Networks of the sizes, noise level and score gain of a :class:`~ruotools.core.TrainConfig`."""
        return cls(
            dim,
            config.hidden_dim,
            config.n_layers,
            growth=config.growth,
            sigma=config.sigma,
            score_gain=config.score_gain,
        )

    def fields(self, x: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor]:
        """Velocity (n, d) and growth rate (n,) in one pass.

        The growth head sees the positions detached, so that losses on the mass (which are noisy,
        being built from nearest-particle counts) train g but do not move the particles: positions
        are trained by the transport loss alone.
        """
        out = self.flow_net(x, t, detach_heads=(self.GROWTH_HEAD,) if self.has_growth else ())
        g = out[self.GROWTH_HEAD][:, 0] if self.has_growth else x.new_zeros(x.shape[0])
        return out[0], g

    def velocity(self, x: torch.Tensor, t) -> torch.Tensor:
        """Velocity v(x, t), shape (n, d)."""
        return self.fields(x, t)[0]

    def growth(self, x: torch.Tensor, t) -> torch.Tensor:
        """Growth rate g(x, t), shape (n,)."""
        return self.fields(x, t)[1]

    def score(self, x: torch.Tensor, t) -> torch.Tensor:
        """Score potential s(x, t), shape (n,)."""
        return self.score_scale * self.score_net(x, t)[0][:, 0]

    def score_grad(self, x: torch.Tensor, t, create_graph: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(s, ∇s)`` at ``x``; with ``create_graph`` the gradient is differentiable."""
        with torch.enable_grad():
            if not x.requires_grad:
                x = x.detach().requires_grad_(True)
            s = self.score(x, t)
            (grad,) = torch.autograd.grad(s.sum(), x, create_graph=create_graph)
        return s, grad

    def init_growth(self, rate: float) -> None:
        """Start the growth head at the constant ``rate`` (output weights zero, bias ``rate``)."""
        if self.has_growth:
            self.flow_net.head_parameters_zero_(self.GROWTH_HEAD)
            with torch.no_grad():
                self.flow_net._layers()[-1][1][self.GROWTH_HEAD, :, 0] = rate

    def freeze_growth_grads(self) -> None:
        """Zero the growth head's gradients (phase ``refine`` keeps g fixed)."""
        if self.has_growth:
            self.flow_net.zero_head_grads(self.GROWTH_HEAD)
