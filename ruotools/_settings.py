"""Package-wide settings."""

from __future__ import annotations

import logging
from typing import ClassVar

from ._logging import logger


class Settings:
    """Global settings of ruotools (``ruotools.settings``).

    Attributes
    ----------
    verbosity
        ``"warning"``, ``"info"`` (default) or ``"debug"``: what the ``ruotools`` logger prints.
    chunk_size
        Cells per chunk when writing per-cell outputs; bounds memory at any number of cells.

    Examples
    --------
    >>> import ruotools as rt
    >>> rt.settings.verbosity = "warning"  # only warnings from now on
    >>> rt.settings.verbosity
    'warning'
    >>> rt.settings.verbosity = "info"
    """

    _levels: ClassVar[dict[str, int]] = {
        "error": logging.ERROR,
        "warning": logging.WARNING,
        "info": logging.INFO,
        "debug": logging.DEBUG,
    }

    def __init__(self):
        self.chunk_size = 65536
        self._verbosity = "info"

    @property
    def verbosity(self) -> str:
        """Logging level name."""
        return self._verbosity

    @verbosity.setter
    def verbosity(self, value: str) -> None:
        if value not in self._levels:
            raise ValueError(f"verbosity must be one of {sorted(self._levels)}, got {value!r}.")
        self._verbosity = value
        logger.setLevel(self._levels[value])


settings = Settings()
