"""Held-out time points: refit without each interior snapshot and predict it (default settings).

Prints W1/W2 of the model at the held-out time next to two model-free references (the nearest
observed snapshot and OT displacement interpolation between its neighbours) and the published
DeepRUOT / Var-RUOT numbers (../shared/reference/RESULTS.md).

Usage::

    python benchmarks/holdout.py                      # gene and mouse, seeds 0 1 2
    python benchmarks/holdout.py --datasets gene --seeds 0
    python benchmarks/holdout.py --flavor var_ruot     # the least-action flavor
    python benchmarks/holdout.py --train-kwargs '{"lambda_curl": 0.02}'
"""

from __future__ import annotations

import argparse
import functools

import pandas as pd
from _isolated import add_train_kwargs, pm, run_isolated, settings, with_train_kwargs

DATASETS = {"gene": "simulated_gene", "mouse": "mouse_hematopoiesis"}
PUBLISHED = {  # held-out W1: DeepRUOT, Var-RUOT
    "gene": {1.0: (0.096, 0.088), 2.0: (0.089, 0.104), 3.0: (0.118, 0.094)},
    "mouse": {1.0: (0.62, 0.27)},
}


def run_one(name: str, seed: int, flavor: str = "deepruot", train_kwargs: dict | None = None) -> pd.DataFrame:
    import ruotools as rt

    rt.settings.verbosity = "warning"
    adata = getattr(rt.datasets, DATASETS[name])()
    fit_kw = with_train_kwargs(None, train_kwargs)
    table = rt.tl.holdout_time(adata, "time", random_state=seed, flavor=flavor, **fit_kw)
    return table.reset_index().assign(dataset=name, seed=seed)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--flavor", default="deepruot", choices=["deepruot", "var_ruot"])
    add_train_kwargs(parser)
    args = parser.parse_args(argv)
    df = run_isolated(
        functools.partial(run_one, flavor=args.flavor, train_kwargs=args.train_kwargs), args.datasets, args.seeds
    )

    print(
        f"\nHeld-out time points, flavor {args.flavor}, {settings(args.train_kwargs)}, seeds {args.seeds}; "
        "mean ± std (SDE).\n"
    )
    print("| dataset | held out | W1 | W2 | W1 nearest snapshot | W1 OT interpolation | DeepRUOT W1 | Var-RUOT W1 |")
    print("|---|---|---|---|---|---|---|---|")
    for (name, t), sub in df.groupby(["dataset", "time"]):
        deep, var = PUBLISHED.get(name, {}).get(t, ("–", "–"))
        cells = [pm(sub.W1), pm(sub.W2), pm(sub.W1_nearest), pm(sub.W1_interp), str(deep), str(var)]
        print(f"| {name} | {t:g} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
