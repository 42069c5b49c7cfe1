"""`rt.pl.growth_genes`: the legend names the signs drawn and never covers the bars."""

import anndata as ad
import matplotlib
import numpy as np
import pytest

import ruotools as rt

matplotlib.use("Agg")


class Growth:
    """A model without a fit: the linear growth rate g = x · w."""

    use_rep, time_key = "X", "time"

    def __init__(self, w):
        self.w = np.asarray(w, dtype=np.float64)

    def growth(self, x, t):
        return x @ self.w


def _ranked(w):
    rng = np.random.default_rng(0)
    a = ad.AnnData(rng.normal(size=(40, len(w))).astype(np.float32))
    a.var_names = [f"g{i}" for i in range(len(w))]
    a.obs["time"] = np.repeat([0.0, 1.0], 20)
    rt.tl.growth_genes(a, model=Growth(w))
    return a


@pytest.mark.parametrize(
    ("w", "labels"),
    [
        ([-0.06, -0.05], ["lowers growth"]),  # every bar negative: they fill the axes' height
        ([0.2, 0.1], ["raises growth"]),
        ([0.5, -0.3, 0.1], ["raises growth", "lowers growth"]),
    ],
)
def test_legend_lists_the_signs_shown_outside_the_bars(w, labels):
    ax = rt.pl.growth_genes(_ranked(w), show=False)
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == labels
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = legend.get_window_extent(renderer)
    for bar in ax.patches:
        assert not box.overlaps(bar.get_window_extent(renderer))
    matplotlib.pyplot.close("all")
