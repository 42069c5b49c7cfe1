"""Snapshot data in standardised coordinates, with train/validation split and mini-batches."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .rng import draw_device


@dataclass
class Standardizer:
    """Affine maps between the user's space/time and the internal standardised ones.

    ``x_int = (x - x_mean) / x_scale`` and ``t_int = (t - t_origin) / t_scale``.
    A velocity converts as ``v_user = v_int * x_scale / t_scale``, a growth rate as
    ``g_user = g_int / t_scale`` and a noise level as ``sigma_user = sigma_int * x_scale / sqrt(t_scale)``.
    """

    x_mean: np.ndarray
    x_scale: float
    t_origin: float
    t_scale: float

    @classmethod
    def from_data(cls, x: np.ndarray, t: np.ndarray) -> Standardizer:
        """Centre on the mean, scale by the root-mean-square standard deviation; unit mean time gap."""
        x_mean = x.mean(axis=0)
        x_scale = float(np.sqrt(np.mean(x.var(axis=0))))
        if not np.isfinite(x_scale) or x_scale <= 0:
            raise ValueError("The representation has zero variance; nothing can be learned from it.")
        times = np.unique(t)
        t_scale = float(np.mean(np.diff(times)))
        return cls(x_mean.astype(np.float64), x_scale, float(times[0]), t_scale)

    def x_to_internal(self, x):
        """User coordinates → internal coordinates."""
        return (x - self.x_mean) / self.x_scale

    def t_to_internal(self, t):
        """User time → internal time."""
        return (t - self.t_origin) / self.t_scale

    def sigma_to_internal(self, sigma: float) -> float:
        """Noise level in user units → internal units."""
        return sigma * np.sqrt(self.t_scale) / self.x_scale

    def to_dict(self) -> dict:
        """Plain-dict form (h5ad-safe)."""
        return {
            "x_mean": np.asarray(self.x_mean, dtype=np.float64),
            "x_scale": self.x_scale,
            "t_origin": self.t_origin,
            "t_scale": self.t_scale,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Standardizer:
        """Inverse of :meth:`to_dict`."""
        return cls(
            np.asarray(d["x_mean"], dtype=np.float64), float(d["x_scale"]), float(d["t_origin"]), float(d["t_scale"])
        )


#: Above this many cells in a time point, its mini-batches are drawn with replacement.
LARGE_POOL = 100_000


class Snapshots:
    """Cells grouped by time point, in internal units.

    Parameters
    ----------
    xs
        One float32 array (n_k, d) per time point, in internal coordinates.
    times
        Internal times (K+1,), strictly increasing.
    masses
        Population size at each time relative to the first (K+1,), ``masses[0] == 1``.
    train_size
        Fraction of cells per time point used for the optimisation; the rest is the
        validation set (at least one cell each way when ``train_size < 1``).
    random_state
        Seed of the split.
    device
        Where the tensors live.
    """

    def __init__(self, xs, times, masses, *, train_size=0.9, random_state=0, device="cpu"):
        self.times = [float(t) for t in times]
        self.masses = [float(m) for m in masses]
        self.device = torch.device(device)
        rng = np.random.default_rng(random_state)
        self.train, self.val = [], []
        for x in xs:
            idx = rng.permutation(len(x))
            n_val = 0 if train_size >= 1 else max(1, round((1 - train_size) * len(x)))
            n_val = min(n_val, len(x) - 1)
            self.val.append(torch.as_tensor(x[idx[:n_val]], dtype=torch.float32, device=self.device))
            self.train.append(torch.as_tensor(x[idx[n_val:]], dtype=torch.float32, device=self.device))
        self.all = [torch.as_tensor(x, dtype=torch.float32, device=self.device) for x in xs]

    @property
    def dim(self) -> int:
        """Dimension of the representation."""
        return self.all[0].shape[1]

    def __len__(self) -> int:
        return len(self.times)

    def sample(self, k: int, batch_size: int, generator: torch.Generator, split: str = "train") -> torch.Tensor:
        """At most ``batch_size`` cells of time point ``k``.

        Drawn without replacement; from more than ``LARGE_POOL`` cells with replacement (a repeat is
        then rare), so that a draw costs O(batch_size), not O(number of cells).
        """
        return draw_rows(getattr(self, split)[k], batch_size, generator)


def draw_rows(pool: torch.Tensor, batch_size: int, generator: torch.Generator) -> torch.Tensor:
    """At most ``batch_size`` rows of ``pool``, as :meth:`Snapshots.sample` draws them."""
    if len(pool) <= batch_size:
        return pool
    where = draw_device(generator)  # a generator on the data's device draws the indices there
    if len(pool) > LARGE_POOL:
        idx = torch.randint(len(pool), (batch_size,), generator=generator, device=where)
    else:
        idx = torch.randperm(len(pool), generator=generator, device=where)[:batch_size]
    return pool[idx.to(pool.device)]
