"""A seeded generator of branching time courses with growth and death, at any size."""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Net growth rates (per unit time) of the two branches: one proliferates, one dies out slowly.
BRANCH_RATES = (0.4, -0.2)


def synthetic_branching(
    n_cells: int = 10_000,
    n_dims: int = 50,
    n_times: int = 5,
    *,
    noise: float = 0.15,
    random_state: int = 0,
):
    """Simulate a two-branch time course with growth and death, embedded in ``n_dims`` dimensions.

    Cells start as one progenitor cloud and split into two branches that move apart along curved
    paths in a 2-D latent plane; branch A grows at rate 0.4 and branch B shrinks at rate −0.2
    (per unit time), so each branch's share of the cells and the total population change over
    time. The latent plane is embedded by a random orthonormal map into ``n_dims`` dimensions and
    isotropic Gaussian noise of standard deviation ``noise`` is added in every dimension. Time
    points are 0, 1, …, ``n_times − 1``; ``n_cells`` is split over them in proportion to the
    population size, so the counts carry the growth signal. Generated in O(``n_cells`` ×
    ``n_dims``) time and memory (a million cells × 50 dimensions in a few seconds).

    Parameters
    ----------
    n_cells
        Total number of cells over all time points.
    n_dims
        Dimension of the representation (≥ 2).
    n_times
        Number of time points (≥ 2).
    noise
        Standard deviation of the isotropic noise.
    random_state
        Seed; the same seed gives the same data.

    Returns
    -------
    anndata.AnnData
        ``.X`` the coordinates (float32, var names ``x1 … xd``), ``obs['time']`` (float64),
        ``obs['branch']`` (categorical ``"A"``/``"B"``), ``uns['dataset']`` the parameters.

    Examples
    --------
    >>> import ruotools as rt
    >>> adata = rt.datasets.synthetic_branching(n_cells=2_000, n_dims=10, n_times=4)
    >>> adata.shape
    (2000, 10)
    >>> adata.obs["branch"].cat.categories.tolist()
    ['A', 'B']
    """
    import anndata as ad

    from .. import _validation as val

    n_times = val.check_count(n_times, "n_times", minimum=2)
    n_dims = val.check_count(n_dims, "n_dims", minimum=2)
    n_cells = val.check_count(n_cells, "n_cells", minimum=2 * n_times)
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"`noise` must be a finite number ≥ 0, got {noise!r}.")
    rng = np.random.default_rng(random_state)
    times = np.arange(n_times, dtype=np.float64)
    mass = np.stack([0.5 * np.exp(rate * times) for rate in BRANCH_RATES])  # (2, T) size of each branch
    counts = _split(n_cells, mass.sum(axis=0))
    t = np.repeat(times, counts)
    share_a = (mass[0] / mass.sum(axis=0))[np.repeat(np.arange(n_times), counts)]
    branch = (rng.random(n_cells) >= share_a).astype(np.int8)  # 0 = A, 1 = B

    # latent 2-D paths: progress s in [0, 1] along a curve that bends up (A) or down (B)
    s = t / (n_times - 1)
    sign = np.where(branch == 0, 1.0, -1.0)
    latent = np.column_stack([3.0 * s, sign * 1.5 * s**1.5])
    latent += rng.standard_normal((n_cells, 2)) * (0.2 + 0.1 * s)[:, None]
    basis, _ = np.linalg.qr(rng.standard_normal((n_dims, 2)))  # orthonormal columns
    x = (latent @ basis.T).astype(np.float32)
    x += (noise * rng.standard_normal((n_cells, n_dims))).astype(np.float32)

    obs = pd.DataFrame(
        {"time": t, "branch": pd.Categorical.from_codes(branch, categories=["A", "B"])},
        index=pd.RangeIndex(n_cells).astype(str),
    )
    var = pd.DataFrame(index=[f"x{i + 1}" for i in range(n_dims)])
    params = {"n_cells": int(n_cells), "n_dims": int(n_dims), "n_times": int(n_times), "noise": float(noise)}
    uns = {
        "dataset": {
            "name": "synthetic_branching",
            "description": "Two-branch time course with growth (A, rate 0.4) and death (B, rate -0.2).",
            "source": "ruotools.datasets.synthetic_branching",
            "params": {**params, "random_state": int(random_state)},
        }
    }
    return ad.AnnData(x, obs=obs, var=var, uns=uns)


def _split(n: int, weights: np.ndarray) -> np.ndarray:
    """Integer counts summing to ``n``, proportional to ``weights`` (largest remainders), each ≥ 2."""
    raw = n * weights / weights.sum()
    counts = np.floor(raw).astype(np.int64)
    counts[np.argsort(counts - raw)[: n - counts.sum()]] += 1
    while counts.min() < 2:  # tiny n: move cells from the largest time point
        counts[np.argmax(counts)] -= 1
        counts[np.argmin(counts)] += 1
    return counts
