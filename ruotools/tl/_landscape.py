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

#: Grid points whose kernel weight sum is below this are NaN: no cell within about 3 bandwidths.
MIN_KERNEL_WEIGHT = 0.01


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
) -> dict:
    r"""Waddington landscape: the potential U(x, t) = −log ρ(x, t) on a 2-D grid.

    U is the learnt score turned into a log-density, U = −2s/σ² (METHOD.md §5); valleys are where
    cells accumulate. −log ρ is defined up to an additive constant at each time: the fit fixes it
    so that the mean of U over each time point's cells is the same (linear in between), so maps
    of different times share one scale. Two ways to map it:

    * **network** — the model was fitted in 2-D and ``basis`` is ``None`` or the fitted
      representation: U is evaluated on the grid directly. The grid spans the valid cells'
      range, widened by ``padding`` × the range on each side.
    * **kernel** — the fit has more dimensions, or ``basis`` is another embedding (``"umap"``):
      U is computed per cell and mapped onto the 2-D embedding by Nadaraya–Watson smoothing,
      Û(g) = Σ_i K(g − e_i) U_i / Σ_i K(g − e_i), with a Gaussian kernel of per-axis bandwidth
      h (Scott's rule, h_k = std(e_k) · n^(−1/6), unless ``bandwidth`` is given). Grid points
      with Σ_i K < 0.01 (no cell within about three bandwidths) are NaN.

    Parameters
    ----------
    adata
        Annotated data with a fit. Read: the fitted representation and time column, and
        ``obsm[f'X_{basis}']`` for an embedding other than the fitted one.
    basis
        2-D coordinates: ``None`` (the fitted representation when it is 2-D; otherwise
        ``obsm['X_umap']`` if present, else the first two fitted components), the fitted
        representation's basis (``"pca"`` for ``X_pca``; its first two columns), or any
        ``obsm`` embedding such as ``"umap"``/``"X_umap"`` (first two columns).
    time
        Network mode: ``None`` → every fitted time point, ``potential`` (T, G, G); a number →
        (G, G); a sequence → (T, G, G). Kernel mode: ``None`` → each cell at its own observed
        time, pooled, (G, G); a number or sequence → every cell evaluated at that time.
    grid_size
        Points G per axis.
    key_added
        Key of the fit (prefix of the keys read and written).
    model
        Model to use instead of the one stored in ``adata``.
    bandwidth
        Kernel mode: bandwidth in embedding units, one number or one per axis.
    padding
        Fraction of the cells' range added on each side of the grid.

    Returns
    -------
    dict
        Stored in ``uns['ruot_landscape']`` (h5ad-safe): ``"params"``; ``"basis"`` (the basis
        name; the fitted one, e.g. ``"pca"`` or ``"X"``, means the fitted coordinates);
        ``"grid_x"``, ``"grid_y"`` (G,); ``"potential"`` (G, G) or (T, G, G) with
        ``potential[..., i, j]`` at ``(grid_x[j], grid_y[i])`` (matplotlib's ``contour(grid_x,
        grid_y, potential)`` layout), in units of log-density; ``"time"`` (the T times of the
        leading axis, one time for a (G, G) network map, empty when each cell used its own
        time); ``"gradient_x"``, ``"gradient_y"`` (−∇U per coordinate unit, same shape, by
        ``np.gradient``; arrows point downhill); ``"cell_potential"`` (n_obs,) U of each cell
        at its own time (NaN for excluded cells).

    Examples
    --------
    >>> adata = rt.datasets.mouse_hematopoiesis()  # doctest: +SKIP
    >>> rt.tl.fit_ruot(adata, time_key="time")  # doctest: +SKIP
    >>> land = rt.tl.landscape(adata, time=adata.uns["ruot"]["time_points"][-1])  # doctest: +SKIP
    >>> plt.contourf(land["grid_x"], land["grid_y"], land["potential"])  # doctest: +SKIP
    """
    start = _time.perf_counter()
    keys = Keys(key_added)
    if isinstance(grid_size, bool) or not isinstance(grid_size, int | np.integer) or grid_size < 2:
        raise ValueError(f"`grid_size` must be an integer ≥ 2, got {grid_size!r}.")
    if not np.isfinite(padding) or padding < 0:
        raise ValueError(f"`padding` must be a number ≥ 0, got {padding!r}.")
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
    cell_u = _cell_potential(model, x, t, valid)

    coords = x[:, :2] if basis == fitted_basis else val.embedding_2d(adata, basis)
    ok = valid & np.all(np.isfinite(coords), axis=1)
    if ok.sum() < 2:
        raise ValueError("Fewer than two cells have finite coordinates; no landscape to draw.")
    lo, hi = coords[ok].min(axis=0), coords[ok].max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    grid_x = np.linspace(lo[0] - padding * span[0], hi[0] + padding * span[0], int(grid_size))
    grid_y = np.linspace(lo[1] - padding * span[1], hi[1] + padding * span[1], int(grid_size))
    scalar_time = time is not None and np.ndim(time) == 0
    times = None if time is None else np.atleast_1d(np.asarray(time, dtype=np.float64))
    if times is not None and (times.ndim != 1 or len(times) == 0 or not np.all(np.isfinite(times))):
        raise ValueError(f"`time` must be a finite number or a non-empty sequence of them, got {time!r}.")

    params = {"key_added": key_added, "use_rep": model.use_rep, "grid_size": int(grid_size), "padding": float(padding)}
    if basis == fitted_basis and model.n_dims == 2:
        params["method"] = "network"
        times = model.time_points.copy() if times is None else times
        gx, gy = np.meshgrid(grid_x, grid_y)  # (G, G): row i ↔ grid_y[i], column j ↔ grid_x[j]
        points = np.column_stack([gx.ravel(), gy.ravel()])
        pot = np.stack([_evaluate(model, points, tk).reshape(gx.shape) for tk in times])
    else:
        params["method"] = "kernel"
        h = _bandwidth(coords[ok], bandwidth)
        params["bandwidth"] = h
        if times is None:
            values = cell_u[ok][None, :]
            times = np.empty(0)
        else:
            xo = x[ok]
            values = np.stack([_evaluate(model, xo, tk) for tk in times])
        pot = _nadaraya_watson(coords[ok], values, grid_x, grid_y, h)
    if scalar_time or (params["method"] == "kernel" and len(times) == 0):
        pot = pot[0]
    dudy, dudx = np.gradient(pot, grid_y, grid_x, axis=(-2, -1))

    result = {
        "params": params,
        "basis": str(basis),
        "grid_x": grid_x,
        "grid_y": grid_y,
        "potential": pot,
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


def _bandwidth(coords: np.ndarray, bandwidth) -> np.ndarray:
    """Per-axis bandwidth (2,): the given one, or Scott's rule std · n^(−1/6) in two dimensions."""
    if bandwidth is None:
        std = coords.std(axis=0)
        std = np.where(std > 0, std, 1.0)
        return std * len(coords) ** (-1.0 / 6.0)
    h = np.broadcast_to(np.asarray(bandwidth, dtype=np.float64), (2,)).copy()
    if not np.all(np.isfinite(h)) or np.any(h <= 0):
        raise ValueError(f"`bandwidth` must be a positive number or a pair of them, got {bandwidth!r}.")
    return h


def _nadaraya_watson(coords, values, grid_x, grid_y, h) -> np.ndarray:
    """Gaussian-kernel regression of ``values`` (T, n) at points ``coords`` (n, 2) onto the grid → (T, G, G).

    The kernel is separable, K = k_x · k_y, so the sums over cells are matrix products
    (G × n)(n × G), accumulated over chunks of cells: exact and O(G·n) memory.
    """
    fin = np.isfinite(values)
    vals = np.where(fin, values, 0.0)
    num = np.zeros((len(values), len(grid_y), len(grid_x)))
    den = np.zeros_like(num)
    for s in range(0, coords.shape[0], settings.chunk_size):
        c = coords[s : s + settings.chunk_size]
        kx = np.exp(-0.5 * ((grid_x[:, None] - c[None, :, 0]) / h[0]) ** 2)  # (G, c)
        ky = np.exp(-0.5 * ((grid_y[:, None] - c[None, :, 1]) / h[1]) ** 2)  # (G, c)
        for k in range(len(values)):
            num[k] += (ky * vals[k, s : s + len(c)]) @ kx.T
            den[k] += (ky * fin[k, s : s + len(c)]) @ kx.T
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / den
    out[den < MIN_KERNEL_WEIGHT] = np.nan
    return out
