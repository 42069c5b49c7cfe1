"""A configurable regulatory-network simulator with growth, death and ground truth (pure numpy).

Everything the truth functions need is stored as arrays and numbers in ``adata.uns['truth']``,
so they also work on a reloaded ``.h5ad``: ``regulatory_drift(x, adata.uns["truth"])``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._branching import check_fraction, check_real, check_times, simulate_population, stack

#: Edge strengths |W_ij| are drawn uniformly from these ranges (linear, Hill).
LINEAR_WEIGHTS = (0.5, 1.0)
HILL_WEIGHTS = (0.5, 1.0)
#: The linear network is rescaled so that the real parts of W's eigenvalues are ≤ this × decay.
STABILITY_MARGIN = 0.5
#: Hill model: half-activation threshold and basal production of every gene.
HILL_K = 1.0
HILL_BASAL = 0.1
#: Initial cells: normal around a random mean (linear: N(0, 1) per gene; Hill: U(0.5, 2)) with this sd.
INIT_STD = 0.5
HILL_INIT_STD = 0.3
#: Count model: primary loadings U(0.6, 1.2), other loadings N(0, 0.1²), offsets U(0, 2), log-rate cap.
COUNT_LOADING = (0.6, 1.2)
COUNT_CROSS_STD = 0.1
COUNT_OFFSET = (0.0, 2.0)
MAX_LOG_RATE = 10.0


def _states(x, truth) -> np.ndarray:
    n_genes = np.asarray(truth["W"]).shape[0]
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    if x.ndim != 2 or x.shape[1] != n_genes:
        raise ValueError(f"States must have shape (n, {n_genes}), got {np.shape(x)}.")
    return x


def _hill(x, truth):
    """Activation x^n/(K^n + x^n) at max(x, 0), and its derivative."""
    n, k = float(truth["hill_n"]), float(truth["hill_k"])
    xp = np.maximum(x, 0.0)
    xn, kn = xp**n, k**n
    return xn / (kn + xn), n * kn * xp ** (n - 1.0) / (kn + xn) ** 2


def regulatory_drift(x, truth) -> np.ndarray:
    """Drift ``u(x)`` of the network described by ``truth`` (``uns['truth']``), ``(n, d) → (n, d)``.

    Linear: ``u = (W − decay·I)(x − x*)``. Hill: ``u_i = basal_i + Σ_j W⁺_ij H(x_j) + Σ_j W⁻_ij (1 − H(x_j))
    − decay·x_i`` with ``W⁺ = max(W, 0)``, ``W⁻ = max(−W, 0)`` and ``H(x) = xⁿ/(Kⁿ + xⁿ)``.
    """
    x = _states(x, truth)
    w, decay = np.asarray(truth["W"], dtype=np.float64), float(truth["decay"])
    if truth["model"] == "linear":
        shifted = x - np.asarray(truth["fixed_point"], dtype=np.float64)
        return shifted @ w.T - decay * shifted
    act, _ = _hill(x, truth)
    pos, neg = np.maximum(w, 0.0), np.maximum(-w, 0.0)
    return np.asarray(truth["basal"], dtype=np.float64) + act @ pos.T + (1.0 - act) @ neg.T - decay * x


def regulatory_jacobian(x, truth) -> np.ndarray:
    """Analytic Jacobian ``J[c, i, j] = ∂u_i/∂x_j`` of :func:`regulatory_drift`, shape ``(n, d, d)``.

    Linear: the constant ``W − decay·I``. Hill: ``W_ij H'(x_j) − decay·δ_ij``.
    """
    x = _states(x, truth)
    w, decay = np.asarray(truth["W"], dtype=np.float64), float(truth["decay"])
    eye = np.eye(w.shape[0])
    if truth["model"] == "linear":
        return np.broadcast_to(w - decay * eye, (x.shape[0], *w.shape)).copy()
    _, dact = _hill(x, truth)
    return w[None, :, :] * dact[:, None, :] - decay * eye


def regulatory_growth(x, truth) -> np.ndarray:
    """Net growth rate ``g(x) = base + Σ_j c_j tanh((x_j − θ_j)/w)`` (per unit time), shape ``(n,)``."""
    x = _states(x, truth)
    genes = np.asarray(truth["growth_genes"], dtype=np.int64)
    z = (x[:, genes] - np.asarray(truth["growth_center"], dtype=np.float64)) / float(truth["growth_scale"])
    return float(truth["growth_base"]) + np.tanh(z) @ np.asarray(truth["growth_coef"], dtype=np.float64)


def regulatory_growth_gradient(x, truth) -> np.ndarray:
    """Gradient ``∂g/∂x_j`` of :func:`regulatory_growth`, shape ``(n, d)`` (zero off the growth genes)."""
    x = _states(x, truth)
    genes = np.asarray(truth["growth_genes"], dtype=np.int64)
    scale = float(truth["growth_scale"])
    z = (x[:, genes] - np.asarray(truth["growth_center"], dtype=np.float64)) / scale
    grad = np.zeros_like(x)
    grad[:, genes] = np.asarray(truth["growth_coef"], dtype=np.float64) * (1.0 - np.tanh(z) ** 2) / scale
    return grad


def regulatory_rates(x, truth) -> tuple[np.ndarray, np.ndarray]:
    """Division ``turnover + max(g, 0)`` and death ``turnover + max(−g, 0)`` rates per unit time."""
    g = regulatory_growth(x, truth)
    turnover = float(truth["turnover"])
    return turnover + np.maximum(g, 0.0), turnover + np.maximum(-g, 0.0)


def _random_network(rng, n_genes, n_edges, hill, decay) -> tuple[np.ndarray, np.ndarray]:
    """Signed sparse matrix W (no self-loops) and its edge list ``(target, regulator)``."""
    pairs = np.array([(i, j) for i in range(n_genes) for j in range(n_genes) if i != j], dtype=np.int64)
    edges = pairs[np.sort(rng.choice(len(pairs), size=n_edges, replace=False))]
    low, high = HILL_WEIGHTS if hill else LINEAR_WEIGHTS
    w = np.zeros((n_genes, n_genes))
    w[edges[:, 0], edges[:, 1]] = rng.uniform(low, high, n_edges) * rng.choice([-1.0, 1.0], n_edges)
    if not hill and n_edges:
        abscissa = float(np.max(np.linalg.eigvals(w).real))
        if abscissa > STABILITY_MARGIN * decay:
            w *= STABILITY_MARGIN * decay / abscissa
    return w, edges.reshape(-1, 2)


def _midpoint(mean0, truth, duration, dt) -> np.ndarray:
    """Halfway between ``mean0`` and the end of the noise-free path from it after ``duration``."""
    n_steps = max(1, int(np.ceil(duration / dt)))
    x = mean0[None, :].copy()
    for _ in range(n_steps):
        x = x + regulatory_drift(x, truth) * (duration / n_steps)
        if truth["model"] == "hill":
            np.maximum(x, 0.0, out=x)
    return 0.5 * (mean0 + x[0])


def _growth_args(growth_genes, growth_coef, n_genes) -> tuple[np.ndarray, np.ndarray]:
    try:
        genes = list(growth_genes)
    except TypeError:
        genes = None
    if (
        genes is None
        or isinstance(growth_genes, str)
        or not all(isinstance(g, int | np.integer) and not isinstance(g, bool) for g in genes)
    ):
        raise ValueError(f"`growth_genes` must be a sequence of gene indices (integers), got {growth_genes!r}.")
    genes = [int(g) for g in genes]
    if len(set(genes)) != len(genes) or any(not 0 <= g < n_genes for g in genes):
        raise ValueError(f"`growth_genes` must be distinct indices in [0, {n_genes}), got {list(growth_genes)!r}.")
    try:
        coef = np.atleast_1d(np.asarray(growth_coef, dtype=np.float64))
    except (TypeError, ValueError):
        coef = np.array([np.nan])
    if coef.size == 1:
        coef = np.full(len(genes), float(coef[0]))
    if coef.ndim != 1 or coef.size != len(genes) or not np.isfinite(coef).all():
        raise ValueError(
            f"`growth_coef` must be one finite number or one per growth gene ({len(genes)}), got {growth_coef!r}."
        )
    return np.asarray(genes, dtype=np.int64), coef


def _counts(rng, latent, n_count_genes):
    """Poisson counts with log-rate ``offset + loading · z``, z the standardized latent state."""
    n_genes = latent.shape[1]
    mean, std = latent.mean(axis=0), latent.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    loading = COUNT_CROSS_STD * rng.standard_normal((n_count_genes, n_genes))
    rows = np.arange(n_count_genes)
    loading[rows, rows % n_genes] = rng.uniform(*COUNT_LOADING, n_count_genes)
    offset = rng.uniform(*COUNT_OFFSET, n_count_genes)
    log_rate = np.minimum(offset + ((latent - mean) / std) @ loading.T, MAX_LOG_RATE)
    counts = rng.poisson(np.exp(log_rate)).astype(np.int32)
    return counts, {"count_loading": loading, "count_offset": offset, "latent_mean": mean, "latent_std": std}


def regulatory_network(
    n_genes: int = 8,
    n_edges: int | None = None,
    *,
    hill: bool = False,
    growth_genes=(0,),
    growth_coef=0.6,
    growth_base: float = 0.1,
    growth_scale: float = 0.5,
    turnover: float = 0.05,
    decay: float = 0.5,
    hill_n: float = 2.0,
    sigma: float = 0.3,
    times=(0, 1, 2, 3, 4),
    n_cells0: int = 500,
    sample_fraction: float = 1.0,
    counts: bool = False,
    n_count_genes: int = 50,
    dt: float = 0.01,
    random_state: int = 0,
):
    """Simulate a random gene regulatory network with growth and death, with its ground truth.

    ``n_genes`` genes follow the SDE ``dx = u(x) dt + σ dW`` with a random sparse signed regulation
    matrix ``W`` (``n_edges`` edges ``W[i, j] ≠ 0``: gene j activates (> 0) or represses (< 0) gene i;
    no self-loops):

    * linear (``hill=False``): ``u(x) = (W − decay·I)(x − x*)`` with the fixed point ``x* = 0``; edge
      strengths are drawn from U(0.5, 1) and ``W`` is scaled down if needed so that the real parts of
      its eigenvalues are at most ``decay / 2`` (a stable network). Cells start normal around a random
      mean (N(0, 1) per gene) with sd 0.5 and relax towards ``x*``.
    * Hill (``hill=True``): ``u_i(x) = 0.1 + Σ_j W⁺_ij H(x_j) + Σ_j W⁻_ij (1 − H(x_j)) − decay·x_i`` with
      ``H(x) = xⁿ/(1 + xⁿ)`` (``n = hill_n``), ``W⁺``/``W⁻`` the positive/negative parts, strengths from
      U(0.5, 1); states are clipped at 0 after every step; cells start around a U(0.5, 2) mean, sd 0.3.

    Cells divide and die (a branching population: a dividing cell's daughter starts at its state, a dying
    cell is removed) at rates ``turnover + max(±g(x), 0)``, so the net growth rate is
    ``g(x) = growth_base + Σ_j c_j tanh((x_j − θ_j)/growth_scale)`` over the ``growth_genes`` j, with
    ``c = growth_coef`` and θ_j halfway between gene j's initial mean and the end (at the last time) of
    the noise-free path from the initial mean, so that growth varies across cells and over time. Each
    snapshot is the whole population, or a ``sample_fraction`` of it, so the snapshot sizes follow the
    population. With ``counts=True`` the
    cells are also observed through ``n_count_genes`` genes with Poisson counts of rate
    ``exp(a + B z)``, z the standardized latent state (each count gene loads mainly on latent gene
    ``m mod n_genes``), ready for ``scanpy`` (normalize, log1p, PCA).

    Parameters
    ----------
    n_genes
        Number of latent genes (≥ 2).
    n_edges
        Number of regulatory edges, in [0, n_genes·(n_genes − 1)]; default ``2 * n_genes`` (capped).
    hill
        Hill-type activation/repression instead of a linear network.
    growth_genes
        Indices of the genes that drive growth (distinct, in [0, n_genes); may be empty).
    growth_coef
        Growth coefficient c_j (per unit time), one number or one per growth gene.
    growth_base
        Net growth rate where every growth gene is at its centre θ_j (per unit time).
    growth_scale
        Expression change over which a growth gene's effect saturates (> 0).
    turnover
        Baseline division and death rate (≥ 0) added to both, so cells die even where g > 0.
    decay
        Linear decay rate of every gene (> 0).
    hill_n
        Hill exponent (≥ 1), used when ``hill=True``.
    sigma
        Noise amplitude of every gene (≥ 0).
    times
        Increasing snapshot times (≥ 0); the first is the initial population.
    n_cells0
        Number of cells at the first time (≥ 2).
    sample_fraction
        Fraction of the population kept in each snapshot, in (0, 1].
    counts
        Also simulate a count matrix and return it as ``.X`` (see Returns).
    n_count_genes
        Number of count genes when ``counts=True`` (≥ 1).
    dt
        Largest Euler–Maruyama step (> 0).
    random_state
        Seed; the same seed gives the same data.

    Returns
    -------
    anndata.AnnData
        * ``counts=False``: ``.X`` the latent states (float32), var names ``x1 … xd``.
          ``counts=True``: ``.X`` the counts (float32) and ``layers['counts']`` (int32), var names
          ``gene1 … geneM``, and the latent states in ``obsm['X_latent']`` (float32, columns ``x1 … xd``);
        * ``obs['time']`` (float64); ``obs['true_growth']``: net growth rate per unit time (float64);
        * ``obsm['true_drift']`` ``(n, d)``, ``obsm['true_jacobian']`` ``(n, d, d)`` with ``[c, i, j] =
          ∂u_i/∂x_j`` at cell c, ``obsm['true_growth_gradient']`` ``(n, d)``: float64, latent coordinates,
          evaluated at the stored float32 states (``n · d²`` numbers: mind memory for large networks);
        * ``uns['truth']``: ``model`` (``"linear"``/``"hill"``), ``W``, ``edges`` (target, regulator),
          ``decay``, ``fixed_point`` (linear) or ``basal`` (Hill), ``hill_n``, ``hill_k``, ``growth_genes``,
          ``growth_coef``, ``growth_center``, ``growth_scale``, ``growth_base``, ``turnover``, ``sigma``,
          ``dt``, ``times``, ``gene_names``, ``population_size`` (the whole population at each time),
          ``expected_log_mass`` (``∫ mean g dt`` from the first time), and with counts ``count_loading``
          (M × d), ``count_offset``, ``latent_mean``, ``latent_std``: arrays and numbers only, so the
          AnnData writes to ``.h5ad`` and the truth functions work on the reloaded dict;
        * ``uns['dataset']``: ``name``, ``description``, ``source`` and the arguments.

        The truth functions are ``ruotools.datasets._simulators.regulatory_drift``, ``regulatory_jacobian``,
        ``regulatory_rates``, ``regulatory_growth`` and ``regulatory_growth_gradient``, each called as
        ``f(x, adata.uns["truth"])``.

    Raises
    ------
    ValueError
        For a bad argument (the message names it), or rates too fast for ``dt``.
    RuntimeError
        If the population dies out or exceeds 200,000 cells.

    Examples
    --------
    >>> import ruotools as rt
    >>> adata = rt.datasets.regulatory_network(n_genes=6, random_state=0)
    >>> adata.shape[1], adata.obsm["true_jacobian"].shape[1:]
    (6, (6, 6))
    >>> adata = rt.datasets.regulatory_network(n_genes=6, counts=True, n_count_genes=30)
    >>> adata.X.shape[1], adata.obsm["X_latent"].shape[1]
    (30, 6)
    """
    import anndata as ad

    from .. import _validation as val

    n_genes = val.check_count(n_genes, "n_genes", minimum=2)
    max_edges = n_genes * (n_genes - 1)
    if n_edges is None:
        n_edges = min(2 * n_genes, max_edges)
    n_edges = val.check_count(n_edges, "n_edges")
    if n_edges > max_edges:
        raise ValueError(f"`n_edges` must be at most n_genes·(n_genes − 1) = {max_edges}, got {n_edges}.")
    for flag, name in ((hill, "hill"), (counts, "counts")):
        if not isinstance(flag, bool | np.bool_):
            raise TypeError(f"`{name}` must be True or False, got {flag!r}.")
    genes, coef = _growth_args(growth_genes, growth_coef, n_genes)
    growth_base = check_real(growth_base, "growth_base")
    growth_scale = check_real(growth_scale, "growth_scale", minimum=0.0, exclusive=True)
    turnover = check_real(turnover, "turnover", minimum=0.0)
    decay = check_real(decay, "decay", minimum=0.0, exclusive=True)
    hill_n = check_real(hill_n, "hill_n", minimum=1.0)
    sigma = check_real(sigma, "sigma", minimum=0.0)
    times = check_times(times)
    n_cells0 = val.check_count(n_cells0, "n_cells0", minimum=2)
    sample_fraction = check_fraction(sample_fraction)
    n_count_genes = val.check_count(n_count_genes, "n_count_genes", minimum=1)
    dt = check_real(dt, "dt", minimum=0.0, exclusive=True)
    seed = val.check_seed(random_state)

    rng = np.random.default_rng(seed)
    w, edges = _random_network(rng, n_genes, n_edges, bool(hill), decay)
    if hill:
        mean0, std0 = rng.uniform(0.5, 2.0, n_genes), HILL_INIT_STD
    else:
        mean0, std0 = rng.standard_normal(n_genes), INIT_STD
    names = np.array([f"x{i + 1}" for i in range(n_genes)])
    truth = {
        "model": "hill" if hill else "linear",
        "W": w,
        "edges": edges,
        "decay": decay,
        "hill_n": hill_n,
        "hill_k": HILL_K,
        "growth_genes": genes,
        "growth_coef": coef,
        "growth_center": np.zeros(len(genes)),
        "growth_scale": growth_scale,
        "growth_base": growth_base,
        "turnover": turnover,
        "sigma": sigma,
        "dt": dt,
        "times": times,
        "gene_names": names,
        "initial_mean": mean0,
        "initial_std": std0,
    }
    truth["basal" if hill else "fixed_point"] = np.full(n_genes, HILL_BASAL) if hill else np.zeros(n_genes)
    truth["growth_center"] = _midpoint(mean0, truth, times[-1] - times[0], dt)[genes]

    x0 = mean0 + std0 * rng.standard_normal((n_cells0, n_genes))
    if hill:
        x0 = np.maximum(x0, 0.0)
    snaps = simulate_population(
        x0,
        np.zeros(n_cells0, dtype=np.int64),
        times,
        drift=lambda x: regulatory_drift(x, truth),
        rates=lambda x: regulatory_rates(x, truth),
        sigma=sigma,
        dt=dt,
        rng=rng,
        nonnegative=bool(hill),
        sample_fraction=sample_fraction,
    )
    latent, t, _ = stack(snaps, times)
    truth["population_size"] = snaps.population_size
    truth["expected_log_mass"] = snaps.expected_log_mass
    x64 = latent.astype(np.float64)

    obs = pd.DataFrame(
        {"time": t, "true_growth": regulatory_growth(x64, truth)},
        index=pd.Index([f"cell_{i}" for i in range(latent.shape[0])]),
    )
    if counts:
        count_matrix, count_truth = _counts(rng, x64, n_count_genes)
        truth.update(count_truth)
        var = pd.DataFrame(index=[f"gene{i + 1}" for i in range(n_count_genes)])
        adata = ad.AnnData(count_matrix.astype(np.float32), obs=obs, var=var)
        adata.layers["counts"] = count_matrix
        adata.obsm["X_latent"] = latent
    else:
        adata = ad.AnnData(latent, obs=obs, var=pd.DataFrame(index=names))
    adata.obsm["true_drift"] = regulatory_drift(x64, truth)
    adata.obsm["true_jacobian"] = regulatory_jacobian(x64, truth)
    adata.obsm["true_growth_gradient"] = regulatory_growth_gradient(x64, truth)
    adata.uns["truth"] = truth
    kind = "Hill-type" if hill else "linear"
    adata.uns["dataset"] = {
        "name": "regulatory_network",
        "description": (
            f"Random {kind} regulatory network of {n_genes} genes and {n_edges} edges; growth driven by genes "
            f"{[int(g) for g in genes]}; branching population with division and death; true drift, Jacobian "
            "and growth stored."
        ),
        "source": "ruotools.datasets.regulatory_network",
        "params": {
            "n_genes": n_genes,
            "n_edges": n_edges,
            "hill": bool(hill),
            "n_cells0": n_cells0,
            "sample_fraction": sample_fraction,
            "counts": bool(counts),
            "random_state": seed,
        },
    }
    return adata
