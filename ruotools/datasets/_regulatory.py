"""A configurable regulatory-network simulator with growth, death and ground truth (pure numpy).

Everything the truth functions need is stored as arrays and numbers in ``adata.uns['truth']``,
so they also work on a reloaded ``.h5ad``: ``regulatory_drift(x, adata.uns["truth"])``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._branching import check_fraction, check_real, check_times, simulate_population, stack

#: Number of genes of a random network when neither ``n_genes`` nor ``regulation`` is given.
DEFAULT_N_GENES = 8
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


def _regulation_arg(regulation, n_genes, n_edges) -> tuple[np.ndarray, np.ndarray]:
    """Check a given regulation matrix; return it as float64 ``(d, d)`` with its edges ``(target, regulator)``."""
    try:
        w = np.array(regulation, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"`regulation` must be a square array of numbers, got {type(regulation).__name__}.") from None
    if w.ndim != 2 or w.shape[0] != w.shape[1] or w.shape[0] < 2:
        raise ValueError(f"`regulation` must be a square (d, d) array with d ≥ 2, got shape {w.shape}.")
    if not np.isfinite(w).all():
        raise ValueError("`regulation` must be finite (no NaN or infinity).")
    if n_genes is not None and n_genes != w.shape[0]:
        raise ValueError(
            f"`n_genes`={n_genes} does not match the {w.shape[0]} × {w.shape[0]} `regulation`; leave `n_genes` None."
        )
    if n_edges is not None:
        raise ValueError("`n_edges` is set by `regulation` (its non-zero entries); leave `n_edges` None.")
    return w, np.argwhere(w != 0).astype(np.int64).reshape(-1, 2)


def _per_gene(value, name, n_genes, *, minimum=None) -> np.ndarray:
    """One number or one per gene, as a float64 ``(n_genes,)`` array of finite values ≥ ``minimum``."""
    if isinstance(value, bool | str):
        raise TypeError(f"`{name}` must be a number or one number per gene, got {value!r}.")
    try:
        arr = np.atleast_1d(np.asarray(value, dtype=np.float64))
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be a number or one number per gene, got {value!r}.") from None
    if arr.ndim != 1 or arr.size not in (1, n_genes):
        raise ValueError(f"`{name}` must be one number or {n_genes} (one per gene), got shape {np.shape(value)}.")
    if not np.isfinite(arr).all() or (minimum is not None and np.any(arr < minimum)):
        bound = "" if minimum is None else f" and ≥ {minimum:g}"
        raise ValueError(f"`{name}` must be finite{bound}, got {value!r}.")
    return np.broadcast_to(arr, (n_genes,)).copy()


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
    n_genes: int | None = None,
    n_edges: int | None = None,
    *,
    hill: bool = False,
    regulation=None,
    initial_mean=None,
    initial_std=None,
    basal=None,
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
    """Simulate a gene regulatory network (random or given) with growth and death, with its ground truth.

    ``n_genes`` genes follow the SDE ``dx = u(x) dt + σ dW`` with a sparse signed regulation matrix
    ``W`` (``W[i, j] ≠ 0``: gene j activates (> 0) or represses (< 0) gene i), either random (``n_edges``
    edges, no self-loops) or the given ``regulation`` (any pattern, self-loops included):

    * linear (``hill=False``): ``u(x) = (W − decay·I)(x − x*)`` with the fixed point ``x* = 0``; random
      edge strengths are drawn from U(0.5, 1) and ``W`` is scaled down if needed so that the real parts
      of its eigenvalues are at most ``decay / 2`` (a stable network; a given ``regulation`` is used
      as it is). Cells start normal around a random mean (N(0, 1) per gene) with sd 0.5 and relax
      towards ``x*``.
    * Hill (``hill=True``): ``u_i(x) = b_i + Σ_j W⁺_ij H(x_j) + Σ_j W⁻_ij (1 − H(x_j)) − decay·x_i`` with
      ``H(x) = xⁿ/(1 + xⁿ)`` (``n = hill_n``), ``W⁺``/``W⁻`` the positive/negative parts, random strengths
      from U(0.5, 1) and the basal production ``b = basal`` (default 0.1); states are clipped at 0 after
      every step; cells start around a U(0.5, 2) mean, sd 0.3.

    ``initial_mean`` and ``initial_std`` replace the random initial mean and the default sd.
    :func:`bifurcating_network` is a preset of this simulator: a Hill toggle switch whose two lineages
    grow differently.

    Cells divide and die (a branching population: a dividing cell's daughter starts at its state, a dying
    cell is removed) at rates ``turnover + max(±g(x), 0)``, so the net growth rate is
    ``g(x) = growth_base + Σ_j c_j tanh((x_j − θ_j)/growth_scale)`` over the ``growth_genes`` j, with
    ``c = growth_coef`` and θ_j halfway between gene j's initial mean (the mean of its rows) and the
    end (at the last time) of the noise-free path from there, so that growth varies across cells and over time. Each
    snapshot is the whole population, or a ``sample_fraction`` of it, so the snapshot sizes follow the
    population. With ``counts=True`` the
    cells are also observed through ``n_count_genes`` genes with Poisson counts of rate
    ``exp(a + B z)``, z the standardized latent state (each count gene loads mainly on latent gene
    ``m mod n_genes``), ready for ``scanpy`` (normalize, log1p, PCA).

    **Which growth is identifiable from snapshots.** A snapshot shows the population's normalized
    distribution, not which cells divided. For a Gaussian population ``N(μ, Σ)`` a growth rate linear
    in the state, ``g(x) = ḡ + b·(x − μ)``, changes the normalized density exactly as a constant drift
    ``Σ b`` does (``b·(x − μ) p = −∇·(Σ b p)`` because ``∇p = −Σ⁻¹(x − μ) p``), so no method can tell that
    growth from transport. The random networks (linear, and Hill with the defaults) keep a unimodal,
    near-Gaussian cloud over which ``tanh`` is nearly linear: their growth is not identifiable in
    practice. Measured with the defaults: W1 between the snapshots and those of a uniform-growth twin (same seed,
    ``growth_coef=0``, the same mean growth) stays at the sampling floor (W1 between two random halves
    of a snapshot): 0.92–1.03× the floor at times 1–4 for the linear network (0.57 vs 0.59 at t=2),
    0.95–1.03× for ``hill=True``. Growth becomes identifiable when it differs between subpopulations
    that are separate from the start, whose relative sizes no drift can change without moving cells
    across the gap (:func:`three_gene_network`: a balanced fit misses its snapshots by 0.9–2.5 sampling
    floors, :func:`ruotools.tl.growth_identifiability`). Where progenitors choose between a growing
    and a shrinking lineage (:func:`bifurcating_network`), the uniform-growth twin differs from the
    data (2.2× the floor at t=2, 5.5× at t=4), yet a balanced fit that sends more progenitors into the
    growing lineage matches the snapshots as well as a growth fit: lineage sizes can come from growth
    or from fate bias.

    Parameters
    ----------
    n_genes
        Number of latent genes (≥ 2); default 8, or the size of ``regulation``.
    n_edges
        Number of random regulatory edges, in [0, n_genes·(n_genes − 1)]; default ``2 * n_genes``
        (capped). Leave it ``None`` with ``regulation``.
    hill
        Hill-type activation/repression instead of a linear network.
    regulation
        A given ``(d, d)`` signed regulation matrix ``W`` (array-like, finite, d ≥ 2) instead of a random
        one; its non-zero entries are the edges. ``None``: random.
    initial_mean
        Mean of the initial cells, one number or one per gene; or a ``(k, n_genes)`` array, one row per
        starting population (initial cell i starts around row ``i mod k``). ``None``: random (see above).
    initial_std
        Standard deviation (≥ 0) of the initial cells around ``initial_mean``, one number or one per
        gene. ``None``: 0.5 (linear) or 0.3 (Hill).
    basal
        Hill model only: basal production ``b_i`` (≥ 0), one number or one per gene. ``None``: 0.1.
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
          ``decay``, ``fixed_point`` (linear) or ``basal`` (Hill), ``initial_mean``, ``initial_std`` (a
          number by default, one per gene when given), ``hill_n``, ``hill_k``, ``growth_genes``,
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
    TypeError
        For an argument of the wrong type (the message names it).
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
    >>> cascade = [[0, 0, 0], [1.0, 0, 0], [0, -1.0, 0]]  # x1 activates x2, x2 represses x3
    >>> adata = rt.datasets.regulatory_network(regulation=cascade, hill=True, initial_mean=1.0)
    >>> adata.uns["truth"]["edges"].tolist()
    [[1, 0], [2, 1]]
    """
    import anndata as ad

    from .. import _validation as val

    for flag, name in ((hill, "hill"), (counts, "counts")):
        if not isinstance(flag, bool | np.bool_):
            raise TypeError(f"`{name}` must be True or False, got {flag!r}.")
    if n_genes is not None:
        n_genes = val.check_count(n_genes, "n_genes", minimum=2)
    given_w = None
    if regulation is not None:
        given_w, edges = _regulation_arg(regulation, n_genes, n_edges)
        n_genes, n_edges = given_w.shape[0], len(edges)
    else:
        n_genes = DEFAULT_N_GENES if n_genes is None else n_genes
        max_edges = n_genes * (n_genes - 1)
        if n_edges is None:
            n_edges = min(2 * n_genes, max_edges)
        n_edges = val.check_count(n_edges, "n_edges")
        if n_edges > max_edges:
            raise ValueError(f"`n_edges` must be at most n_genes·(n_genes − 1) = {max_edges}, got {n_edges}.")
    if initial_mean is not None:
        if np.ndim(initial_mean) == 2:
            rows = np.asarray(initial_mean)
            if len(rows) == 0:
                raise ValueError("`initial_mean` with one row per starting population needs at least one row.")
            initial_mean = np.stack([_per_gene(row, "initial_mean", n_genes) for row in rows])
        else:
            initial_mean = _per_gene(initial_mean, "initial_mean", n_genes)
    if initial_std is not None:
        initial_std = _per_gene(initial_std, "initial_std", n_genes, minimum=0.0)
    if basal is not None:
        if not hill:
            raise ValueError("`basal` is the Hill model's basal production; pass `hill=True` or leave `basal` None.")
        basal = _per_gene(basal, "basal", n_genes, minimum=0.0)
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
    if given_w is None:
        w, edges = _random_network(rng, n_genes, n_edges, bool(hill), decay)
    else:
        w = given_w
    if initial_mean is not None:
        mean0 = initial_mean
    else:
        mean0 = rng.uniform(0.5, 2.0, n_genes) if hill else rng.standard_normal(n_genes)
    std0 = (HILL_INIT_STD if hill else INIT_STD) if initial_std is None else initial_std
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
    if hill:
        truth["basal"] = np.full(n_genes, HILL_BASAL) if basal is None else basal
    else:
        truth["fixed_point"] = np.zeros(n_genes)
    centre = mean0 if mean0.ndim == 1 else mean0.mean(axis=0)
    truth["growth_center"] = _midpoint(centre, truth, times[-1] - times[0], dt)[genes]

    starts = mean0 if mean0.ndim == 1 else mean0[np.arange(n_cells0) % len(mean0)]
    x0 = starts + std0 * rng.standard_normal((n_cells0, n_genes))
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
            f"{'Random' if given_w is None else 'Given'} {kind} regulatory network of {n_genes} genes and "
            f"{n_edges} edges; growth driven by genes "
            f"{[int(g) for g in genes]}; branching population with division and death; true drift, Jacobian "
            "and growth stored."
        ),
        "source": "ruotools.datasets.regulatory_network",
        "params": {
            "n_genes": n_genes,
            "n_edges": n_edges,
            "hill": bool(hill),
            "regulation_given": given_w is not None,
            "n_cells0": n_cells0,
            "sample_fraction": sample_fraction,
            "counts": bool(counts),
            "random_state": seed,
        },
    }
    return adata


#: :func:`bifurcating_network`: self-activation of genes 1 and 2, their mutual repression, the activation
#: of the downstream genes (3–4 by gene 1, 5–6 by gene 2), Hill exponent, basal production of the
#: regulated genes and of the unregulated noise genes, and the sd of the initial progenitors.
BIFURCATION_SELF = 1.5
BIFURCATION_REPRESSION = 1.5
BIFURCATION_DOWNSTREAM = 1.5
BIFURCATION_HILL_N = 4.0
BIFURCATION_BASAL = 0.1
BIFURCATION_NOISE_BASAL = 1.0
BIFURCATION_INIT_STD = 0.15
#: decay that puts the toggle's symmetric (saddle) state at x1 = x2 = K, where H = 1/2
BIFURCATION_DECAY = BIFURCATION_BASAL + (BIFURCATION_SELF + BIFURCATION_REPRESSION) / 2 * HILL_K
#: |x1 − x2| beyond which a cell is labelled with a lineage in ``obs['lineage']``
LINEAGE_GAP = 1.0


def bifurcation_model(n_noise_genes: int = 2) -> dict[str, np.ndarray | float]:
    """Return the regulation, decay, basal production and progenitor state of :func:`bifurcating_network`.

    Parameters
    ----------
    n_noise_genes
        Number of unregulated noise genes after the six network genes (≥ 0).

    Returns
    -------
    dict
        ``regulation`` ``(d, d)`` (d = 6 + ``n_noise_genes``), ``decay``, ``basal`` ``(d,)``, ``hill_n`` and
        ``initial_mean`` ``(d,)``: the symmetric steady state, a saddle of the toggle switch.
    """
    from .. import _validation as val

    n_noise_genes = val.check_count(n_noise_genes, "n_noise_genes")
    d = 6 + n_noise_genes
    w = np.zeros((d, d))
    w[0, 0] = w[1, 1] = BIFURCATION_SELF
    w[0, 1] = w[1, 0] = -BIFURCATION_REPRESSION
    w[[2, 3], 0] = BIFURCATION_DOWNSTREAM
    w[[4, 5], 1] = BIFURCATION_DOWNSTREAM
    basal = np.full(d, BIFURCATION_BASAL)
    basal[6:] = BIFURCATION_NOISE_BASAL
    # at x1 = x2 = K every H is 1/2: genes 1–2 balance by the choice of decay, the others follow them
    mean0 = basal / BIFURCATION_DECAY
    mean0[:2] = HILL_K
    mean0[2:6] += 0.5 * BIFURCATION_DOWNSTREAM / BIFURCATION_DECAY
    return {
        "regulation": w,
        "decay": BIFURCATION_DECAY,
        "basal": basal,
        "hill_n": BIFURCATION_HILL_N,
        "initial_mean": mean0,
    }


def lineage_states(model: dict, dt: float = 0.01, duration: float = 30.0) -> np.ndarray:
    """Return the two stable states of the toggle switch of :func:`bifurcation_model`, shape ``(2, d)``.

    Found by following the noise-free drift from the progenitor state nudged towards each lineage
    (x1 − x2 = ±0.3) for ``duration`` time units: row 0 is the x1 lineage's state, row 1 the x2 one's.
    """
    truth = {
        "model": "hill",
        "W": model["regulation"],
        "decay": model["decay"],
        "hill_n": model["hill_n"],
        "hill_k": HILL_K,
        "basal": model["basal"],
    }
    x = np.repeat(model["initial_mean"][None, :], 2, axis=0)
    x[:, 0] += [0.15, -0.15]
    x[:, 1] -= [0.15, -0.15]
    for _ in range(int(np.ceil(duration / dt))):
        x = np.maximum(x + regulatory_drift(x, truth) * dt, 0.0)
    return x


def bifurcating_network(
    n_noise_genes: int = 2,
    *,
    growth_genes=(0,),
    growth_coef=0.5,
    growth_base: float = 0.1,
    growth_scale: float = 0.5,
    turnover: float = 0.05,
    start: str = "progenitors",
    sigma: float = 0.25,
    times=(0, 1, 2, 3, 4),
    n_cells0: int = 500,
    sample_fraction: float = 1.0,
    counts: bool = False,
    n_count_genes: int = 50,
    dt: float = 0.01,
    random_state: int = 0,
):
    """Simulate progenitors that split into two lineages, one of which grows and one of which shrinks.

    A preset of :func:`regulatory_network` (the same engine and truth) with a Hill network
    (``hill_n`` = 4, K = 1, decay 1.6) of 6 + ``n_noise_genes`` genes:

    * genes 1 and 2 (``x1``, ``x2``) form a toggle switch: each activates itself (``W = 1.5``) and
      represses the other (``W = −1.5``), basal production 0.1. Their symmetric state x1 = x2 = 1 is a
      saddle (unstable along x1 − x2, growth rate ≈ 1.4 per unit time) between two stable states,
      (x1, x2) ≈ (1.9, 0.06) and (0.06, 1.9);
    * gene 1 activates genes 3 and 4, gene 2 activates genes 5 and 6 (``W = 1.5``, basal 0.1): each
      lineage switches on its own pair (≈ 1.0 vs 0.06);
    * genes 7, 8, … are unregulated noise genes (basal 1, so they fluctuate around 0.63).

    Cells start as progenitors around the saddle (sd 0.15 per gene) and, driven by the noise
    (``sigma``), split into the x1 and x2 lineages over times 0–4. The net growth rate
    ``g = growth_base + growth_coef · tanh((x1 − θ)/growth_scale)`` (θ ≈ 1, the saddle) rises with gene 1,
    so the x1 lineage grows (g ≈ 0.6) while the x2 lineage shrinks (g ≈ −0.4); its std across cells is
    0.22–0.35 at times 1–4 (0.13 at time 0). With the defaults (seed 0) the population triples
    (500 → 1,514 cells) and the x2 lineage falls from 22 % of the committed cells at time 2 to 6 % at
    time 4 (87 cells).

    Unlike the growth of the random networks of :func:`regulatory_network`, this growth leaves a trace
    that a fixed motion cannot imitate: W1 between the snapshots and those of a uniform-growth twin
    (same seed, ``growth_coef=0``, the same mean growth) is 2.2×, 4.1× and 5.5× the sampling floor (W1
    between two random halves of a snapshot) at times 2, 3 and 4 (1.0× at time 1, before the split);
    the default linear network's twin stays at the floor. A different motion can: a balanced fit (no
    growth) matches the snapshots as well as a growth fit (:func:`ruotools.tl.growth_identifiability`,
    W1 excess −0.03 to 0.07 sampling floors, fit seeds 0 and 1) by sending more progenitors into the
    x1 lineage. From snapshots alone, growth and fate bias trade off here; the per-cell growth a fit
    returns is its prior's choice between them (benchmarks/README.md).

    Parameters
    ----------
    n_noise_genes
        Number of unregulated noise genes after the six network genes (≥ 0).
    growth_genes, growth_coef, growth_base, growth_scale, turnover
        As in :func:`regulatory_network`; the defaults drive growth by gene 1 (see above).
    start
        ``"progenitors"``: every initial cell around the progenitor state (the saddle, above).
        ``"lineages"``: half of them around each lineage's stable state (:func:`lineage_states`), so
        the lineages exist from the start and growth alone changes their sizes. Measured (seed 0): the
        x2 lineage falls from 250 of 500 cells to 59 of 2,386 at time 4; a balanced fit misses the
        snapshots by 0.06–0.23 sampling floors (:func:`ruotools.tl.growth_identifiability`).
    sigma, times, n_cells0, sample_fraction, counts, n_count_genes, dt, random_state
        As in :func:`regulatory_network`.

    Returns
    -------
    anndata.AnnData
        As :func:`regulatory_network` (``uns['truth']`` with ``model="hill"``, ``W``, per-cell true
        growth, drift, Jacobian and growth gradient), with ``uns['dataset']['name']`` =
        ``"bifurcating_network"`` and ``obs['lineage']`` (categorical ``progenitor``/``x1``/``x2``: the
        gene of the pair ahead by more than 1, else progenitor), a label for grouping, not a model truth.

    Raises
    ------
    TypeError
        For an argument of the wrong type (the message names it).
    ValueError
        For a bad argument (the message names it), or rates too fast for ``dt``.
    RuntimeError
        If the population dies out or exceeds 200,000 cells.

    See Also
    --------
    bifurcation_model : the regulation matrix, decay, basal production and progenitor state.

    Examples
    --------
    >>> import ruotools as rt
    >>> adata = rt.datasets.bifurcating_network(random_state=0)
    >>> adata.shape[1], adata.uns["truth"]["growth_genes"].tolist()
    (8, [0])
    >>> late = adata[adata.obs["time"] == 4].obs
    >>> bool(late.groupby("lineage", observed=False)["true_growth"].mean()["x1"] > 0.5)
    True
    """
    model = bifurcation_model(n_noise_genes)
    if start not in ("progenitors", "lineages"):
        raise ValueError(f"`start` must be 'progenitors' or 'lineages', got {start!r}.")
    initial_mean = model["initial_mean"] if start == "progenitors" else lineage_states(model, dt)
    adata = regulatory_network(
        regulation=model["regulation"],
        hill=True,
        hill_n=model["hill_n"],
        decay=model["decay"],
        basal=model["basal"],
        initial_mean=initial_mean,
        initial_std=BIFURCATION_INIT_STD,
        growth_genes=growth_genes,
        growth_coef=growth_coef,
        growth_base=growth_base,
        growth_scale=growth_scale,
        turnover=turnover,
        sigma=sigma,
        times=times,
        n_cells0=n_cells0,
        sample_fraction=sample_fraction,
        counts=counts,
        n_count_genes=n_count_genes,
        dt=dt,
        random_state=random_state,
    )
    latent = np.asarray(adata.obsm.get("X_latent", adata.X), dtype=np.float64)
    gap = latent[:, 0] - latent[:, 1]
    lineage = np.where(gap > LINEAGE_GAP, "x1", np.where(gap < -LINEAGE_GAP, "x2", "progenitor"))
    adata.obs["lineage"] = pd.Categorical(lineage, categories=["progenitor", "x1", "x2"])
    d = adata.uns["truth"]["W"].shape[0]
    adata.uns["dataset"] = {
        "name": "bifurcating_network",
        "description": (
            f"Hill toggle switch (x1 ⊣ x2, x2 ⊣ x1, each self-activating) with downstream genes x3–x4 (on in "
            f"the x1 lineage) and x5–x6 (x2 lineage) and {d - 6} noise genes; progenitors split into two "
            f"lineages; growth driven by genes {[int(g) for g in adata.uns['truth']['growth_genes']]}; "
            "branching population with division and death; true drift, Jacobian and growth stored."
        ),
        "source": "ruotools.datasets.bifurcating_network",
        "params": {
            **adata.uns["dataset"]["params"],
            "n_noise_genes": d - 6,
        },
    }
    return adata
