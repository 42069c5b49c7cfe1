"""Simulators with ground truth: the three-gene network behind ``simulated_gene`` (pure numpy).

The truth functions (drift, Jacobian, rates, growth and its gradient) are importable so that
tests and benchmarks can compare a fit with the truth at any state, e.g.
``ruotools.datasets._simulators.three_gene_drift(x)``. The configurable regulatory network lives
in :mod:`ruotools.datasets._regulatory`; its truth functions are re-exported here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._branching import check_fraction, check_real, check_times, simulate_population, stack
from ._regulatory import (  # noqa: F401  (re-exported truth functions)
    bifurcating_network,
    bifurcation_model,
    regulatory_drift,
    regulatory_growth,
    regulatory_growth_gradient,
    regulatory_jacobian,
    regulatory_network,
    regulatory_rates,
)

#: Parameters of the three-gene network (see :func:`three_gene_network` for the equations).
THREE_GENE_PARAMS: dict[str, float] = {
    "alpha1": 3.3,  # production of X1 (gated by X3, repressed by X2)
    "alpha2": 4.2,  # production of X2 (gated by X3, repressed by X1)
    "alpha3": 2.5,  # self-activation of X3
    "delta1": 1.5,  # decay of X1
    "delta2": 1.5,  # decay of X2
    "delta3": 1.0,  # decay of X3
    "k12": 1.1,  # X2 level that halves X1's production
    "k21": 2.0,  # X1 level that halves X2's production
    "k3": 1.0,  # X3 level of half-activation
    "division_base": 0.02,  # division rate without X2
    "division_max": 0.5,  # extra division rate at saturating X2
    "k_division": 1.0,  # X2 level of half-maximal extra division
    "death": 0.02,  # constant death rate
}

#: Sign of the regulation of gene i (row) by gene j (column), decay excluded.
THREE_GENE_REGULATION = np.array([[0, -1, 1], [-1, 0, 1], [0, 0, 1]], dtype=np.int64)

#: Initial cluster centres (x1, x2, x3): quiescent (X3 off) and switching (X3 on).
THREE_GENE_CENTRES = np.array([[0.0, 0.0, 0.0], [2.0, 0.2, 2.0]])
#: Standard deviation of the initial clusters (before clipping at 0).
THREE_GENE_INIT_STD = 0.1

_EQUATIONS = (
    "dx1 = [alpha1 h(x3) r(x2; k12) - delta1 x1] dt + sigma dW1; "
    "dx2 = [alpha2 h(x3) r(x1; k21) - delta2 x2] dt + sigma dW2; "
    "dx3 = [alpha3 h(x3) - delta3 x3] dt + sigma dW3; "
    "h(x) = x^2 / (k3^2 + x^2), r(x; k) = 1 / (1 + (x / k)^2); "
    "division b(x) = division_base + division_max x2^2 / (k_division^2 + x2^2), death d = death; "
    "growth g = b - d; states clipped at 0 after each step."
)


def _params(params) -> dict[str, float]:
    """Return the default parameters updated with ``params`` (unknown keys raise ``ValueError``)."""
    out = dict(THREE_GENE_PARAMS)
    if params is None:
        return out
    if not isinstance(params, dict):
        raise TypeError(f"`params` must be a dict, got {type(params).__name__}.")
    unknown = sorted(set(params) - set(out))
    if unknown:
        raise ValueError(f"Unknown three-gene parameters {unknown}; known: {sorted(out)}.")
    for key, value in params.items():
        out[key] = check_real(value, f"params['{key}']", minimum=0.0)
    for key in ("k12", "k21", "k3", "k_division"):
        if out[key] <= 0:
            raise ValueError(f"`params['{key}']` must be > 0, got {out[key]!r}.")
    return out


def _states(x) -> np.ndarray:
    """``x`` as a float64 array of shape (n, 3)."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    if x.ndim != 2 or x.shape[1] != 3:
        raise ValueError(f"States must have shape (n, 3), got {np.shape(x)}.")
    return x


def _act(x, k):
    """Hill activation x²/(k² + x²) and its derivative."""
    den = k * k + x * x
    return x * x / den, 2.0 * x * k * k / den**2


def _rep(x, k):
    """Hill repression 1/(1 + (x/k)²) and its derivative."""
    den = 1.0 + (x / k) ** 2
    return 1.0 / den, -2.0 * x / (k * k * den**2)


def three_gene_drift(x, params=None) -> np.ndarray:
    """Drift ``u(x)`` of the three-gene network, ``(n, 3) → (n, 3)`` (per unit time)."""
    p, x = _params(params), _states(x)
    h3, _ = _act(x[:, 2], p["k3"])
    r2, _ = _rep(x[:, 1], p["k12"])
    r1, _ = _rep(x[:, 0], p["k21"])
    return np.column_stack(
        [
            p["alpha1"] * h3 * r2 - p["delta1"] * x[:, 0],
            p["alpha2"] * h3 * r1 - p["delta2"] * x[:, 1],
            p["alpha3"] * h3 - p["delta3"] * x[:, 2],
        ]
    )


def three_gene_jacobian(x, params=None) -> np.ndarray:
    """Analytic Jacobian ``J[c, i, j] = ∂u_i/∂x_j`` of :func:`three_gene_drift`, shape ``(n, 3, 3)``."""
    p, x = _params(params), _states(x)
    h3, dh3 = _act(x[:, 2], p["k3"])
    r2, dr2 = _rep(x[:, 1], p["k12"])
    r1, dr1 = _rep(x[:, 0], p["k21"])
    jac = np.zeros((x.shape[0], 3, 3))
    jac[:, 0, 0] = -p["delta1"]
    jac[:, 0, 1] = p["alpha1"] * h3 * dr2
    jac[:, 0, 2] = p["alpha1"] * dh3 * r2
    jac[:, 1, 0] = p["alpha2"] * h3 * dr1
    jac[:, 1, 1] = -p["delta2"]
    jac[:, 1, 2] = p["alpha2"] * dh3 * r1
    jac[:, 2, 2] = p["alpha3"] * dh3 - p["delta3"]
    return jac


def three_gene_rates(x, params=None) -> tuple[np.ndarray, np.ndarray]:
    """Division and death rates (per unit time) of cells at states ``x``, each ``(n,)``."""
    p, x = _params(params), _states(x)
    a2, _ = _act(x[:, 1], p["k_division"])
    return p["division_base"] + p["division_max"] * a2, np.full(x.shape[0], p["death"])


def three_gene_growth(x, params=None) -> np.ndarray:
    """Net growth rate ``g(x) = division − death`` (per unit time), shape ``(n,)``."""
    birth, death = three_gene_rates(x, params)
    return birth - death


def three_gene_growth_gradient(x, params=None) -> np.ndarray:
    """Gradient ``∂g/∂x_j`` of :func:`three_gene_growth`, shape ``(n, 3)`` (only X2 drives growth)."""
    p, x = _params(params), _states(x)
    _, da2 = _act(x[:, 1], p["k_division"])
    grad = np.zeros_like(x)
    grad[:, 1] = p["division_max"] * da2
    return grad


def three_gene_network(
    n_cells0: int = 400,
    times=(0, 1, 2, 3, 4),
    *,
    sigma: float = 0.1,
    params: dict | None = None,
    sample_fraction: float = 1.0,
    dt: float = 0.01,
    random_state: int = 0,
):
    r"""Simulate the three-gene network with division and death behind :func:`simulated_gene`, with its truth.

    Two genes inhibit each other (X1 ⊣ X2, X2 ⊣ X1), X3 activates itself and switches on the
    production of X1 and X2, and cells divide faster the more X2 they express:

    .. math::

        dx_1 &= [\alpha_1 h(x_3) r(x_2; k_{12}) - \delta_1 x_1]\,dt + \sigma\,dW_1 \\
        dx_2 &= [\alpha_2 h(x_3) r(x_1; k_{21}) - \delta_2 x_2]\,dt + \sigma\,dW_2 \\
        dx_3 &= [\alpha_3 h(x_3) - \delta_3 x_3]\,dt + \sigma\,dW_3

    with :math:`h(x) = x^2/(k_3^2 + x^2)` and :math:`r(x; k) = 1/(1 + (x/k)^2)`; states are
    clipped at 0 after each Euler–Maruyama step. A cell divides at rate
    :math:`b(x) = b_0 + b_{max} x_2^2/(k_b^2 + x_2^2)` (its daughter starts at its state) and
    dies at the constant rate :math:`d`; its net growth rate is :math:`g = b - d`. X3 is bistable
    (stable at 0 and 2), so it fixes each cell's fate: half of the initial cells (normal around
    (0, 0, 0), sd 0.1, clipped at 0) stay near the origin and barely grow ("quiescent"); the other
    half (around (2, 0.2, 2)) move from high X1 to high X2, ending near (0.45, 2.05), and divide
    ever faster ("switching"). Every snapshot is the whole population (or ``sample_fraction`` of
    it), so the cell counts follow the population: about 400, 440, 550, 720 and 960 cells at
    times 0–4 with the defaults, like the 400, 442, 530, 690 and 969 of :func:`simulated_gene`.
    Takes well under a second.

    Parameters (``THREE_GENE_PARAMS``, override any with ``params``): α₁ = 3.3, α₂ = 4.2,
    α₃ = 2.5, δ₁ = δ₂ = 1.5, δ₃ = 1, k₁₂ = 1.1, k₂₁ = 2, k₃ = 1, b₀ = 0.02, b_max = 0.5, k_b = 1,
    d = 0.02.

    What differs from the paper: the DeepRUOT paper (Zhang, Li & Zhou, ICLR 2025) and TIGON
    (Sha et al., 2024) describe this network (mutual inhibition of X1 and X2, self-activating X3,
    division rising with X2, death), but their exact equations and parameter values could not be
    retrieved when this simulator was written. The form above (X3 gating the production of X1 and
    X2, Hill exponents 2) and every value were chosen to reproduce the shipped snapshots — the two
    clusters, their paths and the growth from 400 to about 960 cells — not copied from the paper;
    ``.X`` also holds X3, which the shipped data leave out (use ``adata[:, ["x1", "x2"]]`` for the
    same 2-D view). Treat it as a faithful re-creation, not the original generator.

    Parameters
    ----------
    n_cells0
        Number of cells at the first time, split evenly between the two initial clusters (≥ 2).
    times
        Increasing snapshot times (≥ 0); the first is the initial population.
    sigma
        Noise amplitude of every gene (≥ 0).
    params
        Overrides of ``THREE_GENE_PARAMS`` (numbers ≥ 0; thresholds ``k*`` > 0).
    sample_fraction
        Fraction of the population kept in each snapshot, in (0, 1]; sizes still follow the population.
    dt
        Largest Euler–Maruyama step (> 0).
    random_state
        Seed; the same seed gives the same data.

    Returns
    -------
    anndata.AnnData
        * ``.X``: the states (float32), var names ``x1, x2, x3``; ``obs['time']`` (float64);
        * ``obs['lineage']``: ``"quiescent"`` or ``"switching"`` (the initial cluster of the cell's ancestor);
        * ``obs['true_growth']``: net growth rate ``b − d`` per unit time (float64);
        * ``obsm['true_drift']``: ``u(x)`` ``(n, 3)``; ``obsm['true_jacobian']``: ``(n, 3, 3)`` with
          ``[c, i, j] = ∂u_i/∂x_j`` at cell ``c``; ``obsm['true_growth_gradient']``: ``∂g/∂x`` ``(n, 3)``
          (float64, evaluated at the stored float32 coordinates);
        * ``uns['truth']``: ``params``, ``sigma``, ``dt``, ``times``, ``regulation`` (sign of the effect of
          gene j on gene i, decay excluded), ``growth_genes``, ``gene_names``, ``population_size`` (the whole
          population at each time), ``expected_log_mass`` (``∫ mean g dt`` from the first time) and
          ``equations``; arrays and numbers only, so it writes to ``.h5ad``;
        * ``uns['dataset']``: ``name``, ``description``, ``source`` and the arguments.

        The truth functions are ``ruotools.datasets._simulators.three_gene_drift``, ``three_gene_jacobian``,
        ``three_gene_rates``, ``three_gene_growth`` and ``three_gene_growth_gradient`` (each takes the
        states and optionally ``uns['truth']['params']``).

    Raises
    ------
    ValueError
        For a bad argument (message names it), or rates too fast for ``dt``.

    Examples
    --------
    >>> import ruotools as rt
    >>> adata = rt.datasets.three_gene_network(random_state=0)
    >>> adata.var_names.tolist()
    ['x1', 'x2', 'x3']
    >>> adata.obsm["true_jacobian"].shape[1:]
    (3, 3)
    >>> view = adata[:, ["x1", "x2"]]  # the 2-D view of rt.datasets.simulated_gene()
    """
    import anndata as ad

    from .. import _validation as val

    n_cells0 = val.check_count(n_cells0, "n_cells0", minimum=2)
    times = check_times(times)
    sigma = check_real(sigma, "sigma", minimum=0.0)
    dt = check_real(dt, "dt", minimum=0.0, exclusive=True)
    sample_fraction = check_fraction(sample_fraction)
    seed = val.check_seed(random_state)
    p = _params(params)

    rng = np.random.default_rng(seed)
    labels0 = np.repeat([0, 1], [n_cells0 - n_cells0 // 2, n_cells0 // 2])
    x0 = np.maximum(THREE_GENE_CENTRES[labels0] + THREE_GENE_INIT_STD * rng.standard_normal((n_cells0, 3)), 0.0)
    snaps = simulate_population(
        x0,
        labels0,
        times,
        drift=lambda x: three_gene_drift(x, p),
        rates=lambda x: three_gene_rates(x, p),
        sigma=sigma,
        dt=dt,
        rng=rng,
        nonnegative=True,
        sample_fraction=sample_fraction,
    )
    x, t, labels = stack(snaps, times)
    x64 = x.astype(np.float64)

    obs = pd.DataFrame(
        {
            "time": t,
            "lineage": pd.Categorical.from_codes(labels, categories=["quiescent", "switching"]),
            "true_growth": three_gene_growth(x64, p),
        },
        index=pd.Index([f"cell_{i}" for i in range(x.shape[0])]),
    )
    adata = ad.AnnData(x, obs=obs, var=pd.DataFrame(index=["x1", "x2", "x3"]))
    adata.obsm["true_drift"] = three_gene_drift(x64, p)
    adata.obsm["true_jacobian"] = three_gene_jacobian(x64, p)
    adata.obsm["true_growth_gradient"] = three_gene_growth_gradient(x64, p)
    adata.uns["truth"] = {
        "model": "three_gene",
        "params": p,
        "sigma": sigma,
        "dt": dt,
        "times": times,
        "regulation": THREE_GENE_REGULATION.copy(),
        "growth_genes": np.array([1], dtype=np.int64),
        "gene_names": np.array(["x1", "x2", "x3"]),
        "population_size": snaps.population_size,
        "expected_log_mass": snaps.expected_log_mass,
        "equations": _EQUATIONS,
    }
    adata.uns["dataset"] = {
        "name": "three_gene_network",
        "description": (
            "Three-gene network (X1, X2 mutual inhibition; X3 self-activating) with division rising with X2 "
            "and constant death; snapshots of the whole population, with true drift, Jacobian and growth."
        ),
        "source": "ruotools.datasets.three_gene_network (re-creation of the DeepRUOT simulation, see docstring)",
        "params": {
            "n_cells0": n_cells0,
            "sigma": sigma,
            "sample_fraction": sample_fraction,
            "dt": dt,
            "random_state": seed,
        },
    }
    return adata
