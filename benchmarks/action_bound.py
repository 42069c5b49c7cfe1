"""The least action any model can have: a lower bound of the path action between the snapshots.

`rt.tl.evaluate`'s ``action`` column is ∫ (1/N) Σ w [½|u|² + A g²] dt with A = α·scale² (user units).
For a flow that carries the mass exactly through the observed snapshots, the cheapest path between
two of them, Δt apart, costs ½ HK_δ²(μ_k, μ_{k+1}) / Δt, where HK_δ is the Hellinger–Kantorovich
(Wasserstein–Fisher–Rao) distance whose dynamic cost is ∫∫ (|v|² + δ²ξ²/4) dμ dt, here with
δ² = 8A so that ½(|v|² + δ²g²/4) = ½|v|² + A g² (Liero, Mielke & Savaré, Invent. Math. 2018).
`ruotools.core.geodesic.hk_squared` solves its static (entropy-transport) form by its dual: a feasible dual
pair gives a certified lower bound, a plan an upper bound (the formulas are in that module's docstring).
Summed over the intervals, the bound is the least action of any path through the empirical snapshots
(with the total masses the fit uses, the cell-count ratios). A fitted model matches the snapshots only up
to its W1, and its SDE action uses the drift, not the velocity that carries the marginals; ``--fits``
therefore also prints the action of each flavor's deterministic flow (the velocity v, or ∇λ without
noise, the same particles' growth), which the bound applies to exactly when the match is exact.

Usage::

    python benchmarks/action_bound.py                 # the bound alone (seconds)
    python benchmarks/action_bound.py --fits --seeds 0 1 2   # and both flavors' actions
    python benchmarks/action_bound.py --simulated 400 1600   # the bound on independent samples, two sizes
    python benchmarks/action_bound.py --holdout 1 3          # held-out snapshots by least-action interpolation
"""

from __future__ import annotations

import argparse

import numpy as np

from ruotools.core.geodesic import hk_interpolate, hk_squared

DATASETS = {"gene": "simulated_gene", "mouse": "mouse_hematopoiesis"}


def load(name: str):
    import ruotools as rt

    return getattr(rt.datasets, name)()


def scale2(x, t) -> float:
    """The squared standardisation scale a fit on these cells uses (α is set in its units)."""
    from ruotools.core.data import Standardizer

    return Standardizer.from_data(x, t).x_scale ** 2


def snapshots(adata):
    """The cells per time, their masses (cell-count ratios, as `fit_ruot` uses) and the fit's scale²."""
    x, t = np.asarray(adata.X, np.float64), adata.obs["time"].to_numpy()
    times = np.unique(t)
    xs = [x[t == s] for s in times]
    counts = np.array([len(c) for c in xs], np.float64)
    return times, xs, counts / counts[0], scale2(x, t)


def bound(adata, alpha: float = 1.0, fraction: float = 1.0, seed: int = 0) -> dict:
    """Cumulative least action from the first time to each later one, with its certified gap.

    ``fraction`` < 1 uses that share of each snapshot's cells, drawn with ``seed`` (the same masses): how
    the bound moves with the sample size shows how much of it is sampling noise.
    """
    times, xs, mass, s2 = snapshots(adata)
    if fraction < 1:
        rng = np.random.default_rng(seed)
        xs = [c[rng.choice(len(c), round(fraction * len(c)), replace=False)] for c in xs]
    delta = np.sqrt(8.0 * alpha * s2)
    lows, ups = [0.0], [0.0]
    for k in range(len(times) - 1):
        a = np.full(len(xs[k]), mass[k] / len(xs[k]))
        b = np.full(len(xs[k + 1]), mass[k + 1] / len(xs[k + 1]))
        lo, up = hk_squared(xs[k], a, xs[k + 1], b, delta)
        dt = times[k + 1] - times[k]
        lows.append(lows[-1] + 0.5 * lo / dt)
        ups.append(ups[-1] + 0.5 * up / dt)
    return {"times": times, "lower": np.array(lows), "upper": np.array(ups), "delta": delta}


def flow_action(model, x0, times, alpha: float = 1.0, steps_per_unit: int = 100) -> np.ndarray:
    """∫ (1/N) Σ w [½|v|² + α·scale²·g²] dt along the deterministic flow (trapezoid rule), per time."""
    out = model.simulate(x0, times, stochastic=False, n_steps_per_unit=steps_per_unit, record_every_step=True)
    ts, X, ell = out["t"], out["X"], out["log_mass"]
    n_steps, n = ell.shape
    x, t = X.reshape(n_steps * n, -1), np.repeat(ts, n)  # every step's particles in one evaluation
    growth_weight = alpha * model.standardizer.x_scale**2
    per_cell = 0.5 * (model.velocity(x, t) ** 2).sum(1) + growth_weight * model.growth(x, t) ** 2
    rate = (np.exp(ell) * per_cell.reshape(n_steps, n)).sum(1)
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (rate[1:] + rate[:-1]) * np.diff(ts))])
    return np.array([cum[np.argmin(np.abs(ts - s))] for s in times])


def fitted_actions(name: str, seed: int) -> dict:
    import ruotools as rt

    rt.settings.verbosity = "warning"
    adata = load(name)
    times = np.unique(adata.obs["time"])
    x0 = np.asarray(adata.X[adata.obs["time"].to_numpy() == times[0]], np.float64)
    result = {}
    for flavor in ("deepruot", "var_ruot"):
        rt.tl.fit_ruot(adata, "time", flavor=flavor, random_state=seed)
        table = rt.tl.evaluate(adata, stochastic=True, random_state=seed, action_alpha=1.0)
        model = rt.RUOTModel.from_adata(adata)
        result[flavor] = {
            "sde": np.concatenate([[0.0], table["action"].to_numpy()]),
            "flow": flow_action(model, x0, times),
        }
    return result


def simulated(sizes) -> None:
    """The bound on independent samples of one population (the re-created gene network), per sample size."""
    import ruotools as rt

    print("\nLeast action (lower bound, α = 1) on samples of `rt.datasets.three_gene_network`.\n")
    print("| first snapshot's cells | data seed | t1 | t2 | t3 | t4 |")
    print("|---|---|---|---|---|---|")
    for n0 in sizes:
        for seed in (0, 1, 2):
            lower = bound(rt.datasets.three_gene_network(n_cells0=n0, random_state=seed))["lower"]
            print(f"| {n0} | {seed} | " + " | ".join(f"{v:.3f}" for v in lower[1:]) + " |", flush=True)


def holdout(name: str, alphas, n_points: int = 6000, draws: int = 5) -> None:
    """Predict each interior snapshot from its two neighbours by the least-action interpolant (no model).

    The interpolant's points (often 10⁴–10⁵) are resampled to ``n_points`` by mass for the exact W1: the
    mean over ``draws`` resamples (seeds 0, 1, …) and their standard deviation.
    """
    from ruotools.core.ot import interpolate_ot, wasserstein

    times, xs, mass, _ = snapshots(load(DATASETS[name]))
    for k in range(1, len(times) - 1):
        x0, x2, target = xs[k - 1], xs[k + 1], xs[k]
        frac = (times[k] - times[k - 1]) / (times[k + 1] - times[k - 1])
        kept = [i for i in range(len(times)) if i != k]  # the refit's cells set its scale
        s2 = scale2(np.concatenate([xs[i] for i in kept]), np.repeat(times[kept], [len(xs[i]) for i in kept]))
        a, b = np.full(len(x0), mass[k - 1] / len(x0)), np.full(len(x2), mass[k + 1] / len(x2))
        cells = []
        for alpha in alphas:
            pts, w = hk_interpolate(x0, a, x2, b, np.sqrt(8.0 * alpha * s2), frac)
            w1 = []
            for seed in range(draws):
                idx = np.random.default_rng(seed).choice(len(pts), n_points, p=w / w.sum())
                w1.append(wasserstein(pts[idx], target, p=1))
            cells.append(f"{np.mean(w1):.3f} ± {np.std(w1, ddof=1):.3f}")
        pts, w = interpolate_ot(x0, x2, frac)
        cells.append(f"{wasserstein(pts, target, w, None, p=1):.3f}")
        print(f"| {name} | {times[k]:g} | " + " | ".join(cells) + " |", flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--draws", type=int, default=3, help="random halves and quarters of the cells, averaged")
    parser.add_argument(
        "--simulated",
        nargs="+",
        type=int,
        metavar="N0",
        help="instead: the bound on independent samples of `three_gene_network(n_cells0=N0)`, data seeds 0 1 2",
    )
    parser.add_argument(
        "--holdout",
        nargs="+",
        type=float,
        metavar="ALPHA",
        help="instead: predict each interior time point by the least-action interpolation with these α",
    )
    parser.add_argument("--fits", action="store_true", help="also fit both flavors and print their actions")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    args = parser.parse_args(argv)
    if args.simulated:
        simulated(args.simulated)
        return
    if args.holdout:
        print("\nHeld-out time points predicted from their neighbours without a model: W1 to the held-out cells.\n")
        print("| dataset | held out | " + " | ".join(f"least action, α = {a:g}" for a in args.holdout) + " | OT |")
        print("|---|---|" + "---|" * (len(args.holdout) + 1))
        for name in args.datasets:
            holdout(name, args.holdout)
        return
    print("\nLeast action through the observed snapshots (α = 1; cumulative from the first time).\n")
    header = "| dataset | time | lower bound | upper bound | lower bound, ½ cells | lower bound, ¼ cells |"
    if args.fits:
        header += " deepruot SDE | deepruot flow | var_ruot SDE | var_ruot flow | var / deep SDE | deep SDE / bound |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for name in args.datasets:
        adata = load(DATASETS[name])
        b = bound(adata)
        sub = {
            f: np.mean([bound(adata, fraction=f, seed=s)["lower"] for s in range(args.draws)], axis=0)
            for f in (0.5, 0.25)
        }
        fits = [fitted_actions(DATASETS[name], s) for s in args.seeds] if args.fits else []
        for k in range(1, len(b["times"])):
            cells = [f"{v:.3f}" for v in (b["lower"][k], b["upper"][k], sub[0.5][k], sub[0.25][k])]
            if fits:

                def mean(flavor, what, k=k, fits=fits):
                    return np.mean([f[flavor][what][k] for f in fits])

                cells += [f"{mean(fl, w):.3f}" for fl in ("deepruot", "var_ruot") for w in ("sde", "flow")]
                cells += [f"{mean('var_ruot', 'sde') / mean('deepruot', 'sde'):.2f}"]
                cells += [f"{mean('deepruot', 'sde') / b['lower'][k]:.3f}"]
            print(f"| {name} | {b['times'][k]:g} | " + " | ".join(cells) + " |")
        print(f"\n{name}: δ = {b['delta']:.3f} (user units)")


if __name__ == "__main__":
    main()
