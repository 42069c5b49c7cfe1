"""ruotools: regularized unbalanced optimal transport for single-cell time courses.

Learns how cells move (velocity), divide and die (growth) and the Waddington landscape
(potential) from time-course snapshots, by the DeepRUOT method (Zhang, Li & Zhou, ICLR 2025).
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version

from ._settings import settings

try:
    __version__ = version("ruotools")
except PackageNotFoundError:  # source tree that is not installed
    __version__ = "0.0.0"

_SUBMODULES = {"tl", "pl", "get", "datasets", "core"}

__all__ = ["RUOTModel", "datasets", "get", "pl", "settings", "tl"]


def __getattr__(name: str):
    # sub-packages and the model are imported on first use, so `import ruotools` stays fast
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name == "RUOTModel":
        from .model import RUOTModel

        return RUOTModel
    raise AttributeError(f"module 'ruotools' has no attribute {name!r}")
