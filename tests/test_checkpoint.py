"""Checkpointing and resumption: an interrupted fit resumes to the same weights, bit for bit (CPU)."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

import ruotools as rt
from ruotools.core import checkpoint as ckpt_mod
from ruotools.core.config import TrainConfig
from ruotools.core.data import Snapshots
from ruotools.core.train import fit


def _config(**kw):
    base = {
        "epochs": {"pretrain": 4, "refine": 2, "score": 2, "joint": 2},
        "hidden_dim": 16,
        "batch_size": 32,
        "steps_per_epoch": 3,
        "show_progress_bar": False,
    }
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def snapshots():
    rng = np.random.default_rng(0)
    xs = [(rng.normal(size=(60, 2)) + k).astype(np.float32) for k in range(3)]
    return Snapshots(xs, [0.0, 1.0, 2.0], [1.0, 1.2, 1.5])


def _same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def uninterrupted(snapshots):
    return fit(snapshots, _config())


# 11 saves in all: 4 + 2 + 2 + 2 epochs and 4 phase ends; interrupt inside each phase and at a phase end
@pytest.mark.parametrize("kill_after", [1, 4, 6, 8, 10, 14])
def test_interrupted_fit_resumes_bitwise(snapshots, uninterrupted, tmp_path, monkeypatch, kill_after):
    ref_nets, ref_hist = uninterrupted
    save, calls = ckpt_mod.Checkpointer.save, []

    def interrupting_save(self, state):
        save(self, state)
        calls.append(state["phase"])
        if len(calls) == kill_after:
            raise KeyboardInterrupt

    monkeypatch.setattr(ckpt_mod.Checkpointer, "save", interrupting_save)
    with pytest.raises(KeyboardInterrupt):
        fit(snapshots, _config(), checkpoint_dir=tmp_path)
    monkeypatch.setattr(ckpt_mod.Checkpointer, "save", save)

    nets, hist = fit(snapshots, _config(), checkpoint_dir=tmp_path, resume=True)
    assert _same_weights(nets, ref_nets)
    for phase in ref_hist:
        np.testing.assert_array_equal(hist[phase]["val"], ref_hist[phase]["val"])
        assert hist[phase]["stopped"] == ref_hist[phase]["stopped"]


def test_interrupted_fit_with_the_curl_penalty_resumes_bitwise(snapshots, tmp_path, monkeypatch):
    # the penalty draws its cells from the fit's generator: the checkpoint must restore that stream too
    config = _config(lambda_curl=0.5)
    ref_nets, _ = fit(snapshots, config)
    assert not _same_weights(ref_nets, fit(snapshots, _config())[0])
    save, calls = ckpt_mod.Checkpointer.save, []

    def interrupting_save(self, state):
        save(self, state)
        calls.append(state["phase"])
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(ckpt_mod.Checkpointer, "save", interrupting_save)
    with pytest.raises(KeyboardInterrupt):
        fit(snapshots, config, checkpoint_dir=tmp_path)
    monkeypatch.setattr(ckpt_mod.Checkpointer, "save", save)
    nets, _ = fit(snapshots, config, checkpoint_dir=tmp_path, resume=True)
    assert _same_weights(nets, ref_nets)


def test_resume_of_finished_fit_returns_it(snapshots, uninterrupted, tmp_path):
    fit(snapshots, _config(), checkpoint_dir=tmp_path)
    nets, _ = fit(snapshots, _config(), checkpoint_dir=tmp_path, resume=True)
    assert _same_weights(nets, uninterrupted[0])


def test_resume_rejects_other_settings(snapshots, tmp_path):
    fit(snapshots, _config(epochs={"pretrain": 1, "refine": 0, "score": 0, "joint": 0}), checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="other data or settings"):
        fit(snapshots, _config(hidden_dim=8), checkpoint_dir=tmp_path, resume=True)


def test_resume_rejects_a_generator_of_another_device(snapshots, tmp_path):
    """A GPU fit draws with a CUDA generator, whose state a CPU generator cannot take (and vice versa)."""
    config = _config(epochs={"pretrain": 1, "refine": 0, "score": 0, "joint": 0})
    fit(snapshots, config, checkpoint_dir=tmp_path)
    path = tmp_path / ckpt_mod.STATE_FILE
    state = torch.load(path, weights_only=False)
    assert state["generator_device"] == "cpu"
    state["generator_device"] = "cuda"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"random generator was on the cuda .* resume it with the accelerator"):
        fit(snapshots, config, checkpoint_dir=tmp_path, resume=True)


def test_resume_without_state_starts_over(snapshots, uninterrupted, tmp_path):
    nets, _ = fit(snapshots, _config(), checkpoint_dir=tmp_path / "empty", resume=True)
    assert _same_weights(nets, uninterrupted[0])
    assert (tmp_path / "empty" / ckpt_mod.STATE_FILE).is_file()


def test_fit_ruot_resume_needs_checkpoint_dir(tiny_fit_kwargs):
    adata = rt.datasets.simulated_gene()
    before = adata.copy()
    with pytest.raises(ValueError, match="`resume=True` needs the `checkpoint_dir`"):
        rt.tl.fit_ruot(adata, "time", resume=True, **tiny_fit_kwargs)
    assert set(adata.uns) == set(before.uns)
    assert set(adata.obs.columns) == set(before.obs.columns)


_CHILD = textwrap.dedent(
    """
    import sys, torch
    torch.set_num_threads(1)
    import ruotools as rt
    adata = rt.datasets.simulated_gene()
    rt.tl.fit_ruot(adata, "time", checkpoint_dir=sys.argv[1], **eval(sys.argv[2]))
    """
)


def test_killed_process_resumes_to_uninterrupted_weights(tmp_path, tiny_fit_kwargs):
    """A fit in a subprocess killed (SIGKILL) mid-phase resumes, in this process, to the weights of an
    uninterrupted fit with the same seed."""
    kwargs = {**tiny_fit_kwargs, "max_epochs": {"pretrain": 40, "refine": 2, "score": 2, "joint": 2}}
    state_file = tmp_path / ckpt_mod.STATE_FILE
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(tmp_path), repr(kwargs)],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        state = None
        while time.monotonic() < deadline and child.poll() is None:
            if state_file.exists():
                state = torch.load(state_file, weights_only=False)
                if state["phase"] == 0 and state["phase_state"]["epoch"] >= 3:
                    break
            time.sleep(0.05)
        assert child.poll() is None, f"the fit ended before it could be killed: {child.stderr.read().decode()[-500:]}"
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=60)
    state = torch.load(state_file, weights_only=False)
    assert state["phase"] == 0, "killed mid-pretrain"
    assert 3 <= state["phase_state"]["epoch"] < 39

    adata = rt.datasets.simulated_gene()
    resumed = rt.tl.fit_ruot(adata, "time", checkpoint_dir=tmp_path, resume=True, **kwargs)
    reference = rt.tl.fit_ruot(rt.datasets.simulated_gene(), "time", **kwargs)
    assert _same_weights(resumed.nets, reference.nets)
    assert (tmp_path / "model.pt").is_file()  # the fitted model is saved next to the training state


# --------------------------------------------------------------------------- unreadable checkpoints


def _folder_bytes(folder) -> dict:
    """Every file under ``folder`` (relative path → content)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _spoil(kind: str, path) -> None:
    if kind == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "random bytes":
        path.write_bytes(np.random.default_rng(1).bytes(2048))
    else:
        raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["truncated", "empty", "random bytes"])
def test_resume_of_a_corrupt_checkpoint_is_a_clear_error(snapshots, tmp_path, kind):
    config = _config(epochs={"pretrain": 2, "refine": 0, "score": 0, "joint": 0})
    fit(snapshots, config, checkpoint_dir=tmp_path)
    path = tmp_path / ckpt_mod.STATE_FILE
    _spoil(kind, path)
    before = _folder_bytes(tmp_path)
    with pytest.raises(ValueError, match=r"truncated or corrupt.*Delete it.*resume=False") as info:
        fit(snapshots, config, checkpoint_dir=tmp_path, resume=True)
    assert str(path) in str(info.value)
    assert _folder_bytes(tmp_path) == before  # nothing overwritten, nothing added


def test_resume_of_a_foreign_torch_file_is_a_clear_error(snapshots, tmp_path):
    """A readable torch file that is not a training state (here a bare tensor) is named as such."""
    path = tmp_path / ckpt_mod.STATE_FILE
    torch.save(torch.arange(3), path)
    before = _folder_bytes(tmp_path)
    with pytest.raises(ValueError, match=r"not a ruotools training checkpoint.*resume=False"):
        fit(snapshots, _config(), checkpoint_dir=tmp_path, resume=True)
    assert _folder_bytes(tmp_path) == before


def test_fit_ruot_resume_of_a_truncated_checkpoint_changes_nothing(tmp_path, tiny_fit_kwargs):
    """Through `fit_ruot`: the training state and the saved model stay as they were, and so does adata."""
    kwargs = {**tiny_fit_kwargs, "max_epochs": {"pretrain": 2, "refine": 0, "score": 0, "joint": 0}}
    rt.tl.fit_ruot(rt.datasets.simulated_gene(), "time", checkpoint_dir=tmp_path, **kwargs)
    assert {p.name for p in tmp_path.iterdir()} == {ckpt_mod.STATE_FILE, "model.pt"}
    _spoil("truncated", tmp_path / ckpt_mod.STATE_FILE)
    before = _folder_bytes(tmp_path)
    adata = rt.datasets.simulated_gene()
    uns, obs, obsm = set(adata.uns), list(adata.obs.columns), set(adata.obsm)
    with pytest.raises(ValueError, match=rf"{ckpt_mod.STATE_FILE}.*truncated or corrupt.*resume=False"):
        rt.tl.fit_ruot(adata, "time", checkpoint_dir=tmp_path, resume=True, **kwargs)
    assert _folder_bytes(tmp_path) == before
    assert (set(adata.uns), list(adata.obs.columns), set(adata.obsm)) == (uns, obs, obsm)
