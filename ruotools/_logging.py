"""The ``ruotools`` logger: scanpy-style info messages with elapsed time."""

from __future__ import annotations

import logging
import time

logger = logging.getLogger("ruotools")
if not logger.handlers:
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(_handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def info(msg: str, *, start: float | None = None) -> float:
    """Log ``msg`` at info level, appending the time since ``start``; returns the current time."""
    now = time.perf_counter()
    if start is not None:
        msg = f"{msg} ({now - start:.1f}s)"
    logger.info(msg)
    return now


def warning(msg: str) -> None:
    """Log ``msg`` at warning level."""
    logger.warning("WARNING: " + msg)
