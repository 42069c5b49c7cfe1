"""The core on a CUDA device (skipped without one): same results as on CPU, tensors stay on the device."""

import numpy as np
import pytest
import torch

import ruotools as rt
from ruotools.core import checkpoint, train
from ruotools.core import ot as ot_module
from ruotools.core.data import Snapshots
from ruotools.core.dynamics import integrate
from ruotools.core.networks import RUOTNetworks
from ruotools.core.ot import ot_loss

pytestmark = pytest.mark.gpu


def test_integrate_on_cuda_matches_cpu():
    torch.manual_seed(0)
    nets = RUOTNetworks(3, 16, 2, sigma=0.1)
    x0 = torch.randn(64, 3)
    ell0 = torch.full((64,), -np.log(64.0))
    kwargs = {"steps_per_unit": 4, "stochastic": False, "sigma": 0.1, "alpha": 1.0, "with_action": True}
    cpu = integrate(nets, x0, ell0, [0.0, 1.0, 2.0], **kwargs)
    gpu = integrate(nets.cuda(), x0.cuda(), ell0.cuda(), [0.0, 1.0, 2.0], **kwargs)
    for key in ("x", "log_mass", "action"):
        for a, b in zip(cpu[key], gpu[key], strict=True):
            assert b.is_cuda
            np.testing.assert_allclose(b.cpu().numpy(), a.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("emd_max", [3000, 10])  # exact plan (host) and Sinkhorn (on the device)
def test_ot_loss_gradient_on_cuda(emd_max):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(100, 4, generator=g).cuda().requires_grad_(True)
    y = torch.randn(120, 4, generator=g).cuda() + 0.5
    w = torch.rand(100, generator=g).cuda().requires_grad_(True)
    loss = ot_loss(x, y, w, emd_max=emd_max, epsilon=0.01)
    loss.backward()
    assert loss.is_cuda
    assert x.grad.is_cuda
    assert w.grad.is_cuda
    assert torch.isfinite(x.grad).all()
    assert torch.isfinite(w.grad).all()


def test_fit_on_cuda(tiny_fit_kwargs):
    kwargs = {**tiny_fit_kwargs, "accelerator": "cuda"}
    gpu = rt.datasets.simulated_gene()
    model = rt.tl.fit_ruot(gpu, "time", **kwargs)
    assert next(model.nets.parameters()).is_cuda
    assert gpu.uns["ruot"]["params"]["device"].startswith("cuda")
    assert np.isfinite(gpu.layers["ruot_velocity"]).all()
    cpu = rt.datasets.simulated_gene()
    rt.tl.fit_ruot(cpu, "time", **tiny_fit_kwargs)
    # other kernels and other random numbers (the GPU draws its own): the accuracy agrees, not the bits
    # (the tiny fit's W1 varies by up to 20 % between CPU seeds)
    w_gpu = rt.tl.evaluate(gpu, random_state=0)["W1"].to_numpy()
    w_cpu = rt.tl.evaluate(cpu, random_state=0)["W1"].to_numpy()
    np.testing.assert_allclose(w_gpu, w_cpu, rtol=0.5)


def test_model_results_come_back_on_the_device_of_the_positions(tiny_fit_kwargs):
    adata = rt.datasets.simulated_gene()
    model = rt.tl.fit_ruot(adata, "time", **tiny_fit_kwargs)
    x = torch.as_tensor(adata.X[:20], dtype=torch.float32)
    on_cpu = model.velocity(x, 1.0)
    for model_device in ("cpu", "cuda"):
        model.to(model_device)
        for x_device in ("cpu", "cuda"):
            v = model.velocity(x.to(x_device), 1.0)
            assert v.device.type == x_device, (model_device, x_device)
            np.testing.assert_allclose(v.cpu().numpy(), on_cpu.numpy(), rtol=1e-4, atol=1e-5)
        out = model.simulate(x.cuda().requires_grad_(), [0.0, 1.0], stochastic=False)
        assert isinstance(out["X"], np.ndarray)
    # the functions of rt.tl take the model (and its device) when it is passed
    rt.tl.simulate(adata, model=model, n_particles=50)


def test_a_gpu_index_beyond_the_visible_ones_is_refused(tiny_fit_kwargs):
    adata = rt.datasets.simulated_gene()
    n = torch.cuda.device_count()
    with pytest.raises(ValueError, match=f"`device={n}` but only {n} CUDA device"):
        rt.tl.fit_ruot(adata, "time", **{**tiny_fit_kwargs, "accelerator": "cuda", "device": n})
    assert "ruot" not in adata.uns


def test_ddp_with_nccl_on_one_gpu(tiny_fit_kwargs):
    adata = rt.datasets.simulated_gene()
    rt.tl.fit_ruot(adata, "time", strategy="ddp", devices=1, **{**tiny_fit_kwargs, "accelerator": "cuda"})
    assert adata.uns["ruot"]["params"]["n_processes"] == 1
    assert np.isfinite(adata.obs["ruot_growth_rate"]).all()


def test_training_steps_do_not_synchronise_with_the_host(monkeypatch, every_branch):
    """In every phase, CUDA work waits for the host only in the exact OT plan (and once per epoch).

    ``torch.cuda.set_sync_debug_mode("error")`` raises on any synchronising call (a read-back, a copy
    from pageable host memory); the plan, validation, the epoch's loss check and the phase-level set-up
    run with it off.
    """
    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(300, 3, generator=g) + k for k in range(3)]
    data = Snapshots(xs, [0.0, 1.0, 2.0], [1.0, 1.3, 1.6], device="cuda")
    config, run_every_phase = every_branch
    nets = RUOTNetworks.from_config(data.dim, config).cuda()
    trainer = train._Trainer(data, config, nets)

    def synchronising(fn):
        def run(*args, **kwargs):
            mode = torch.cuda.get_sync_debug_mode()
            torch.cuda.set_sync_debug_mode(0)
            try:
                return fn(*args, **kwargs)
            finally:
                torch.cuda.set_sync_debug_mode(mode)

        return run

    monkeypatch.setattr(ot_module, "transport_plans", synchronising(ot_module.transport_plans))
    for name in ("validate", "_loss_values", "_bridge_pairs", "calibrate_total_mass"):
        monkeypatch.setattr(train._Trainer, name, synchronising(getattr(train._Trainer, name)))
    torch.cuda.set_sync_debug_mode("error")
    try:
        history = run_every_phase(trainer)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert all(hist["stopped"] == "max_epochs" for hist in history.values())
    assert all(torch.isfinite(p).all() for p in nets.parameters())


def test_resume_on_cuda(tiny_fit_kwargs, tmp_path):
    """A checkpoint written on the GPU resumes there (the random generator's state is a host tensor)."""
    kwargs = {**tiny_fit_kwargs, "accelerator": "cuda", "checkpoint_dir": tmp_path}
    first = rt.datasets.simulated_gene()
    rt.tl.fit_ruot(first, "time", **kwargs)
    again = rt.datasets.simulated_gene()
    rt.tl.fit_ruot(again, "time", resume=True, **kwargs)
    np.testing.assert_array_equal(again.layers["ruot_velocity"], first.layers["ruot_velocity"])


def test_resumed_phase_keeps_the_optimiser_counters_on_the_host(tiny_fit_kwargs, tmp_path, monkeypatch):
    """A checkpoint is loaded onto the GPU; Adam's step counters must go back to the host, or every step reads back."""
    kwargs = {**tiny_fit_kwargs, "accelerator": "cuda", "checkpoint_dir": tmp_path}
    save, saves = checkpoint.Checkpointer.save, []

    def interrupting_save(self, state):
        save(self, state)
        saves.append(state["phase"])
        if len(saves) == 2:  # inside pre-training, with the optimiser's state saved
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint.Checkpointer, "save", interrupting_save)
    with pytest.raises(KeyboardInterrupt):
        rt.tl.fit_ruot(rt.datasets.simulated_gene(), "time", **kwargs)
    monkeypatch.setattr(checkpoint.Checkpointer, "save", save)

    adam_step, counters = torch.optim.Adam.step, []

    def spy(self, *args, **kw):
        counters.extend(state["step"].device.type for state in self.state.values())
        return adam_step(self, *args, **kw)

    monkeypatch.setattr(torch.optim.Adam, "step", spy)
    rt.tl.fit_ruot(rt.datasets.simulated_gene(), "time", resume=True, **kwargs)
    assert counters
    assert set(counters) == {"cpu"}
