"""Particle integration of ``ruotools.core.dynamics`` on fields with known solutions."""

import math

import numpy as np
import pytest
import scipy.linalg
import torch
import torchsde

from ruotools.core.dynamics import integrate

A = np.array([[-0.5, 1.0], [-1.0, -0.3]])
B = np.array([[0.7, 0.1], [0.1, 0.4]])


class LinearFields:
    """Stand-in for ``RUOTNetworks`` (same duck-typed interface) with closed-form fields.

    v(x, t) = A x + c, g(x, t) = g0 (constant), s(x, t) = −½ xᵀ B x (so ∇s = −B x; ``score_scale``
    multiplies it, 0 switches the score off).
    """

    def __init__(self, a=A, c=(0.0, 0.0), g0=0.3, score_scale=1.0):
        self.a = torch.as_tensor(a, dtype=torch.float64)
        self.c = torch.as_tensor(c, dtype=torch.float64)
        self.g0 = g0
        self.b = torch.as_tensor(B, dtype=torch.float64) * score_scale
        self.dim = self.a.shape[0]
        self.has_growth = g0 != 0

    def velocity(self, x, t):
        return x @ self.a.T + self.c

    def growth(self, x, t):
        return torch.full((x.shape[0],), float(self.g0), dtype=x.dtype)

    def fields(self, x, t):
        return self.velocity(x, t), self.growth(x, t)

    def score(self, x, t):
        return -0.5 * ((x @ self.b) * x).sum(1)

    def score_grad(self, x, t, create_graph=False):
        return self.score(x, t), -x @ self.b


@pytest.fixture
def x0():
    return torch.as_tensor(np.random.default_rng(0).normal(size=(64, 2)))


def test_rk4_matches_matrix_exponential(x0):
    ell0 = torch.full((len(x0),), -math.log(len(x0)), dtype=torch.float64)
    out = integrate(LinearFields(), x0, ell0, [0.0, 0.5, 1.0], steps_per_unit=10)
    assert out["t"] == [0.0, 0.5, 1.0]
    assert len(out["x"]) == len(out["log_mass"]) == 3
    for t, x in zip(out["t"], out["x"], strict=True):
        expected = x0.numpy() @ scipy.linalg.expm(A * t).T
        np.testing.assert_allclose(x.numpy(), expected, atol=1e-4)
    # RK4 integrates a constant growth exactly: mass e^{g t}
    for t, ell in zip(out["t"], out["log_mass"], strict=True):
        np.testing.assert_allclose(ell.numpy(), ell0.numpy() + 0.3 * t, atol=1e-12)
        assert float(torch.exp(ell).sum()) == pytest.approx(math.exp(0.3 * t), rel=1e-12)


def test_rk4_error_is_fourth_order(x0):
    ell0 = torch.zeros(len(x0), dtype=torch.float64)
    exact = x0.numpy() @ scipy.linalg.expm(A).T
    errors = []
    for steps in (2, 4):
        x1 = integrate(LinearFields(), x0, ell0, [0.0, 1.0], steps_per_unit=steps)["x"][-1]
        errors.append(np.abs(x1.numpy() - exact).max())
    assert 10 < errors[0] / errors[1] < 25  # 2⁴ = 16


def test_integration_over_an_uneven_grid(x0):
    ell0 = torch.zeros(len(x0), dtype=torch.float64)
    out = integrate(LinearFields(), x0, ell0, [0.0, 0.3, 2.0], steps_per_unit=20)
    expected = x0.numpy() @ scipy.linalg.expm(A * 2.0).T
    np.testing.assert_allclose(out["x"][-1].numpy(), expected, atol=1e-4)
    np.testing.assert_allclose(out["log_mass"][-1].numpy(), 0.6, atol=1e-12)


def test_record_every_step(x0):
    ell0 = torch.zeros(len(x0), dtype=torch.float64)
    out = integrate(LinearFields(), x0, ell0, [0.0, 1.0], steps_per_unit=5, record_every_step=True)
    np.testing.assert_allclose(out["t"], np.linspace(0, 1, 6), atol=1e-12)
    for t, x in zip(out["t"], out["x"], strict=True):
        np.testing.assert_allclose(x.numpy(), x0.numpy() @ scipy.linalg.expm(A * t).T, atol=1e-3)


def test_action_for_constant_fields():
    # v = c, g = g0: dm/dt = (½|c|² + α g0²) e^{ℓ0 + g0 t}, so m(1) = (½|c|² + α g0²) e^{ℓ0} (e^{g0} − 1) / g0
    c, g0, alpha = np.array([0.6, -0.8]), 0.4, 2.0
    fields = LinearFields(a=np.zeros((2, 2)), c=c, g0=g0)
    x0 = torch.zeros(10, 2, dtype=torch.float64)
    ell0 = torch.full((10,), math.log(0.1), dtype=torch.float64)
    out = integrate(fields, x0, ell0, [0.0, 1.0], steps_per_unit=10, alpha=alpha, with_action=True)
    expected = (0.5 * (c @ c) + alpha * g0**2) * 0.1 * (math.exp(g0) - 1) / g0
    np.testing.assert_allclose(out["action"][-1].numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(out["x"][-1].numpy(), np.tile(c, (10, 1)), atol=1e-12)


def test_euler_without_noise_converges_to_the_flow(x0):
    ell0 = torch.zeros(len(x0), dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    out = integrate(
        LinearFields(), x0, ell0, [0.0, 1.0], steps_per_unit=1000, stochastic=True, sigma=0.0, generator=gen
    )
    expected = x0.numpy() @ scipy.linalg.expm(A).T
    np.testing.assert_allclose(out["x"][-1].numpy(), expected, atol=5e-3)
    np.testing.assert_allclose(out["log_mass"][-1].numpy(), 0.3, atol=1e-9)
    # first order: ten times fewer steps, about ten times the error
    coarse = integrate(LinearFields(), x0, ell0, [0.0, 1.0], steps_per_unit=100, stochastic=True, sigma=0.0)
    err_fine = np.abs(out["x"][-1].numpy() - expected).max()
    err_coarse = np.abs(coarse["x"][-1].numpy() - expected).max()
    assert 5 < err_coarse / err_fine < 20


class _TorchsdeReference(torch.nn.Module):
    noise_type = "diagonal"
    sde_type = "ito"

    def __init__(self, fields, sigma):
        super().__init__()
        self.fields_, self.sigma = fields, sigma

    def f(self, t, y):
        return self.fields_.velocity(y, t) + self.fields_.score_grad(y, t)[1]

    def g(self, t, y):
        return torch.full_like(y, self.sigma)


@pytest.mark.parametrize("steps_per_unit", [10, 25])
def test_euler_maruyama_matches_torchsde(x0, steps_per_unit):
    n, d = x0.shape
    sigma = 0.4
    fields = LinearFields()
    bm = torchsde.BrownianInterval(t0=0.0, t1=1.0, size=(n, d), entropy=0, dtype=torch.float64)
    ell0 = torch.zeros(n, dtype=torch.float64)
    out = integrate(
        fields,
        x0,
        ell0,
        [0.0, 1.0],
        steps_per_unit=steps_per_unit,
        stochastic=True,
        sigma=sigma,
        noise=lambda t0, t1, shape, like: bm(t0, t1),
    )
    ys = torchsde.sdeint(
        _TorchsdeReference(fields, sigma),
        x0,
        torch.tensor([0.0, 1.0], dtype=torch.float64),
        bm=bm,
        method="euler",
        dt=1 / steps_per_unit,
    )
    torch.testing.assert_close(out["x"][-1], ys[-1], atol=1e-5, rtol=1e-5)
    # the noise actually moved the particles (the comparison is not between two deterministic runs)
    deterministic = integrate(fields, x0, ell0, [0.0, 1.0], steps_per_unit=steps_per_unit, stochastic=True)
    assert float((out["x"][-1] - deterministic["x"][-1]).abs().max()) > 0.1


def test_sde_with_constant_drift_has_brownian_statistics():
    n, sigma, t1 = 20_000, 0.5, 2.0
    drift = np.array([0.7, -0.2])
    fields = LinearFields(a=np.zeros((2, 2)), c=drift, g0=0.0, score_scale=0.0)
    x0 = torch.zeros(n, 2, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    out = integrate(
        fields,
        x0,
        torch.zeros(n, dtype=torch.float64),
        [0.0, t1],
        steps_per_unit=10,
        stochastic=True,
        sigma=sigma,
        generator=gen,
    )
    x = out["x"][-1].numpy()
    se = sigma * math.sqrt(t1 / n)
    np.testing.assert_allclose(x.mean(0), drift * t1, atol=5 * se)
    np.testing.assert_allclose(x.var(0), sigma**2 * t1, rtol=0.05)
    assert abs(np.corrcoef(x.T)[0, 1]) < 0.05


def test_sde_noise_is_reproducible_with_a_seeded_generator(x0):
    ell0 = torch.zeros(len(x0), dtype=torch.float64)
    runs = [
        integrate(
            LinearFields(),
            x0,
            ell0,
            [0.0, 1.0],
            stochastic=True,
            sigma=0.3,
            generator=torch.Generator().manual_seed(seed),
        )["x"][-1]
        for seed in (5, 5, 6)
    ]
    torch.testing.assert_close(runs[0], runs[1])
    assert float((runs[0] - runs[2]).abs().max()) > 1e-3
