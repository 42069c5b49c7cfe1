"""The ``ruotools`` logger: scanpy-style info messages with elapsed time, and progress reports."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

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


@contextmanager
def only_warnings() -> Iterator[None]:
    """Within the block, the ``ruotools`` logger prints warnings and errors only.

    For a tool's internal calls of other tools (e.g. the refits of ``holdout_time``), whose info
    messages ("added `adata.obsm[...]`") would describe objects the user never sees.
    """
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


# --------------------------------------------------------------------------- progress


def in_jupyter() -> bool:
    """Whether this process is a Jupyter (IPython) kernel, whose outputs render progress widgets."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:  # a partly imported or stubbed IPython
        return False
    return shell is not None and hasattr(shell, "kernel")


def is_terminal(stream) -> bool:
    """Whether ``stream`` is an interactive terminal (``isatty``), where carriage returns redraw a line."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


class LineProgress:
    """Progress of a loop as a few plain lines, for logs, pipes and files (no carriage returns).

    A line is printed each time another tenth of the loop is done (at most ``n_lines`` lines, the
    last at the end) and when the loop stops early; a loop of unknown length prints at most every
    ``min_interval`` seconds. The ``tqdm`` methods that ruotools uses (``set_postfix``, ``close``)
    are supported.

    Parameters
    ----------
    iterable
        The loop's iterable.
    desc
        Label at the start of each line.
    unit
        Name of one iteration.
    file
        Stream to write to; ``None``: ``sys.stderr`` at the time of the call.
    n_lines
        Most lines for a loop of known length.
    min_interval
        Seconds between lines for a loop of unknown length.
    """

    def __init__(
        self,
        iterable: Iterable,
        desc: str = "",
        unit: str = "it",
        file=None,
        n_lines: int = 10,
        min_interval: float = 30.0,
    ):
        self.iterable = iterable
        self.total = len(iterable) if hasattr(iterable, "__len__") else None
        self.desc = desc.strip()
        self.unit = unit
        self.file = sys.stderr if file is None else file
        self.n_lines = max(1, int(n_lines))
        self.min_interval = float(min_interval)
        self.n = 0
        self.postfix: dict[str, str] = {}
        self._start = self._last = time.perf_counter()
        self._printed = 0  # ``n`` at the last line
        self._started = 0  # iterations begun: one more than ``n`` after a ``break``
        self._closed = False

    def __iter__(self) -> Iterator:
        for item in self.iterable:
            self._started += 1
            yield item  # the loop's body runs here (and may call ``set_postfix``)
            self.n += 1
            if self._due():
                self._print()

    def __len__(self) -> int:
        return 0 if self.total is None else self.total

    def _due(self) -> bool:
        if self.total:  # another tenth (for ``n_lines=10``) done, or the end
            n, k, total = self.n, self.n_lines, self.total
            return n == total or n * k // total > (n - 1) * k // total
        return time.perf_counter() - self._last >= self.min_interval

    def _print(self) -> None:
        now = time.perf_counter()
        done = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        parts = [f"{self.desc}: " if self.desc else "", f"{self.unit} {done}"]
        parts += [f", {k}={v}" for k, v in self.postfix.items()]
        parts.append(f" ({now - self._start:.1f}s)")
        self.file.write("".join(parts) + "\n")
        self.file.flush()
        self._last, self._printed = now, self.n

    def set_postfix(self, **kwargs) -> None:
        """Values appended to the next line (``name=value``)."""
        self.postfix = {k: str(v) for k, v in kwargs.items()}

    def close(self) -> None:
        """End the report: a last line when the loop stopped since the last one (early stopping)."""
        self.n = self._started  # a loop left with ``break`` ended in the iteration it had begun
        if not self._closed and self.n > self._printed:
            self._print()
        self._closed = True


def progress_bar(iterable: Iterable, desc: str = "", unit: str = "it", leave: bool = True):
    """Return a ``tqdm`` bar in a terminal or Jupyter, else a :class:`LineProgress` (no carriage returns).

    Parameters
    ----------
    iterable
        The loop's iterable.
    desc
        Label of the bar.
    unit
        Name of one iteration.
    leave
        Keep the finished bar (``tqdm`` only).
    """
    if in_jupyter() or is_terminal(sys.stderr):
        from tqdm.auto import tqdm

        return tqdm(iterable, desc=desc, leave=leave, unit=unit)
    return LineProgress(iterable, desc=desc, unit=unit)
