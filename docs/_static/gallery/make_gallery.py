"""Draw the ruotools plotting gallery: every ``rt.pl`` plot for two bundled datasets.

Fits the simulated gene network and the mouse hematopoiesis time course with default settings
(under a minute each on one CPU thread), evaluates them, simulates trajectories, maps the landscapes,
takes the drift Jacobian and the growth-gene ranking over every cell (``rt.tl.jacobian``,
``rt.tl.growth_genes``; on these 2-D data the "genes" are the two coordinates) and writes
``<dataset>_<plot>.png`` next to this script (or into ``--out``)::

    python docs/_static/gallery/make_gallery.py
    python docs/_static/gallery/make_gallery.py --fits fits/   # keep the fitted .h5ad files and reuse them
    python docs/_static/gallery/make_gallery.py --flavor var_ruot --datasets mouse_hematopoiesis

With ``--flavor var_ruot`` the files are named ``<dataset>_var_ruot_<plot>.png``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import torch

import ruotools as rt

HERE = Path(__file__).resolve().parent
DPI = 150


def fitted(name: str, fits: Path | None, flavor: str = "deepruot"):
    """The dataset with a default fit, metrics, trajectories and landscape (read from ``fits`` when there)."""
    import anndata as ad

    path = fits / f"{_stem(name, flavor)}.h5ad" if fits is not None else None
    if path is not None and path.is_file():
        print(f"{name}: reading {path}")
        adata = ad.read_h5ad(path)
        interpret(adata)  # fits kept before the gallery drew them
        return adata
    adata = getattr(rt.datasets, name)()
    start = time.perf_counter()
    rt.tl.fit_ruot(adata, "time", show_progress_bar=False, flavor=flavor)
    print(f"{name}: fitted in {time.perf_counter() - start:.0f} s")
    rt.tl.evaluate(adata)
    rt.tl.simulate(adata)
    rt.tl.landscape(adata)
    interpret(adata)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        adata.write_h5ad(path)
    return adata


def interpret(adata) -> None:
    """Add the mean drift Jacobian and the growth-gene ranking over every cell (when not there yet)."""
    if "ruot_jacobian" not in adata.uns:
        rt.tl.jacobian(adata)
    if "ruot_growth_genes" not in adata.uns:
        rt.tl.growth_genes(adata)


def _stem(name: str, flavor: str) -> str:
    return name if flavor == "deepruot" else f"{name}_{flavor}"


#: The plots drawn for the least-action flavor (the gallery compares them with the default flavor's).
VAR_RUOT_PLOTS = ("trajectories", "landscape_contour", "growth", "history", "metrics")


def draw(adata, name: str, out: Path, only=None) -> list[Path]:
    """Every plot of ``rt.pl`` for one dataset (or those named in ``only``)."""
    times = adata.uns["ruot"]["time_points"]
    shown_times = times if len(times) <= 3 else times[:: max(1, (len(times) - 1) // 2)]
    plots = {
        "trajectories": (rt.pl.trajectories, {"figsize": (6.2, 5.0)}),
        "landscape_contour": (rt.pl.landscape, {"time": shown_times}),
        "landscape_surface": (rt.pl.landscape, {"kind": "surface", "time": shown_times}),
        "growth": (rt.pl.growth, {}),
        "potential": (rt.pl.potential, {}),
        "mass": (rt.pl.mass, {}),
        "velocity_stream": (rt.pl.velocity_stream, {"figsize": (6.2, 5.0)}),
        "history": (rt.pl.history, {}),
        "metrics": (rt.pl.metrics, {}),
        # a 2-D fit has a 2 × 2 Jacobian: show all of it, self-effects included
        "jacobian": (rt.pl.jacobian, {"diagonal": True}),
        "growth_genes": (rt.pl.growth_genes, {}),
    }
    written = []
    for plot_name, (plot, kwargs) in plots.items():
        if only is not None and plot_name not in only:
            continue
        path = out / f"{name}_{plot_name}.png"
        fig = plot(adata, dpi=DPI, return_fig=True, **kwargs)
        fig.savefig(path, bbox_inches="tight")
        plt.close(fig)
        written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="output directory (default: next to this script)")
    parser.add_argument("--fits", type=Path, default=None, help="directory to keep and reuse the fitted .h5ad files")
    parser.add_argument("--datasets", nargs="+", default=["simulated_gene", "mouse_hematopoiesis"])
    parser.add_argument("--flavor", default="deepruot", choices=["deepruot", "var_ruot"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    rt.settings.verbosity = "warning"
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.datasets:
        only = VAR_RUOT_PLOTS if args.flavor == "var_ruot" else None
        for path in draw(fitted(name, args.fits, args.flavor), _stem(name, args.flavor), args.out, only):
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
