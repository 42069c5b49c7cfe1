"""Write the saved-model fixtures that ``tests/test_compat.py`` loads.

Run from the repository root, once per release that changes the stored format on purpose::

    python tests/data/make_fixtures.py

It fits ``TINY_FIT`` (``tests/conftest.py``) to a small subsample of
``rt.datasets.simulated_gene()`` and writes, next to this script:

* ``tiny_model/model.pt`` — the model, by ``RUOTModel.save``;
* ``tiny_fit.h5ad`` — the fitted AnnData (every output of ``fit_ruot`` and a deterministic
  ``rt.tl.simulate`` run in ``uns['ruot_trajectories']``), uncompressed (with ~120 small datasets,
  the chunk indexes of a compressed file would double its size).

Both files stay well under 200 KB. The test then checks that the current code still loads them
and recomputes the stored outputs, so a change that breaks files written by an earlier version
fails the test suite.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
MODEL_DIR = HERE / "tiny_model"
H5AD = HERE / "tiny_fit.h5ad"
N_PER_TIME = 20
SEED = 0
# the simulation stored in the h5ad (explicit, so a change of the defaults does not matter)
SIMULATE = {"times": [0.0, 1.0, 2.0, 3.0, 4.0], "stochastic": False, "n_steps_per_unit": 20}


def subsample(adata, n_per_time: int = N_PER_TIME, seed: int = SEED):
    """The same number of cells of every time point, in their original order."""
    t = adata.obs["time"].to_numpy()
    rng = np.random.default_rng(seed)
    idx = np.concatenate([rng.choice(np.flatnonzero(t == tk), n_per_time, replace=False) for tk in np.unique(t)])
    return adata[np.sort(idx)].copy()


def main() -> None:
    """Fit and write both fixtures."""
    import torch

    import ruotools as rt

    sys.path.insert(0, str(HERE.parent))
    from conftest import TINY_FIT

    torch.set_num_threads(1)
    adata = subsample(rt.datasets.simulated_gene())
    model = rt.tl.fit_ruot(adata, "time", use_rep="X", random_state=SEED, **TINY_FIT)
    rt.tl.simulate(adata, **SIMULATE)
    model.save(MODEL_DIR, overwrite=True)
    adata.write_h5ad(H5AD)
    for path in (MODEL_DIR / "model.pt", H5AD):
        print(f"{path.relative_to(HERE.parent.parent)}: {path.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
