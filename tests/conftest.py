import importlib
import sys
from pathlib import Path

import pytest


def pytest_collection_modifyitems(config, items):
    """Skip tests marked ``gpu`` when no CUDA device is available."""
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if not gpu_items:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in gpu_items:
        item.add_marker(skip)


# --------------------------------------------------------------------------- shared fixtures

# Tiny training budget shared by the tests that only need *a* fitted model (a few seconds).
TINY_FIT = {
    "max_epochs": {"pretrain": 3, "refine": 1, "score": 2, "joint": 1},
    "hidden_dim": 16,
    "batch_size": 64,
    "show_progress_bar": False,
    "accelerator": "cpu",  # exact comparisons and bit-for-bit determinism are CPU properties
}


@pytest.fixture(scope="session", autouse=True)
def _torch_single_thread():
    """Run torch on one thread: the tiny networks of the tests gain nothing from more, and two
    OpenMP threads on a shared 2-core machine can slow a fit down by an order of magnitude."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_fit_kwargs():
    """Keyword arguments of ``rt.tl.fit_ruot`` for a fast fit (a fresh copy per use)."""
    import copy

    return copy.deepcopy(TINY_FIT)


@pytest.fixture(scope="session")
def _gene_fit_session():
    import ruotools as rt

    adata = rt.datasets.simulated_gene()
    model = rt.tl.fit_ruot(adata, "time", use_rep="X", random_state=0, **TINY_FIT)
    return adata, model


@pytest.fixture
def gene_fitted(_gene_fit_session):
    """``(adata, model)``: ``simulated_gene`` fitted once per session with ``TINY_FIT`` and
    ``use_rep="X"``; each test gets its own copy of the AnnData (the model is shared: don't modify it)."""
    adata, model = _gene_fit_session
    return adata.copy(), model


@pytest.fixture
def ruotools_log(caplog):
    """``caplog`` wired to the ``ruotools`` logger (which does not propagate to the root logger)."""
    import logging

    logger = logging.getLogger("ruotools")
    logger.addHandler(caplog.handler)
    caplog.set_level(logging.DEBUG, logger="ruotools")
    yield caplog
    logger.removeHandler(caplog.handler)


@pytest.fixture
def every_branch():
    """Training settings with every branch of a step on (growth, local stage, noise, Fokker–Planck and
    initial-density terms) and a function that runs all their phases on a ``_Trainer`` as ``fit`` does,
    returning each phase's history."""
    from ruotools.core import train
    from ruotools.core.config import PHASES, TrainConfig

    config = TrainConfig(
        batch_size=32,
        epochs={"pretrain": 2, "refine": 1, "score": 1, "joint": 1},
        steps_per_epoch=2,
        local_fraction=0.5,
        lambda_fp=1.0,
        lambda_init=0.1,
    )

    def run_every_phase(trainer):
        history = {}
        for phase in PHASES:
            history[phase] = trainer.run_phase(phase, config.epochs[phase], lambda it, **kwargs: train._Silent(it))
            if phase == "pretrain":
                trainer.calibrate_total_mass()  # the growth offset c(t) then enters every later step
        return history

    return config, run_every_phase


@pytest.fixture
def random_model():
    """``build(flavor, x, t)``: a RUOTModel with random weights and a non-trivial standardizer (x_scale 2.5,
    t_scale 3), for tests of derivatives in the user's units."""
    import numpy as np
    import torch

    import ruotools as rt
    from ruotools.core.config import TrainConfig
    from ruotools.core.data import Standardizer
    from ruotools.core.train import networks_from_config

    def build(flavor: str, x, t) -> rt.RUOTModel:
        torch.manual_seed(0)
        config = TrainConfig(flavor=flavor, hidden_dim=16, sigma=0.5)
        nets = networks_from_config(x.shape[1], config)
        with torch.no_grad():
            for p in nets.parameters():
                p.normal_(0.0, 0.7)
        st = Standardizer(x.mean(0), 2.5, float(t.min()), 3.0)
        times = np.unique(t)
        return rt.RUOTModel(
            nets, config, st, time_points=times, relative_mass=np.ones(len(times)), use_rep="X", time_key="time"
        )

    return build


# --------------------------------------------------------------------------- benchmark helpers under test

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _benchmark_module(name: str):
    """Import ``benchmarks/<name>.py`` (not a package), with the folder on the path while its tests run."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.fixture(scope="module")
def interpretation():
    yield from _benchmark_module("interpretation")


@pytest.fixture(scope="module")
def action_bound():
    yield from _benchmark_module("action_bound")
