"""Numerical safety: a non-finite loss stops the phase and restores the last good state; extreme scales work."""

import logging

import numpy as np
import pytest
import torch

import ruotools as rt
from ruotools.core import train as train_mod


@pytest.mark.parametrize("phase", ["pretrain", "joint"])
def test_non_finite_loss_restores_last_good_state(monkeypatch, tiny_fit_kwargs, ruotools_log, phase):
    step, calls = train_mod._Trainer.step, {"n": 0}

    def poisoned_step(self, which):
        loss, parts = step(self, which)
        if which == phase:
            calls["n"] += 1
            if calls["n"] == 12:  # in the second epoch: the first one produced a good state
                return loss * float("nan"), parts
        return loss, parts

    monkeypatch.setattr(train_mod._Trainer, "step", poisoned_step)
    adata = rt.datasets.simulated_gene()
    kwargs = {**tiny_fit_kwargs, "max_epochs": {"pretrain": 4, "refine": 1, "score": 1, "joint": 3}}
    kwargs["train_kwargs"] = {"local_fraction": 0.0}
    model = rt.tl.fit_ruot(adata, "time", **kwargs)

    hist = model.history[phase]
    assert hist["stopped"] == "non-finite loss at epoch 1; restored the best state"
    assert len(hist["loss"]) == 1  # the epoch that failed is not recorded
    warnings = [r.getMessage() for r in ruotools_log.records if r.levelno == logging.WARNING]
    expected = f"{phase} phase: the loss became non-finite at epoch 1; restored the last good state"
    assert any(expected in m and "Lower the learning rate" in m for m in warnings)
    # the later phases ran from the restored state and every output is finite
    assert all(np.isfinite(p.detach().numpy()).all() for p in model.nets.parameters())
    assert np.isfinite(adata.obs["ruot_growth_rate"]).all()
    assert np.isfinite(adata.layers["ruot_velocity"]).all()


@pytest.mark.parametrize(("x_scale", "t_scale"), [(1e6, 1e-6), (1e-6, 1e6)])
def test_extreme_coordinate_and_time_scales(tiny_fit_kwargs, x_scale, t_scale):
    """Internal standardisation makes the fit invariant to units: outputs are the unit-scale fit's,
    converted (velocity × x_scale / t_scale, growth / t_scale)."""
    torch.set_num_threads(1)
    base = rt.datasets.simulated_gene()
    scaled = base.copy()
    scaled.X = (np.asarray(base.X, dtype=np.float64) * x_scale).astype(np.float32)
    scaled.obs["time"] = base.obs["time"] * t_scale
    rt.tl.fit_ruot(base, "time", **tiny_fit_kwargs)
    rt.tl.fit_ruot(scaled, "time", **tiny_fit_kwargs)

    v0, v1 = base.layers["ruot_velocity"], scaled.layers["ruot_velocity"]
    assert np.isfinite(v1).all()
    np.testing.assert_allclose(v1, v0 * x_scale / t_scale, rtol=1e-3, atol=1e-3 * np.abs(v0 * x_scale / t_scale).max())
    g0, g1 = base.obs["ruot_growth_rate"].to_numpy(), scaled.obs["ruot_growth_rate"].to_numpy()
    np.testing.assert_allclose(g1, g0 / t_scale, rtol=1e-3, atol=1e-3 * np.abs(g0 / t_scale).max())
