"""Plotting (``rt.pl``): trajectories, landscapes, growth, potential, mass, velocity streams and training.

Every plot reads only from AnnData (no model, no torch), so it works on a reloaded ``.h5ad``, and takes
scanpy's keywords where they apply: ``basis``, ``color``, ``cmap``, ``palette``, ``title``, ``figsize``,
``dpi``, ``ax``, ``show``, ``save`` (a path) and ``return_fig``.
"""

from ._cells import growth, potential
from ._jacobian import growth_genes, jacobian
from ._landscape import landscape
from ._mass import mass
from ._stream import velocity_stream
from ._training import history, metrics
from ._trajectories import trajectories

__all__ = [
    "growth",
    "growth_genes",
    "history",
    "jacobian",
    "landscape",
    "mass",
    "metrics",
    "potential",
    "trajectories",
    "velocity_stream",
]
