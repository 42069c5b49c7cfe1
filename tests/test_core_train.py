"""The training loop's steps and stages (core, no AnnData)."""

import math
import os
import traceback

import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode

import ruotools
from ruotools.core import train
from ruotools.core.config import TrainConfig
from ruotools.core.data import Snapshots
from ruotools.core.losses import scott_bandwidth
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
    parts = {key: float(value) for key, value in parts.items()}  # tensors: no read-back inside the step
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


#: Tensor methods and functions that read a device's data back to the host (a sync on a GPU).
_READ_BACKS = {"item", "tolist", "numpy", "cpu", "__float__", "__int__", "__bool__", "__index__"}
_READ_BACKS |= {"nonzero", "bincount", "unique", "masked_select", "repeat_interleave"}  # data-dependent sizes
#: Where reading back is expected: the exact OT plan (on the host), and once per epoch or phase.
_READ_BACK_ALLOWED = {"_emd", "sinkhorn_log", "_loss_values", "validate", "_bridge_pairs", "calibrate_total_mass"}


class _ReadBackSpy(TorchFunctionMode):
    """Record read-backs and host-data tensors created by ruotools' own code (not by torch's)."""

    package = os.path.dirname(ruotools.__file__)
    dispatch = frozenset({"overrides.py", "_tensor.py", "functional.py"})

    def __init__(self):
        super().__init__()
        self.seen = []  # (what, "file:line", allowed)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        from_host = name in ("tensor", "as_tensor") and args and not torch.is_tensor(args[0])
        if name in _READ_BACKS or from_host:
            frames = traceback.extract_stack()[:-1]
            ours = [i for i, f in enumerate(frames) if f.filename.startswith(self.package)]
            # called by ruotools itself, through torch's dispatch wrappers at most (not inside, e.g., an optimiser)
            if ours and all(os.path.basename(f.filename) in self.dispatch for f in frames[ours[-1] + 1 :]):
                caller = frames[ours[-1]]
                allowed = any(f.name in _READ_BACK_ALLOWED for f in frames)
                self.seen.append((name, f"{os.path.basename(caller.filename)}:{caller.lineno}", allowed))
        return func(*args, **(kwargs or {}))


def test_training_steps_read_nothing_back_from_the_device_but_the_ot_plan(every_branch):
    """Every phase's steps (forward, backward, optimiser) keep their tensors where they are.

    On a GPU a read-back (``.item()``, ``float()``, a size read from the data) or a tensor made from
    host data stalls the device; in a training step only the exact OT plan, solved on the host, may
    do so. All branches are on: growth, local stage, noise, Fokker–Planck and initial-density terms.
    """
    config, run_every_phase = every_branch
    data = _snapshots(3)
    trainer = train._Trainer(data, config, _perturbed_nets(data, config))
    trainer.threaded = False  # the spy sees the calling thread only

    spy = _ReadBackSpy()
    with spy:
        run_every_phase(trainer)
    unexpected = sorted({(what, where) for what, where, allowed in spy.seen if not allowed})
    assert unexpected == []
    # the spy does see ruotools' expected read-backs: the epochs' loss values and validation's masses
    assert {("tolist", True), ("__float__", True)} <= {(what, allowed) for what, _, allowed in spy.seen}

    # and it flags one outside those places
    with _ReadBackSpy() as spy:
        scott_bandwidth(torch.randn(10, 2))
    assert [(what, allowed) for what, _, allowed in spy.seen] == [("__float__", False)]


def test_local_mass_loss_is_left_out_above_local_mass_max_dim():
    # 3-D data: with the threshold at 3 the local term counts; at 2 the loss is that of lambda_mass = 0
    data = _snapshots(3, dim=3)
    losses = {}
    for name, kw in {
        "on": {"local_mass_max_dim": 3},
        "off": {"local_mass_max_dim": 2},
        "zero": {"local_mass_max_dim": 3, "lambda_mass": 0.0},
    }.items():
        config = TrainConfig(batch_size=64, **kw)
        losses[name] = _local_step(data, config, _perturbed_nets(data, config), threaded=False)[0]
    assert losses["off"] == losses["zero"]
    assert losses["on"] > losses["off"] * (1 + 1e-4)
    assert TrainConfig().local_mass_max_dim == 50


@pytest.mark.parametrize("threaded", [False, True])
def test_curl_penalty_adds_its_gradient_to_every_pretraining_step(threaded):
    data = _snapshots(4)
    plain = TrainConfig(batch_size=64, lambda_curl=0.0)
    curl = TrainConfig(batch_size=64, lambda_curl=1.0)
    nets = _perturbed_nets(data, plain)
    loss_0, parts_0, grads_0 = _local_step(data, plain, nets, threaded=threaded)
    loss_1, parts_1, grads_1 = _local_step(data, curl, nets, threaded=threaded)
    assert "curl" not in parts_0
    assert parts_1["curl"] > 0
    # the curl term draws its cells after the step's own draws: the rest of the step is unchanged
    assert loss_1 == pytest.approx(loss_0 + parts_1["curl"], rel=1e-5)
    assert parts_1["ot"] == pytest.approx(parts_0["ot"], rel=1e-6)
    assert any(not torch.allclose(a, b) for a, b in zip(grads_0, grads_1, strict=True))


def test_curl_penalty_is_on_by_default_for_deepruot_only():
    data = _snapshots(3)
    assert TrainConfig().lambda_curl == 0.01
    assert TrainConfig(lambda_curl=0).lambda_curl == 0
    assert TrainConfig(flavor="var_ruot").lambda_curl == 0.0  # its drift ∇λ is a gradient already
    nets = _perturbed_nets(data, TrainConfig())
    # the default step carries the term; an explicit 0 removes it and leaves the rest of the step as it was
    loss_on, parts_on, _ = _local_step(data, TrainConfig(batch_size=64), nets, threaded=False)
    loss_off, parts_off, _ = _local_step(data, TrainConfig(batch_size=64, lambda_curl=0), nets, threaded=False)
    assert parts_on["curl"] > 0
    assert "curl" not in parts_off
    assert loss_on == pytest.approx(loss_off + 0.01 * parts_on["curl"], rel=1e-5)


def test_curl_penalty_makes_the_fitted_velocity_closer_to_a_gradient():
    from ruotools.core.losses import jacobian_asymmetry

    data = _snapshots(3, dim=3)
    epochs = {"pretrain": 6, "refine": 0, "score": 0, "joint": 0}

    def asymmetry(lambda_curl):
        config = TrainConfig(
            batch_size=64, hidden_dim=16, sigma=0.0, epochs=epochs, lambda_curl=lambda_curl, show_progress_bar=False
        )
        nets, _ = train.fit(data, config)
        x = torch.cat(data.train).requires_grad_(True)
        v = nets.flow_net(x, 1.0)[0]
        return jacobian_asymmetry(v, x, exact=True).mean().item()

    assert asymmetry(10.0) < 0.3 * asymmetry(0.0)
