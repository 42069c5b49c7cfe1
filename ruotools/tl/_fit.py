"""`fit_ruot`: AnnData → snapshots → training → outputs written back."""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np

from .. import _logging as logg
from .. import _validation as val
from .._keys import Keys, basis_from_rep, outputs
from .._settings import settings
from ..core.config import PHASES, TrainConfig
from ..core.data import Snapshots, Standardizer
from ..core.train import fit
from ..model import RUOTModel

DEFAULT_SIGMA_INTERNAL = 0.05


def fit_ruot(
    adata,
    time_key: str,
    *,
    use_rep: str | None = None,
    n_dims: int | None = None,
    sigma: float | None = None,
    growth: bool = True,
    alpha: float = 1.0,
    relative_mass: Mapping[float, float] | None = None,
    hidden_dim: int | None = None,
    n_layers: int | None = None,
    max_epochs: int | Mapping[str, int] | None = None,
    batch_size: int | None = None,
    lr: float | Mapping[str, float] | None = None,
    train_size: float = 0.9,
    early_stopping: bool = True,
    accelerator: str = "auto",
    device: str | int = "auto",
    random_state: int = 0,
    key_added: str = "ruot",
    show_progress_bar: bool = True,
    checkpoint_dir: str | None = None,
    train_kwargs: Mapping | None = None,
) -> RUOTModel:
    """Fit regularized unbalanced optimal transport dynamics to time-course snapshots.

    Learns a velocity field v, a growth rate g and a score s = (σ²/2)·log ρ from cells observed
    at several time points (DeepRUOT, Zhang, Li & Zhou, ICLR 2025), by the three training
    phases of the method: deterministic pre-training of v and g, score matching of s on
    Schrödinger bridges, and joint training of all three with stochastic particles.

    Parameters
    ----------
    adata
        Annotated data matrix. Read: ``obs[time_key]`` and the representation.
    time_key
        ``obs`` column with each cell's time point: numeric, or categorical/strings holding numbers
        (``"2"``, ``2.0``). Uneven spacing is honoured. The column is never modified.
    use_rep
        ``obsm`` key of the representation, or ``"X"``; ``None`` picks ``obsm['X_pca']`` if present,
        else ``.X`` when it has at most 50 columns.
    n_dims
        Use only the first ``n_dims`` columns of the representation.
    sigma
        Noise level of the cell dynamics, in representation units per square root of time unit.
        ``None`` chooses 0.05 in standardised units, i.e. ``0.05 · scale / √Δt`` with ``scale`` the
        root-mean-square standard deviation of the representation and Δt the mean time gap.
        ``0`` fits a deterministic unbalanced model (no score, no potential).
    growth
        Learn a growth rate; ``False`` gives a balanced model (mass constant).
    alpha
        Weight of the growth penalty α g² in the action (standardised units).
    relative_mass
        ``{time point: population size relative to the first time point}`` when sampling depth
        differs from population size; default: the cell-count ratio.
    hidden_dim, n_layers
        Size of each network (default 64 wide, 3 hidden layers).
    max_epochs
        Epochs per phase: an integer for every phase, or a dict with any of ``"pretrain"``,
        ``"refine"``, ``"score"``, ``"joint"``. An epoch is a fixed number of optimisation steps
        (``TrainConfig.steps_per_epoch``), so the cost of an epoch does not grow with the data.
    batch_size
        Cells per time point and step (and particles per step; default 512); bounds memory and the
        cost of a step at any number of cells.
    lr
        Learning rate: one value for every phase but the joint one (which uses a tenth of it),
        or a dict per phase.
    train_size
        Fraction of cells per time point used for training; the rest selects the best state.
    early_stopping
        Stop a phase when the validation score has not improved for ``patience`` epochs.
    accelerator, device
        ``"auto"`` uses CUDA when available, else the CPU (never MPS unless asked); ``device``
        picks the GPU index.
    random_state
        Seed of the split, the mini-batches, the initial weights and the noise.
    key_added
        Prefix of every key written.
    show_progress_bar
        One progress bar per phase (terminal or Jupyter).
    checkpoint_dir
        Directory where the fitted model is saved (``RUOTModel.save``) after training.
    train_kwargs
        Further fields of :class:`ruotools.core.TrainConfig`, e.g. ``{"lambda_fp": 1.0}`` to add the
        Fokker–Planck residual and ``{"lambda_init": 0.1}`` the initial-density term to the joint
        phase (both off by default: slower, rarely more accurate), ``steps_per_epoch``, ``patience``,
        or the loss weights ``lambda_ot``, ``lambda_mass``, ``lambda_action``.

    Returns
    -------
    RUOTModel
        The fitted model. Written to ``adata`` (``key_added="ruot"``, ``basis`` = ``use_rep``
        without ``X_``): ``obsm['ruot_velocity_{basis}']`` (``layers['ruot_velocity']`` when all
        columns of ``.X`` are used) v(x_i, t_i) per unit time; ``obsm['ruot_drift_{basis}']`` the SDE
        drift v + ∇s; ``obs['ruot_growth_rate']`` (float32) g(x_i, t_i) in log-mass per unit time;
        ``obs['ruot_potential']`` −log ρ(x_i, t_i) up to a constant; ``uns['ruot']`` params, time
        points, history and the model; ``uns['ruot_velocity_params']``. Cells with NaN time or
        coordinates are not used and get NaN.

    Examples
    --------
    >>> import ruotools as rt
    >>> adata = rt.datasets.simulated_gene()
    >>> model = rt.tl.fit_ruot(adata, time_key="time", max_epochs=2, show_progress_bar=False)
    >>> adata.obsm["ruot_velocity_X"].shape if "ruot_velocity_X" in adata.obsm else adata.layers["ruot_velocity"].shape
    (3031, 2)
    """
    start = time.perf_counter()
    keys = Keys(_check_key(key_added))
    x, use_rep, full_x = val.resolve_rep(adata, use_rep, n_dims)
    t = val.resolve_time(adata, time_key)
    val.check_sigma(sigma)
    torch_device = val.resolve_device(accelerator, device)
    if not 0 < train_size <= 1:
        raise ValueError(f"`train_size` must be in (0, 1], got {train_size!r}.")

    valid = ~np.isnan(t) & np.all(np.isfinite(x), axis=1)
    n_excluded = int((~valid).sum())
    if n_excluded == len(valid):
        raise ValueError("Every cell has a NaN time or non-finite coordinates; nothing to fit.")
    times, counts = val.check_time_points(t[valid], time_key)
    masses = val.check_relative_mass(relative_mass, times, counts)
    if n_excluded:
        logg.warning(f"{n_excluded} cell(s) with NaN time or non-finite coordinates are excluded and get NaN outputs.")

    st = Standardizer.from_data(x[valid], t[valid])
    config = _config(
        st,
        sigma=sigma,
        growth=growth,
        alpha=alpha,
        hidden_dim=hidden_dim,
        n_layers=n_layers,
        max_epochs=max_epochs,
        batch_size=batch_size,
        lr=lr,
        train_size=train_size,
        early_stopping=early_stopping,
        random_state=random_state,
        show_progress_bar=show_progress_bar,
        train_kwargs=train_kwargs,
    )
    xv, tv = x[valid], t[valid]
    xs = [st.x_to_internal(xv[tv == tk]).astype(np.float32) for tk in times]
    data = Snapshots(
        xs, st.t_to_internal(times), masses, train_size=train_size, random_state=random_state, device=torch_device
    )
    logg.info(
        f"fitting RUOT on {valid.sum()} cells × {x.shape[1]} dims of {use_rep!r}, {len(times)} time points, "
        f"device {torch_device}"
    )
    nets, history = fit(data, config, progress=_progress_factory(show_progress_bar))
    model = RUOTModel(
        nets,
        config,
        st,
        time_points=times,
        relative_mass=masses,
        use_rep=use_rep,
        time_key=time_key,
        history=history,
    )
    if checkpoint_dir is not None:
        model.save(checkpoint_dir, overwrite=True)

    values = cell_outputs(model, x, t, valid)
    slots = outputs(keys, use_rep, full_x)
    uns = {
        "params": _params(config, model, time_key, use_rep, n_dims, relative_mass is not None, torch_device),
        "time_points": times,
        "use_rep": use_rep,
        "history": history,
        "model": model.to_dict(),
        "version": _version(),
    }
    # everything is computed: write it all at once so a failure above leaves adata unchanged
    for name, (attr, key) in slots.items():
        getattr(adata, attr)[key] = values[name]
        logg.info(f"    added `adata.{attr}['{key}']`")
    adata.uns[keys.uns] = uns
    embeddings = [] if full_x else [basis_from_rep(use_rep)]
    adata.uns[keys.velocity_params] = {"embeddings": embeddings}
    logg.info(f"    added `adata.uns['{keys.uns}']`, `adata.uns['{keys.velocity_params}']`", start=start)
    return model


def cell_outputs(model: RUOTModel, x: np.ndarray, t: np.ndarray, valid: np.ndarray) -> dict[str, np.ndarray]:
    """Velocity, drift, growth and potential of every valid cell at its own time (NaN elsewhere), in chunks."""
    n, d = x.shape
    out = {
        "velocity": np.full((n, d), np.nan, dtype=np.float32),
        "drift": np.full((n, d), np.nan, dtype=np.float32),
        "growth": np.full(n, np.nan, dtype=np.float32),
        "potential": np.full(n, np.nan, dtype=np.float32),
    }
    idx = np.flatnonzero(valid)
    for start in range(0, len(idx), settings.chunk_size):
        sel = idx[start : start + settings.chunk_size]
        xs, ts = x[sel], t[sel]
        out["velocity"][sel] = model.velocity(xs, ts)
        out["drift"][sel] = model.drift(xs, ts)
        out["growth"][sel] = model.growth(xs, ts)
        out["potential"][sel] = model.potential(xs, ts)
    return out


def _check_key(key_added) -> str:
    if not isinstance(key_added, str) or not key_added:
        raise TypeError(f"`key_added` must be a non-empty string, got {key_added!r}.")
    return key_added


def _per_phase(value, default: dict, name: str, cast) -> dict:
    out = dict(default)
    if value is None:
        return out
    if isinstance(value, Mapping):
        unknown = set(value) - set(PHASES)
        if unknown:
            raise ValueError(f"`{name}` has unknown phase(s) {sorted(unknown)}; accepted: {list(PHASES)}.")
        out.update({k: cast(v) for k, v in value.items()})
        return out
    return {k: cast(value) for k in PHASES}


def _config(
    st: Standardizer, *, sigma, max_epochs, lr, hidden_dim, n_layers, batch_size, train_kwargs, **kwargs
) -> TrainConfig:
    cfg = TrainConfig(**kwargs)
    reserved = set(kwargs) | {"sigma", "epochs", "lr", "hidden_dim", "n_layers", "batch_size"}
    for name, value in dict(train_kwargs or {}).items():
        if name in reserved or not hasattr(cfg, name):
            allowed = sorted(set(cfg.to_dict()) - reserved)
            raise ValueError(f"`train_kwargs` key {name!r} is not accepted; use one of {allowed}.")
        setattr(cfg, name, value)
    cfg.sigma = DEFAULT_SIGMA_INTERNAL if sigma is None else st.sigma_to_internal(float(sigma))
    cfg.epochs = _per_phase(max_epochs, cfg.epochs, "max_epochs", int)
    if lr is not None and not isinstance(lr, Mapping):
        lr = {"pretrain": lr, "refine": lr, "score": lr, "joint": 0.1 * lr}
    cfg.lr = _per_phase(lr, cfg.lr, "lr", float)
    for name, value in {"hidden_dim": hidden_dim, "n_layers": n_layers, "batch_size": batch_size}.items():
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
            setattr(cfg, name, int(value))
    if any(v < 0 for v in cfg.epochs.values()):
        raise ValueError(f"`max_epochs` must be ≥ 0, got {cfg.epochs}.")
    return cfg


def _params(config, model, time_key, use_rep, n_dims, custom_mass, device) -> dict:
    return {
        "time_key": time_key,
        "use_rep": use_rep,
        "n_dims": int(model.n_dims),
        "n_dims_requested": -1 if n_dims is None else int(n_dims),
        "sigma": float(model.sigma),
        "sigma_internal": float(config.sigma),
        "growth": bool(config.growth),
        "alpha": float(config.alpha),
        "relative_mass": model.relative_mass,
        "relative_mass_given": bool(custom_mass),
        "hidden_dim": int(config.hidden_dim),
        "n_layers": int(config.n_layers),
        "max_epochs": {k: int(v) for k, v in config.epochs.items()},
        "lr": {k: float(v) for k, v in config.lr.items()},
        "batch_size": int(config.batch_size),
        "train_size": float(config.train_size),
        "random_state": int(config.random_state),
        "device": str(device),
    }


def _progress_factory(show: bool):
    if not show:
        return None
    from tqdm.auto import tqdm

    def progress(iterable, desc="", leave=True):
        return tqdm(iterable, desc=desc, leave=leave, unit="epoch")

    return progress


def _version() -> str:
    from .. import __version__

    return __version__
