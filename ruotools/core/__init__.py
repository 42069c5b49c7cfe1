"""Pure torch/NumPy/POT implementation of regularized unbalanced optimal transport.

Nothing in this sub-package imports :mod:`anndata`; it works on arrays in standardised
coordinates and time. :mod:`ruotools.model` is the glue to AnnData.
"""

from .config import TrainConfig
from .data import Snapshots
from .networks import RUOTNetworks
from .train import fit

__all__ = ["RUOTNetworks", "Snapshots", "TrainConfig", "fit"]
