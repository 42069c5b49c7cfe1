"""Time-conditioned networks for the velocity, growth and score fields."""

from __future__ import annotations

import itertools
import math
import numbers

import torch
from torch import nn


def _time_input(x: torch.Tensor, t) -> torch.Tensor:
    if not torch.is_tensor(t) or t.ndim == 0:
        t = torch.full((x.shape[0], 1), float(t), dtype=x.dtype, device=x.device)
    else:
        t = t.reshape(-1, 1).to(device=x.device, dtype=x.dtype)
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
    #: Buffers of the growth offset c(t) and of the score's level, knot times and values (empty: none).
    OFFSET_BUFFERS = ("growth_offset_times", "growth_offset_values", "score_level_times", "score_level_values")

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
        self.stochastic = sigma > 0
        self.score_scale = score_gain * 0.5 * sigma if sigma > 0 else 1.0
        self.flow_net = self._flow_net(dim, hidden_dim, n_layers)
        self.score_net = StackedMLP(dim, [1], hidden_dim, n_layers)
        # start from a flat log-density: no random drift correction before the score is learnt
        self.score_net.head_parameters_zero_(0)
        for name in self.OFFSET_BUFFERS:
            self.register_buffer(name, torch.zeros(0))

    def _flow_net(self, dim: int, hidden_dim: int, n_layers: int) -> StackedMLP:
        """Build the network of v (head 0) and g (head 1, started at zero: the balanced solution, a natural guess)."""
        net = StackedMLP(dim, [dim, 1] if self.has_growth else [dim], hidden_dim, n_layers)
        if self.has_growth:
            net.head_parameters_zero_(self.GROWTH_HEAD)
        return net

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
            **cls._flavor_settings(config),
        )

    @staticmethod
    def _flavor_settings(config) -> dict:
        """Return the constructor arguments that only a subclass (a flavor) takes from the config."""
        return {}

    def fields(self, x: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor]:
        """Velocity (n, d) and growth rate (n,) in one pass.

        The growth head sees the positions detached, so that losses on the mass (which are noisy,
        being built from nearest-particle counts) train g but do not move the particles: positions
        are trained by the transport loss alone.
        """
        out = self.flow_net(x, t, detach_heads=(self.GROWTH_HEAD,) if self.has_growth else ())
        if not self.has_growth:
            return out[0], x.new_zeros(x.shape[0])
        g = out[self.GROWTH_HEAD][:, 0]
        if self.growth_offset_times.numel():
            g = g + self.growth_offset(t, x)
        return out[0], g

    def growth_offset(self, t, like: torch.Tensor) -> torch.Tensor:
        """Return the time-only part c(t) of the growth rate, one value per row of ``like``.

        c is piecewise linear between the snapshot times (constant outside them) and set by
        :meth:`calibrate_total_mass`. Being the same for every cell, it scales all masses alike:
        it moves the predicted population size and nothing else.
        """
        return _piecewise_linear(self.growth_offset_times, self.growth_offset_values, t, like)

    @torch.no_grad()
    def calibrate_total_mass(self, times, log_ratio) -> None:
        """Add to c(t) the piecewise-linear offset that multiplies the mass at ``times[k]`` by ``exp(log_ratio[k-1])``.

        The log-mass of every particle grows by ``∫c dt`` whatever its path, so after this call a
        population that had total ``M_k`` at ``times[k]`` has ``M_k·exp(log_ratio[k-1])`` (exactly
        for integrators that are exact on linear functions of time, such as RK4 and the
        trapezoidal rule with steps ending at the snapshot times). Of the offsets that do this,
        the one with the smallest values at the knots is added.

        Parameters
        ----------
        times
            The K + 1 snapshot times (internal units), increasing.
        log_ratio
            K wanted log-changes of the total mass at ``times[1:]``.
        """
        if not self.has_growth:
            return
        like = self.flow_net.w0
        knots = torch.as_tensor(list(times), dtype=torch.float64)
        dt = knots.diff()
        # ∫c from times[0] to times[k] = Σ_j≤k dt_j (c_j−1 + c_j)/2 : a (K, K+1) matrix
        a = torch.zeros(len(dt), len(knots), dtype=torch.float64)
        for k in range(len(dt)):
            a[k:, k] += 0.5 * dt[k]
            a[k:, k + 1] += 0.5 * dt[k]
        delta = torch.linalg.pinv(a) @ torch.as_tensor(list(log_ratio), dtype=torch.float64)
        if self.growth_offset_times.numel() == 0:
            self.growth_offset_times, self.growth_offset_values = knots.to(like), torch.zeros_like(knots).to(like)
        self.growth_offset_values += delta.to(like)

    def velocity(self, x: torch.Tensor, t) -> torch.Tensor:
        """Velocity v(x, t), shape (n, d)."""
        return self.fields(x, t)[0]

    def drift(self, x: torch.Tensor, t) -> torch.Tensor:
        """SDE drift v + ∇s (v for a deterministic model), shape (n, d); no graph is kept."""
        b = self.velocity(x, t)
        if self.stochastic:
            _, grad = self.score_grad(x, t)
            b = b + grad
        return b

    def growth(self, x: torch.Tensor, t) -> torch.Tensor:
        """Growth rate g(x, t), shape (n,)."""
        return self.fields(x, t)[1]

    def drift_growth(self, x: torch.Tensor, t, create_graph: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """SDE drift (n, d) and growth rate (n,) at ``(x, t)``.

        With ``create_graph`` both are differentiable with respect to ``x`` when ``x`` requires grad (the
        growth head included, which :meth:`fields` detaches; for Jacobians and growth gradients).
        """
        if not create_graph:
            return self.drift(x, t), self.growth(x, t)
        out = self.flow_net(x, t)
        b = out[0]
        if self.stochastic:
            b = b + self.score_grad(x, t, create_graph=True)[1]
        if not self.has_growth:
            return b, x.new_zeros(x.shape[0])
        g = out[self.GROWTH_HEAD][:, 0]
        if self.growth_offset_times.numel():
            g = g + self.growth_offset(t, x)
        return b, g

    def score(self, x: torch.Tensor, t) -> torch.Tensor:
        """Score potential s(x, t), shape (n,)."""
        s = self.score_scale * self.score_net(x, t)[0][:, 0]
        if self.score_level_times.numel():
            s = s - _piecewise_linear(self.score_level_times, self.score_level_values, t, x)
        return s

    @torch.no_grad()
    def pin_score_level(self, times, cells: list[torch.Tensor]) -> None:
        """Fix the free level of s: its mean over ``cells[k]`` at ``times[k]`` becomes zero at every k.

        s is learnt through its gradient only, so its level is arbitrary at each time; pinned, the
        landscapes of different times are comparable (between the knots the level is interpolated
        linearly). Gradients, hence the dynamics, do not change.
        """
        like = self.flow_net.w0
        values = [
            self.score_scale * self.score_net(x, float(t))[0][:, 0].mean() for t, x in zip(times, cells, strict=True)
        ]
        self.score_level_times = torch.as_tensor(list(times), dtype=like.dtype, device=like.device)
        self.score_level_values = torch.stack(values).to(like)

    def score_grad(self, x: torch.Tensor, t, create_graph: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(s, ∇s)`` at ``x``; with ``create_graph`` the gradient is differentiable."""
        with torch.enable_grad():
            if not x.requires_grad:
                x = x.detach().requires_grad_(True)
            s = self.score(x, t)
            (grad,) = torch.autograd.grad(s.sum(), x, create_graph=create_graph)
        return s, grad

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """:meth:`torch.nn.Module.load_state_dict`, also taking the growth offset's buffers at their stored size.

        States saved before the offset existed load with no offset.
        """
        state = dict(state_dict)
        like = self.flow_net.w0
        for name in self.OFFSET_BUFFERS:
            value = state.pop(name, None)
            setattr(
                self, name, torch.zeros(0, dtype=like.dtype, device=like.device) if value is None else value.to(like)
            )
        result = super().load_state_dict(state, strict=False, assign=assign)
        missing = [k for k in result.missing_keys if k not in self.OFFSET_BUFFERS]
        if strict and (missing or result.unexpected_keys):
            raise RuntimeError(
                f"Error loading the state of RUOTNetworks: missing keys {missing}, "
                f"unexpected keys {result.unexpected_keys}."
            )
        return result

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


def _piecewise_linear(knots: torch.Tensor, values: torch.Tensor, t, like: torch.Tensor) -> torch.Tensor:
    """Interpolate ``values`` at ``knots`` linearly at time(s) ``t`` (constant outside), one per row of ``like``."""
    if isinstance(t, numbers.Real):  # filled on the device: no copy from the host
        t = torch.full((like.shape[0],), float(t), dtype=like.dtype, device=like.device)
    else:
        t = torch.as_tensor(t, dtype=like.dtype, device=like.device).reshape(-1).expand(like.shape[0])
    if len(knots) == 1:
        return values[0].expand(like.shape[0])
    right = torch.searchsorted(knots, t.detach().contiguous()).clamp(1, len(knots) - 1)
    t0, t1 = knots[right - 1], knots[right]
    frac = ((t - t0) / (t1 - t0)).clamp(0.0, 1.0)
    return values[right - 1] + frac * (values[right] - values[right - 1])
