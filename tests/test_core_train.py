"""The training loop's steps and stages (core, no AnnData)."""

import math

import numpy as np
import pytest
import torch

from ruotools.core import train
from ruotools.core.config import TrainConfig
from ruotools.core.data import Snapshots
from ruotools.core.networks import RUOTNetworks


def _snapshots(n_times=4, dim=3):
    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(200, dim, generator=g) + k for k in range(n_times)]
    times = [0.0, 1.0, 2.0, 3.5, 4.0][:n_times]
    masses = [1.0 + 0.3 * k for k in range(n_times)]
    return Snapshots(xs, times, masses, train_size=0.9, random_state=0, device=torch.device("cpu"))


def _perturbed_nets(data, config):
    torch.manual_seed(1)
    nets = RUOTNetworks.from_config(data.dim, config)
    with torch.no_grad():
        for p in nets.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return nets


def _local_step(data, config, nets, threaded):
    trainer = train._Trainer(data, config, nets)
    trainer.threaded, trainer.local = threaded, True
    nets.zero_grad(set_to_none=True)
    loss, parts = trainer.step("pretrain")
    if loss.requires_grad:
        loss.backward()
    return loss.item(), parts, [p.grad.clone() for p in nets.flow_net.parameters()]


@pytest.mark.parametrize("n_times", [2, 4])
def test_threaded_local_step_has_the_single_thread_gradient(n_times):
    # 3 intervals: groups of 2 and 1; 1 interval: nothing to split
    data = _snapshots(n_times)
    config = TrainConfig(batch_size=64)
    nets = _perturbed_nets(data, config)
    loss_1, parts_1, grads_1 = _local_step(data, config, nets, threaded=False)
    loss_2, parts_2, grads_2 = _local_step(data, config, nets, threaded=True)
    assert loss_2 == pytest.approx(loss_1, rel=1e-6)
    assert parts_2 == pytest.approx(parts_1, rel=1e-6)
    assert parts_1["ot"] > 0
    assert parts_1["mass"] > 0
    for a, b in zip(grads_1, grads_2, strict=True):
        assert torch.count_nonzero(a) > 0
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-7)


def test_threaded_local_step_is_deterministic():
    data = _snapshots(5)
    config = TrainConfig(batch_size=64)
    nets = _perturbed_nets(data, config)
    runs = [_local_step(data, config, nets, threaded=True) for _ in range(3)]
    for loss, parts, grads in runs[1:]:
        assert loss == runs[0][0]
        assert parts == runs[0][1]
        for a, b in zip(runs[0][2], grads, strict=True):
            assert torch.equal(a, b)


def test_local_stage_is_not_validated_and_trajectories_are_always_trained(monkeypatch):
    data = _snapshots(3)
    config = TrainConfig(
        batch_size=32,
        epochs={"pretrain": 3, "refine": 0, "score": 0, "joint": 0},
        steps_per_epoch=2,
        local_fraction=1.0,
    )
    stages = []
    step = train._Trainer.step

    def spy(self, phase):
        stages.append(self.local)
        return step(self, phase)

    monkeypatch.setattr(train._Trainer, "step", spy)
    _, history = train.fit(data, config)
    val = history["pretrain"]["val"]
    # local_fraction 1 still leaves the last epoch to whole trajectories, the only epoch validated
    assert stages == [True] * 4 + [False] * 2
    assert np.isnan(val[:2]).all()
    assert math.isfinite(val[2])
    assert history["pretrain"]["best_val"] == val[2]
