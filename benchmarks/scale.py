"""Cost of `rt.tl.fit_ruot` as the number of cells grows: time per epoch, fit time, peak memory, output speed.

Data: `rt.datasets.synthetic_branching(N, d, K)` (two branches with growth and death, seeded). Each N
runs in a fresh process, so peak memory (max RSS, including the data and the AnnData) is its own.
An epoch is a fixed number of optimisation steps on mini-batches of at most `batch_size` cells per
time point, so its cost should not depend on N; the outputs (velocity, drift, growth, potential of
every cell) are computed in chunks, so their cost is linear in N and their memory bounded.

Usage::

    python benchmarks/scale.py                              # N = 10k, 100k, 1M at d = 50, K = 5
    python benchmarks/scale.py --sizes 10000 100000 --dims 50
    python benchmarks/scale.py --eb                         # 17,000 cells x 100 dims x 5 times, defaults
"""

from __future__ import annotations

import argparse
import resource
import time

import pandas as pd
from _isolated import run_isolated

# fixed training budget for the scaling table (epochs per phase; 10 steps each)
BUDGET = {"pretrain": 6, "refine": 1, "score": 2, "joint": 1}


def run_one(spec: str, seed: int) -> pd.DataFrame:
    import numpy as np
    import torch

    import ruotools as rt
    from ruotools import _validation as val
    from ruotools.tl._fit import cell_outputs

    torch.set_num_threads(1)
    rt.settings.verbosity = "warning"
    n, d, k, budget = spec.split(":")
    adata = rt.datasets.synthetic_branching(int(n), int(d), int(k), random_state=seed)
    kwargs = {"random_state": seed, "show_progress_bar": False}
    if budget == "budget":
        kwargs["max_epochs"] = dict(BUDGET)
    start = time.perf_counter()
    model = rt.tl.fit_ruot(adata, "time", use_rep="X", **kwargs)
    fit_s = time.perf_counter() - start
    train_s = sum(h["seconds"] for h in model.history.values())
    epochs = sum(len(h["loss"]) for h in model.history.values())
    pre = model.history["pretrain"]

    # output throughput: every cell's velocity, drift, growth and potential, as fit_ruot computes them
    x, _, _ = val.resolve_rep(adata, "X", None)
    t = adata.obs["time"].to_numpy(dtype=np.float64)
    start = time.perf_counter()
    cell_outputs(model, x, t, np.ones(len(t), dtype=bool))
    out_s = time.perf_counter() - start
    row = {
        "cells": int(n),
        "dims": int(d),
        "times": int(k),
        "budget": budget,
        "s/epoch": train_s / epochs,
        "s/epoch pretrain": pre["seconds"] / len(pre["loss"]),
        "epochs": epochs,
        "training s": train_s,
        "fit s": fit_s,
        "peak RSS MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "outputs cells/s": len(t) / out_s,
    }
    if budget == "defaults":
        w1 = rt.tl.evaluate(adata, random_state=seed, max_cells=2000)["W1"].to_numpy()
        row["W1 per time"] = " / ".join(f"{w:.3f}" for w in w1)
    return pd.DataFrame([row])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=int, default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--dims", type=int, default=50)
    parser.add_argument("--times", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eb", action="store_true", help="embryoid-body-sized run with default settings")
    args = parser.parse_args(argv)
    specs = ["17000:100:5:defaults"] if args.eb else [f"{n}:{args.dims}:{args.times}:budget" for n in args.sizes]
    df = run_isolated(run_one, specs, [args.seed])
    print()
    if not args.eb:
        print(f"Fixed budget {BUDGET} (epochs of 10 steps), batch 512 cells per time point, 1 torch thread.\n")
    cols = [c for c in df.columns if c != "budget"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for _, r in df.iterrows():
        cells = [f"{r[c]:,.0f}" if c in ("cells", "outputs cells/s") else r[c] for c in cols]
        cells = [f"{v:.3g}" if isinstance(v, float) else str(v) for v in cells]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
