"""Helpers shared by the tools that use a fitted model."""

from __future__ import annotations

import warnings

import numpy as np

from .. import _validation as val
from .._keys import Keys
from ..core.config import DEFAULT_FLAVOR
from ..model import RUOTModel


def without_geodesic_unless_given(fit_kwargs: dict) -> None:
    """Set ``lambda_geodesic`` 0 in ``fit_kwargs['train_kwargs']`` for a ``var_ruot`` fit that does not give it.

    For tools that refit the user's data in another form (fewer time points, no growth), where the
    geodesic target's own default (on for two time points with growth) would not be that of the fit
    they stand for. The caller's ``train_kwargs`` dict is not modified.
    """
    train_kwargs = fit_kwargs.get("train_kwargs") or {}
    if fit_kwargs.get("flavor", DEFAULT_FLAVOR) == "var_ruot" and train_kwargs.get("lambda_geodesic") is None:
        fit_kwargs["train_kwargs"] = {**train_kwargs, "lambda_geodesic": 0.0}


def fitted(adata, key_added: str, model: RUOTModel | None) -> tuple[RUOTModel, np.ndarray, np.ndarray, np.ndarray]:
    """Model (given or stored), the fitted coordinates, times and the valid-cell mask of ``adata``."""
    if model is None:
        if Keys(key_added).uns not in adata.uns:
            raise RuntimeError(
                f"No fitted model: `adata.uns['{key_added}']` is missing. Run `rt.tl.fit_ruot(adata, time_key=...)` "
                "first (or pass `model=` / the `key_added` used when fitting)."
            )
        model = RUOTModel.from_adata(adata, key_added)
    use_rep = model.use_rep
    x, _, _ = val.resolve_rep(adata, use_rep, None)
    # a stand-in model (e.g. an analytic field given to rt.tl.jacobian) may use every column
    n_dims = int(getattr(model, "n_dims", x.shape[1]))
    if x.shape[1] < n_dims:
        raise ValueError(f"The representation {use_rep!r} has {x.shape[1]} columns; the model needs {n_dims}.")
    x = x[:, :n_dims]
    t = val.resolve_time(adata, model.time_key)
    valid = ~np.isnan(t) & np.all(np.isfinite(x), axis=1)
    return model, x, t, valid


def make_actual(adata, stacklevel: int = 3) -> None:
    """Turn a view into an actual AnnData before a tool writes to it, with a warning (as scanpy does).

    The AnnData the view was taken from is not modified. ``stacklevel`` 3 points the warning at the
    caller of the tool that calls this.
    """
    if adata.is_view:
        warnings.warn(
            "Received a view of an AnnData; making it an actual AnnData to store the results "
            "(the AnnData it was taken from is not modified).",
            UserWarning,
            stacklevel=stacklevel,
        )
        adata._init_as_actual(adata.copy())
