"""Data-parallel training on torch.distributed (gloo, 2 CPU processes): identical weights on every rank,
outputs written once, results close to a single-process fit with the same total batch and seed."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import ruotools as rt
from ruotools._validation import check_strategy
from ruotools.core.config import TrainConfig
from ruotools.core.data import Snapshots
from ruotools.core.distributed import fit_in_launched_job, fit_spawned, local_gpu
from ruotools.core.train import fit

BUDGET = {"pretrain": 6, "refine": 1, "score": 2, "joint": 2}


def _toy():
    rng = np.random.default_rng(0)
    xs = [(rng.normal(size=(200, 2)) * 0.3 + [k, 0.5 * k]).astype(np.float32) for k in range(3)]
    return xs, [0.0, 1.0, 2.0], [1.0, 1.3, 1.6]


def test_spawned_ranks_hold_identical_weights_close_to_single_process():
    xs, times, masses = _toy()
    # no local stage: every pre-training epoch is validated, so the curves can be compared from the first
    cfg = TrainConfig(
        epochs=dict(BUDGET),
        hidden_dim=16,
        batch_size=64,
        steps_per_epoch=3,
        local_fraction=0.0,
        show_progress_bar=False,
    )
    state, hist, checksums = fit_spawned(
        xs, times, masses, cfg, n_processes=2, device_type="cpu", train_size=0.9, random_state=0
    )
    assert len(checksums) == 2
    assert checksums[0] == checksums[1]
    nets, single = fit(Snapshots(xs, times, masses), cfg)
    assert set(state) == set(nets.state_dict())
    # same total batch (2 × 32 vs 64), same seed, different mini-batches: the validation curves agree closely
    for phase in ("pretrain", "joint"):
        np.testing.assert_allclose(hist[phase]["val"], single[phase]["val"], rtol=0.05)
    assert hist["pretrain"]["val"][-1] < hist["pretrain"]["val"][0]


def test_fit_ruot_ddp_writes_outputs_like_single_process(tiny_fit_kwargs):
    kwargs = {**tiny_fit_kwargs, "max_epochs": dict(BUDGET)}
    ddp = rt.datasets.simulated_gene()
    rt.tl.fit_ruot(ddp, "time", strategy="ddp", devices=2, **kwargs)
    single = rt.datasets.simulated_gene()
    rt.tl.fit_ruot(single, "time", **kwargs)

    params = ddp.uns["ruot"]["params"]
    assert (params["strategy"], params["n_processes"], params["batch_size"]) == ("ddp", 2, 64)
    assert np.isfinite(ddp.layers["ruot_velocity"]).all()
    w_ddp = rt.tl.evaluate(ddp, random_state=0)["W1"].to_numpy()
    w_single = rt.tl.evaluate(single, random_state=0)["W1"].to_numpy()
    np.testing.assert_allclose(w_ddp, w_single, rtol=0.3)
    # the reloaded model is the one the ranks trained
    model = rt.RUOTModel.from_adata(ddp)
    np.testing.assert_allclose(
        model.velocity(np.asarray(ddp.X), ddp.obs["time"].to_numpy()), ddp.layers["ruot_velocity"], atol=1e-5
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_SCRIPT = textwrap.dedent(
    """
    import hashlib, json, os, sys
    import torch
    torch.set_num_threads(1)
    import ruotools as rt
    adata = rt.datasets.simulated_gene()
    before = set(adata.uns) | set(adata.layers) | set(adata.obs.columns)
    model = rt.tl.fit_ruot(adata, "time", strategy="ddp", **eval(sys.argv[2]))
    after = set(adata.uns) | set(adata.layers) | set(adata.obs.columns)
    h = hashlib.sha256()
    for k, v in sorted(model.nets.state_dict().items()):
        h.update(v.numpy().tobytes())
    rank = int(os.environ["RANK"])
    with open(os.path.join(sys.argv[1], f"rank{rank}.json"), "w") as f:
        json.dump({"written": sorted(after - before), "checksum": h.hexdigest()}, f)
    """
)


#: Epochs of the fits the launched scripts make.
TINY_BUDGET = {"pretrain": 2, "refine": 1, "score": 1, "joint": 1}


def _run_two_ranks(tmp_path, script_text: str, *args: str) -> list[dict]:
    """Run ``script_text`` as a 2-rank torchrun job (arguments: ``tmp_path`` and ``args``); each rank's JSON."""
    script = tmp_path / "job.py"
    script.write_text(script_text)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}"]
    proc = subprocess.run(
        [*cmd, str(script), str(tmp_path), *args],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]


def test_torchrun_job_trains_on_every_rank_and_rank0_writes(tmp_path, tiny_fit_kwargs):
    ranks = _run_two_ranks(tmp_path, _SCRIPT, repr({**tiny_fit_kwargs, "max_epochs": TINY_BUDGET}))
    assert ranks[0]["checksum"] == ranks[1]["checksum"]
    assert {"ruot", "ruot_velocity", "ruot_growth_rate"} <= set(ranks[0]["written"])
    assert ranks[1]["written"] == []


def test_ranks_started_without_torchrun_given_its_variables(tmp_path, tiny_fit_kwargs):
    """As under `srun bash -c 'RANK=$SLURM_PROCID LOCAL_RANK=$SLURM_LOCALID WORLD_SIZE=$SLURM_NTASKS python fit.py'`."""
    script = tmp_path / "fit.py"
    script.write_text(_SCRIPT)
    kwargs = {**tiny_fit_kwargs, "max_epochs": TINY_BUDGET}
    shared = {"WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "OMP_NUM_THREADS": "1"}
    ranks = [
        subprocess.Popen(
            [sys.executable, str(script), str(tmp_path), repr(kwargs)],
            env={**os.environ, **shared, "RANK": str(r), "LOCAL_RANK": str(r)},
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in (0, 1)
    ]
    for proc in ranks:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert results[0]["checksum"] == results[1]["checksum"]
    assert {"ruot", "ruot_velocity"} <= set(results[0]["written"])
    assert results[1]["written"] == []


_SKEWED_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import numpy as np
    import torch
    import torch.distributed as dist
    torch.set_num_threads(1)
    from ruotools.core import train
    from ruotools.core.config import TrainConfig
    from ruotools.core.data import Snapshots
    from ruotools.core.distributed import weights_checksum

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    own = train._Trainer._validation_score
    calls = []

    def skewed(self, phase):
        # as if rank 1's kernels rounded differently: its own scores would always look like an improvement
        calls.append(own(self, phase))
        return calls[-1] if rank == 0 else -float(len(calls))

    train._Trainer._validation_score = skewed
    if rank == 1:  # and its growth offset and score level would come out otherwise
        calibrate, pin = train.RUOTNetworks.calibrate_total_mass, train.RUOTNetworks.pin_score_level

        def skewed_calibration(nets, times, log_ratio):
            calibrate(nets, times, [r + 0.1 for r in log_ratio])

        def skewed_level(nets, times, cells):
            pin(nets, times, cells)
            nets.score_level_values += 0.1

        train.RUOTNetworks.calibrate_total_mass = skewed_calibration
        train.RUOTNetworks.pin_score_level = skewed_level
    rng = np.random.default_rng(0)
    xs = [(rng.normal(size=(200, 2)) * 0.3 + [k, 0.5 * k]).astype(np.float32) for k in range(3)]
    cfg = TrainConfig(
        epochs={"pretrain": 6, "refine": 1, "score": 2, "joint": 2}, hidden_dim=16, batch_size=32,
        steps_per_epoch=3, local_fraction=0.0, early_stopping=False, show_progress_bar=False,
    )
    nets, history = train.fit(Snapshots(xs, [0.0, 1.0, 2.0], [1.0, 1.3, 1.6]), cfg, distributed=True)
    vals = {phase: [float(v) for v in h["val"]] for phase, h in history.items()}
    with open(os.path.join(sys.argv[1], f"rank{rank}.json"), "w") as f:
        json.dump({"checksum": weights_checksum(nets), "val": vals, "own": calls}, f)
    dist.destroy_process_group()
    """
)


def test_ranks_take_rank0s_decisions_when_their_validation_scores_differ(tmp_path):
    """Ranks whose kernels round differently (other GPU models) would keep different states and offsets: they use
    rank 0's validation scores, growth offset and score level."""
    ranks = _run_two_ranks(tmp_path, _SKEWED_SCRIPT)
    assert ranks[0]["val"] == ranks[1]["val"]
    assert all(v >= 0 for v in ranks[0]["val"]["pretrain"])  # rank 0's scores, not rank 1's negative ones
    assert ranks[0]["checksum"] == ranks[1]["checksum"]
    # each rank did compute its own scores (rank 1's were then replaced by rank 0's)
    assert len(ranks[1]["own"]) == len(ranks[0]["own"]) > 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"strategy": "fsdp"}, r"`strategy` must be one of \['single', 'ddp'\], got 'fsdp'"),
        ({"devices": 2}, r"`devices=2` needs `strategy='ddp'`"),
        ({"strategy": "ddp", "devices": 0}, r"`devices` must be a positive integer or None, got 0"),
        ({"strategy": "ddp", "checkpoint_dir": "ckpt"}, r"`checkpoint_dir` is not supported with `strategy='ddp'`"),
    ],
)
def test_strategy_errors(kwargs, message, tiny_fit_kwargs):
    adata = rt.datasets.simulated_gene()
    with pytest.raises(ValueError, match=message):
        rt.tl.fit_ruot(adata, "time", **{**tiny_fit_kwargs, **kwargs})
    assert "ruot" not in adata.uns


def test_each_rank_finds_its_gpu_whether_it_sees_all_of_the_nodes_or_only_its_own():
    assert [local_gpu(r, 4) for r in range(4)] == [0, 1, 2, 3]  # torchrun: every rank sees the node's GPUs
    assert [local_gpu(r, 1) for r in range(4)] == [0, 0, 0, 0]  # srun --gpus-per-task=1: one GPU per rank
    with pytest.raises(ValueError, match=r"LOCAL_RANK=4 but sees 4 GPU\(s\): start at most one rank per GPU"):
        local_gpu(4, 4)


@pytest.mark.parametrize(("local_rank", "visible", "expected"), [(3, 1, 0), (3, 4, 3)])
def test_a_launched_rank_sets_the_gpu_it_sees(monkeypatch, local_rank, visible, expected):
    chosen = []

    class Stop(Exception):
        pass

    def init_process_group(*args, **kwargs):
        raise Stop

    monkeypatch.setenv("LOCAL_RANK", str(local_rank))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: visible)
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.distributed, "init_process_group", init_process_group)
    xs, times, masses = _toy()
    with pytest.raises(Stop):  # the GPU is chosen before the process group starts
        fit_in_launched_job(xs, times, masses, TrainConfig(), device_type="cuda", train_size=0.9, random_state=0)
    assert chosen == [torch.device("cuda", expected)]


def test_ddp_with_one_chosen_gpu_is_refused():
    with pytest.raises(ValueError, match=r"`device='cuda:1'` picks one GPU, but with `strategy='ddp'` rank r"):
        check_strategy("ddp", 2, torch.device("cuda", 1), None, launched=False)
    assert check_strategy("ddp", 2, torch.device("cpu"), None, launched=False) == 2


def test_cpu_training_in_an_nccl_process_group_is_refused(monkeypatch):
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_backend", lambda: "nccl")
    xs, times, masses = _toy()
    with pytest.raises(ValueError, match="uses NCCL, which communicates CUDA tensors only"):
        fit_in_launched_job(xs, times, masses, TrainConfig(), device_type="cpu", train_size=0.9, random_state=0)


@pytest.mark.skipif(torch.cuda.device_count() >= 2, reason="checks the error shown with fewer than 2 GPUs")
@pytest.mark.gpu
def test_ddp_on_more_gpus_than_visible(tiny_fit_kwargs):
    adata = rt.datasets.simulated_gene()
    kwargs = {**tiny_fit_kwargs, "accelerator": "cuda"}
    with pytest.raises(ValueError, match="only 1 CUDA device"):
        rt.tl.fit_ruot(adata, "time", strategy="ddp", devices=2, **kwargs)


def test_spawned_var_ruot_ranks_hold_identical_weights_close_to_single_process():
    """The least-action flavor (double backward through ∇λ in every step) trains data-parallel too."""
    xs, times, masses = _toy()
    cfg = TrainConfig(
        flavor="var_ruot",
        epochs={"least_action": 4, "score": 2},
        hidden_dim=16,
        batch_size=64,
        steps_per_epoch=3,
        hjb_points=32,
        show_progress_bar=False,
    )
    state, hist, checksums = fit_spawned(
        xs, times, masses, cfg, n_processes=2, device_type="cpu", train_size=0.9, random_state=0
    )
    assert checksums[0] == checksums[1]
    nets, single = fit(Snapshots(xs, times, masses), cfg)
    assert set(state) == set(nets.state_dict())
    np.testing.assert_allclose(hist["least_action"]["val"], single["least_action"]["val"], rtol=0.05)
