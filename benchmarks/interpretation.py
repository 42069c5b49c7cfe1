"""What a fit says about growth and regulation, checked against simulators with known truth.

For each simulator (data seed 0) and fit seed, with default settings of the chosen flavor:

* growth: Spearman correlation of ``obs['ruot_growth_rate']`` with the true net growth rate
  (division − death) over the cells of each time point, reported where the true rate varies
  (std across cells ≥ 0.1 log-mass per unit time);
* regulation: ``rt.tl.jacobian`` (mean over all cells) against the truth — on the regulatory
  network, the sign agreement on the true edges and the AUROC of |J| separating edges from
  non-edges (off-diagonal entries); on the three-gene network, the sign agreement with the true
  mean Jacobian of each lineage at each time, on the entries where it is clearly non-zero
  (|J| ≥ 0.05, the diagonal included), averaged over the lineage × time groups;
* growth drivers: the rank of the true growth gene (whose effect is positive in every simulation) in
  ``rt.tl.growth_genes``: its own rank (``signed rank``: most positive mean ∂g/∂gene first) and the rank by
  |mean ∂g/∂gene|, whatever the sign (1 = first);
* fates (the bifurcating network): ``rt.tl.fate_probabilities`` of the first time point's cells
  (clusters ``obs['lineage']``) against the true share of a cell's descendants in the x1 lineage at
  the last time (:func:`true_fate_probabilities`): the Spearman
  correlation of P(x1), its mean, and its largest |Spearman| with an unregulated noise gene (the truth's
  own value, near 0, in the row's name).

With ``--ceilings``, instead (no fit): the best edge AUROC and sign agreement that a *symmetric*
Jacobian can reach on each simulator with a true regulation matrix — the ceiling of ``flavor="var_ruot"``,
whose drift ∇λ has a symmetric Jacobian (the Hessian of λ).

With ``--identifiability``, instead: ``rt.tl.growth_identifiability`` on each simulation (a growth
fit and a balanced fit, same settings and seed) — does a model without cell-specific growth match
the snapshots as well?

Usage::

    python benchmarks/interpretation.py                       # the three simulations, seeds 0 1 2
    python benchmarks/interpretation.py --flavor var_ruot
    python benchmarks/interpretation.py --datasets regulatory --seeds 0
    python benchmarks/interpretation.py --datasets lineages_mild   # lineages from the start, both sizeable
    python benchmarks/interpretation.py --identifiability --seeds 0
    python benchmarks/interpretation.py --ceilings
"""

from __future__ import annotations

import argparse
import functools
import time

import numpy as np
import pandas as pd
from _isolated import add_train_kwargs, pm, run_isolated, settings, with_train_kwargs

#: name: (loader, its arguments, the genes that drive growth in the simulation)
DATASETS = {
    "three_gene": ("three_gene_network", {}, ["x2"]),  # division rises with X2
    # the default network: growth follows x1 inside one unimodal population (not identifiable)
    "regulatory": ("regulatory_network", {"n_genes": 8, "growth_genes": (0,)}, ["x1"]),
    # a toggle switch sends cells into two lineages; x1, the master gene of one, drives growth
    "bifurcating": ("bifurcating_network", {}, ["x1"]),
    # the same network with the two lineages present from the start (half the cells in each stable state)
    "lineages": ("bifurcating_network", {"start": "lineages"}, ["x1"]),
    # the same with half the growth difference: both lineages stay sizeable (x2: 250 -> 146 of 993 cells at t = 4)
    "lineages_mild": ("bifurcating_network", {"start": "lineages", "growth_coef": 0.25}, ["x1"]),
}
#: a time point counts for growth recovery when the true rate varies this much across its cells
MIN_GROWTH_STD = 0.1
#: entries of the true mean Jacobian counted as regulation on the three-gene network
MIN_ABS_JACOBIAN = 0.05
#: a time point's growth counts as identifiable when the uniform-growth twin's snapshot is this many
#: sampling floors away from the data's
MIN_TWIN_RATIO = 1.2


def w1(x: np.ndarray, y: np.ndarray) -> float:
    """W1 between two uniform clouds (POT's exact EMD, Euclidean cost)."""
    import ot

    return float(ot.emd2(ot.unif(len(x)), ot.unif(len(y)), ot.dist(x, y, metric="euclidean"), numItermax=10**7))


def twin_ratios(adata, loader, load_kw) -> dict:
    """Per time: W1(data, uniform-growth twin) / W1(two random halves of the data) — 1 means indistinguishable.

    The twin is the same simulation (same seed, same network) with a uniform growth rate equal to
    the data's mean true rate: where its snapshot is as close to the data's as two halves of the
    data are to each other, no method can tell the per-cell growth from snapshots. Both simulations
    start from the same cells: the first time's growth leaves its first trace in the second snapshot,
    whose ratio the first time gets.
    """
    import ruotools as rt

    twin = getattr(rt.datasets, loader)(
        random_state=0, **{**load_kw, "growth_coef": 0.0, "growth_base": float(adata.obs["true_growth"].mean())}
    )
    x, t = np.asarray(adata.X, dtype=np.float64), adata.obs["time"].to_numpy()
    xt, tt = np.asarray(twin.X, dtype=np.float64), twin.obs["time"].to_numpy()
    times = np.unique(t)
    out = {}
    for tk in times[1:]:
        cells = x[t == tk]
        perm = np.random.default_rng(0).permutation(len(cells))
        half = len(cells) // 2
        out[tk] = w1(cells, xt[tt == tk]) / w1(cells[perm[:half]], cells[perm[half:]])
    out[times[0]] = out[times[1]]
    return out


#: true paths per first-time cell in :func:`true_fate_probabilities`
FATE_PATHS = 100


def true_fate_probabilities(adata, n_paths: int = FATE_PATHS, random_state: int = 0) -> np.ndarray:
    """True P(x1 lineage) of each first-time cell of a :func:`ruotools.datasets.bifurcating_network` simulation.

    ``n_paths`` copies of each cell are run to the last time point by the simulator's own engine (its
    drift, noise, division and death, time step); the probability is the share of the cell's descendants
    whose x1 − x2 exceeds the lineage threshold of ``obs['lineage']`` there.
    """
    from ruotools.datasets._branching import simulate_population
    from ruotools.datasets._regulatory import LINEAGE_GAP, regulatory_drift, regulatory_rates

    truth = adata.uns["truth"]
    times = np.asarray(truth["times"], dtype=np.float64)
    x0 = np.asarray(adata.X[adata.obs["time"].to_numpy() == times[0]], dtype=np.float64)
    origin = np.repeat(np.arange(len(x0)), n_paths)
    end = simulate_population(
        np.repeat(x0, n_paths, axis=0),
        origin,
        times[[0, -1]],
        drift=lambda x: regulatory_drift(x, truth),
        rates=lambda x: regulatory_rates(x, truth),
        sigma=float(truth["sigma"]),
        dt=float(truth["dt"]),
        rng=np.random.default_rng(random_state),
        nonnegative=True,
        max_population=100 * len(origin),
    )
    x, lab = end.states[-1], end.labels[-1]
    descendants = np.bincount(lab, minlength=len(x0))
    in_x1 = np.bincount(lab[x[:, 0] - x[:, 1] > LINEAGE_GAP], minlength=len(x0))
    return in_x1 / descendants


def fate_rows(adata) -> list[dict]:
    """The fate rows of :func:`run_one` for a fitted bifurcating-network simulation (see the module docstring)."""
    from scipy.stats import spearmanr

    import ruotools as rt

    w = np.asarray(adata.uns["truth"]["W"])
    noise = [j for j in range(len(w)) if not (w[j] != 0).any() and not (w[:, j] != 0).any()]
    first = adata.obs["time"].to_numpy() == adata.obs["time"].min()
    x0 = np.asarray(adata.X[first], dtype=np.float64)
    truth = true_fate_probabilities(adata)
    fitted = rt.tl.fate_probabilities(adata, "lineage")["x1"].to_numpy()[first]

    def noise_link(p):
        return max(abs(spearmanr(x0[:, j], p)[0]) for j in noise)

    return [
        {"metric": "fate P(x1) spearman with the truth", "time": 0.0, "value": spearmanr(fitted, truth)[0]},
        {"metric": f"fate P(x1) mean (true {truth.mean():.2f})", "time": 0.0, "value": float(fitted.mean())},
        {
            "metric": f"fate P(x1) max abs spearman with a noise gene (true {noise_link(truth):.2f})",
            "time": 0.0,
            "value": noise_link(fitted),
        },
    ]


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann–Whitney U with mid-ranks for ties)."""
    ranks = pd.Series(scores).rank().to_numpy()
    pos = labels.astype(bool)
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def symmetric_ceilings(w: np.ndarray) -> dict:
    """Best edge AUROC and edge sign agreement of any symmetric matrix against the directed regulation ``w``.

    A symmetric J gives i → j and j → i one value. The best AUROC ranks the pairs {i, j} by their number
    of true edges (2, 1, 0), the edge and the non-edge of a one-way pair tied; the best sign agreement
    loses one of the two edges of every reciprocal pair whose signs differ.
    """
    off = ~np.eye(len(w), dtype=bool)
    edges = (w != 0) & off
    n_edges_in_pair = edges.astype(float) + edges.T
    opposite = edges & edges.T & (np.sign(w) != np.sign(w.T))
    return {
        "edges": int(edges.sum()),
        "one-way edges": int((edges & ~edges.T).sum()),
        "edge AUROC": auroc(n_edges_in_pair[off], edges[off]),
        "edge sign agreement": float(1.0 - 0.5 * opposite.sum() / edges.sum()),
    }


def print_ceilings(names: list[str]) -> None:
    """Markdown table of :func:`symmetric_ceilings` for the simulators with a true regulation matrix."""
    import ruotools as rt

    print("\nBest scores of a symmetric Jacobian (the ceiling of `var_ruot`; any flavor can reach 1).\n")
    print("| dataset | true edges | one-way edges | edge AUROC ceiling | edge sign agreement ceiling |")
    print("|---|---|---|---|---|")
    for name in names:
        loader, load_kw, _ = DATASETS[name]
        truth = getattr(rt.datasets, loader)(random_state=0, **load_kw).uns["truth"]
        if "W" not in truth:
            continue
        c = symmetric_ceilings(np.asarray(truth["W"]))
        print(
            f"| {name} | {c['edges']} | {c['one-way edges']} | {c['edge AUROC']:.3f} | {c['edge sign agreement']:.3f} |"
        )


def run_one(
    name: str, seed: int, flavor: str = "deepruot", fit_kw: dict | None = None, train_kwargs: dict | None = None
) -> pd.DataFrame:
    from scipy.stats import spearmanr

    import ruotools as rt

    loader, load_kw, drivers = DATASETS[name]
    adata = getattr(rt.datasets, loader)(random_state=0, **load_kw)
    rt.settings.verbosity = "warning"
    fit_kw = with_train_kwargs(fit_kw, train_kwargs)
    start = time.perf_counter()
    rt.tl.fit_ruot(adata, "time", use_rep="X", random_state=seed, show_progress_bar=False, flavor=flavor, **fit_kw)
    seconds = time.perf_counter() - start
    truth = adata.uns["truth"]
    rows = []
    ratios = twin_ratios(adata, loader, load_kw) if "W" in adata.uns["truth"] else {}
    t = adata.obs["time"].to_numpy()
    fitted, true = adata.obs["ruot_growth_rate"].to_numpy(), adata.obs["true_growth"].to_numpy()
    for tk in np.unique(t):
        cells = t == tk
        rows.append(
            {
                "metric": "growth spearman",
                "time": tk,
                "value": spearmanr(fitted[cells], true[cells])[0],
                "true_std": true[cells].std(),
                "twin_ratio": ratios.get(tk, np.nan),
            }
        )
    jac = rt.tl.jacobian(adata)["mean"]
    off = ~np.eye(len(jac), dtype=bool)
    if "W" in truth:
        w = np.asarray(truth["W"])
        edges = (w != 0) & off
        rows.append(
            {"metric": "edge sign agreement", "value": float(np.mean(np.sign(jac[edges]) == np.sign(w[edges])))}
        )
        rows.append({"metric": "edge AUROC", "value": auroc(np.abs(jac[off]), edges[off])})
    else:
        # where the cells are: each lineage at each time has its own mean Jacobian (the lineages sit in
        # different regimes of the switch, so an all-cell mean describes no cell)
        groups = adata.obs["lineage"].astype(str) + " @ t" + adata.obs["time"].astype(str)
        adata.obs["_group"] = pd.Categorical(groups)
        per_group = rt.tl.jacobian(adata, groupby="_group")
        agree = []
        for name_g, fit_g in zip(per_group["group_names"], per_group["groups"], strict=True):
            true_g = adata.obsm["true_jacobian"][(groups == name_g).to_numpy()].mean(axis=0)
            clear = np.abs(true_g) >= MIN_ABS_JACOBIAN
            agree.append(np.mean(np.sign(fit_g[clear]) == np.sign(true_g[clear])))
        rows.append({"metric": "sign agreement (lineage × time)", "value": float(np.mean(agree))})
    ranking = rt.tl.growth_genes(adata)
    overall = ranking[ranking["group"] == ranking["group"].iloc[0]].sort_values("rank")
    # by the size of its effect, whatever its sign, and by growth_genes' own (signed) rank
    order = list(overall.reindex(overall["gradient"].abs().sort_values(ascending=False).index)["gene"])
    signed = dict(zip(overall["gene"], overall["rank"], strict=True))
    for gene in drivers:
        rows.append({"metric": f"rank of growth driver {gene}", "value": order.index(gene) + 1})
        rows.append({"metric": f"signed rank of growth driver {gene}", "value": int(signed[gene])})
    if "W" in truth and "lineage" in adata.obs:  # the bifurcating network
        rows.extend(fate_rows(adata))
    df = pd.DataFrame(rows)
    df["dataset"], df["seed"], df["fit_s"] = name, seed, seconds
    return df


def run_identifiability(
    name: str, seed: int, flavor: str = "deepruot", train_kwargs: dict | None = None
) -> pd.DataFrame:
    """``rt.tl.growth_identifiability`` on one simulation (``train_kwargs``: both fits), with the true rate's spread."""
    import ruotools as rt

    loader, load_kw, _ = DATASETS[name]
    adata = getattr(rt.datasets, loader)(random_state=0, **load_kw)
    rt.settings.verbosity = "warning"
    start = time.perf_counter()
    fit_kw = with_train_kwargs({"use_rep": "X", "random_state": seed, "flavor": flavor}, train_kwargs)
    table = rt.tl.growth_identifiability(adata, "time", **fit_kw)
    seconds = time.perf_counter() - start
    t, true = adata.obs["time"].to_numpy(), adata.obs["true_growth"].to_numpy()
    table["true_std"] = [true[t == tk].std() for tk in table.index]
    return table.reset_index().assign(dataset=name, seed=seed, fit_s=seconds)


def print_identifiability(df: pd.DataFrame, flavor: str, train_kwargs: dict | None = None) -> None:
    """Markdown table of :func:`run_identifiability` rows (one line per dataset, time and seed)."""
    print(f"\nFlavor {flavor}, {settings(train_kwargs)} (data seed 0).\n")
    print("| dataset | seed | time | true growth std | W1 growth | W1 balanced | W1 floor | excess | identifiable |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in df.itertuples():
        print(
            f"| {row.dataset} | {row.seed} | {row.time:g} | {row.true_std:.3f} | {row.W1_growth:.3f} | "
            f"{row.W1_balanced:.3f} | {row.W1_floor:.3f} | {row.excess:.2f} | {'yes' if row.identifiable else 'no'} |"
        )
    print("\n| dataset | time for both fits and evaluations (s) |\n|---|---|")
    for name, sub in df.groupby("dataset", sort=False):
        print(f"| {name} | {pm(sub.groupby('seed').fit_s.first())} |")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # "lineages" and "lineages_mild" are extras (benchmarks/README.md), not part of the default run
    parser.add_argument(
        "--datasets", nargs="+", default=["three_gene", "regulatory", "bifurcating"], choices=list(DATASETS)
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--flavor", default="deepruot", choices=["deepruot", "var_ruot"])
    parser.add_argument("--csv", default=None, help="also write the per-seed rows to this CSV")
    add_train_kwargs(parser)
    parser.add_argument(
        "--identifiability", action="store_true", help="run rt.tl.growth_identifiability on each simulation instead"
    )
    parser.add_argument(
        "--ceilings", action="store_true", help="print the best scores of a symmetric Jacobian instead (no fit)"
    )
    args = parser.parse_args(argv)
    if args.ceilings:
        print_ceilings(args.datasets)
        return
    if args.identifiability:
        df = run_isolated(
            functools.partial(run_identifiability, flavor=args.flavor, train_kwargs=args.train_kwargs),
            args.datasets,
            args.seeds,
        )
        if args.csv:
            df.to_csv(args.csv, index=False)
        print_identifiability(df, args.flavor, args.train_kwargs)
        return

    df = run_isolated(
        functools.partial(run_one, flavor=args.flavor, train_kwargs=args.train_kwargs), args.datasets, args.seeds
    )
    if args.csv:
        df.to_csv(args.csv, index=False)
    print(
        f"\nFlavor {args.flavor}, {settings(args.train_kwargs)}, fit seeds {args.seeds} (data seed 0); "
        "mean ± std over seeds.\n"
    )
    print("| dataset | metric | time | true growth std | twin W1 / floor | value | per seed |")
    print("|---|---|---|---|---|---|---|")
    for (name, metric, tk), sub in df.groupby(["dataset", "metric", "time"], dropna=False, sort=False):
        when = "–" if pd.isna(tk) else f"{tk:g}"
        std = "–" if pd.isna(sub["true_std"]).all() else f"{sub['true_std'].mean():.3f}"
        twin = "–" if pd.isna(sub["twin_ratio"]).all() else f"{sub['twin_ratio'].mean():.2f}"
        if metric == "growth spearman" and sub["true_std"].mean() < MIN_GROWTH_STD:
            std += " (not scored)"
        elif metric == "growth spearman" and sub["twin_ratio"].mean() < MIN_TWIN_RATIO:
            twin += " (not identifiable)"
        per_seed = " / ".join(f"{v:.3g}" for v in sub["value"])
        print(f"| {name} | {metric} | {when} | {std} | {twin} | {pm(sub['value'])} | {per_seed} |")
    print("\n| dataset | fit time (s) |\n|---|---|")
    for name in args.datasets:
        print(f"| {name} | {pm(df[df.dataset == name].groupby('seed').fit_s.first())} |")


if __name__ == "__main__":
    main()
