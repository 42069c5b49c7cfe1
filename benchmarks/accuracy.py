"""Accuracy and cost of `rt.tl.fit_ruot` with default settings on the bundled datasets.

Each (dataset, seed) is fitted in a fresh process so that wall time and peak memory are its
own; the model is then evaluated by METHOD.md §6 (all first-time-point cells pushed forward,
dt = 0.01, exact EMD against each later snapshot with the predicted weights). The path
action is reported with the fit's α and, to compare fits with different α, with α = 1.

Usage::

    python benchmarks/accuracy.py                     # all datasets, seeds 0 1 2
    python benchmarks/accuracy.py --datasets gene --seeds 0
    python benchmarks/accuracy.py --flavor var_ruot    # the least-action flavor
"""

from __future__ import annotations

import argparse
import functools
import resource
import time

import numpy as np
import pandas as pd
from _isolated import add_train_kwargs, pm, run_isolated, settings, with_train_kwargs

DATASETS = {
    "gene": ("simulated_gene", {}, {}),
    "mouse": ("mouse_hematopoiesis", {}, {}),
    "gaussian20": ("gaussian_mixture", {"n_dims": 20}, {}),
    "gaussian20-balanced": ("gaussian_mixture", {"n_dims": 20}, {"growth": False}),
    # above 50 columns fit_ruot asks for a PCA; these sets are fitted in all their dimensions
    "gaussian50": ("gaussian_mixture", {"n_dims": 50}, {"use_rep": "X"}),
    "gaussian100": ("gaussian_mixture", {"n_dims": 100}, {"use_rep": "X"}),
}

PUBLISHED_W1 = {  # DeepRUOT and Var-RUOT, ../shared/reference/RESULTS.md
    "deepruot": {"gene": [0.057, 0.081, 0.125, 0.154], "mouse": [0.146, 0.147]},
    "var_ruot": {"gene": [0.045, 0.039, 0.045, 0.057], "mouse": [0.120, 0.143]},
}


def run_one(name: str, seed: int, flavor: str = "deepruot", train_kwargs: dict | None = None) -> pd.DataFrame:
    import ruotools as rt

    loader, load_kw, fit_kw = DATASETS[name]
    fit_kw = with_train_kwargs(fit_kw, train_kwargs)
    adata = getattr(rt.datasets, loader)(**load_kw)
    rt.settings.verbosity = "warning"
    start = time.perf_counter()
    rt.tl.fit_ruot(adata, time_key="time", random_state=seed, show_progress_bar=False, flavor=flavor, **fit_kw)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = []
    for mode, stochastic in (("SDE", True), ("ODE", False)):
        table = rt.tl.evaluate(adata, stochastic=stochastic, random_state=seed)
        if stochastic:  # the same particles, the action's growth term weighed by α = 1 for both flavors
            common = rt.tl.evaluate(adata, stochastic=True, random_state=seed, action_alpha=1.0)
            table["action_a1"] = common["action"]
        for t, row in table.iterrows():
            rows.append({"dataset": name, "seed": seed, "mode": mode, "time": t, **row.to_dict()})
    df = pd.DataFrame(rows)
    df["fit_s"] = seconds
    df["peak_mb"] = peak_mb
    return df


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--flavor", default="deepruot", choices=["deepruot", "var_ruot"])
    parser.add_argument("--csv", default=None, help="also write the per-seed rows to this CSV")
    add_train_kwargs(parser)
    args = parser.parse_args(argv)

    df = run_isolated(
        functools.partial(run_one, flavor=args.flavor, train_kwargs=args.train_kwargs), args.datasets, args.seeds
    )
    if args.csv:
        df.to_csv(args.csv, index=False)

    print(f"\nFlavor {args.flavor}, {settings(args.train_kwargs)}, seeds {args.seeds}; mean ± std over seeds.\n")
    columns = ["W1 (SDE)", "W2 (SDE)", "W1 (ODE)", "W2 (ODE)", "TMV (SDE)", "TMV (ODE)", "action (SDE)"]
    columns += ["action α=1 (SDE)", "DeepRUOT W1", "Var-RUOT W1"]
    print("| dataset | time | " + " | ".join(columns) + " |")
    print("|---|---|" + "---|" * len(columns))
    for name in args.datasets:
        sub = df[df.dataset == name]
        for k, t in enumerate(sorted(sub.time.unique())):
            sde = sub[(sub.time == t) & (sub["mode"] == "SDE")]
            ode = sub[(sub.time == t) & (sub["mode"] == "ODE")]
            refs = []
            for published in PUBLISHED_W1.values():
                pub = published.get(name, [])
                refs.append(f"{pub[k]:.3f}" if k < len(pub) else "–")
            cells = [pm(sde.W1), pm(sde.W2), pm(ode.W1), pm(ode.W2), pm(sde.TMV), pm(ode.TMV), pm(sde.action)]
            cells += [pm(sde.action_a1), *refs]
            print(f"| {name} | {t:g} | " + " | ".join(cells) + " |")
    print("\n| dataset | fit time (s) | peak memory (MB) | W1 std / mean (SDE, worst time) |")
    print("|---|---|---|---|")
    for name in args.datasets:
        sub = df[df.dataset == name]
        per_seed = sub.groupby("seed").first()
        sde = sub[sub["mode"] == "SDE"].groupby("time").W1
        cv = (sde.std(ddof=1) / sde.mean()).max() if len(args.seeds) > 1 else np.nan
        print(f"| {name} | {pm(per_seed.fit_s)} | {per_seed.peak_mb.max():.0f} | {cv:.1%} |")


if __name__ == "__main__":
    main()
