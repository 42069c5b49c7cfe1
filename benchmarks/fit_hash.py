"""Fingerprints of short CPU fits: check that a change leaves the fits it does not aim at bit-identical.

For each flavor and data set (gene network, mouse hematopoiesis, 20-D Gaussian mixture; 800 random cells,
2 epochs per phase, ``random_state=3``) it prints the first 12 hex digits of a SHA-256 of the fitted
weights, the training history and the per-cell outputs. Run it before and after a change (e.g. on a
``git worktree`` of the previous commit with ``PYTHONPATH`` pointing there) and compare::

    python benchmarks/fit_hash.py
    python benchmarks/fit_hash.py --flavors var_ruot --train-kwargs '{"lambda_geodesic": 0.1}'
"""

from __future__ import annotations

import argparse
import hashlib

import numpy as np
from _isolated import add_train_kwargs, with_train_kwargs

DATASETS = {"gene": "simulated_gene", "mouse": "mouse_hematopoiesis", "gaussian": "gaussian_mixture"}


def fit_hash(name: str, flavor: str, n_cells: int = 800, seed: int = 3, train_kwargs: dict | None = None) -> str:
    """SHA-256 (12 hex digits) of a short fit's weights, history and outputs (``train_kwargs`` passed to the fit)."""
    import ruotools as rt

    adata = getattr(rt.datasets, DATASETS[name])()
    adata = adata[np.random.default_rng(seed).choice(adata.n_obs, n_cells, replace=False)].copy()
    fit_kw = with_train_kwargs({"max_epochs": 2, "random_state": seed, "show_progress_bar": False}, train_kwargs)
    model = rt.tl.fit_ruot(adata, "time", flavor=flavor, **fit_kw)
    h = hashlib.sha256()
    for key, value in sorted(model.nets.state_dict().items()):
        h.update(key.encode())
        h.update(value.detach().cpu().numpy().tobytes())
    for phase, record in sorted(adata.uns["ruot"]["history"].items()):
        h.update(phase.encode())
        for key in ("loss", "val"):
            h.update(np.asarray(record[key], np.float64).tobytes())
    for key in sorted(adata.obsm):
        h.update(np.ascontiguousarray(adata.obsm[key]).tobytes())
    for key in ("ruot_growth_rate", "ruot_potential"):
        h.update(adata.obs[key].to_numpy().tobytes())
    return h.hexdigest()[:12]


def main(argv=None) -> None:
    import ruotools as rt

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--flavors", nargs="+", default=["deepruot", "var_ruot"], choices=["deepruot", "var_ruot"])
    add_train_kwargs(parser)
    args = parser.parse_args(argv)
    rt.settings.verbosity = "error"
    print("| flavor | " + " | ".join(DATASETS) + " |")
    print("|---|" + "---|" * len(DATASETS))
    for flavor in args.flavors:
        hashes = [fit_hash(name, flavor, train_kwargs=args.train_kwargs) for name in DATASETS]
        print(f"| {flavor} | " + " | ".join(hashes) + " |", flush=True)


if __name__ == "__main__":
    main()
