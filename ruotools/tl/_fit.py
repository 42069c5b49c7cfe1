"""`fit_ruot`: AnnData → snapshots → training → outputs written back."""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Mapping

import numpy as np

from .. import _logging as logg
from .. import _validation as val
from .._keys import Keys, basis_from_rep, outputs
from .._settings import settings
from ..core.config import DEFAULT_FLAVOR, FLAVOR_ONLY, FLAVORS, TrainConfig
from ..core.data import Snapshots, Standardizer
from ..core.distributed import fit_in_launched_job, fit_spawned, launched_by_torchrun
from ..core.train import fit, networks_from_config
from ..model import RUOTModel
from ._common import make_actual

DEFAULT_SIGMA_INTERNAL = 0.05


def fit_ruot(
    adata,
    time_key: str,
    *,
    flavor: str = DEFAULT_FLAVOR,
    use_rep: str | None = None,
    n_dims: int | None = None,
    sigma: float | None = None,
    growth: bool = True,
    alpha: float | None = None,
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
    resume: bool = False,
    strategy: str = "single",
    devices: int | None = None,
    train_kwargs: Mapping | None = None,
) -> RUOTModel:
    """Fit regularized unbalanced optimal transport dynamics to time-course snapshots.

    Learns a velocity field v, a growth rate g and a score s = (σ²/2)·log ρ from cells observed
    at several time points. Two flavors of the method:

    * ``"deepruot"`` (Zhang, Li & Zhou, ICLR 2025): the three training phases of the method —
      deterministic pre-training of v and g, score matching of s on Schrödinger bridges, and joint
      training of all three with stochastic particles.
    * ``"var_ruot"`` (least action; Sun et al., NeurIPS 2025): one scalar potential λ(x, t) gives
      the SDE drift ∇λ and the growth rate g = λ / (2α) (``alpha`` is the weight of α g² in the
      action, as for ``"deepruot"``; the paper's α is 2α). λ is trained in one phase,
      ``"least_action"``, on stochastic particles: transport (Euclidean cost, W1) and total-mass
      losses at every snapshot, the Hamilton–Jacobi–Bellman residual ∂ₜλ + ½|∇λ|² + (σ²/2)Δλ + λ²/(4α) on the
      trajectories (Δλ exact up to ``exact_laplacian_max_dim`` dimensions, Hutchinson's estimate
      above) and the path action. λ learns no density, so the score s is then fitted by the
      ``"score"`` phase on OT-paired, smoothed bridges between the observed snapshots — the same
      data-driven landscape as ``"deepruot"``'s, not one biased by the fitted λ — and gives the
      potential and the probability-flow velocity v = ∇λ − ∇s.

    Parameters
    ----------
    adata
        Annotated data matrix. Read: ``obs[time_key]`` and the representation. A view
        (``adata[mask]``) is made an actual AnnData before the outputs are written (with a
        ``UserWarning``, as scanpy does; the AnnData it was taken from is not modified). A backed
        AnnData (``read_h5ad(path, backed="r")``) works: the outputs are stored in memory, the file
        is not written; a *view* of a backed AnnData is rejected (load it with ``.to_memory()``).
        Duplicate ``obs_names`` give a warning only: cells are matched by position.
    time_key
        ``obs`` column with each cell's time point: numeric, or categorical/strings holding numbers
        (``"2"``, ``2.0``) or labels that each contain exactly one number, read as that number
        (``"D0"``, ``"day 2"``, ``"Day0"``, ``"E7.5"``, ``"t3"``, ``"48h"``, ``"day_10"``; ``"day -1"``
        is −1); the mapping is logged (``"day 2" → 2.0``). Labels with no number (``"ctrl"``), several
        (``"day2_rep1"``, ``"2-4"``) or a ``-`` between a letter and the number (``"D-1"``) are a
        ``TypeError`` whose message holds code that maps every label to a number. Uneven spacing is
        honoured. The column is never modified. At least two time points with at least
        ``MIN_CELLS_PER_TIME`` (2) valid cells each are needed.
    flavor
        ``"deepruot"`` or ``"var_ruot"`` (see above). Stored in ``uns[key_added]['params']`` and in
        the model.
    use_rep
        ``obsm`` key of the representation, or ``"X"``; ``None`` picks ``obsm['X_pca']`` if present,
        else ``.X`` when it has at most 50 columns. Dense, sparse or backed; any real dtype (integer,
        float16, float32, float64). Only the columns used are densified. A UMAP or t-SNE
        embedding (``"umap"`` or ``"tsne"`` in the name) gives a ``UserWarning``: its distances do
        not measure transport; fit on ``"X_pca"`` and draw on the embedding with ``basis=``.
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
        Weight of the growth penalty α g² in the action (standardised units). ``None``: 1 for
        ``"deepruot"``, 3 for ``"var_ruot"`` (the value that matched the benchmark snapshots best
        with the growth tied to λ; benchmarks/README.md).
    relative_mass
        ``{time point: population size relative to the first time point}`` when sampling depth
        differs from population size; keys are numbers or labels read like those of ``time_key``
        (``{"day 0": 1, "day 2": 1.8}``). Default ``None``: the cell-count ratio, i.e. the
        population size is taken proportional to the number of cells sampled at each time point.
        With growth on, a ``UserWarning`` then flags counts that imply an extreme population change:
        a change by more than 3× between two consecutive time points, whatever the time between
        them (this includes any time point with fewer than 20 % of the cells of a neighbour).
        ``uns[key_added]['params']['relative_mass_given']`` records whether it was given.
    hidden_dim, n_layers
        Size of each network (default 64 wide, 3 hidden layers).
    max_epochs
        Epochs per phase: an integer for every phase, or a dict with any of the flavor's phases
        (``"pretrain"``, ``"refine"``, ``"score"``, ``"joint"`` for ``"deepruot"``;
        ``"least_action"``, ``"score"`` for ``"var_ruot"``). An epoch is a fixed number of optimisation steps
        (``TrainConfig.steps_per_epoch``: 10 for ``"deepruot"``, 15 for ``"var_ruot"``), so the cost of
        an epoch does not grow with the data.
    batch_size
        Cells per time point and step (and particles per step; default 512); bounds memory and the
        cost of a step at any number of cells.
    lr
        Learning rate: one value for every phase but ``"deepruot"``'s joint one (which uses a tenth
        of it), or a dict per phase.
    train_size
        Fraction of cells per time point used for training; the rest are held out. The state kept
        from each phase is the one with the best validation score, on the held-out cells
        (``"deepruot"``) or on all cells of each snapshot (``"var_ruot"``; ``train_kwargs``
        ``validation_cells``).
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
        One progress bar per phase in a terminal or Jupyter; when ``stderr`` is neither (a log
        file, a pipe, a batch job), a few plain lines per phase instead (each tenth of the epochs,
        no carriage returns).
    checkpoint_dir
        Directory for the training state, written after every epoch (networks, optimiser, scheduler,
        random generator, EMA weights, best state, history; one file, replaced atomically), and for
        the fitted model (``RUOTModel.save``) at the end.
    resume
        Continue an interrupted fit from the training state in ``checkpoint_dir`` (call again with
        the same data and arguments). On CPU the result is bit-for-bit that of an uninterrupted
        fit. Starts from the beginning when the directory holds no state; a state written by a
        fit with other data or settings, or a truncated or corrupt state file, raises
        ``ValueError`` before anything in ``checkpoint_dir`` is written.
    strategy
        ``"single"`` (one process) or ``"ddp"``: data-parallel training on ``torch.distributed``.
        Each process draws its own mini-batches of ``batch_size / devices`` cells per time point
        (the total per step is ``batch_size``), ``DistributedDataParallel`` averages the gradients,
        and all processes end with identical weights; gloo on CPU, NCCL on GPUs. Called in a plain
        Python session, ``fit_ruot`` starts ``devices`` local worker processes and writes the outputs
        itself. Called in a script started by ``torchrun`` (one or several nodes, e.g. under SLURM),
        every rank runs the script, trains its share, and only rank 0 writes the outputs to its
        ``adata`` (the others return the same model and leave their ``adata`` unchanged).
    devices
        Processes for ``strategy="ddp"``: default all visible GPUs with CUDA, 2 on CPU; under
        ``torchrun``, the job's ``WORLD_SIZE``.
    train_kwargs
        Further fields of :class:`ruotools.core.TrainConfig`, e.g. ``{"lambda_fp": 1.0}`` to add the
        Fokker–Planck residual and ``{"lambda_init": 0.1}`` the initial-density term to the joint
        phase (both off by default: slower, rarely more accurate), ``score_smoothing`` (width of
        the score phase's bridges as a multiple of each snapshot's Scott bandwidth; larger gives
        smoother landscapes, 0 the method's plain bridges), ``steps_per_epoch``, ``patience``,
        or the loss weights ``lambda_ot``, ``lambda_mass`` (the local mass loss, used up to
        ``local_mass_max_dim`` = 50 dimensions), ``lambda_action``, and ``ot_cost``, the ground
        cost of the transport loss at the snapshots (``"sqeuclidean"``, the default of
        ``"deepruot"``, or ``"euclidean"``, the default of ``"var_ruot"``), ``validation_cells``,
        the cells the validation score compares with (``"held_out"``, the default of
        ``"deepruot"``, or ``"all"``, the default of ``"var_ruot"``, whose score on the few held-out
        cells of small snapshots could not tell a good state from a worse one; at most 600 cells
        per snapshot either way); for ``"deepruot"`` ``lambda_curl``, the weight of a penalty on the
        curl of the velocity (the mean of ½‖J − Jᵀ‖²_F, J = ∂v/∂x, at ``curl_points`` cells of the
        snapshots per step, in pre-training and the joint phase; 0.01 by default, 0 turns it off).
        The least-action velocity is a gradient; a free one can read a gene without moving it. On the
        simulators of ``benchmarks/interpretation.py`` the default 0.01 brings the Jacobian and the
        fates much closer to the truth than no penalty (bifurcating network: edge AUROC 0.59 → 0.88,
        fate Spearman 0.27 → 0.49), and 0.03 closer still (0.98, 0.67), at some cost in matching the
        snapshots and in predicting held-out ones (benchmarks/README.md, "A curl penalty for
        deepruot"): consider 0.03 when regulation or fates are the question. For ``"var_ruot"``
        ``lambda_hjb`` (weight of the HJB residual), ``hjb_points`` (trajectory points per step where
        it is evaluated), ``hutchinson_probes``, ``exact_laplacian_max_dim``, and ``lambda_geodesic``,
        the weight of a transport loss halfway through each interval against the least-action
        (Hellinger–Kantorovich) path between its two snapshots computed without a model, with growth
        weight ``geodesic_alpha`` (1 by default; :class:`ruotools.core.TrainConfig`). By default it is
        0.1 when the data have two time points (and ``growth``), where nothing but the least-action
        principle says where the cells are between them, and 0 (off) with more: refits of mouse
        hematopoiesis on its first and last day predicted the middle one better with it (W1 0.256
        against 0.293), refits of the gene network on two time points about as well; with three
        time points the gene refits were worse on average, with four at every held-out time
        (benchmarks/README.md, "The geodesic as a target halfway"). It can make a fit of two time
        points take up to twice as long, and with two time points no held-out check is possible;
        pass a number to choose (0 turns it off). A setting that only the other flavor uses is a
        ``ValueError``.

    Returns
    -------
    RUOTModel
        The fitted model. Written to ``adata`` (``key_added="ruot"``, ``basis`` = ``use_rep``
        without ``X_``): ``obsm['ruot_velocity_{basis}']`` (``layers['ruot_velocity']`` when all
        columns of ``.X`` are used) v(x_i, t_i) per unit time; ``obsm['ruot_drift_{basis}']`` the SDE
        drift v + ∇s; ``obs['ruot_growth_rate']`` (float32) g(x_i, t_i) in log-mass per unit time;
        ``obs['ruot_potential']`` −log ρ(x_i, t_i) (its free constant set so that the cells of every
        time point have the same mean); ``uns['ruot']`` params, time points, history and the model;
        ``uns['ruot_velocity_params']``. Cells with NaN time or coordinates are not used and get NaN.

    Raises
    ------
    KeyError
        ``time_key`` or ``use_rep`` is not in ``adata`` (or no default representation exists), or
        ``relative_mass`` lacks a time point.
    TypeError
        Time labels (or ``relative_mass`` keys) that do not each hold exactly one number, a
        non-numeric representation, or an argument of the wrong type.
    ValueError
        Fewer than two time points, a time point with fewer than ``MIN_CELLS_PER_TIME`` valid cells,
        no cell with finite coordinates, a zero-variance representation, ``n_dims`` larger than the
        representation, a negative ``sigma``, an unknown ``accelerator``, or another invalid value.
        Every check runs before training, and a failed call leaves ``adata`` unchanged.

    Warns
    -----
    UserWarning
        ``relative_mass`` is not given, growth is fitted and the cell counts change by more than 3×
        between two consecutive time points (see ``relative_mass``).

    Notes
    -----
    **What the growth rate can tell.** Snapshots fix how much mass each region gains or loses, not
    whether cells grew there or arrived there; RUOT picks the cheapest explanation (the action with
    weight ``alpha`` on growth). Per-cell growth rates are therefore recovered where subpopulations
    that grow differently are far apart (two lineages of the three-gene network:
    Spearman 0.81–0.97 with the true rate, ``benchmarks/interpretation.py``), and not within one
    unimodal population: for a Gaussian population a growth rate linear in the state,
    g = ḡ + b·(x − μ), changes the density exactly as a constant drift Σb does
    ((b·(x − μ))ρ = −∇·(ρΣb)), so two fits with different growth fields explain the same snapshots.
    On the default network of :func:`~ruotools.datasets.regulatory_network` the snapshots of a
    population whose growth follows one gene and of its twin with uniform growth are as close as
    two halves of one snapshot (W1 ratio to the sampling floor 0.93–1.01), and the fitted per-cell
    rates do not follow the true ones there; the population's total growth (``relative_mass``) is
    always respected. Nor does a lineage choice: where progenitors split into a growing and a
    shrinking lineage (:func:`~ruotools.datasets.bifurcating_network`), a balanced model that sends
    more progenitors into the growing lineage matches the snapshots as well as the growth model. A fit
    cannot see this by itself; :func:`ruotools.tl.growth_identifiability` checks it for your data
    with a balanced refit (two fits). With ``flavor="var_ruot"`` the growth rate is tied to the drift's
    potential (g = λ / (2α)): where the drift holds a population at a stable state, λ peaks there, so
    the fitted rate within that population falls with the distance from its centre, whatever the
    truth (two lineages of :func:`~ruotools.datasets.bifurcating_network` started apart: Spearman
    −0.65 to −0.76 with that distance, the true rate's ≈ 0; the lineage means were right). Read a
    ``"var_ruot"`` fit's rates as means per subpopulation.

    Examples
    --------
    >>> import ruotools as rt
    >>> adata = rt.datasets.simulated_gene()
    >>> model = rt.tl.fit_ruot(adata, time_key="time", max_epochs=2, show_progress_bar=False)
    >>> adata.obsm["ruot_velocity_X"].shape if "ruot_velocity_X" in adata.obsm else adata.layers["ruot_velocity"].shape
    (3031, 2)
    """
    start = time.perf_counter()
    # every check runs before training, and nothing is written before the end: a failed call leaves adata unchanged
    keys = Keys(_check_key(key_added))
    val.check_anndata(adata)
    x, use_rep, full_x = val.resolve_rep(adata, use_rep, n_dims, for_fit=True)
    t = val.resolve_time(adata, time_key, log=True)
    val.check_sigma(sigma)
    if resume and checkpoint_dir is None:
        raise ValueError("`resume=True` needs the `checkpoint_dir` of the interrupted fit.")
    alpha = None if alpha is None else val.check_nonnegative(alpha, "alpha")
    train_size = val.check_fraction(train_size, "train_size")
    random_state = val.check_seed(random_state)
    torch_device = val.resolve_device(accelerator, device)
    launched = strategy == "ddp" and launched_by_torchrun()
    n_processes = val.check_strategy(strategy, devices, torch_device, checkpoint_dir, launched)

    valid = val.valid_cells(x, t, use_rep, time_key)
    n_excluded = int((~valid).sum())
    times, counts = val.check_time_points(t[valid], time_key)
    val.check_variance(x[valid], use_rep)
    masses = val.check_relative_mass(relative_mass, times, counts)
    if n_excluded:
        logg.warning(f"{n_excluded} cell(s) with NaN time or non-finite coordinates are excluded and get NaN outputs.")

    st = Standardizer.from_data(x[valid], t[valid])
    config = _config(
        st,
        len(times),
        flavor=flavor,
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
    steep = val.extreme_count_changes(times, counts, time_key) if relative_mass is None and config.growth else None
    if steep is not None:  # after every check: a call that fails does not warn
        warnings.warn(steep, UserWarning, stacklevel=2)
    xv, tv = x[valid], t[valid]
    xs = [st.x_to_internal(xv[tv == tk]).astype(np.float32) for tk in times]
    t_internal = [float(tk) for tk in st.t_to_internal(times)]
    logg.info(
        f"fitting RUOT on {valid.sum()} cells × {x.shape[1]} dims of {use_rep!r}, {len(times)} time points, "
        f"device {torch_device}"
    )
    if flavor == "var_ruot" and config.lambda_geodesic > 0:
        logg.info(
            "the paths are asked to pass halfway where the model-free least-action path between consecutive "
            f"snapshots does (lambda_geodesic={config.lambda_geodesic:g}; set it to 0 in train_kwargs, or with "
            """--train-kwargs '{"lambda_geodesic": 0}' on the command line, to turn this off)"""
        )
    progress = _progress_factory(show_progress_bar)
    write = True
    if strategy == "single":
        data = Snapshots(xs, t_internal, masses, train_size=train_size, random_state=random_state, device=torch_device)
        nets, history = fit(data, config, progress=progress, checkpoint_dir=checkpoint_dir, resume=resume)
    else:  # every rank builds its own Snapshots (same split) from the arrays
        nets, history, write = _fit_data_parallel(
            xs, t_internal, masses, config, progress, n_processes, launched, torch_device, train_size, random_state
        )
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
    if not write:
        return model

    values = cell_outputs(model, x, t, valid)
    slots = outputs(keys, use_rep, full_x)
    uns = {
        "params": {
            **_params(config, model, time_key, use_rep, n_dims, relative_mass is not None, torch_device),
            "strategy": strategy,
            "n_processes": int(n_processes),
        },
        "time_points": times,
        "use_rep": use_rep,
        "history": history,
        "model": model.to_dict(),
        "version": _version(),
    }
    # everything is computed: write it all at once so a failure above leaves adata unchanged
    make_actual(adata)
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


def _fit_data_parallel(xs, times, masses, config, progress, n_processes, launched, device, train_size, random_state):
    """Train with ``n_processes`` data-parallel ranks; return ``(nets, history, write_outputs)``."""
    args = {"device_type": device.type, "train_size": train_size, "random_state": random_state}
    if launched:
        nets, history, rank, checksums = fit_in_launched_job(xs, times, masses, config, progress=progress, **args)
        write = rank == 0
        if not write:
            logg.info(f"rank {rank}: training done; rank 0 writes the outputs")
    else:
        logg.info(f"starting {n_processes} data-parallel training processes ({device.type})")
        state, history, checksums = fit_spawned(xs, times, masses, config, n_processes=n_processes, **args)
        nets = networks_from_config(xs[0].shape[1], config)
        nets.load_state_dict(state)
        nets, write = nets.to(device), True
    if len(set(checksums)) != 1:  # DDP keeps the ranks in step; this would be a bug, never a user error
        raise RuntimeError(f"The data-parallel ranks ended with different weights (checksums {checksums}).")
    return nets, history, write


def _check_key(key_added) -> str:
    if not isinstance(key_added, str) or not key_added:
        raise TypeError(f"`key_added` must be a non-empty string, got {key_added!r}.")
    return key_added


def _per_phase(value, default: dict, name: str, check, phases) -> dict:
    """One value per phase from a scalar or a dict; ``check(value, label)`` validates and converts each."""
    out = dict(default)
    if value is None:
        return out
    if isinstance(value, Mapping):
        unknown = set(value) - set(phases)
        if unknown:
            raise ValueError(f"`{name}` has unknown phase(s) {sorted(unknown)}; accepted: {list(phases)}.")
        out.update({k: check(v, f"{name}['{k}']") for k, v in value.items()})
        return out
    return {k: check(value, name) for k in phases}


def _config(
    st: Standardizer,
    n_times: int,
    *,
    flavor,
    sigma,
    max_epochs,
    lr,
    hidden_dim,
    n_layers,
    batch_size,
    train_kwargs,
    **kwargs,
) -> TrainConfig:
    if flavor not in FLAVORS:
        raise ValueError(f"Unknown `flavor` {flavor!r}; choose one of {list(FLAVORS)}.")
    train_kwargs = dict(train_kwargs or {})
    known = {field.name for field in dataclasses.fields(TrainConfig)}
    reserved = set(kwargs) | {"flavor", "sigma", "epochs", "lr", "hidden_dim", "n_layers", "batch_size"}
    other = set().union(*(names for f, names in FLAVOR_ONLY.items() if f != flavor))
    for name in train_kwargs:
        if name in other:
            raise ValueError(
                f"`train_kwargs` key {name!r} does not apply to flavor {flavor!r} (only to the other flavor); "
                "remove it."
            )
        if name in reserved or name not in known:
            allowed = sorted(known - reserved - other)
            raise ValueError(f"`train_kwargs` key {name!r} is not accepted; use one of {allowed}.")
    # built with them, so that `None` means the flavor's value and the cost and validation cells are checked
    cfg = TrainConfig(flavor=flavor, **kwargs, **train_kwargs)
    cfg.sigma = DEFAULT_SIGMA_INTERNAL if sigma is None else st.sigma_to_internal(float(sigma))
    cfg.epochs = _per_phase(max_epochs, cfg.epochs, "max_epochs", val.check_count, cfg.phases)
    if lr is not None and not isinstance(lr, Mapping):
        lr = val.check_positive(lr, "lr")
        lr = {phase: 0.1 * lr if phase == "joint" else lr for phase in cfg.phases}
    cfg.lr = _per_phase(lr, cfg.lr, "lr", val.check_positive, cfg.phases)
    if flavor == "var_ruot" and cfg.growth and cfg.alpha <= 0:
        raise ValueError("`flavor='var_ruot'` with growth needs `alpha` > 0 (its growth rate is λ / (2α)).")
    cfg.resolve_lambda_geodesic(n_times)
    if flavor == "var_ruot":
        cfg.lambda_geodesic = val.check_nonnegative(cfg.lambda_geodesic, "train_kwargs['lambda_geodesic']")
        cfg.geodesic_alpha = val.check_positive(cfg.geodesic_alpha, "train_kwargs['geodesic_alpha']")
    else:  # a float, as stored by earlier versions: `{"lambda_curl": 0}` resumes their checkpoints
        cfg.lambda_curl = val.check_nonnegative(cfg.lambda_curl, "train_kwargs['lambda_curl']")
    for name, value in {"hidden_dim": hidden_dim, "n_layers": n_layers, "batch_size": batch_size}.items():
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
            setattr(cfg, name, int(value))
    return cfg


def _params(config, model, time_key, use_rep, n_dims, custom_mass, device) -> dict:
    return {
        "flavor": config.flavor,
        "time_key": time_key,
        "use_rep": use_rep,
        "n_dims": int(model.n_dims),
        "n_dims_requested": -1 if n_dims is None else int(n_dims),
        "sigma": float(model.sigma),
        "sigma_internal": float(config.sigma),
        "growth": bool(config.growth),
        "alpha": float(config.alpha),
        "ot_cost": config.ot_cost,
        "validation_cells": config.validation_cells,
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
    """Per-phase progress: a ``tqdm`` bar in a terminal or Jupyter, a few plain lines in a log or pipe."""
    if not show:
        return None

    def progress(iterable, desc="", leave=True):
        return logg.progress_bar(iterable, desc=desc, leave=leave, unit="epoch")

    return progress


def _version() -> str:
    from .. import __version__

    return __version__
