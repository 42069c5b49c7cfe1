"""Tools: fit a RUOT model and use it (``rt.tl``)."""

from ._couplings import couplings
from ._evaluate import evaluate
from ._fates import fate_probabilities
from ._fit import fit_ruot
from ._gene_velocity import gene_velocity
from ._growth_genes import growth_genes
from ._holdout import holdout_time
from ._identifiability import growth_identifiability
from ._jacobian import jacobian
from ._landscape import landscape
from ._simulate import Trajectories, simulate
from ._transition import velocity_transition_matrix
from ._velocity_embedding import velocity_embedding

__all__ = [
    "Trajectories",
    "couplings",
    "evaluate",
    "fate_probabilities",
    "fit_ruot",
    "gene_velocity",
    "growth_genes",
    "growth_identifiability",
    "holdout_time",
    "jacobian",
    "landscape",
    "simulate",
    "velocity_embedding",
    "velocity_transition_matrix",
]
