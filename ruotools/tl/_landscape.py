"""`landscape`: the Waddington potential U = −log ρ on a 2-D grid."""

from __future__ import annotations

import time as _time

import numpy as np

from .. import _logging as logg
from .. import _validation as val
from .._keys import Keys, basis_from_rep
from .._settings import settings
from ..model import RUOTModel
from ._common import fitted

#: Grid points whose kernel weight sum over the cells, Σ_i exp(−|g − e_i|²/2h²), is below this are
#: masked (NaN): no cell within about three bandwidths.
MIN_KERNEL_WEIGHT = 0.01

#: The default bandwidth is the median distance of the cells to their ``BANDWIDTH_NEIGHBOURS``-th
#: nearest neighbour on the 2-D basis, and at least ``MIN_BANDWIDTH_STEPS`` grid steps.
BANDWIDTH_NEIGHBOURS = 15
MIN_BANDWIDTH_STEPS = 2.0

#: Largest number of (grid point, cell) pairs held in memory at once by the kernel sums.
_PAIRS_PER_CHUNK = 4_000_000


def landscape(
    adata,
    *,
    basis: str | None = None,
    time=None,
    grid_size: int = 100,
    key_added: str = "ruot",
    model: RUOTModel | None = None,
    bandwidth=None,
    padding: float = 0.1,
    stochastic: bool = False,
    n_steps_per_unit: float = 20,
    random_state: int = 0,
) -> dict:
    r"""Waddington landscape: the potential U(·, t) = −log ρ(·, t) on a 2-D grid.

    Valleys (low U) are where the model puts its cells. Two ways to compute it, chosen from the fit
    and ``basis`` (stored in ``params["method"]``):

    * **network** — the model was fitted in 2-D and ``basis`` is ``None`` or the fitted
      representation: U is the learnt score turned into a log-density, U = −2s/σ² (METHOD.md §5),
      evaluated on the grid directly. −log ρ is defined up to an additive constant at each time: the
      fit fixes it so that the mean of U over each time point's cells is the same (linear in
      between), so maps of different times share one scale. The grid spans the valid cells' range,
      widened by ``padding`` × the range on each side.
    * **mass** — the fit has more than two dimensions, or ``basis`` is another embedding
      (``"umap"``): U(y, t) = −log ρ_e(y, t) is the density of the model's mass *on the 2-D
      embedding*. A potential in the fitted space cannot be drawn on an embedding point by point
      (an embedding such as a UMAP is not a projection of it), so the model's mass is carried onto
      the embedding by the cells:

      1. the cells of the first fitted time point t₀ are pushed through the fitted dynamics to
         every time needed (the probability-flow ODE, whose marginals are the model's density ρ;
         the SDE with ``stochastic=True``), each particle carrying the mass its growth gives it,
         starting from 1/n₀ (the population at t₀ is 1);
      2. the mass of every particle at time t is attributed to the cell nearest to it in the
         fitted space, which gives each cell i a mass w_i(t) (zero for most cells far from where
         the model puts its mass);
      3. the mass is spread on the embedding by a Gaussian kernel of bandwidth h around each cell's
         embedding coordinates e_i: ρ_e(y, t) = Σ_i w_i(t) · N(y; e_i, h²) (a weighted kernel
         density estimate; it integrates to the model's total mass at t, relative to t₀).

      The valleys therefore lie on the cells where the model puts its mass at t, and U is comparable
      across times without a free constant (−log of a mass density per unit area of the embedding,
      deeper where the population has grown). Grid points with
      Σ_i exp(−|y − e_i|²/2h²) < 0.01 over all the cells (no cell within about three bandwidths)
      are masked: NaN in ``potential``, ``True`` in ``masked``, drawn blank by
      :func:`ruotools.pl.landscape`. Where cells are but the model puts no mass at t (e.g. the
      cells of other time points), U is high but finite. The default bandwidth is the median
      distance of the cells to their 15th nearest neighbour on the embedding, and at least two grid
      steps (a narrower kernel would fall between the grid points).

    Parameters
    ----------
    adata : anndata.AnnData
        Annotated data with a fit. Read: the fitted representation and time column, and
        ``obsm[f'X_{basis}']`` for an embedding other than the fitted one. Written:
        ``uns[f'{key_added}_landscape']``.
    basis : str or None
        2-D coordinates: ``None`` (the fitted representation when it is 2-D; otherwise
        ``obsm['X_umap']`` if present, else the first two fitted components), the fitted
        representation's basis (``"pca"`` for ``X_pca``; its first two columns), or any
        ``obsm`` embedding such as ``"umap"``/``"X_umap"`` (first two columns).
    time : float, sequence of float or None
        ``None`` → every fitted time point, ``potential`` (T, G, G); a number → (G, G); a sequence →
        (T, G, G). Mass mode: times before the first fitted time point raise a ``ValueError`` (the
        model's mass starts there).
    grid_size : int
        Points G per axis.
    key_added : str
        Key of the fit (prefix of the keys read and written).
    model : RUOTModel or None
        Model to use instead of the one stored in ``adata``.
    bandwidth : float, pair of float or None
        Mass mode: kernel bandwidth h in embedding units, one number or one per axis; ``None``
        for the default above.
    padding : float
        Fraction of the cells' range added on each side of the grid.
    stochastic : bool
        Mass mode: push the particles with the SDE (drift v + ∇s, noise σ) instead of the
        probability-flow ODE. Both have the model's density as marginals; the ODE is deterministic
        and several times faster.
    n_steps_per_unit : float
        Mass mode: integration steps per unit of the user's time (RK4 for the ODE).
    random_state : int
        Mass mode with ``stochastic=True``: seed of the Brownian increments.

    Returns
    -------
    dict
        Stored in ``uns['ruot_landscape']`` (h5ad-safe): ``"params"`` (``"method"`` — ``"network"``
        or ``"mass"`` — and the settings used, e.g. ``"bandwidth"`` (2,) and ``"start_time"`` in
        mass mode); ``"basis"`` (the basis name; the fitted one, e.g. ``"pca"`` or ``"X"``, means
        the fitted coordinates); ``"grid_x"``, ``"grid_y"`` (G,); ``"potential"`` (G, G) or
        (T, G, G) with ``potential[..., i, j]`` at ``(grid_x[j], grid_y[i])`` (matplotlib's
        ``contour(grid_x, grid_y, potential)`` layout), in units of log-density, NaN where masked;
        ``"masked"`` (G, G) bool, ``True`` where no cell is near (always ``False`` in network mode);
        ``"time"`` (T,) the times of the leading axis (one time for a (G, G) map);
        ``"gradient_x"``, ``"gradient_y"`` (−∇U per coordinate unit, same shape as ``potential``,
        by ``np.gradient``; arrows point downhill); ``"cell_potential"`` (n_obs,) U of each cell at
        its own observed time (network: the model's potential at the cell; mass: ρ_e at the cell's
        embedding coordinates; NaN for excluded cells).

    Raises
    ------
    ValueError
        For a deterministic model (``sigma=0``: no density), bad ``grid_size``, ``padding``,
        ``bandwidth``, ``n_steps_per_unit`` or ``time``.
    KeyError
        When ``obsm[f'X_{basis}']`` is missing.

    Examples
    --------
    >>> adata = rt.datasets.mouse_hematopoiesis()  # doctest: +SKIP
    >>> rt.tl.fit_ruot(adata, time_key="time")  # doctest: +SKIP
    >>> land = rt.tl.landscape(adata, time=adata.uns["ruot"]["time_points"][-1])  # doctest: +SKIP
    >>> plt.contourf(land["grid_x"], land["grid_y"], land["potential"])  # doctest: +SKIP

    A fit on 30 principal components, drawn on the UMAP:

    >>> rt.tl.fit_ruot(adata, "day", use_rep="X_pca")  # doctest: +SKIP
    >>> rt.tl.landscape(adata, basis="umap")  # doctest: +SKIP
    >>> rt.pl.landscape(adata)  # doctest: +SKIP
    """
    start = _time.perf_counter()
    keys = Keys(key_added)
    if isinstance(grid_size, bool) or not isinstance(grid_size, int | np.integer) or grid_size < 2:
        raise ValueError(f"`grid_size` must be an integer ≥ 2, got {grid_size!r}.")
    if not np.isfinite(padding) or padding < 0:
        raise ValueError(f"`padding` must be a number ≥ 0, got {padding!r}.")
    if isinstance(n_steps_per_unit, bool) or not np.isfinite(n_steps_per_unit) or n_steps_per_unit <= 0:
        raise ValueError(f"`n_steps_per_unit` must be a positive number, got {n_steps_per_unit!r}.")
    model, x, t, valid = fitted(adata, key_added, model)
    if model.config.sigma <= 0:
        raise ValueError(
            "The model is deterministic (fitted with `sigma=0`): it has no score, hence no density and no "
            "potential. Refit with `sigma > 0` to get a landscape."
        )
    fitted_basis = basis_from_rep(model.use_rep)
    if basis is not None:
        if not isinstance(basis, str) or not basis:
            raise TypeError(f"`basis` must be a string such as 'umap', got {basis!r}.")
        basis = basis[2:] if basis.startswith("X_") and basis != fitted_basis else basis
    elif model.n_dims == 2:
        basis = fitted_basis
    else:
        basis = "umap" if "X_umap" in adata.obsm else fitted_basis

    coords = x[:, :2] if basis == fitted_basis else val.embedding_2d(adata, basis)
    ok = valid & np.all(np.isfinite(coords), axis=1)
    if ok.sum() < 2:
        raise ValueError("Fewer than two cells have finite coordinates; no landscape to draw.")
    lo, hi = coords[ok].min(axis=0), coords[ok].max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    grid_x = np.linspace(lo[0] - padding * span[0], hi[0] + padding * span[0], int(grid_size))
    grid_y = np.linspace(lo[1] - padding * span[1], hi[1] + padding * span[1], int(grid_size))
    scalar_time = time is not None and np.ndim(time) == 0
    times = model.time_points.copy() if time is None else val.time_points(time, "time")
    if times.ndim != 1 or len(times) == 0 or not np.all(np.isfinite(times)):
        raise ValueError(f"`time` must be a finite number or a non-empty sequence of them, got {time!r}.")

    params = {"key_added": key_added, "use_rep": model.use_rep, "grid_size": int(grid_size), "padding": float(padding)}
    if basis == fitted_basis and model.n_dims == 2:
        params["method"] = "network"
        gx, gy = np.meshgrid(grid_x, grid_y)  # (G, G): row i ↔ grid_y[i], column j ↔ grid_x[j]
        points = np.column_stack([gx.ravel(), gy.ravel()])
        pot = np.stack([_evaluate(model, points, tk).reshape(gx.shape) for tk in times])
        masked = np.zeros((len(grid_y), len(grid_x)), dtype=bool)
        cell_u = _cell_potential(model, x, t, valid)
    else:
        params["method"] = "mass"
        step = max(grid_x[1] - grid_x[0], grid_y[1] - grid_y[0])
        h = _bandwidth(coords[ok], bandwidth, step)
        t0 = float(model.time_points[0])
        if np.any(times < t0 - 1e-9 * max(1.0, abs(t0))):
            raise ValueError(
                f"`time` must not be before the first fitted time point {t0:g} (the model's mass starts there), "
                f"got {time!r}."
            )
        params.update(
            bandwidth=h, start_time=t0, stochastic=bool(stochastic), n_steps_per_unit=float(n_steps_per_unit),
            random_state=int(random_state),
        )  # fmt: skip
        pot, masked, cell_u = _mass_landscape(
            model, x, t, valid, ok, coords, grid_x, grid_y, h, times,
            stochastic=bool(stochastic), n_steps_per_unit=float(n_steps_per_unit), random_state=int(random_state),
        )  # fmt: skip
    if scalar_time:
        pot = pot[0]
    dudy, dudx = np.gradient(pot, grid_y, grid_x, axis=(-2, -1))

    result = {
        "params": params,
        "basis": str(basis),
        "grid_x": grid_x,
        "grid_y": grid_y,
        "potential": pot,
        "masked": masked,
        "time": np.asarray(times, dtype=np.float64),
        "gradient_x": -dudx,
        "gradient_y": -dudy,
        "cell_potential": cell_u,
    }
    adata.uns[keys.landscape] = result
    logg.info(
        f"    added `adata.uns['{keys.landscape}']` ({params['method']} map on '{basis}', potential {pot.shape})",
        start=start,
    )
    return result


def _evaluate(model: RUOTModel, points: np.ndarray, t: float) -> np.ndarray:
    """Potential at ``points`` (n, d) and one time, in chunks."""
    out = np.empty(len(points))
    for s in range(0, len(points), settings.chunk_size):
        out[s : s + settings.chunk_size] = model.potential(points[s : s + settings.chunk_size], t)
    return out


def _cell_potential(model: RUOTModel, x: np.ndarray, t: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Potential of every valid cell at its own time (NaN elsewhere)."""
    u = np.full(len(x), np.nan)
    idx = np.flatnonzero(valid)
    for s in range(0, len(idx), settings.chunk_size):
        sel = idx[s : s + settings.chunk_size]
        u[sel] = model.potential(x[sel], t[sel])
    return u


def _bandwidth(coords: np.ndarray, bandwidth, grid_step: float) -> np.ndarray:
    """Per-axis bandwidth (2,): the given one, or the default.

    The default is the median distance of the cells to their 15th nearest neighbour, at least
    ``MIN_BANDWIDTH_STEPS`` grid steps (a narrower kernel falls between the grid points: the map would
    show the grid, not the density); Scott's rule, std · n^(−1/6) per axis, when that distance is 0
    (e.g. many cells at one point).
    """
    if bandwidth is None:
        from scipy.spatial import cKDTree

        k = min(BANDWIDTH_NEIGHBOURS, len(coords) - 1)
        dist, _ = cKDTree(coords).query(coords, k=k + 1)
        h = float(np.median(dist[:, -1]))
        if h > 0 and np.isfinite(h):
            return np.full(2, max(h, MIN_BANDWIDTH_STEPS * grid_step))
        std = coords.std(axis=0)
        std = np.where(std > 0, std, 1.0)
        return np.maximum(std * len(coords) ** (-1.0 / 6.0), MIN_BANDWIDTH_STEPS * grid_step)
    h = np.broadcast_to(np.asarray(bandwidth, dtype=np.float64), (2,)).copy()
    if not np.all(np.isfinite(h)) or np.any(h <= 0):
        raise ValueError(f"`bandwidth` must be a positive number or a pair of them, got {bandwidth!r}.")
    return h


def _mass_landscape(model, x, t, valid, ok, coords, grid_x, grid_y, h, times, *, stochastic, n_steps_per_unit,
                    random_state) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """U = −log ρ_e on the grid at ``times`` (T, G, G), the mask (G, G) and U of each cell at its own time (n_obs,).

    ρ_e(·, t) is the kernel density on the 2-D ``coords`` of the cells weighted by the mass of the
    particles (the first time point's cells pushed by the model) nearest to each cell in the fitted space.
    """
    from scipy.spatial import cKDTree

    time_points = model.time_points
    t0 = float(time_points[0])
    start = valid & np.isclose(t, t0)
    x0 = x[start]
    # every requested time and every fitted time point (for the cells' own potential), from t0 on
    needed = np.unique(np.concatenate([[t0], times, time_points]))
    needed = needed[needed >= t0]
    needed = needed[np.concatenate([[True], np.diff(needed) > 1e-9 * np.maximum(1.0, np.abs(needed[1:]))])]
    log_mass0 = np.full(len(x0), -np.log(len(x0)))  # the population at t0 is 1 (``relative_mass[0]``)
    sim = model.simulate(
        x0, needed, log_mass0=log_mass0, stochastic=stochastic, n_steps_per_unit=n_steps_per_unit,
        random_state=random_state,
    )  # fmt: skip

    idx_ok = np.flatnonzero(ok)
    tree = cKDTree(x[idx_ok])
    centres = coords[idx_ok]
    gx, gy = np.meshgrid(grid_x, grid_y)
    grid = np.column_stack([gx.ravel(), gy.ravel()])
    support = _log_kernel_sum(grid, centres, np.zeros(len(centres)), h).reshape(gx.shape)
    masked = support < np.log(MIN_KERNEL_WEIGHT)
    inside = grid[~masked.ravel()]

    def log_cell_mass(k: int) -> np.ndarray:
        """Return log w_i(t) of the cells ``idx_ok`` at ``needed[k]`` (−inf for cells with no mass)."""
        _, nearest = tree.query(sim["X"][k])
        w = np.bincount(nearest, weights=np.exp(sim["log_mass"][k]), minlength=len(idx_ok))
        with np.errstate(divide="ignore"):
            return np.log(w)

    def at(tv: float) -> int:
        """Index of the simulated time ``tv`` in ``needed``."""
        return int(np.argmin(np.abs(needed - tv)))

    log_norm = np.log(2.0 * np.pi * h[0] * h[1])
    pot = np.empty((len(times), len(grid_y), len(grid_x)))
    cache: dict[int, np.ndarray] = {}
    for j, tk in enumerate(times):
        k = at(tk)
        if k not in cache:
            cache[k] = log_cell_mass(k)
        pot[j] = np.nan
        pot[j][~masked] = -(_log_kernel_sum(inside, centres, cache[k], h) - log_norm)
    cell_u = np.full(len(x), np.nan)
    for tk in time_points:
        k = at(tk)
        if k not in cache:
            cache[k] = log_cell_mass(k)
        mine = ok & np.isclose(t, tk)
        if mine.any():
            cell_u[mine] = -(_log_kernel_sum(coords[mine], centres, cache[k], h) - log_norm)
    return pot, masked, cell_u


def _log_kernel_sum(points: np.ndarray, centres: np.ndarray, log_w: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Return log Σ_i w_i exp(−½ |(p − c_i) / h|²) at each of ``points`` (P, 2), in log space (no underflow).

    Centres with zero weight (``log_w = −inf``) are skipped; −inf where no centre has weight.
    """
    from scipy.special import logsumexp

    keep = np.isfinite(log_w)
    centres, log_w = centres[keep], log_w[keep]
    out = np.full(len(points), -np.inf)
    step = max(1, _PAIRS_PER_CHUNK // max(len(points), 1))
    for s in range(0, len(centres), step):
        c, lw = centres[s : s + step], log_w[s : s + step]
        d2 = ((points[:, None, 0] - c[None, :, 0]) / h[0]) ** 2 + ((points[:, None, 1] - c[None, :, 1]) / h[1]) ** 2
        out = np.logaddexp(out, logsumexp(lw[None, :] - 0.5 * d2, axis=1))
    return out
