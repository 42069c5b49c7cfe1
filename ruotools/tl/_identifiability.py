"""`growth_identifiability`: do the snapshots need cell-specific growth, or does transport explain them."""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pandas as pd

from .. import _logging as logg
from .. import _validation as val
from .._keys import Keys
from ._common import make_actual, without_geodesic_unless_given
from ._evaluate import evaluate
from ._fit import _check_key, fit_ruot

#: A time point's growth counts as supported by the data when the balanced model's W1 exceeds the
#: growth model's by this fraction of the sampling floor (benchmarks/README.md, "Interpretation").
DEFAULT_MIN_EXCESS = 0.25


def growth_identifiability(
    adata,
    time_key: str,
    *,
    min_excess: float = DEFAULT_MIN_EXCESS,
    stochastic: bool = True,
    n_steps_per_unit: float = 100,
    max_cells: int | None = 5000,
    random_state: int = 0,
    key_added: str = "ruot",
    **fit_kwargs,
) -> pd.DataFrame:
    r"""Check whether the snapshots need cell-specific growth rates, by a balanced refit.

    Snapshots fix how much mass each region gains or loses, not whether cells grew there or
    arrived there. Two models are fitted on temporary copies of the data, with the same settings and seed
    (``fit_kwargs``): one with growth (as :func:`ruotools.tl.fit_ruot` by default) and one balanced
    (``growth=False``: every cell keeps its mass, so any change in the shape of the population must
    come from transport). Both are scored at every later time point as :func:`ruotools.tl.evaluate`
    does (W1 between the predicted particles, with normalised masses, and the observed cells). A
    growth field that is uniform across cells changes no normalised snapshot, so the balanced model
    stands for every such explanation.

    If the balanced model matches a snapshot as well as the growth model, differences in growth
    between cells are not needed to explain it: a fit's rates (``obs['ruot_growth_rate']``) are then
    the choice of the fit's prior (the weight ``alpha`` of growth against transport), not something
    the data show, and a different split between growth and fate bias fits equally well. The
    population's total growth (``relative_mass``) is not in question here.

    Parameters
    ----------
    adata
        Annotated data. Read: ``obs[time_key]`` and the representation; ``adata`` is not refitted:
        the fits run on temporary AnnData objects holding only these (their info messages are not
        printed; their warnings are). Written: the table in ``uns``, nothing else.
    time_key
        ``obs`` column with the time points.
    min_excess
        A time point's growth counts as identifiable when
        ``(W1_balanced − W1_growth) / W1_floor ≥ min_excess``.
    stochastic, n_steps_per_unit, max_cells, random_state
        As for :func:`ruotools.tl.evaluate` (``max_cells`` default 5,000 here); ``random_state`` also
        seeds both fits.
    key_added
        The table is stored in ``adata.uns[f"{key_added}_growth_identifiability"]``; the fits are
        not stored.
    **fit_kwargs
        Passed to both fits (e.g. ``use_rep``, ``n_dims``, ``flavor``, ``alpha``, ``sigma``,
        ``relative_mass``): pass the settings of the fit whose growth rates you want to read, since
        the answer is about fits with these settings. Not ``growth``, ``checkpoint_dir``, ``resume``
        or ``key_added`` (``TypeError``). ``flavor="var_ruot"``'s geodesic target halfway, on by
        default for data of two time points with growth, has no balanced counterpart: it is left off
        in both fits unless ``train_kwargs`` gives ``lambda_geodesic``, so that they differ in growth
        only.

    Returns
    -------
    pandas.DataFrame
        Indexed by time point (after the first), columns ``W1_growth``, ``W1_balanced``,
        ``W1_floor`` (the sampling floor of :func:`ruotools.tl.evaluate`), ``excess`` =
        ``(W1_balanced − W1_growth) / W1_floor`` and ``identifiable`` (``excess ≥ min_excess``).

    Warns
    -----
    UserWarning
        No time point is identifiable: the balanced model explains every snapshot.

    Notes
    -----
    Measured on simulations with known growth (``benchmarks/README.md``, default settings, fit seeds 0
    and 1): on the three-gene network, whose two lineages are separate from the start, ``excess`` is
    0.8–2.0 at every time and the fitted rates follow the true ones (Spearman 0.81–0.97). On the
    default :func:`~ruotools.datasets.regulatory_network` (one unimodal population) and on
    :func:`~ruotools.datasets.bifurcating_network` (progenitors choosing between a growing and a
    shrinking lineage) it is between −0.01 and 0.19: a balanced model that sends more progenitors
    into the growing lineage matches the snapshots as well, so lineage sizes can come from growth or
    from fate bias. Costs two fits.

    Examples
    --------
    >>> rt.tl.growth_identifiability(adata, "time", use_rep="X_pca")  # doctest: +SKIP
    """
    taken = sorted({"growth", "checkpoint_dir", "resume", "key_added"} & set(fit_kwargs))
    if taken:
        raise TypeError(
            f"{', '.join(f'`{k}`' for k in taken)}: not accepted by growth_identifiability, which runs two fits "
            "(one with growth, one without) on temporary copies; remove it."
        )
    key = Keys(_check_key(key_added))
    min_excess = val._real(min_excess, "min_excess")
    if not np.isfinite(min_excess):
        raise ValueError(f"`min_excess` must be a finite number, got {min_excess!r}.")
    random_state = val.check_seed(random_state)
    val.check_positive(n_steps_per_unit, "n_steps_per_unit")
    if max_cells is not None:
        val.check_count(max_cells, "max_cells", minimum=2)
    t = val.resolve_time(adata, time_key, log=True)  # the refits' own messages are not shown
    rep, n_dims = fit_kwargs.pop("use_rep", None), fit_kwargs.pop("n_dims", None)
    x, use_rep, _ = val.resolve_rep(adata, rep, n_dims, for_fit=True)
    fit_kwargs.setdefault("show_progress_bar", False)
    without_geodesic_unless_given(fit_kwargs)  # the balanced fit has no counterpart of it
    # each fit gets a small AnnData with the time column and the chosen columns only: no copy of the
    # user's layers, and a backed or view AnnData needs none either
    obs = pd.DataFrame({time_key: t}, index=adata.obs_names.copy())
    fields = {"X": x} if use_rep == "X" else {"X": np.empty((len(x), 0)), "obsm": {use_rep: x}}
    tables = {}
    for growth in (True, False):
        copy = ad.AnnData(obs=obs.copy(), **fields)
        start = logg.info(f"fitting a {'growth' if growth else 'balanced'} model on a copy")
        with logg.only_warnings(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"Fitting on .*: UMAP and t-SNE", category=UserWarning)
            model = fit_ruot(copy, time_key, use_rep=use_rep, growth=growth, random_state=random_state, **fit_kwargs)
            tables[growth] = evaluate(
                copy,
                model=model,
                stochastic=stochastic,
                n_steps_per_unit=n_steps_per_unit,
                max_cells=max_cells,
                random_state=random_state,
            )
        logg.info(f"    W1 {' / '.join(f'{v:.3g}' for v in tables[growth]['W1'])}", start=start)
    table = pd.DataFrame(
        {
            "W1_growth": tables[True]["W1"],
            "W1_balanced": tables[False]["W1"],
            "W1_floor": tables[True]["W1_floor"],
        }
    )
    table["excess"] = (table["W1_balanced"] - table["W1_growth"]) / table["W1_floor"]
    table["identifiable"] = table["excess"] >= min_excess
    make_actual(adata)
    adata.uns[key.growth_identifiability] = {
        "time": table.index.to_numpy(dtype=np.float64),
        **{c: table[c].to_numpy() for c in table.columns},
        "min_excess": float(min_excess),
    }
    logg.info(f"    added `adata.uns['{key.growth_identifiability}']`")
    if not table["identifiable"].any():
        warnings.warn(
            "A model without cell-specific growth matches every snapshot as well as the growth model "
            f"(W1 excess {' / '.join(f'{v:.2f}' for v in table['excess'])} sampling floors, below {min_excess:g}): "
            f"the data do not tell which cells grow. Read the per-cell growth rates (`obs['{key.growth}']` of a "
            "fit) as the prior's choice, not a measurement.",
            UserWarning,
            stacklevel=2,
        )
    return table
