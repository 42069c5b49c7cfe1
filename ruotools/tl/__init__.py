"""Tools: fit a RUOT model and use it (``rt.tl``)."""

from ._evaluate import evaluate
from ._fit import fit_ruot
from ._simulate import Trajectories, simulate

__all__ = ["Trajectories", "evaluate", "fit_ruot", "simulate"]
