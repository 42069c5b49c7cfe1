"""The growth offset c(t) of ``RUOTNetworks`` and the total-mass calibration that sets it."""

import math

import numpy as np
import pytest
import torch

from ruotools.core.config import TrainConfig
from ruotools.core.dynamics import integrate
from ruotools.core.networks import RUOTNetworks

TIMES = [0.0, 1.0, 2.5, 3.0]


@pytest.fixture
def nets():
    torch.manual_seed(0)
    nets = RUOTNetworks(2, hidden_dim=16, n_layers=2, growth=True, sigma=0.1).double()
    with torch.no_grad():  # a growth head that varies with x and t
        for w, b in nets.flow_net._layers():
            w.normal_(0, 0.5)
            b.normal_(0, 0.1)
    return nets


def _push(nets, x0, steps_per_unit=2, stochastic=False):
    ell = torch.full((len(x0),), -math.log(len(x0)), dtype=x0.dtype)
    gen = torch.Generator().manual_seed(3)
    return integrate(
        nets, x0, ell, TIMES, steps_per_unit=steps_per_unit, stochastic=stochastic, sigma=0.1, generator=gen
    )


@pytest.mark.parametrize("stochastic", [False, True])
def test_calibration_sets_the_total_mass_and_changes_nothing_else(nets, stochastic):
    x0 = torch.randn(300, 2, dtype=torch.float64)
    before = _push(nets, x0, stochastic=stochastic)
    predicted = [torch.logsumexp(ell, 0).item() for ell in before["log_mass"][1:]]
    wanted = [math.log(m) for m in (1.5, 0.8, 2.0)]
    nets.calibrate_total_mass(TIMES, [w - p for w, p in zip(wanted, predicted, strict=True)])
    after = _push(nets, x0, stochastic=stochastic)
    totals = [torch.logsumexp(ell, 0).item() for ell in after["log_mass"][1:]]
    # the offset is linear in t between snapshots: RK4 and the trapezoidal rule integrate it exactly
    np.testing.assert_allclose(totals, wanted, atol=1e-10)
    for k in range(len(TIMES)):
        # positions (the offset depends on t only) and relative weights are untouched
        torch.testing.assert_close(after["x"][k], before["x"][k], rtol=0, atol=1e-12)
        torch.testing.assert_close(
            torch.softmax(after["log_mass"][k], 0), torch.softmax(before["log_mass"][k], 0), rtol=1e-9, atol=1e-12
        )


def test_offset_is_piecewise_linear_and_constant_outside(nets):
    nets.calibrate_total_mass([0.0, 1.0, 3.0], [0.4, -0.2])
    c = nets.growth_offset_values
    like = torch.zeros(1, 2, dtype=torch.float64)
    # ∫c over each interval gives the wanted log-changes (trapezoids)
    assert 0.5 * (c[0] + c[1]).item() == pytest.approx(0.4)
    assert (c[1] + c[2]).item() == pytest.approx(-0.6)
    assert nets.growth_offset(0.5, like).item() == pytest.approx(0.5 * (c[0] + c[1]).item())
    assert nets.growth_offset(-7.0, like).item() == pytest.approx(c[0].item())
    assert nets.growth_offset(9.0, like).item() == pytest.approx(c[2].item())
    x = torch.randn(5, 2, dtype=torch.float64)
    t = torch.tensor([0.0, 0.5, 1.0, 2.0, 3.0], dtype=torch.float64)
    g_with, offset = nets.fields(x, t)[1], nets.growth_offset(t, x)
    nets.growth_offset_times = torch.zeros(0, dtype=torch.float64)
    torch.testing.assert_close(g_with - nets.fields(x, t)[1], offset)


def test_state_round_trip_and_states_without_an_offset(nets):
    nets.calibrate_total_mass(TIMES, [0.1, 0.2, 0.3])
    state = nets.state_dict()
    assert state["growth_offset_values"].shape == (4,)
    fresh = RUOTNetworks(2, hidden_dim=16, n_layers=2, growth=True, sigma=0.1).double()
    fresh.load_state_dict(state)
    x, t = torch.randn(7, 2, dtype=torch.float64), torch.rand(7, dtype=torch.float64) * 3
    torch.testing.assert_close(fresh.fields(x, t)[1], nets.fields(x, t)[1])
    # a state saved before the offset existed loads with no offset
    old = {k: v for k, v in state.items() if k not in RUOTNetworks.OFFSET_BUFFERS}
    fresh.load_state_dict(old)
    assert fresh.growth_offset_times.numel() == 0
    with pytest.raises(RuntimeError, match="missing keys"):
        fresh.load_state_dict({k: v for k, v in old.items() if k != "flow_net.w0"})


def test_balanced_model_ignores_calibration():
    nets = RUOTNetworks.from_config(2, TrainConfig(growth=False))
    nets.calibrate_total_mass(TIMES, [0.1, 0.2, 0.3])
    assert nets.growth_offset_times.numel() == 0
    assert torch.all(nets.fields(torch.randn(3, 2), 0.5)[1] == 0)
