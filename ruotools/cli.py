"""Command line interface: ``ruotools fit`` and ``ruotools example``.

Results go to files and stdout, progress bars and messages to stderr. Bad input (a missing
file, key or option, a wrong dtype or value) ends with a one-line ``ruotools: error: …`` on
stderr and exit code 2; an unexpected failure ends the same way with exit code 1 (``--debug``
shows the traceback instead). Errors and warnings of the library name the command's options
(``--time-key``), not the Python arguments (``time_key``); see :data:`OPTION_OF_ARGUMENT`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from anndata import AnnData

#: Exit codes: bad input, unexpected failure.
EXIT_USAGE = 2
EXIT_FAILURE = 1

#: Bundled datasets that ``ruotools example`` can fit: names of loaders in :mod:`ruotools.datasets`.
EXAMPLES = ("simulated_gene", "mouse_hematopoiesis", "gaussian_mixture")

#: The option of each argument of :func:`ruotools.tl.fit_ruot` that the command line sets: messages of the
#: library quote arguments in backticks (`time_key`, `n_dims=5`), which are rewritten to these options.
OPTION_OF_ARGUMENT = {
    "time_key": "--time-key",
    "use_rep": "--use-rep",
    "n_dims": "--n-dims",
    "sigma": "--sigma",
    "alpha": "--alpha",
    "growth": "--no-growth",
    "relative_mass": "--relative-mass",
    "flavor": "--flavor",
    "max_epochs": "--max-epochs",
    "batch_size": "--batch-size",
    "random_state": "--seed",
    "accelerator": "--accelerator",
    "key_added": "--key-added",
    "checkpoint_dir": "--checkpoint-dir",
    "resume": "--resume",
    "show_progress_bar": "--no-progress",
    "train_kwargs": "--train-kwargs",
}
#: An argument quoted in a message, alone or with a value: `sigma`, `time_key=`, `n_dims<=3`, `flavor='x'`.
_QUOTED_ARGUMENT = re.compile(r"([a-z_]+)(?:(<=|>=|=|<|>)(.*))?", re.DOTALL)
#: Boolean arguments whose value is an option of its own.
_SWITCHES = {
    ("growth", "False"): "--no-growth",
    ("resume", "True"): "--resume",
    ("show_progress_bar", "False"): "--no-progress",
}


class _UserError(Exception):
    """Bad input detected by the command line itself."""


class _Parser(argparse.ArgumentParser):
    """Argument parser whose errors are a single line on stderr."""

    def error(self, message: str) -> NoReturn:
        """Print ``ruotools: error: <message>`` and exit with code 2."""
        _print_error(f"{message} (see `{self.prog} --help`)")
        raise SystemExit(EXIT_USAGE)


def _print_error(message: str) -> None:
    one_line = " ".join(part.strip() for part in message.splitlines() if part.strip())
    print(f"ruotools: error: {one_line}", file=sys.stderr)


def _message(err: BaseException) -> str:
    # str(KeyError("x")) is "'x'": use the argument itself when there is exactly one
    if isinstance(err, KeyError) and len(err.args) == 1:
        return str(err.args[0])
    return str(err) or type(err).__name__


def _option(span: str) -> str:
    """One backtick-quoted span of a library message in terms of options (``time_key=`` → ``--time-key``)."""
    match = _QUOTED_ARGUMENT.fullmatch(span)
    if match is None or match.group(1) not in OPTION_OF_ARGUMENT:
        return span
    name, op, value = match.groups()
    option = OPTION_OF_ARGUMENT[name]
    if op is None or (op == "=" and not value):
        return option
    if (name, value) in _SWITCHES:
        return _SWITCHES[name, value]
    if name == "relative_mass" and value.startswith("{"):
        return f'{option} "TIME:SIZE,…"'
    if op == "=":
        return f"{option} {value.strip(chr(39) + chr(34))}"
    return f"{option} {op} {value}"


def to_options(message: str) -> str:
    """Rewrite the Python arguments quoted in a library message as the command's options.

    Parameters
    ----------
    message
        An error or warning message of :mod:`ruotools`, whose code is quoted in backticks.

    Returns
    -------
    str
        The message with every quoted argument of :data:`OPTION_OF_ARGUMENT` replaced by its option.

    Examples
    --------
    >>> to_options("Pass `time_key=` one of the `.obs` columns; `n_dims=5` exceeds 3.")
    'Pass `--time-key` one of the `.obs` columns; `--n-dims 5` exceeds 3.'
    """
    parts = message.split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: leave the message as it is
        return message
    return "`".join(_option(part) if i % 2 else part for i, part in enumerate(parts))


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Print a warning of ruotools as one ``ruotools: warning: …`` line, in terms of options."""
    text = " ".join(part.strip() for part in str(message).splitlines() if part.strip())
    name = "" if issubclass(category, UserWarning) else f"{category.__name__}: "
    print(f"ruotools: warning: {name}{to_options(text)}", file=sys.stderr if file is None else file)


def _positive_int(text: str) -> int:
    """``type=`` of an option taking an integer ≥ 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def parse_train_kwargs(text: str) -> dict[str, Any]:
    """Read ``--train-kwargs``: a JSON object of further training settings (``train_kwargs`` of ``fit_ruot``).

    Parameters
    ----------
    text
        The option's value, e.g. ``'{"lambda_geodesic": 0}'``.

    Returns
    -------
    dict
        The settings, checked by :func:`ruotools.tl.fit_ruot` (unknown names are an error there).

    Examples
    --------
    >>> parse_train_kwargs('{"lambda_geodesic": 0, "steps_per_epoch": 20}')
    {'lambda_geodesic': 0, 'steps_per_epoch': 20}
    """
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not JSON ({err.msg}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f"a JSON object of settings is needed, e.g. '{{\"lambda_geodesic\": 0}}'; got {text!r}"
        )
    return value


def parse_relative_mass(text: str) -> dict[str, float]:
    """Read ``--relative-mass``: ``TIME:SIZE`` pairs separated by commas.

    ``TIME`` is a number or a label of the time column (it may contain spaces, and is read like the
    column's labels by :func:`ruotools.tl.fit_ruot`); the last ``:`` of a pair separates it from ``SIZE``.

    Parameters
    ----------
    text
        The option's value, e.g. ``"0:1,2:1.8,4:3.1"`` or ``"day 0:1, day 2:1.8"``.

    Returns
    -------
    dict
        ``{TIME: SIZE}`` with ``TIME`` as written (stripped) and ``SIZE`` a float.

    Examples
    --------
    >>> parse_relative_mass("day 0:1, day 2:1.8")
    {'day 0': 1.0, 'day 2': 1.8}
    """
    out: dict[str, float] = {}
    for pair in text.split(","):
        key, sep, value = pair.rpartition(":")
        key = key.strip()
        if not sep or not key:
            raise argparse.ArgumentTypeError(
                f'expected TIME:SIZE pairs separated by commas (e.g. "0:1,2:1.8"), got {pair.strip()!r}'
            )
        try:
            size = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"the size of {key!r} must be a number, got {value.strip()!r}") from None
        if key in out:
            raise argparse.ArgumentTypeError(f"time {key!r} is given twice")
        out[key] = size
    return out


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ruotools")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


def _add_training_options(parser: argparse.ArgumentParser) -> None:
    from ruotools.core.config import FLAVORS

    parser.add_argument(
        "--flavor",
        choices=FLAVORS,
        default=None,
        help="'deepruot' (three-phase DeepRUOT, the default) or 'var_ruot' (least action: one potential for "
        "drift and growth)",
    )
    parser.add_argument(
        "--max-epochs",
        type=_positive_int,
        default=None,
        metavar="N",
        help="epochs per training phase, at least 1 (default: the model's)",
    )
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="random seed (default: 0)")
    parser.add_argument(
        "--accelerator",
        default="auto",
        metavar="NAME",
        help="'auto' (CUDA when available, else CPU), 'cpu', 'cuda', … (default: auto)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of the ``ruotools`` command.

    Returns
    -------
    argparse.ArgumentParser
        The parser, with sub-commands ``fit`` and ``example``.

    Examples
    --------
    >>> from ruotools.cli import build_parser
    >>> args = build_parser().parse_args(["fit", "cells.h5ad", "--time-key", "day", "-o", "out.h5ad"])
    >>> args.command, args.time_key, args.output
    ('fit', 'day', 'out.h5ad')
    """
    parser = _Parser(
        prog="ruotools",
        description="Regularized unbalanced optimal transport (DeepRUOT) for single-cell time courses.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an unexpected error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    fit = sub.add_parser(
        "fit",
        help="fit a RUOT model to an .h5ad file and write the annotated copy",
        description=(
            "Fit a RUOT model to the cells of IN.h5ad and write it, with velocity, growth rate, potential "
            "and the model itself added, to OUT.h5ad."
        ),
    )
    fit.add_argument("input", metavar="IN.h5ad", help="input AnnData file")
    fit.add_argument("-o", "--output", required=True, metavar="OUT.h5ad", help="output AnnData file")
    fit.add_argument("--time-key", required=True, metavar="KEY", help="column of .obs holding the time of each cell")
    fit.add_argument(
        "--use-rep",
        default=None,
        metavar="REP",
        help="representation: an .obsm key such as X_pca, or X (default: X_pca if present, else .X)",
    )
    fit.add_argument("--n-dims", type=_positive_int, default=None, metavar="N", help="use the first N dimensions of it")
    fit.add_argument(
        "--sigma",
        type=float,
        default=None,
        metavar="S",
        help="noise level, in representation units per square root of time unit; 0 = deterministic model "
        "(default: chosen from the data's scale)",
    )
    fit.add_argument(
        "--alpha",
        type=float,
        default=None,
        metavar="A",
        help="weight of the growth penalty α g² (default: 1 for deepruot, 3 for var_ruot)",
    )
    fit.add_argument(
        "--no-growth", action="store_true", help="fit no growth rate: a balanced model whose total mass stays constant"
    )
    fit.add_argument(
        "--relative-mass",
        type=parse_relative_mass,
        default=None,
        metavar="TIME:SIZE,…",
        help="population size at each time point relative to the first, as TIME:SIZE pairs separated by commas, "
        'e.g. "0:1,2:1.8,4:3.1" or "day 0:1,day 2:1.8,day 4:3.1"; TIME is a number or a label of the --time-key '
        "column (spaces allowed; the last colon of a pair ends it). Default: the ratios of the numbers of cells, "
        "which assume the cells sampled are proportional to the population size (with a warning when they change "
        "more than 3x between consecutive time points)",
    )
    fit.add_argument(
        "--batch-size", type=_positive_int, default=None, metavar="N", help="cells per time point and step"
    )
    fit.add_argument(
        "--train-kwargs",
        type=parse_train_kwargs,
        default=None,
        metavar="JSON",
        help="further training settings as a JSON object, e.g. '{\"lambda_geodesic\": 0}' (the `train_kwargs` of "
        "ruotools.tl.fit_ruot; see its documentation for the names)",
    )
    fit.add_argument("--key-added", default="ruot", metavar="KEY", help="prefix of the keys written (default: ruot)")
    fit.add_argument(
        "--checkpoint-dir", default=None, metavar="DIR", help="save the training state here after every epoch"
    )
    fit.add_argument(
        "--resume", action="store_true", help="continue an interrupted fit from the state in --checkpoint-dir"
    )
    _add_training_options(fit)
    fit.set_defaults(handler=_run_fit)

    example = sub.add_parser(
        "example",
        help="fit a bundled dataset and write the result, its metrics and figures",
        description=(
            "Fit a bundled dataset, evaluate the fit (W1, W2, TMV per time point), simulate trajectories, map the "
            "landscape and write DIR/NAME.h5ad, DIR/metrics.csv and the figures DIR/figures/PLOT.png; the metrics "
            "table is also printed."
        ),
    )
    example.add_argument(
        "name",
        nargs="?",
        default="simulated_gene",
        choices=list(EXAMPLES),
        metavar="NAME",
        help=f"dataset: {', '.join(EXAMPLES)} (default: simulated_gene)",
    )
    example.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory (created if needed)")
    example.add_argument("--no-figures", action="store_true", help="write no figures (only the .h5ad and metrics)")
    _add_training_options(example)
    example.set_defaults(handler=_run_example)
    return parser


def _fit_kwargs(args: argparse.Namespace, **extra: Any) -> dict[str, Any]:
    # options left unset are not passed, so the library's defaults stay the only defaults
    kwargs = {
        "flavor": args.flavor,
        "max_epochs": args.max_epochs,
        "random_state": args.seed,
        "accelerator": args.accelerator,
        "show_progress_bar": not args.no_progress,
        **extra,
    }
    return {key: value for key, value in kwargs.items() if value is not None}


def _write(adata: AnnData, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    adata.write_h5ad(path)
    print(f"ruotools: wrote {path}", file=sys.stderr)


def _run_fit(args: argparse.Namespace) -> int:
    import anndata as ad

    from ruotools import tl

    src, dst = Path(args.input), Path(args.output)
    if not src.is_file():
        raise _UserError(f"input file not found: {src}")
    try:
        adata = ad.read_h5ad(src)
    except OSError as err:
        raise _UserError(f"cannot read {src} as an .h5ad file: {_message(err)}") from err
    kwargs = _fit_kwargs(
        args,
        use_rep=args.use_rep,
        n_dims=args.n_dims,
        sigma=args.sigma,
        alpha=args.alpha,
        growth=False if args.no_growth else None,
        relative_mass=args.relative_mass,
        batch_size=args.batch_size,
        key_added=args.key_added,
        checkpoint_dir=args.checkpoint_dir,
        resume=args.resume or None,
        train_kwargs=args.train_kwargs,
    )
    tl.fit_ruot(adata, args.time_key, **kwargs)
    _write(adata, dst)
    return 0


def _run_example(args: argparse.Namespace) -> int:
    from ruotools import datasets, tl

    load: Callable[[], AnnData] = getattr(datasets, args.name)
    out_dir = Path(args.output)
    if out_dir.exists() and not out_dir.is_dir():
        raise _UserError(f"output is not a directory: {out_dir}")
    adata = load()
    model = tl.fit_ruot(adata, "time", **_fit_kwargs(args))
    metrics = tl.evaluate(adata, random_state=args.seed)
    if not args.no_figures:
        # stored in the .h5ad too, so the figures can be redrawn from the file alone
        tl.simulate(adata, random_state=args.seed)
        if model.sigma > 0:
            tl.landscape(adata)
    _write(adata, out_dir / f"{args.name}.h5ad")
    metrics_path = out_dir / "metrics.csv"
    metrics.to_csv(metrics_path)
    print(f"ruotools: wrote {metrics_path}", file=sys.stderr)
    if not args.no_figures:
        for path in _write_figures(adata, out_dir / "figures"):
            print(f"ruotools: wrote {path}", file=sys.stderr)
    print(metrics.to_string(float_format=lambda value: f"{value:.4f}"))
    return 0


def _write_figures(adata: AnnData, fig_dir: Path) -> list[Path]:
    """Draw the standard figures of a fitted, evaluated and simulated ``adata`` into ``fig_dir``."""
    if "matplotlib.pyplot" not in sys.modules:  # a fresh command-line process: no display needed
        import matplotlib

        matplotlib.use("Agg")
    import importlib.util

    import matplotlib.pyplot as plt

    from ruotools import pl
    from ruotools._keys import Keys

    keys = Keys()
    times = adata.uns[keys.uns]["time_points"]
    plots: list[tuple[str, Callable[..., Any], dict[str, Any]]] = [
        ("trajectories", pl.trajectories, {}),
        ("growth", pl.growth, {}),
        ("mass", pl.mass, {}),
        ("history", pl.history, {}),
        ("metrics", pl.metrics, {}),
    ]
    if keys.landscape in adata.uns:
        plots += [
            ("landscape", pl.landscape, {}),
            ("landscape_surface", pl.landscape, {"kind": "surface", "time": [times[0], times[-1]]}),
            ("potential", pl.potential, {}),
        ]
    if importlib.util.find_spec("scvelo") is not None:
        plots.append(("velocity_stream", pl.velocity_stream, {}))
    fig_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, plot, kwargs in plots:
        path = fig_dir / f"{name}.png"
        fig = plot(adata, dpi=120, return_fig=True, **kwargs)
        fig.savefig(path, bbox_inches="tight")
        plt.close(fig)
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``ruotools`` command line.

    Parameters
    ----------
    argv
        Arguments without the program name; ``None`` reads :data:`sys.argv`.

    Returns
    -------
    int
        Exit code: 0 on success, 2 on bad input, 1 on an unexpected failure.

    Examples
    --------
    From a shell::

        ruotools fit cells.h5ad --time-key day --use-rep X_pca -o cells_ruot.h5ad
        ruotools example simulated_gene -o ruot_example
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version or a usage error (already printed)
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    try:
        with warnings.catch_warnings():  # restores the previous showwarning afterwards
            warnings.showwarning = _show_warning
            return args.handler(args)
    except KeyboardInterrupt:
        _print_error("interrupted")
        return 130
    except _UserError as err:
        if args.debug:
            raise
        _print_error(_message(err))
        return EXIT_USAGE
    except (KeyError, TypeError, ValueError, OSError) as err:
        if args.debug:
            raise
        _print_error(to_options(_message(err)))
        return EXIT_USAGE
    except Exception as err:
        if args.debug:
            raise
        _print_error(f"{type(err).__name__}: {_message(err)} (rerun with --debug for the traceback)")
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
