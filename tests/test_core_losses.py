"""Non-transport loss terms of ``ruotools.core.losses`` against hand-computed references."""

import math

import numpy as np
import pytest
import torch

from ruotools.core.losses import (
    fokker_planck_residual,
    jacobian_asymmetry,
    log_kde,
    mass_loss,
    score_matching_loss,
    scott_bandwidth,
)
from ruotools.core.networks import RUOTNetworks


def _mass_terms(out) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor]:
    """``(local, total, sum)`` whether ``mass_loss`` returns the two terms or their sum."""
    if isinstance(out, tuple):
        local, tot = out
        return local, tot, local + tot
    return None, None, out


def _brute_force_mass_loss(x, log_mass, y, total):
    """The docstring's formula with an explicit Python loop over the observed cells."""
    n, m = len(x), len(y)
    counts = np.zeros(n)
    for cell in y:
        counts[np.argmin(((x - cell) ** 2).sum(1))] += 1
    target = total * counts / m
    w = np.exp(log_mass)
    local = np.mean((n * w / total - n * target / total) ** 2)
    tot = ((w.sum() - total) / total) ** 2
    return local, tot


# --------------------------------------------------------------------------- mass loss


@pytest.mark.parametrize(("n", "m", "total"), [(20, 35, 1.3), (40, 25, 0.7), (7, 100, 2.5)])
def test_mass_loss_matches_brute_force_count(n, m, total):
    rng = np.random.default_rng(n + m)
    x = rng.normal(size=(n, 2))
    y = rng.normal(size=(m, 2))
    log_mass = np.log(rng.uniform(0.5, 1.5, n) * total / n)
    out = mass_loss(torch.tensor(x), torch.tensor(log_mass), torch.tensor(y), total)
    local, tot, both = _mass_terms(out)
    exp_local, exp_tot = _brute_force_mass_loss(x, log_mass, y, total)
    assert float(both) == pytest.approx(exp_local + exp_tot, rel=1e-10)
    if local is not None:
        assert float(local) == pytest.approx(exp_local, rel=1e-10)
        assert float(tot) == pytest.approx(exp_tot, rel=1e-10)


def test_mass_loss_without_local_term_keeps_the_total_and_skips_the_search(monkeypatch):
    rng = np.random.default_rng(3)
    x, y = torch.tensor(rng.normal(size=(20, 2))), torch.tensor(rng.normal(size=(35, 2)))
    log_mass = torch.tensor(np.log(rng.uniform(0.5, 1.5, 20) / 20))
    local, tot = mass_loss(x, log_mass, y, 1.3)
    assert float(local) > 0
    monkeypatch.setattr(torch, "cdist", lambda *a, **k: pytest.fail("nearest-particle search without a local term"))
    none, tot_only = mass_loss(x, log_mass, y, 1.3, local=False)
    assert float(none) == 0.0
    expected = _brute_force_mass_loss(x.numpy(), log_mass.numpy(), y.numpy(), 1.3)[1]
    assert float(tot_only) == float(tot) == pytest.approx(expected)


def test_mass_loss_is_zero_when_masses_equal_targets():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 2))
    y = rng.normal(size=(90, 2))
    total = 1.8
    counts = np.bincount(np.argmin(((y[:, None] - x[None]) ** 2).sum(-1), axis=1), minlength=30)
    target = total * counts / len(y)
    # particles that receive no cell have target 0: give them a negligible mass
    log_mass = np.log(np.where(target > 0, target, 1e-300))
    out = mass_loss(torch.tensor(x), torch.tensor(log_mass), torch.tensor(y), total)
    assert float(_mass_terms(out)[2]) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("c", [0.5, 1.5, 3.0])
def test_mass_loss_does_not_depend_on_the_particle_count(c):
    # Property (METHOD.md §8): with masses uniformly wrong by a factor c, w = c·target, the loss is
    # the same for 50 and 500 particles. Each particle receives exactly k cells (cells are tiny
    # perturbations of the particles), so every target is total/n and the loss is 2 (c − 1)².
    total = 1.6
    values = []
    for n in (50, 500):
        rng = np.random.default_rng(n)
        x = rng.uniform(-5, 5, size=(n, 2))
        k = 3
        y = np.repeat(x, k, axis=0) + 1e-6 * rng.normal(size=(n * k, 2))
        log_mass = np.full(n, np.log(c * total / n))
        out = mass_loss(torch.tensor(x), torch.tensor(log_mass), torch.tensor(y), total)
        values.append(float(_mass_terms(out)[2]))
    assert values[0] == pytest.approx(values[1], rel=1e-9)
    assert values[0] == pytest.approx(2 * (c - 1) ** 2, rel=1e-9)


def test_mass_loss_gradient_reaches_log_mass_only():
    rng = np.random.default_rng(1)
    x = torch.tensor(rng.normal(size=(15, 2)), requires_grad=True)
    log_mass = torch.tensor(np.log(np.full(15, 2.0 / 15)), requires_grad=True)
    y = torch.tensor(rng.normal(size=(40, 2)))
    _mass_terms(mass_loss(x, log_mass, y, 1.0))[2].backward()
    assert x.grad is None or torch.all(x.grad == 0)
    assert torch.isfinite(log_mass.grad).all()
    # masses twice the total: the gradient pushes every log-mass with cells down
    assert log_mass.grad.sum() > 0


# --------------------------------------------------------------------------- KDE


def test_scott_bandwidth_formula():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(200, 3)) * np.array([1.0, 2.0, 0.5])
    expected = x.std(axis=0, ddof=1).mean() * 200 ** (-1 / (3 + 4))
    assert scott_bandwidth(torch.tensor(x)) == pytest.approx(expected, rel=1e-10)


def test_log_kde_matches_hand_computed_gaussian_kde():
    rng = np.random.default_rng(3)
    data = rng.normal(size=(60, 2))
    points = rng.normal(size=(5, 2)) * 2
    h = 0.4
    expected = []
    for p in points:
        sq = ((data - p) ** 2).sum(1)
        kernels = np.exp(-0.5 * sq / h**2) / (2 * np.pi * h**2) ** (data.shape[1] / 2)
        expected.append(np.log(kernels.mean()))
    got = log_kde(torch.tensor(points), torch.tensor(data), h)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10)


def test_log_kde_chunks_give_the_same_answer():
    rng = np.random.default_rng(4)
    data = torch.tensor(rng.normal(size=(50, 3)))
    points = torch.tensor(rng.normal(size=(23, 3)))
    full = log_kde(points, data, 0.5)
    chunked = log_kde(points, data, 0.5, chunk=4)
    torch.testing.assert_close(full, chunked)


def test_log_kde_integrates_to_one_in_1d():
    data = torch.tensor([[-1.0], [0.3], [2.0]], dtype=torch.float64)
    grid = torch.linspace(-8, 10, 4001, dtype=torch.float64)[:, None]
    density = torch.exp(log_kde(grid, data, 0.7))
    assert float(torch.trapezoid(density, grid[:, 0])) == pytest.approx(1.0, abs=1e-6)


# --------------------------------------------------------------------------- Fokker–Planck


class _ExpandingGaussian:
    """Hand-built fields that solve the continuity equation with growth exactly.

    v = a·x, g = c, and ρ(x, t) = e^{ct} N(0, e^{2at} I) up to a constant, i.e.
    log ρ = (c − d·a)·t − |x|² e^{−2at} / 2, so ∂_t log ρ + ∇·v + v·∇log ρ − g = 0.
    """

    has_growth = True

    def __init__(self, dim, sigma, a=0.3, c=0.5, wrong_velocity=False):
        self.dim, self.sigma, self.a, self.c, self.wrong = dim, sigma, a, c, wrong_velocity

    def _t(self, x, t):
        if not torch.is_tensor(t) or t.ndim == 0:
            return torch.full((x.shape[0],), float(t), dtype=x.dtype)
        return t.reshape(-1).to(x.dtype)

    def velocity(self, x, t):
        return (0.0 if self.wrong else self.a) * x

    def growth(self, x, t):
        return torch.full((x.shape[0],), self.c, dtype=x.dtype) + 0 * x[:, 0]

    def fields(self, x, t):
        return self.velocity(x, t), self.growth(x, t)

    def score(self, x, t):
        t = self._t(x, t)
        d = x.shape[1]
        log_rho = (self.c - d * self.a) * t - 0.5 * (x * x).sum(1) * torch.exp(-2 * self.a * t)
        return 0.5 * self.sigma**2 * log_rho

    def score_grad(self, x, t, create_graph=False):
        with torch.enable_grad():
            x = x if x.requires_grad else x.detach().requires_grad_(True)
            s = self.score(x, t)
            (grad,) = torch.autograd.grad(s.sum(), x, create_graph=create_graph)
        return s, grad


@pytest.mark.parametrize("exact_max_dim", [10, 0])
def test_fokker_planck_residual_vanishes_for_an_exact_solution(exact_max_dim):
    # exact_max_dim=0 forces the Hutchinson estimate, which is exact here (the Jacobian is a·I)
    torch.manual_seed(0)
    x = torch.randn(64, 3, dtype=torch.float64)
    t = torch.rand(64, dtype=torch.float64)
    nets = _ExpandingGaussian(3, sigma=0.5)
    gen = torch.Generator().manual_seed(0)
    r = fokker_planck_residual(nets, x, t, 0.5, generator=gen, exact_max_dim=exact_max_dim).detach()
    assert float(r) == pytest.approx(0.0, abs=1e-10)


def test_fokker_planck_residual_detects_a_wrong_velocity():
    torch.manual_seed(0)
    x = torch.randn(64, 3, dtype=torch.float64)
    t = torch.rand(64, dtype=torch.float64)
    r = fokker_planck_residual(_ExpandingGaussian(3, sigma=0.5, wrong_velocity=True), x, t, 0.5).detach()
    # with v = 0 the residual is |∂_t log ρ − g| = a·|d − |x|² e^{−2at}|
    a, d = 0.3, 3
    expected = (a * (d - (x * x).sum(1) * torch.exp(-2 * a * t))).abs().mean()
    assert float(r) == pytest.approx(float(expected), rel=1e-10)
    assert float(r) > 0.1


def test_fokker_planck_residual_backpropagates_into_the_networks():
    torch.manual_seed(0)
    nets = RUOTNetworks(2, hidden_dim=8, n_layers=2, sigma=0.2)
    x = torch.randn(32, 2)
    t = torch.rand(32)
    r = fokker_planck_residual(nets, x, t, 0.2)
    assert r.ndim == 0
    assert torch.isfinite(r)
    r.backward()
    grads = [p.grad for p in nets.parameters() if p.grad is not None]
    assert grads
    assert all(torch.isfinite(g).all() for g in grads)
    assert any(float(g.abs().sum()) > 0 for g in grads)


# --------------------------------------------------------------------------- score matching


class _BridgeScore:
    """s(x, t) = −|x|² / (4 t (1 − t)): the exact score (σ²/2)∇log p of a Brownian bridge pinned at 0."""

    has_growth = False

    def __init__(self, factor=1.0):
        self.factor = factor

    def score(self, x, t):
        t = t.reshape(-1).to(x.dtype) if torch.is_tensor(t) else torch.full((len(x),), float(t), dtype=x.dtype)
        return -self.factor * (x * x).sum(1) / (4 * t * (1 - t))

    def score_grad(self, x, t, create_graph=False):
        with torch.enable_grad():
            x = x if x.requires_grad else x.detach().requires_grad_(True)
            s = self.score(x, t)
            (grad,) = torch.autograd.grad(s.sum(), x, create_graph=create_graph)
        return s, grad


def test_score_matching_loss_is_zero_for_the_exact_bridge_score():
    # endpoints pinned at 0 over [0, 1]: x_τ = σ√(τ(1−τ)) ε and the exact ∇s gives λ(τ)∇s = −ε
    n, d, sigma = 256, 3, 0.4
    zeros = torch.zeros(n, d, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    weights = torch.ones(n, dtype=torch.float64)
    loss = score_matching_loss(_BridgeScore(), zeros, zeros, 0.0, 1.0, sigma, weights, gen).detach()
    assert float(loss) == pytest.approx(0.0, abs=1e-10)
    # a score twice too steep leaves |−2ε + ε|² / d, i.e. about 1 on average
    gen = torch.Generator().manual_seed(0)
    wrong = score_matching_loss(_BridgeScore(2.0), zeros, zeros, 0.0, 1.0, sigma, weights, gen).detach()
    assert 0.7 < float(wrong) < 1.3


def test_score_matching_loss_is_finite_and_differentiable():
    torch.manual_seed(0)
    nets = RUOTNetworks(2, hidden_dim=8, n_layers=2, sigma=0.1)
    xa, xb = torch.randn(40, 2), torch.randn(40, 2) + 1
    gen = torch.Generator().manual_seed(1)
    loss = score_matching_loss(nets, xa, xb, 0.0, 1.0, 0.1, torch.rand(40) + 0.1, gen)
    assert loss.ndim == 0
    assert torch.isfinite(loss)
    loss.backward()
    # only ∇s enters, so the score network's output bias gets no gradient; every other weight does
    score_grads = [p.grad for p in nets.score_net.parameters() if p.grad is not None]
    assert score_grads
    assert all(torch.isfinite(g).all() for g in score_grads)
    assert sum(float(g.abs().sum()) for g in score_grads) > 0


def test_score_matching_loss_weights_are_normalised():
    torch.manual_seed(0)
    nets = RUOTNetworks(2, hidden_dim=8, n_layers=2, sigma=0.1)
    xa, xb = torch.randn(40, 2), torch.randn(40, 2) + 1
    w = torch.rand(40) + 0.1
    l1 = score_matching_loss(nets, xa, xb, 0.0, 1.0, 0.1, w, torch.Generator().manual_seed(1))
    l2 = score_matching_loss(nets, xa, xb, 0.0, 1.0, 0.1, 5 * w, torch.Generator().manual_seed(1))
    assert l1.item() == pytest.approx(l2.item(), rel=1e-5)
    assert math.isfinite(l1.item())


class _SmoothedBridgeScore(_BridgeScore):
    """Exact (σ²/2)∇log p of a bridge pinned at 0 convolved with a Gaussian of width h(τ) = (1−τ)h_a + τh_b."""

    def __init__(self, sigma, ha, hb):
        super().__init__()
        self.sigma, self.ha, self.hb = sigma, ha, hb

    def score(self, x, t):
        t = t.reshape(-1).to(x.dtype)
        var = self.sigma**2 * t * (1 - t) + ((1 - t) * self.ha + t * self.hb) ** 2
        return -(self.sigma**2) * (x * x).sum(1) / (4 * var)


def test_smoothed_score_matching_is_zero_for_the_exact_smoothed_score():
    n, d, sigma, ha, hb = 256, 3, 0.1, 0.3, 0.6
    zeros = torch.zeros(n, d, dtype=torch.float64)
    weights = torch.ones(n, dtype=torch.float64)
    exact = _SmoothedBridgeScore(sigma, ha, hb)
    loss = score_matching_loss(
        exact, zeros, zeros, 0.0, 1.0, sigma, weights, torch.Generator().manual_seed(0), (ha, hb)
    )
    assert float(loss.detach()) == pytest.approx(0.0, abs=1e-10)
    # the same bandwidths given per pair (several intervals in one batch) give the same loss
    per_pair = (torch.full((n,), ha, dtype=torch.float64), torch.full((n,), hb, dtype=torch.float64))
    times = (torch.zeros(n, dtype=torch.float64), torch.ones(n, dtype=torch.float64))
    loss = score_matching_loss(exact, zeros, zeros, *times, sigma, weights, torch.Generator().manual_seed(0), per_pair)
    assert float(loss.detach()) == pytest.approx(0.0, abs=1e-10)
    # the unsmoothed bridge score is wrong for smoothed targets: its gradient is far too steep
    wrong = score_matching_loss(
        _BridgeScore(), zeros, zeros, 0.0, 1.0, sigma, weights, torch.Generator().manual_seed(0), (ha, hb)
    )
    assert float(wrong.detach()) > 10


def test_score_matching_loss_takes_numbers_arrays_and_tensors_alike():
    """Times and bandwidths may be numbers, NumPy arrays or tensors (one per pair): the same loss."""
    torch.manual_seed(0)
    nets = RUOTNetworks(2, hidden_dim=8, n_layers=2, sigma=0.1)
    xa, xb = torch.randn(40, 2), torch.randn(40, 2) + 1
    w = torch.rand(40) + 0.1
    values = []
    for ta, tb, h in [
        (0.5, 1.5, (0.1, 0.2)),
        (np.full(40, 0.5), np.full(40, 1.5), (np.full(40, 0.1), np.full(40, 0.2))),
        (torch.full((40,), 0.5), torch.full((40,), 1.5), (torch.full((40,), 0.1), torch.full((40,), 0.2))),
    ]:
        gen = torch.Generator().manual_seed(1)
        values.append(score_matching_loss(nets, xa, xb, ta, tb, 0.1, w, gen, bandwidth=h).item())
    assert values[1] == values[0]
    assert values[2] == values[0]


# --------------------------------------------------------------------------- curl penalty


def test_jacobian_asymmetry_of_a_linear_field_is_its_closed_form():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(4, 4, generator=gen)
    x = torch.randn(7, 4, generator=gen, requires_grad=True)
    value = jacobian_asymmetry(x @ a.T, x, exact=True)  # J = A at every point
    expected = 0.5 * ((a - a.T) ** 2).sum()
    torch.testing.assert_close(value, expected.expand(7), rtol=1e-5, atol=1e-6)


def test_jacobian_asymmetry_vanishes_for_a_gradient_field_only():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(20, 3, generator=gen, requires_grad=True)
    potential = (torch.sin(x[:, 0] * x[:, 1]) + x[:, 2] ** 3 * x[:, 0]).sum()
    (grad,) = torch.autograd.grad(potential, x, create_graph=True)
    assert jacobian_asymmetry(grad, x, exact=True).abs().max() < 1e-5
    rotation = torch.stack([-x[:, 1], x[:, 0], torch.zeros_like(x[:, 2])], 1)  # J has ±1 off the diagonal
    torch.testing.assert_close(jacobian_asymmetry(rotation, x, exact=True), torch.full((20,), 4.0))


def test_jacobian_asymmetry_estimate_is_unbiased_and_differentiable():
    gen = torch.Generator().manual_seed(2)
    a = torch.randn(5, 5, generator=gen, requires_grad=True)
    x = torch.randn(6, 5, generator=gen, requires_grad=True)
    v = torch.tanh(x) @ a.T  # J = A·diag(1 − tanh²), different at each point
    exact = jacobian_asymmetry(v, x, exact=True)
    draws = torch.stack([jacobian_asymmetry(v, x, exact=False, probes=1, generator=gen) for _ in range(3000)])
    error = draws.std(0) / math.sqrt(len(draws))
    assert ((draws.mean(0) - exact).abs() < 4 * error).all()
    (grad,) = torch.autograd.grad(draws[0].sum(), a)
    assert grad.abs().sum() > 0
