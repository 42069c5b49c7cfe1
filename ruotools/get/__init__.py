"""Getters: tidy :class:`pandas.DataFrame` views of ruotools results stored in AnnData (``rt.get``)."""

from ._trajectories import gene_trends, growth, mass, trajectories

__all__ = ["gene_trends", "growth", "mass", "trajectories"]
