"""Reproducibility of `rt.tl.fit_ruot` on the CPU (issue 6).

The same ``random_state`` gives bit-identical outputs and weights twice in one process and in a
fresh Python process; another seed gives different ones.
"""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

# Builds the data, fits and saves every output; run in this process and in a fresh one.
FIT_CODE = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import ruotools as rt

    def run(seed, fit_kwargs, path=None):
        adata = rt.datasets.simulated_gene()
        t = adata.obs["time"].to_numpy()
        rng = np.random.default_rng(0)
        idx = np.sort(np.concatenate([rng.choice(np.flatnonzero(t == tk), 30, replace=False) for tk in np.unique(t)]))
        adata = adata[idx].copy()
        rt.tl.fit_ruot(adata, "time", use_rep="X", random_state=seed, **fit_kwargs)
        out = {
            "velocity": adata.layers["ruot_velocity"],
            "drift": adata.layers["ruot_drift"],
            "growth": adata.obs["ruot_growth_rate"].to_numpy(),
            "potential": adata.obs["ruot_potential"].to_numpy(),
            "pretrain_loss": np.asarray(adata.uns["ruot"]["history"]["pretrain"]["loss"]),
        }
        out.update({"state/" + k: v for k, v in adata.uns["ruot"]["model"]["state"].items()})
        if path is not None:
            np.savez(path, **out)
        return out

    if __name__ == "__main__":
        import torch

        torch.set_num_threads(1)  # as in the test process (conftest)
        run(int(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3])
    """
)


def _run_here(seed, fit_kwargs):
    namespace = {"__name__": "fit_code"}
    exec(compile(FIT_CODE, "fit_code", "exec"), namespace)
    return namespace["run"](seed, fit_kwargs)


def _assert_identical(a, b):
    assert set(a) == set(b)
    for key in a:
        assert a[key].dtype == b[key].dtype, key
        # bitwise: NaN == NaN and -0.0 vs 0.0 would be told apart
        assert a[key].tobytes() == b[key].tobytes(), key


@pytest.fixture(scope="module")
def seed0(tiny_fit_kwargs):
    return _run_here(0, tiny_fit_kwargs)


def test_same_seed_same_outputs_in_one_process(seed0, tiny_fit_kwargs):
    _assert_identical(_run_here(0, tiny_fit_kwargs), seed0)


def test_same_seed_same_outputs_in_a_fresh_process(seed0, tiny_fit_kwargs, tmp_path):
    path = tmp_path / "fit.npz"
    proc = subprocess.run(
        [sys.executable, "-c", FIT_CODE, "0", json.dumps(tiny_fit_kwargs), str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    with np.load(path) as saved:
        _assert_identical({k: saved[k] for k in saved.files}, seed0)


def test_another_seed_gives_other_outputs(seed0, tiny_fit_kwargs):
    other = _run_here(1, tiny_fit_kwargs)
    for key in ("velocity", "growth", "potential", "pretrain_loss"):
        assert np.abs(other[key] - seed0[key]).max() > 1e-4, key
    assert any(not np.array_equal(other[k], seed0[k]) for k in seed0 if k.startswith("state/"))


def test_the_compared_fit_is_a_real_one(seed0):
    """What is compared is a trained model's output (5 time points × 30 cells, 2-D), not NaN or zeros."""
    assert seed0["velocity"].shape == (150, 2)
    assert np.isfinite(seed0["velocity"]).all()
    assert np.abs(seed0["velocity"]).max() > 0
    assert len(seed0["pretrain_loss"]) >= 1
