"""Hyper-parameters of a RUOT fit, in standardised units."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .ot import ground_cost

#: The training phases of the ``deepruot`` flavor, in order (METHOD.md §4).
PHASES = ("pretrain", "refine", "score", "joint")
#: The flavors of RUOT and the training phases of each, in order.
FLAVOR_PHASES = {"deepruot": PHASES, "var_ruot": ("least_action", "score")}
FLAVORS = tuple(FLAVOR_PHASES)
#: The flavor of a fit that names none.
DEFAULT_FLAVOR = "deepruot"
#: Settings that only one flavor uses (the others apply to both).
FLAVOR_ONLY = {
    "deepruot": frozenset(
        {"lambda_mass", "local_mass_max_dim", "lambda_score", "lambda_fp", "lambda_init", "lambda_curl", "curl_points"}
    ),
    "var_ruot": frozenset(
        {
            "lambda_hjb",
            "hjb_points",
            "hutchinson_probes",
            "exact_laplacian_max_dim",
            "lambda_geodesic",
            "geodesic_alpha",
        }
    ),
}
_DEFAULT_EPOCHS = {
    "deepruot": {"pretrain": 40, "refine": 2, "score": 40, "joint": 2},
    "var_ruot": {"least_action": 60, "score": 40},
}
_DEFAULT_LR = {
    "deepruot": {"pretrain": 3e-3, "refine": 1e-3, "score": 1e-2, "joint": 1e-4},
    "var_ruot": {"least_action": 3e-2, "score": 1e-2},
}
#: Steps per epoch: 15 for var_ruot, whose seeds agree better with 50 % more steps in the same epochs
#: (seed spread of the gene W1 34.5 % → 23.1 %, mouse 16.4 % → 6.0 %; benchmarks/README.md), 10 for deepruot.
_DEFAULT_STEPS_PER_EPOCH = {"deepruot": 10, "var_ruot": 15}
_DEFAULT_LAMBDA_ACTION = {"deepruot": 0.01, "var_ruot": 1 / 16}
_DEFAULT_OT_COST = {"deepruot": "sqeuclidean", "var_ruot": "euclidean"}
_DEFAULT_ALPHA = {"deepruot": 1.0, "var_ruot": 3.0}
#: The curl penalty of ``deepruot`` (a ``var_ruot`` drift is a gradient already): 0.01 recovers the regulation of
#: the bifurcating network (edge AUROC 0.59 → 0.88) and moves the fates towards the truth (Spearman 0.27 → 0.49),
#: matches the snapshots about as well (gene seed spread 15.4 % → 11.3 %), and predicts held-out time points a little
#: worse (gene t2 / t3 0.073 / 0.081 → 0.084 / 0.089, mouse 0.445 → 0.483; benchmarks/README.md).
_DEFAULT_LAMBDA_CURL = {"deepruot": 0.01, "var_ruot": 0.0}
#: ``lambda_geodesic`` of a ``var_ruot`` fit of two time points (one interval) unless given; 0 with more:
#: held-out mouse (one interval left) 0.293 → 0.256, one-interval gene refits unchanged (0.084 → 0.082,
#: 0.115 → 0.113), two-interval ones worse on average (0.079 → 0.083), three-interval ones worse at every
#: time (0.057 / 0.076 / 0.072 → 0.070 / 0.083 / 0.084; benchmarks/README.md, "The geodesic as a target halfway").
GEODESIC_ONE_INTERVAL = 0.1


#: Which cells of each snapshot the validation score compares with (see :class:`TrainConfig`).
VALIDATION_CELLS = ("held_out", "all")
_DEFAULT_VALIDATION_CELLS = {"deepruot": "held_out", "var_ruot": "all"}


def check_validation_cells(value) -> str:
    """Return ``value`` if it is one of :data:`VALIDATION_CELLS`, else raise a ``ValueError`` naming them."""
    if value not in VALIDATION_CELLS:
        raise ValueError(f"Unknown `validation_cells` {value!r}; choose one of {list(VALIDATION_CELLS)}.")
    return value


@dataclass
class TrainConfig:
    """Everything the training loop needs to know, in standardised coordinates and time.

    Coordinates are centred and divided by one global scale, time is shifted and scaled so
    that consecutive snapshots are on average one unit apart; ``sigma`` is expressed in
    these units. An *epoch* is ``steps_per_epoch`` optimisation steps, each on a fresh
    mini-batch of at most ``batch_size`` cells per time point, so its cost does not grow
    with the number of cells.

    Phases (METHOD.md §4): ``pretrain`` fits v and g with deterministic particles on the
    distribution and mass losses; ``refine`` freezes g and refines v on the distribution
    loss; ``score`` learns s by Schrödinger-bridge score matching; ``joint`` trains v, g
    and s together with stochastic particles.

    Notable fields: ``local_fraction`` of the pre-training epochs push every snapshot to the
    next one before whole trajectories are trained (at least the last epoch trains whole
    trajectories; the local stage is a warm start, its epochs are not validated and its
    states never returned; on a multi-core CPU its intervals run in two threads);
    ``score_smoothing`` scales the Gaussian
    smoothing of the score phase's bridges (a multiple of each snapshot's Scott bandwidth; 0
    gives the method's plain bridges, whose score carries no information about where cells
    are dense when σ is small next to the cells' spacing); the bridges join cells of
    consecutive snapshots paired by their exact OT plan (METHOD.md §4's OT pairing).

    The local mass loss (weight ``lambda_mass``) assigns each observed cell to its nearest
    particle; above ``local_mass_max_dim`` dimensions it is left out (total mass only): there the
    nearest particle is decided by the many low-variance coordinates (a few particles are nearest
    to most cells), and on the 100-dimensional Gaussian mixture the growth rate learned from those
    counts made the SDE's total mass miss by 6–20 % (0.1 % without; benchmarks/README.md).

    ``lambda_curl`` (``deepruot`` only) adds to every pre-training and joint step that weight times
    the mean of ½‖J − Jᵀ‖²_F, J = ∂v/∂x the velocity network's Jacobian, at ``curl_points`` cells
    drawn from all snapshots at their times (exact J up to 10 dimensions, Hutchinson's estimate
    above): a penalty on the part of v that is not a gradient, which the least-action velocity does
    not have. ``None`` gives the flavor's value, 0.01 for ``deepruot`` (0 for ``var_ruot``):
    without it a free velocity field reads genes that vary among the cells without moving them
    (unregulated ones included) and decides fates by them; 0 turns it off.

    ``flavor="var_ruot"`` (METHOD_LEAST_ACTION.md) trains instead one scalar potential λ in a
    single phase ``least_action`` (drift ∇λ, growth λ/(2α), stochastic particles moved by
    ``steps_per_unit`` RK4 steps per unit plus noise, a local stage first as in pre-training;
    losses: transport and total mass at every snapshot, ``lambda_hjb`` × the HJB residual on ``hjb_points`` trajectory
    points per step, ``lambda_action`` × the path action; on a multi-core CPU each step's particles run in two
    halves in two threads, with the same random numbers as one pass), then the score phase. ``epochs``,
    ``steps_per_epoch`` (15 for ``var_ruot``, 10 for ``deepruot``), ``lr``, ``lambda_action``, ``alpha`` and
    ``ot_cost`` default to the flavor's values; :data:`FLAVOR_ONLY` lists the
    settings that only one flavor uses.

    ``lambda_geodesic`` (``var_ruot`` only) weighs a transport loss halfway through each interval, against
    cells drawn from the least-action path between its two snapshots computed without a model: the
    Hellinger–Kantorovich geodesic with δ² = 8 ``geodesic_alpha`` (:mod:`ruotools.core.geodesic`; at most
    1,000 cells of each snapshot, computed once before training). Fitted paths are about as cheap as the
    geodesic of their own α, yet an action nearly flat around its minimum leaves them free to put the mass
    elsewhere between the snapshots (benchmarks/README.md); this term asks for a minimiser itself. Its
    transport cost is ``ot_cost``; only the shape of the targets is matched, not their mass. ``None``, the
    default, is resolved when a fit starts (:meth:`resolve_lambda_geodesic`): 0.1 for data of two time
    points (with growth), where nothing but the least-action principle says where the cells are between the snapshots,
    and 0 (off) with more, whose interior snapshots the fitted dynamics use to predict held-out times
    better than the geodesic between two snapshots does (:data:`GEODESIC_ONE_INTERVAL`).

    ``ot_cost`` is the ground cost of the transport loss at the snapshots: ``"sqeuclidean"`` (W2²,
    the method's) for ``deepruot``, ``"euclidean"`` (W1) for ``var_ruot``, whose potential, with the
    growth tied to it, otherwise squeezes a moving cluster: W2² charges little for a cluster that is
    too narrow, W1 more (benchmarks/README.md). The validation score that picks the kept state uses
    the same distance (W2, or W1), plus 5 × the relative mass error.

    ``validation_cells`` says which observed cells that score compares with: ``"held_out"`` (the
    cells left out of training by ``train_size``; the default of ``deepruot``) or ``"all"`` (every
    cell of each snapshot, training and held-out; the default of ``var_ruot``), in both cases at
    most 600 per snapshot. The score chooses among the epochs of one fit, and on small snapshots
    the held-out cells are too few for that: on the gene network (44–97 held-out cells per
    snapshot) every good ``var_ruot`` state scored about 0.22, whatever its W1 against all cells,
    and the seed that kept a worse state gained 0.011 / 0.016 / 0.000 / 0.032 W1 at t1…t4 when
    scored against all cells (benchmarks/README.md). The held-out cells never enter the training
    loss either way; with ``"all"`` the score is not an out-of-sample one.
    """

    sigma: float = 0.05
    growth: bool = True
    alpha: float | None = None
    hidden_dim: int = 64
    n_layers: int = 3
    flavor: str = DEFAULT_FLAVOR
    epochs: dict | None = None
    steps_per_epoch: int | None = None
    local_fraction: float = 0.6
    batch_size: int = 512
    lr: dict | None = None
    lambda_ot: float = 1.0
    ot_cost: str | None = None
    lambda_mass: float = 1.0
    local_mass_max_dim: int = 50
    lambda_total_mass: float = 10.0
    lambda_action: float | None = None
    lambda_score: float = 1.0
    lambda_fp: float = 0.0
    lambda_init: float = 0.0
    lambda_curl: float | None = None
    curl_points: int = 256
    lambda_hjb: float = 1 / 16
    hjb_points: int = 256
    hutchinson_probes: int = 4
    exact_laplacian_max_dim: int = 10
    lambda_geodesic: float | None = None
    geodesic_alpha: float = 1.0
    score_gain: float = 10.0
    score_smoothing: float = 1.0
    steps_per_unit: int = 2
    sde_steps_per_unit: int = 10
    emd_max: int = 3000
    sinkhorn_epsilon: float = 0.01
    ema_decay: float = 0.95
    validation_cells: str | None = None
    num_threads: int | None = 1
    train_size: float = 0.9
    early_stopping: bool = True
    patience: int = 10
    random_state: int = 0
    show_progress_bar: bool = True

    def __post_init__(self):
        if self.flavor not in FLAVOR_PHASES:
            raise ValueError(f"Unknown flavor {self.flavor!r}; choose one of {list(FLAVORS)}.")
        if self.epochs is None:
            self.epochs = dict(_DEFAULT_EPOCHS[self.flavor])
        if self.lr is None:
            self.lr = dict(_DEFAULT_LR[self.flavor])
        if self.steps_per_epoch is None:
            self.steps_per_epoch = _DEFAULT_STEPS_PER_EPOCH[self.flavor]
        if self.lambda_action is None:
            self.lambda_action = _DEFAULT_LAMBDA_ACTION[self.flavor]
        if self.alpha is None:
            self.alpha = _DEFAULT_ALPHA[self.flavor]
        if self.lambda_curl is None:
            self.lambda_curl = _DEFAULT_LAMBDA_CURL[self.flavor]
        if self.ot_cost is None:
            self.ot_cost = _DEFAULT_OT_COST[self.flavor]
        if self.validation_cells is None:
            self.validation_cells = _DEFAULT_VALIDATION_CELLS[self.flavor]
        ground_cost(self.ot_cost)  # a ValueError naming the choices
        check_validation_cells(self.validation_cells)

    def resolve_lambda_geodesic(self, n_times: int) -> None:
        """Set ``lambda_geodesic`` if it is ``None`` (the default), for data of ``n_times`` time points.

        :data:`GEODESIC_ONE_INTERVAL` for a ``var_ruot`` fit with growth of two time points, else 0 (off).
        Off without growth: the target halfway is the unbalanced geodesic, whose shape there carries mass
        created and destroyed that a balanced model cannot follow.
        """
        if self.lambda_geodesic is None:
            one_interval = self.flavor == "var_ruot" and self.growth and n_times == 2
            self.lambda_geodesic = GEODESIC_ONE_INTERVAL if one_interval else 0.0

    @property
    def phases(self) -> tuple[str, ...]:
        """The training phases of this flavor, in order."""
        return FLAVOR_PHASES[self.flavor]

    def to_dict(self) -> dict:
        """Plain-dict copy (h5ad-safe values only)."""
        return asdict(self)
