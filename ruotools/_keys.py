"""Every AnnData key ruotools writes, built from ``key_added`` in one place."""

from __future__ import annotations

from dataclasses import dataclass


def basis_from_rep(use_rep: str) -> str:
    """Name of the basis of a representation: ``"X_pca"`` → ``"pca"``, ``"X"`` → ``"X"``."""
    if use_rep != "X" and use_rep.startswith("X_"):
        return use_rep[2:]
    return use_rep


@dataclass(frozen=True)
class Keys:
    """Keys of one fit.

    Parameters
    ----------
    key_added
        Prefix of every key (default ``"ruot"``).
    """

    key_added: str = "ruot"

    @property
    def uns(self) -> str:
        """``uns`` entry with params, history, model and metrics."""
        return self.key_added

    def velocity_obsm(self, basis: str) -> str:
        """``obsm`` key of the velocity in ``basis``."""
        return f"{self.key_added}_velocity_{basis}"

    def drift_obsm(self, basis: str) -> str:
        """``obsm`` key of the SDE drift in ``basis``."""
        return f"{self.key_added}_drift_{basis}"

    @property
    def velocity_layer(self) -> str:
        """``layers`` key of the velocity when the fit used ``.X`` (scvelo's ``vkey``)."""
        return f"{self.key_added}_velocity"

    @property
    def drift_layer(self) -> str:
        """``layers`` key of the drift when the fit used ``.X``."""
        return f"{self.key_added}_drift"

    @property
    def growth(self) -> str:
        """``obs`` column of the growth rate."""
        return f"{self.key_added}_growth_rate"

    @property
    def potential(self) -> str:
        """``obs`` column of the landscape potential."""
        return f"{self.key_added}_potential"

    @property
    def velocity_params(self) -> str:
        """``uns`` entry listing the embeddings with a velocity (scvelo's ``{vkey}_params``)."""
        return f"{self.key_added}_velocity_params"

    @property
    def trajectories(self) -> str:
        """``uns`` entry of :func:`ruotools.tl.simulate` results."""
        return f"{self.key_added}_trajectories"

    @property
    def landscape(self) -> str:
        """``uns`` entry of :func:`ruotools.tl.landscape` results."""
        return f"{self.key_added}_landscape"

    @property
    def velocity_genes(self) -> str:
        """``var`` column flagging genes with a velocity (:func:`ruotools.tl.gene_velocity`)."""
        return f"{self.key_added}_velocity_genes"

    @property
    def fate_probabilities(self) -> str:
        """``obsm`` key (and ``uns`` key for the cluster names) of :func:`ruotools.tl.fate_probabilities`."""
        return f"{self.key_added}_fate_probabilities"

    @property
    def holdout(self) -> str:
        """``uns`` entry of :func:`ruotools.tl.holdout_time` results."""
        return f"{self.key_added}_holdout"

    @property
    def couplings(self) -> str:
        """``uns`` entry of :func:`ruotools.tl.couplings` metadata."""
        return f"{self.key_added}_couplings"

    @property
    def jacobian(self) -> str:
        """``uns`` entry of :func:`ruotools.tl.jacobian` results."""
        return f"{self.key_added}_jacobian"

    @property
    def growth_gradient(self) -> str:
        """``var`` column of the mean growth gradient (:func:`ruotools.tl.growth_genes`)."""
        return f"{self.key_added}_growth_gradient"

    @property
    def growth_identifiability(self) -> str:
        """``uns`` entry of :func:`ruotools.tl.growth_identifiability` results."""
        return f"{self.key_added}_growth_identifiability"

    @property
    def growth_genes(self) -> str:
        """``uns`` entry of :func:`ruotools.tl.growth_genes` rankings."""
        return f"{self.key_added}_growth_genes"


def outputs(keys: Keys, use_rep: str, full_x: bool) -> dict[str, tuple[str, str]]:
    """Slots written by a fit: name → (attribute, key).

    ``full_x`` is true when the fit used every column of ``.X``, in which case the velocity and
    drift go to ``layers``; otherwise to ``obsm`` under the representation's basis.
    """
    basis = basis_from_rep(use_rep)
    if full_x:
        vel, drift = ("layers", keys.velocity_layer), ("layers", keys.drift_layer)
    else:
        vel, drift = ("obsm", keys.velocity_obsm(basis)), ("obsm", keys.drift_obsm(basis))
    return {
        "velocity": vel,
        "drift": drift,
        "growth": ("obs", keys.growth),
        "potential": ("obs", keys.potential),
    }
