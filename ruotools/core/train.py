"""The three training phases of METHOD.md §4, with validation and best-state restoration."""

from __future__ import annotations

import copy
import functools
import itertools
import logging
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.distributed as dist

from .checkpoint import Checkpointer, fingerprint
from .config import TrainConfig
from .data import Snapshots, draw_rows
from .dynamics import integrate, integrate_intervals
from .geodesic import midpoint_targets
from .least_action import (
    LeastActionNetworks,
    PotentialPaths,
    hjb_residual,
    integrate_potential,
    path_steps,
)
from .losses import (
    fokker_planck_residual,
    initial_density_loss,
    jacobian_asymmetry,
    log_kde,
    mass_loss,
    score_matching_loss,
    scott_bandwidth,
)
from .networks import RUOTNetworks
from .ot import ground_cost, n_cores, ot_losses, transport_plans, uniform
from .rng import draw_noise

logger = logging.getLogger("ruotools")

VAL_PARTICLES = 1024
#: Observed cells per time point that validation compares with (the bundled datasets hold back ≤ 579).
VAL_TARGETS = 600
#: RK4 steps per unit of internal time when the total mass is calibrated.
CALIBRATION_STEPS_PER_UNIT = 20
#: Up to this dimension the curl penalty uses the exact Jacobian (one backward pass per dimension), above it
#: Hutchinson's estimate (three passes per probe, two probes).
CURL_EXACT_MAX_DIM = 10
#: Cells per snapshot paired by exact OT for the score phase's bridges.
SCORE_PAIRS = 1024
#: Seed offset between the mini-batch generators of two ranks in data-parallel training.
RANK_SEED_STRIDE = 1_000_003


class _StepModule(torch.nn.Module):
    """One training step of a phase as a module, so that DistributedDataParallel can wrap it.

    Its forward returns the step's loss and parts; its parameters are those of the networks the phase trains.
    """

    def __init__(self, trainer: _Trainer, networks: list[torch.nn.Module]):
        super().__init__()
        self.trained = torch.nn.ModuleList(networks)
        self._step = trainer.step

    def forward(self, phase: str):
        return self._step(phase)


class _Trainer:
    def __init__(self, data: Snapshots, config: TrainConfig, nets: RUOTNetworks, distributed: bool = False):
        self.data, self.cfg, self.nets = data, config, nets
        self.device = data.device
        self.distributed = distributed
        rank = dist.get_rank() if distributed else 0
        # each rank draws its own mini-batches; rank 0 draws those of a single-process fit. On a CUDA device
        # the generator lives there, and the step's random numbers are drawn there (no host copies)
        where = self.device if self.device.type == "cuda" else "cpu"
        self.gen = torch.Generator(device=where).manual_seed(config.random_state + RANK_SEED_STRIDE * rank)
        # independent parts of a step (the local stage's intervals, the halves of the least-action particles)
        # run in two threads on a multi-core CPU
        self.threaded = not distributed and self.device.type == "cpu" and n_cores() > 1
        self._wrapped = {}  # (phase, local stage) → DistributedDataParallel of the networks it trains
        self.K = len(data) - 1
        # fixed validation particles: a subset of all t0 cells (bounded size)
        g0 = torch.Generator().manual_seed(config.random_state + 1)
        x0 = data.all[0]
        idx = torch.randperm(len(x0), generator=g0, device="cpu")[:VAL_PARTICLES].to(x0.device)
        self.val_x0 = x0[idx]
        # at most VAL_TARGETS target cells: the exact plans of validation then cost the same at any N
        # (with 4096, the 1024 × 4096 plans of a 100k-cell fit took longer than the epoch itself; with
        # 1024, validation made an epoch of a 100k-cell fit 25 % slower than one of a 10k-cell fit)
        if config.validation_cells == "all":  # a random subset of all cells of each snapshot
            g_val = torch.Generator().manual_seed(config.random_state + 5)
            self.val_targets = [y[torch.randperm(len(y), generator=g_val)[:VAL_TARGETS].to(y.device)] for y in data.all]
        else:
            held = [data.val[k] if len(data.val[k]) else data.train[k] for k in range(len(data))]
            self.val_targets = [y[:VAL_TARGETS] for y in held]
        self.local = False
        self._score_pairs = self._val_score_pairs = None
        # smoothing of the score targets at each snapshot: Scott's rule on that snapshot's cells
        self.score_bandwidth = [config.score_smoothing * scott_bandwidth(x) if len(x) > 1 else 0.0 for x in data.train]
        # per-snapshot constants of the score loss, on the device once (not copied from the host every step)
        self._times = torch.tensor(data.times, dtype=torch.float32, device=self.device)
        self._gaps = torch.tensor(np.diff(data.times), dtype=torch.float32, device=self.device)
        self._bandwidths = torch.tensor(self.score_bandwidth, dtype=torch.float32, device=self.device)
        # the least-action geodesic halfway through each interval: soft targets of a var_ruot fit
        self.midpoints = None
        config.resolve_lambda_geodesic(len(data))  # no-op in `fit`, which passes a resolved copy
        if config.flavor == "var_ruot" and config.lambda_geodesic > 0:
            xs = [x.cpu().numpy() for x in data.train]
            targets = midpoint_targets(xs, data.masses, config.geodesic_alpha, random_state=config.random_state)
            self.midpoints = [torch.as_tensor(y, device=self.device) for y in targets]
        self.kde = None
        if config.lambda_init > 0 and config.sigma > 0:
            ref = data.train[0][: 4 * VAL_PARTICLES]
            self.kde = (ref, scott_bandwidth(ref))

    # ------------------------------------------------------------------ particles
    def _start(self, x0: torch.Tensor) -> torch.Tensor:
        return torch.full((len(x0),), -math.log(len(x0)), dtype=x0.dtype, device=x0.device)

    def _push(self, x0, stochastic: bool, with_action: bool = False, generator=None):
        cfg = self.cfg
        return integrate(
            self.nets,
            x0,
            self._start(x0),
            self.data.times,
            steps_per_unit=cfg.sde_steps_per_unit if stochastic else cfg.steps_per_unit,
            stochastic=stochastic,
            sigma=cfg.sigma,
            alpha=cfg.alpha,
            with_action=with_action,
            generator=generator if generator is not None else self.gen,
        )

    # ------------------------------------------------------------------ losses
    def _transport_losses(self, out, use_mass: bool) -> tuple[torch.Tensor, dict]:
        cfg = self.cfg
        ys = [self.data.sample(k, cfg.batch_size, self.gen) for k in range(1, self.K + 1)]
        return self._snapshot_losses(out["x"][1:], out["log_mass"][1:], ys, self.data.masses[1:], use_mass)

    def _snapshot_losses(self, xs, log_masses, ys, masses, use_mass: bool, halfway=()) -> tuple[torch.Tensor, dict]:
        """OT loss (plans solved concurrently) and, if ``use_mass``, mass losses of some snapshots.

        The sum over the given snapshots divided by the number of intervals: their share of the mean.
        ``halfway``: empty, or the positions and log-masses of the particles halfway through each
        interval and cells drawn from the least-action geodesic between the interval's snapshots
        (:func:`~ruotools.core.geodesic.midpoint_targets`); the loss then adds ``lambda_geodesic``
        × their mean transport loss, whose plans are solved in the same concurrent batch. Only the
        shape of those cells is matched, not their mass (the geodesic's total mass halfway is not
        the population's).
        """
        cfg, parts = self.cfg, {"ot": 0.0, "mass": 0.0}
        # the least-action flavor matches the total mass only (METHOD_LEAST_ACTION.md §4); so does any
        # flavor in high dimensions, where nearest-particle counts say little (TrainConfig)
        use_local = cfg.flavor == "deepruot" and self.data.dim <= cfg.local_mass_max_dim
        problems = [(x, y, torch.exp(ell)) for x, ell, y in zip(xs, log_masses, ys, strict=True)]
        problems += [(x, y, torch.exp(ell)) for x, ell, y in zip(*halfway, strict=True)]
        total = 0.0
        losses = ot_losses(problems, emd_max=cfg.emd_max, epsilon=cfg.sinkhorn_epsilon, cost=cfg.ot_cost)
        for lo, x, ell, y, mass in zip(losses[: len(xs)], xs, log_masses, ys, masses, strict=True):
            total = total + cfg.lambda_ot * lo
            parts["ot"] += lo.detach() / self.K
            if use_mass:
                local, tot = mass_loss(x, ell, y, mass, local=use_local)
                total = total + cfg.lambda_mass * local + cfg.lambda_total_mass * tot
                parts["mass"] += (local + tot).detach() / self.K
        total = total / self.K
        if halfway:
            geodesic = sum(losses[len(xs) :]) / self.K
            parts["geodesic"] = geodesic.detach()
            total = total + cfg.lambda_geodesic * geodesic
        return total, parts

    def _score_loss(self, starts, ends, weights=None, generator=None) -> torch.Tensor:
        """Mean over intervals of the score-matching loss, all intervals in one batched pass.

        ``starts[k]`` and ``ends[k]`` are paired points at ``times[k]`` and ``times[k+1]``;
        ``weights[k]`` their weights (``None``: equal).
        """
        like = starts[0]
        sizes = [len(x) for x in starts]
        interval = torch.cat([torch.full((n,), k, device=like.device) for k, n in enumerate(sizes)])
        times, h = self._times.to(like.dtype), self._bandwidths.to(like.dtype)
        # each interval's weights sum to 1 / K: every interval counts the same
        w = [uniform(n, like) if weights is None else weights[k] / weights[k].sum() for k, n in enumerate(sizes)]
        return score_matching_loss(
            self.nets,
            torch.cat(list(starts)),
            torch.cat(list(ends)),
            times[interval],
            times[interval + 1],
            self.cfg.sigma,
            torch.cat(w) / len(w),
            generator=generator if generator is not None else self.gen,
            bandwidth=(h[interval], h[interval + 1]),
        )

    def _trajectory_score_loss(self, xs, log_masses, generator=None) -> torch.Tensor:
        """:meth:`_score_loss` on the consecutive states of weighted trajectories."""
        weights = [torch.exp(0.5 * (log_masses[k] + log_masses[k + 1])) for k in range(self.K)]
        return self._score_loss(xs[:-1], xs[1:], weights, generator=generator)

    @torch.no_grad()
    def _bridge_pairs(self, cells: list[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Endpoint pairs of the score phase's bridges: the exact OT plan between consecutive snapshots.

        Each snapshot contributes at most ``SCORE_PAIRS`` cells (chosen by a generator of its own,
        so that a resumed fit rebuilds the same pairs); per interval the result is the paired
        start and end cells and each pair's share of the plan.
        """
        g = torch.Generator().manual_seed(self.cfg.random_state + 4)
        subsets = [x[torch.randperm(len(x), generator=g, device="cpu")[:SCORE_PAIRS].to(x.device)] for x in cells]
        problems = [(xa, xb, uniform(len(xa), xa), uniform(len(xb), xb)) for xa, xb in itertools.pairwise(subsets)]
        pairs = []
        for (xa, xb, _, _), (plan, _) in zip(
            problems,
            transport_plans(problems, emd_max=self.cfg.emd_max, epsilon=self.cfg.sinkhorn_epsilon),
            strict=True,
        ):
            i, j = torch.nonzero(plan > 1e-12 * plan.max(), as_tuple=True)
            pairs.append((xa[i], xb[j], plan[i, j] / plan[i, j].sum()))
        return pairs

    def _score_batch(self, pairs, generator) -> tuple[list, list]:
        """``batch_size`` bridges per interval, drawn with the plan's probabilities: starts and ends."""
        xa, xb = [], []
        for start, end, p in pairs:
            p_there = p.to(generator.device)  # drawn where the generator is
            idx = torch.multinomial(p_there, self.cfg.batch_size, replacement=True, generator=generator).to(p.device)
            xa.append(start[idx])
            xb.append(end[idx])
        return xa, xb

    def _init_loss(self) -> torch.Tensor:
        ref, bw = self.kde
        x = self.data.sample(0, self.cfg.batch_size, self.gen)
        with torch.no_grad():
            target = log_kde(x, ref, bw)
        return initial_density_loss(self.nets, x, self.data.times[0], self.cfg.sigma, target)

    # ------------------------------------------------------------------ steps
    def local_step(self, use_mass: bool) -> tuple[torch.Tensor, dict]:
        """Push the cells of every snapshot to the next one (all intervals in one batch).

        The intervals are independent, so on a multi-core CPU they are split into two groups whose
        forward *and* backward passes run in two threads at once (each group's gradient is added to
        the parameters' ``.grad``; the sum of two parts does not depend on their order, so the result
        is deterministic). The returned loss then carries no graph: its backward pass is done.
        """
        cfg, data = self.cfg, self.data
        # half-size batches: this phase only gives the trajectory training a good start, and the
        # exact OT plans that dominate a step's cost grow faster than quadratically with their size
        batch = max(1, cfg.batch_size // 2)
        xs = [data.sample(k, batch, self.gen) for k in range(self.K)]
        ys = [data.sample(k + 1, batch, self.gen) for k in range(self.K)]
        n_steps = self._local_steps()
        intervals = list(range(self.K))
        if not self.threaded or self.K < 2:
            return self._local_losses(xs, ys, intervals, n_steps, use_mass)
        half = (self.K + 1) // 2

        def run(group):
            loss, parts = self._local_losses(xs, ys, group, n_steps, use_mass)
            loss.backward()
            return loss.detach(), parts

        (la, pa), (lb, pb) = _piece_pool().map(run, [intervals[:half], intervals[half:]])
        return la + lb, {key: pa[key] + pb[key] for key in pa}

    def _local_steps(self) -> int:
        """Return the local stage's RK4 step count: that of the longest interval, for all (integrated together)."""
        return max(1, math.ceil(self.cfg.steps_per_unit * max(np.diff(self.data.times)) - 1e-9))

    def _local_losses(self, xs, ys, intervals, n_steps, use_mass) -> tuple[torch.Tensor, dict]:
        """Losses of :meth:`local_step` for some intervals (their share of the mean over all)."""
        data = self.data
        sizes = [len(xs[k]) for k in intervals]
        x = torch.cat([xs[k] for k in intervals])
        t0 = _per_particle([data.times[k] for k in intervals], sizes, x)
        dur = _per_particle([data.times[k + 1] - data.times[k] for k in intervals], sizes, x)
        ell = _per_particle([math.log(data.masses[k] / len(xs[k])) for k in intervals], sizes, x)
        x1, ell1 = integrate_intervals(self.nets, x, ell, t0, dur, n_steps)
        return self._snapshot_losses(
            x1.split(sizes),
            ell1.split(sizes),
            [ys[k] for k in intervals],
            [data.masses[k + 1] for k in intervals],
            use_mass,
        )

    def least_action_step(self) -> tuple[torch.Tensor, dict]:
        """One step of the least-action flavor (METHOD_LEAST_ACTION.md §4).

        Stochastic particles from the first snapshot follow ∇λ with log-masses growing at λ/(2α)
        (:class:`PotentialPaths`, ``steps_per_unit`` RK4 steps per unit of time);
        the loss is the transport and total-mass loss at every later snapshot, plus ``lambda_action``
        × their path action and ``lambda_hjb`` × the mass-weighted mean squared HJB residual at
        ``hjb_points`` points drawn from the trajectories (all steps and particles). In the local
        stage (the first ``local_fraction`` of the epochs) the cells of every snapshot are pushed to
        the next one instead, all intervals in one batch, as in the ``deepruot`` pre-training.

        With ``lambda_geodesic`` > 0 the particles are also taken halfway through each interval (the
        local stage then takes an even number of steps) and matched there with cells of the
        least-action geodesic between the interval's snapshots (:meth:`_snapshot_losses`).

        On a multi-core CPU the particles run in two halves in two threads (:meth:`_paths`) and the
        HJB term's gradient in a third meanwhile; the returned loss then carries no graph: its
        backward pass is done.
        """
        cfg, data = self.cfg, self.data
        if self.local:
            batch = max(1, cfg.batch_size // 2)
            xs = [data.sample(k, batch, self.gen) for k in range(self.K)]
            sizes = [len(x) for x in xs]
            x = torch.cat(xs)
            n_steps = self._local_steps()
            if self.midpoints is not None:  # an even number of steps: one of them ends halfway
                n_steps += n_steps % 2
            h = _per_particle(np.diff(data.times) / n_steps, sizes, x)
            ell = _per_particle([math.log(data.masses[k] / sizes[k]) for k in range(self.K)], sizes, x)
            t0 = _per_particle(data.times[:-1], sizes, x)

            def run(rows, noise):
                paths = PotentialPaths(
                    self.nets,
                    x[rows],
                    ell[rows],
                    t0[rows],
                    sigma=cfg.sigma,
                    alpha=cfg.alpha,
                    generator=self.gen,
                    noise=noise,
                )
                halfway = []
                for i in range(n_steps):
                    paths.step(h[rows])
                    if self.midpoints is not None and 2 * (i + 1) == n_steps:
                        halfway = [paths.x, paths.log_mass]
                return [paths.x, paths.log_mass, *halfway], paths.action, paths.states

            (x1, ell1, *halfway), action, states, backward = self._paths(run, x, n_steps)
            ys = [data.sample(k + 1, batch, self.gen) for k in range(self.K)]
            ends = (x1.split(sizes), ell1.split(sizes))
            halfway = [part.split(sizes) for part in halfway]
        else:
            x0 = data.sample(0, cfg.batch_size, self.gen)
            ell0 = self._start(x0)
            times = data.times
            if self.midpoints is not None:  # record the particles halfway through each interval too
                times = [data.times[0]]
                for start, end in itertools.pairwise(data.times):
                    times += [0.5 * (start + end), end]

            def run(rows, noise):
                out = integrate_potential(
                    self.nets,
                    x0[rows],
                    ell0[rows],
                    times,
                    steps_per_unit=cfg.steps_per_unit,
                    sigma=cfg.sigma,
                    alpha=cfg.alpha,
                    generator=self.gen,
                    noise=noise,
                )
                return out["x"][1:] + out["log_mass"][1:], out["action"], out["states"]

            flat, action, states, backward = self._paths(run, x0, path_steps(times, cfg.steps_per_unit))
            ys = [data.sample(k, cfg.batch_size, self.gen) for k in range(1, self.K + 1)]
            positions, log_masses = flat[: len(times) - 1], flat[len(times) - 1 :]
            if self.midpoints is None:
                ends, halfway = (positions, log_masses), []
            else:  # halfway and at the snapshots, in turn
                ends, halfway = (positions[1::2], log_masses[1::2]), [positions[::2], log_masses[::2]]
        # drawn here, before the HJB term's job (which draws from the same generator) may start
        if self.midpoints is not None:
            halfway.append([draw_rows(y, cfg.batch_size, self.gen) for y in self.midpoints])
        if backward is None:  # one pass: the loss keeps its graph and the training loop back-propagates it
            loss, parts = self._snapshot_losses(*ends, ys, data.masses[1:], self.nets.has_growth, halfway)
            loss = loss + cfg.lambda_action * action
            parts["action"] = action.detach()
            if cfg.lambda_hjb > 0:
                hjb = self._hjb_loss(states)
                loss = loss + cfg.lambda_hjb * hjb
                parts["hjb"] = hjb.detach()
            return loss, parts
        # the HJB term's gradient is computed in a thread of its own meanwhile, and added last
        params = self.parameters_for("least_action")
        hjb_job = _hjb_pool().submit(self._hjb_gradient, states, params) if cfg.lambda_hjb > 0 else None
        try:
            loss, parts = self._snapshot_losses(*ends, ys, data.masses[1:], self.nets.has_growth, halfway)
            backward(loss, cfg.lambda_action)
        finally:  # never leave the job drawing from the generator behind an error
            hjb = None if hjb_job is None else hjb_job.result()
        loss = loss.detach() + cfg.lambda_action * action
        parts["action"] = action
        if hjb is not None:
            _add_grads(params, hjb[1])
            loss = loss + cfg.lambda_hjb * hjb[0]
            parts["hjb"] = hjb[0]
        return loss, parts

    def _hjb_gradient(self, states, params) -> tuple[torch.Tensor, list]:
        """Return the HJB loss (detached) and the gradient of ``lambda_hjb`` × it with respect to ``params``."""
        hjb = self._hjb_loss(states)
        grads = torch.autograd.grad(self.cfg.lambda_hjb * hjb, params, allow_unused=True)
        return hjb.detach(), grads

    def _paths(self, run, x: torch.Tensor, n_steps: int) -> tuple[list, torch.Tensor, list, object]:
        """Run ``run(rows, noise)`` (least-action particles) on all of ``x`` or, on a multi-core CPU, in two halves.

        ``run`` returns the end states (a list of tensors, one row per particle), their summed action
        and the detached states of the steps. Returns ``(ends, action, states, backward)``; in one pass
        ``backward`` is ``None`` and everything keeps its graph. In halves, two threads integrate their
        particles with the noise drawn here beforehand (the numbers one pass draws, in its order);
        ``ends`` are then leaves and ``action`` is detached, and ``backward(loss, action_weight)``
        back-propagates ``loss`` (a function of ``ends``) and ``action_weight`` × the action through
        both halves, again in two threads. Each half adds its gradient to the parameters' ``.grad``
        (``None`` at the start of a training step): the sum of two parts does not depend on their
        order, so the result is deterministic.
        """
        if not self.threaded or len(x) < 2:
            ends, action, states = run(slice(None), None)
            return ends, action, states, None
        noise = [draw_noise(x, self.gen) for _ in range(n_steps)]
        halves = [slice(0, len(x) // 2), slice(len(x) // 2, None)]
        by_half = list(_piece_pool().map(lambda rows: run(rows, [z[rows] for z in noise]), halves))
        ends = [
            torch.cat([a.detach(), b.detach()]).requires_grad_() for a, b in zip(*(h[0] for h in by_half), strict=True)
        ]
        states = [
            (torch.cat([xa, xb]), torch.cat([ta, tb]) if torch.is_tensor(ta) else ta, torch.cat([la, lb]))
            for (xa, ta, la), (xb, tb, lb) in zip(*(h[2] for h in by_half), strict=True)
        ]

        def backward(loss, action_weight):
            grads = torch.autograd.grad(loss, ends, allow_unused=True)

            def half(i):
                action = by_half[i][1]
                pairs = [(end, g[halves[i]]) for end, g in zip(by_half[i][0], grads, strict=True) if g is not None]
                pairs.append((action, torch.full_like(action, action_weight)))
                # a balanced model's log-masses do not depend on the weights: nothing to propagate there
                pairs = [(end, g) for end, g in pairs if end.requires_grad]
                torch.autograd.backward([e for e, _ in pairs], [g for _, g in pairs])

            list(_piece_pool().map(half, [0, 1]))

        return ends, by_half[0][1].detach() + by_half[1][1].detach(), states, backward

    def _hjb_loss(self, states) -> torch.Tensor:
        """Mass-weighted mean squared HJB residual at ``hjb_points`` points drawn from trajectory states."""
        cfg = self.cfg
        xs = torch.stack([x for x, _, _ in states])
        lms = torch.stack([ell for _, _, ell in states])
        n_states, n = lms.shape
        ts = torch.stack([torch.as_tensor(t, dtype=xs.dtype, device=xs.device).expand(n) for _, t, _ in states])
        # points drawn on the generator's device, then moved (no read-back)
        pick = torch.randint(n_states * n, (cfg.hjb_points,), generator=self.gen, device=self.gen.device)
        pick = pick.to(xs.device)
        step_of, particle = pick // n, pick % n
        w = torch.softmax(lms[step_of, particle], 0)
        r = hjb_residual(
            self.nets,
            xs[step_of, particle],
            ts[step_of, particle],
            sigma=cfg.sigma,
            exact_laplacian=self.data.dim <= cfg.exact_laplacian_max_dim,
            probes=cfg.hutchinson_probes,
            generator=self.gen,
        )
        return (w * r * r).sum()

    def _curl_loss(self) -> torch.Tensor:
        """Mean of ½‖J − Jᵀ‖²_F over cells of every snapshot, J = ∂v/∂x the velocity's Jacobian at their times."""
        data = self.data
        m = max(1, self.cfg.curl_points // (self.K + 1))
        xs = [data.sample(k, m, self.gen) for k in range(self.K + 1)]
        x = torch.cat(xs).detach().requires_grad_(True)
        v = self.nets.flow_net(x, _per_particle(data.times, [len(c) for c in xs], x))[0]
        return jacobian_asymmetry(v, x, exact=x.shape[1] <= CURL_EXACT_MAX_DIM, generator=self.gen).mean()

    def step(self, phase: str) -> tuple[torch.Tensor, dict]:
        loss, parts = self._step(phase)
        lam = self.cfg.lambda_curl
        if lam > 0 and phase in ("pretrain", "joint"):
            curl = self._curl_loss()
            parts["curl"] = curl.detach()
            if loss.requires_grad:
                loss = loss + lam * curl
            else:  # the step did its own backward pass
                (lam * curl).backward()
                loss = loss + lam * curl.detach()
        return loss, parts

    def _step(self, phase: str) -> tuple[torch.Tensor, dict]:
        cfg = self.cfg
        if phase == "least_action":
            return self.least_action_step()
        if phase == "pretrain" and self.local:
            return self.local_step(use_mass=self.nets.has_growth)
        if phase in ("pretrain", "refine"):
            out = self._push(self.data.sample(0, cfg.batch_size, self.gen), stochastic=False)
            return self._transport_losses(out, use_mass=phase == "pretrain" and self.nets.has_growth)
        if phase == "score":
            if self._score_pairs is None:
                self._score_pairs = self._bridge_pairs(self.data.train)
            loss = cfg.lambda_score * self._score_loss(*self._score_batch(self._score_pairs, self.gen))
            parts = {"score": loss.detach()}
            if self.kde is not None:
                li = self._init_loss()
                loss = loss + cfg.lambda_init * li
                parts["init"] = li.detach()
            return loss, parts
        # joint
        x0 = self.data.sample(0, cfg.batch_size, self.gen)
        stochastic = cfg.sigma > 0
        out = self._push(x0, stochastic=stochastic, with_action=True)
        loss, parts = self._transport_losses(out, use_mass=self.nets.has_growth)
        action = out["action"][-1].sum()
        loss = loss + cfg.lambda_action * action
        parts["action"] = action.detach()
        if stochastic and cfg.lambda_score > 0:
            xs = [x.detach() for x in out["x"]]
            lms = [m.detach() for m in out["log_mass"]]
            ls = self._trajectory_score_loss(xs, lms)
            loss = loss + cfg.lambda_score * ls
            parts["score"] = ls.detach()
        if cfg.lambda_fp > 0 and stochastic:
            # a random interval, chosen and indexed on the generator's device (no read-back to the host)
            k = torch.randint(self.K, (1,), generator=self.gen, device=self.gen.device).to(x0.device)
            tau = torch.rand(len(x0), generator=self.gen, device=self.gen.device).to(x0.device)
            xk = torch.stack(out["x"][: self.K])[k][0].detach()
            t = self._times[k] + tau * self._gaps[k]
            lf = fokker_planck_residual(self.nets, xk, t, cfg.sigma, generator=self.gen)
            loss = loss + cfg.lambda_fp * lf
            parts["fp"] = lf.detach()
        if self.kde is not None:
            li = self._init_loss()
            loss = loss + cfg.lambda_init * li
            parts["init"] = li.detach()
        return loss, parts

    # ------------------------------------------------------------------ validation
    def validate(self, phase: str) -> float:
        """Return the validation score over all intervals, including the mass error (METHOD.md §7).

        With several processes it is rank 0's score on every rank, so that all ranks take the same
        decisions (keeping a state, stopping early) even where their kernels round differently.
        """
        score = self._validation_score(phase)
        if not self.distributed:
            return score
        held = torch.tensor(score, dtype=torch.float64, device=self.device)  # NCCL sends CUDA tensors only
        dist.broadcast(held, src=0)
        return held.item()

    @torch.no_grad()
    def _validation_score(self, phase: str) -> float:
        if phase == "score":
            if self._val_score_pairs is None:
                self._val_score_pairs = self._bridge_pairs(self.val_targets)
            g = torch.Generator().manual_seed(self.cfg.random_state + 2)
            with torch.enable_grad():
                return self._score_loss(*self._score_batch(self._val_score_pairs, g), generator=g).item()
        stochastic = phase in ("joint", "least_action") and self.cfg.sigma > 0
        # validation draws on the host, once per epoch: the same numbers on any device
        g = torch.Generator().manual_seed(self.cfg.random_state + 3)
        out = self._push(self.val_x0, stochastic=stochastic, generator=g)
        problems, totals = [], []
        for k in range(1, self.K + 1):
            x, w, y = out["x"][k], torch.exp(out["log_mass"][k]), self.val_targets[k]
            problems.append((x, y, w / w.sum(), uniform(len(y), x)))
            totals.append(float(w.sum()))
        cost = self.cfg.ot_cost
        plans = transport_plans(problems, emd_max=self.cfg.emd_max, epsilon=self.cfg.sinkhorn_epsilon, cost=cost)
        score = 0.0
        for k, ((x, y, _, _), (plan, _), total) in enumerate(zip(problems, plans, totals, strict=True), start=1):
            # the distance of the matching loss: W2 (√ of the squared cost) or W1
            value = (plan * ground_cost(cost)(x, y)).sum().clamp_min(0)
            distance = float(value.sqrt() if cost == "sqeuclidean" else value)
            rel = abs(total - self.data.masses[k]) / self.data.masses[k] if self.nets.has_growth else 0.0
            # the mass error weighs 5× a distance unit: with weight 1, one Gaussian-mixture seed kept a state
            # with a 5.6 % mass error because its W2 was slightly lower (benchmarks/README.md)
            score += distance + 5.0 * rel
        return score / self.K

    @torch.no_grad()
    def calibrate_total_mass(self) -> None:
        """Make the predicted population size match the observed one at every snapshot.

        The validation particles are pushed deterministically and the growth rate's time-only part
        (:meth:`RUOTNetworks.calibrate_total_mass`) is shifted by the log-ratio of observed to
        predicted total mass. Positions and relative weights, hence every transport loss, are
        unchanged: with gradient steps alone the total mass, a small squared term next to the
        transport cost, ended one Gaussian-mixture fit 4 % off (benchmarks/README.md).
        """
        if not self.nets.has_growth:
            return
        # a fine RK4 grid: the masses are then those of the outputs and of rt.tl.simulate, not those of the
        # coarse training grid (whose error in the mass reached 2.6 % on the Gaussian mixture)
        x0 = self.val_x0
        out = integrate(self.nets, x0, self._start(x0), self.data.times, steps_per_unit=CALIBRATION_STEPS_PER_UNIT)
        predicted = [torch.logsumexp(ell, 0).item() for ell in out["log_mass"][1:]]
        observed = [math.log(m) for m in self.data.masses[1:]]
        self.nets.calibrate_total_mass(self.data.times, [o - p for o, p in zip(observed, predicted, strict=True)])
        self.share_rank0_offsets()

    def share_rank0_offsets(self) -> None:
        """Give every rank rank 0's growth offset and score level (in a single process: nothing to do).

        They are set from forward passes on each rank's own device (and a pseudo-inverse on its host),
        which round differently on different GPU models or CPUs; the weights must be identical everywhere.
        """
        if not self.distributed:
            return
        for name in RUOTNetworks.OFFSET_BUFFERS:
            held = getattr(self.nets, name)
            if held.numel():  # the same on every rank: set by the same phases
                dist.broadcast(held, src=0)

    def _loss_values(self, losses: list[torch.Tensor]) -> list[float]:
        """Return an epoch's step losses as numbers: one read-back from the device per epoch, not per step.

        With several processes they are the means over ranks, so that all ranks agree on whether they
        are finite (one rank stopping alone would leave the others waiting forever).
        """
        values = torch.stack([loss.detach().reshape(()) for loss in losses])
        if not self.distributed:
            return values.tolist()
        values = values.clone()
        dist.all_reduce(values)
        return [v / dist.get_world_size() for v in values.tolist()]

    # ------------------------------------------------------------------ phases
    def networks_for(self, phase: str) -> list[torch.nn.Module]:
        """Return the networks a phase trains."""
        nets = self.nets
        if phase in ("pretrain", "refine", "least_action"):
            return [nets.flow_net]
        if phase == "score":
            return [nets.score_net]
        return [nets.flow_net, nets.score_net] if self.cfg.sigma > 0 else [nets.flow_net]  # s acts through noise

    def parameters_for(self, phase: str) -> list[torch.nn.Parameter]:
        return [p for net in self.networks_for(phase) for p in net.parameters()]

    def step_fn(self, phase: str) -> tuple[torch.Tensor, dict]:
        """:meth:`step`; in data-parallel training through the phase's ``DistributedDataParallel``.

        DDP averages the gradients of the whole step's loss (all integration steps, all losses). Each
        phase (and pre-training's local stage) gets its own wrapper, of the networks it trains, made by all
        ranks at its first step. Its graph is the same in every step (``static_graph``): the parameters
        that get no gradient (the score network's output bias, when only ∇s enters) are found once, not
        searched for, with a read-back to the host, in every step.
        """
        if not self.distributed:
            return self.step(phase)
        key = (phase, self.local)
        if key not in self._wrapped:
            from torch.nn.parallel import DistributedDataParallel

            module = _StepModule(self, self.networks_for(phase))
            self._wrapped[key] = DistributedDataParallel(module, static_graph=True)
        return self._wrapped[key](phase)

    def run_phase(self, phase: str, n_epochs: int, progress, saved: dict | None = None, on_epoch=None) -> dict:
        """Train one phase.

        ``saved`` resumes it after a checkpointed epoch (the networks and the random generator are
        restored by the caller); ``on_epoch(state)`` gets the phase's complete state after every epoch.
        """
        cfg = self.cfg
        hist = {"loss": [], "val": [], "stopped": "max_epochs"}
        if n_epochs <= 0:
            hist["stopped"] = "skipped"
            return hist
        params = self.parameters_for(phase)
        opt = torch.optim.Adam(params, lr=cfg.lr[phase])
        total_steps = n_epochs * cfg.steps_per_epoch
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda i: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(i, total_steps) / total_steps))
        )
        # pre-training starts with a local stage (interval by interval) whose states are never returned,
        # because a field fitted interval by interval can score well on the held-back cells and still
        # drift when integrated over whole trajectories (seen on the gene network): they are not validated,
        # and at least the last epoch trains whole trajectories
        n_local = (
            min(round(cfg.local_fraction * n_epochs), n_epochs - 1) if phase in ("pretrain", "least_action") else 0
        )
        if saved is None:
            start_epoch, since_best = 0, 0
            best_val = self.validate(phase) if phase != "score" and n_local == 0 else math.inf
            best_state = copy.deepcopy(self.nets.state_dict())
            # validation and the returned state use an exponential moving average of the weights,
            # which removes most of the step-to-step noise of stochastic mini-batch OT gradients
            ema = [p.detach().clone() for p in params]
        else:
            opt.load_state_dict(saved["optimizer"])
            for state in opt.state.values():  # a checkpoint loaded onto a GPU put them there: Adam would read back
                state["step"] = state["step"].cpu()
            sched.load_state_dict(saved["scheduler"])
            ema, best_state = saved["ema"], saved["best_state"]
            best_val, since_best, hist = saved["best_val"], saved["since_best"], saved["hist"]
            start_epoch = saved["epoch"] + 1
        bar = progress(range(start_epoch, n_epochs), desc=f"{phase:>8}", leave=True)
        for epoch in bar:
            self.local = epoch < n_local
            losses = []
            for _ in range(cfg.steps_per_epoch):
                opt.zero_grad(set_to_none=True)
                loss, _parts = self.step_fn(phase)
                if loss.requires_grad:  # else the step did its own backward pass
                    loss.backward()
                if phase == "refine":
                    self.nets.freeze_growth_grads()
                torch.nn.utils.clip_grad_norm_(params, 10.0)
                opt.step()
                sched.step()
                torch._foreach_lerp_(ema, [p.detach() for p in params], 1.0 - cfg.ema_decay)
                losses.append(loss.detach())
            # checked once per epoch (a read-back per step would stall a GPU): after a non-finite loss the
            # epoch's remaining steps are wasted, never kept, and the OT solvers return at once on NaN
            values = self._loss_values(losses)
            if not all(math.isfinite(v) for v in values):
                self.nets.load_state_dict(best_state)
                hist["stopped"] = f"non-finite loss at epoch {epoch}; restored the best state"
                logger.warning(
                    "%s phase: the loss became non-finite at epoch %d; restored the last good state. "
                    "Lower the learning rate or `sigma`, or check the input for extreme values.",
                    phase,
                    epoch,
                )
                bar.close()
                hist["best_val"] = best_val
                return hist
            hist["loss"].append(float(np.mean(values)))
            improved, val = False, math.nan
            if not self.local:
                raw = [p.detach().clone() for p in params]
                _assign(params, ema)
                val = self.validate(phase)
                improved = val < best_val
                if improved:
                    best_val, since_best = val, 0
                    best_state = copy.deepcopy(self.nets.state_dict())
                _assign(params, raw)
            hist["val"].append(val)
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{hist['loss'][-1]:.4g}", **({} if self.local else {"val": f"{val:.4g}"}))
            if not improved and not self.local:
                since_best += 1
                if cfg.early_stopping and since_best >= cfg.patience:
                    hist["stopped"] = f"early stopping: no validation improvement in {cfg.patience} epochs"
                    break
            if on_epoch is not None:
                on_epoch(
                    {
                        "epoch": epoch,
                        "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict(),
                        "ema": ema,
                        "best_state": best_state,
                        "best_val": best_val,
                        "since_best": since_best,
                        "hist": hist,
                    }
                )
        bar.close()
        self.nets.load_state_dict(best_state)
        hist["best_val"] = best_val
        return hist

    def run_phase_timed(self, phase: str, n_epochs: int, progress, saved=None, on_epoch=None) -> dict:
        start = time.perf_counter() - (saved or {}).get("seconds", 0.0)

        def on_epoch_timed(state):
            on_epoch({**state, "seconds": time.perf_counter() - start})

        hist = self.run_phase(phase, n_epochs, progress, saved, on_epoch_timed if on_epoch else None)
        hist["loss"] = np.asarray(hist["loss"], dtype=np.float64)
        hist["val"] = np.asarray(hist["val"], dtype=np.float64)
        hist["seconds"] = time.perf_counter() - start
        return hist


def fit(
    data: Snapshots,
    config: TrainConfig,
    nets: RUOTNetworks | None = None,
    progress=None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
    distributed: bool = False,
) -> tuple[RUOTNetworks, dict]:
    """Train a RUOT model on snapshots in standardised units.

    Parameters
    ----------
    data
        The snapshots (internal coordinates and times).
    config
        Hyper-parameters; ``config.epochs[phase]`` epochs of ``config.steps_per_epoch`` steps each.
    nets
        Networks to start from (e.g. to continue training); new ones when ``None``.
    progress
        ``tqdm``-like factory ``progress(iterable, desc=..., leave=...)``; no bar when ``None``.
    checkpoint_dir
        Folder where the complete training state (networks, optimiser, scheduler, random generator,
        EMA weights, best state, history) is written after every epoch and phase.
    resume
        Continue from the state in ``checkpoint_dir`` when there is one. On CPU the result is
        bit-for-bit the one of an uninterrupted run.
    distributed
        Data-parallel training in an initialised ``torch.distributed`` process group: each rank
        draws its own mini-batches of ``config.batch_size`` cells per time point, the gradients are
        averaged by ``DistributedDataParallel``, and validation (on the same observed cells on
        every rank) takes the same decisions everywhere, so all ranks end with identical weights.
        Not combined with ``checkpoint_dir``.

    Returns
    -------
    nets, history
        The trained networks (best validation state of each phase) and, per phase, the mean
        training loss and validation score of every epoch and why the phase stopped.
    """
    config = copy.copy(config)  # settings left to the data (``lambda_geodesic=None``) are resolved on a copy
    config.resolve_lambda_geodesic(len(data))
    torch.manual_seed(config.random_state)
    if nets is None:
        nets = networks_from_config(data.dim, config)
        # start from the population's mean exponential growth rate: total mass is right from the first step
        nets.init_growth(math.log(data.masses[-1] / data.masses[0]) / (data.times[-1] - data.times[0]))
    nets = nets.to(data.device)
    if progress is None:

        def progress(it, **kwargs):
            return _Silent(it)

    if distributed and checkpoint_dir is not None:
        raise ValueError("Checkpoints are not supported with data-parallel training; pass `checkpoint_dir=None`.")
    trainer = _Trainer(data, config, nets, distributed=distributed)
    history, first_phase, saved = {}, 0, None
    ckpt = None if checkpoint_dir is None else Checkpointer(checkpoint_dir, fingerprint(data, config))
    if ckpt is not None and resume:
        state = ckpt.load(data.device)
        if state is None:
            logger.info("no training state in %r: starting from the beginning", str(checkpoint_dir))
        else:
            saved_on = state.get("generator_device", "cpu")  # older checkpoints: always a host generator
            if saved_on != trainer.gen.device.type:
                raise ValueError(
                    f"The checkpoint in {str(checkpoint_dir)!r} was written by a fit whose random generator was on "
                    f"the {saved_on} (this one's is on the {trainer.gen.device.type}); resume it with the accelerator "
                    "that wrote it, or pass `resume=False` to start over (the checkpoint is then overwritten)."
                )
            nets.load_state_dict(state["nets"])
            trainer.gen.set_state(state["generator"].cpu())  # a generator's state is a host tensor on any device
            history, first_phase, saved = state["history"], state["phase"], state["phase_state"]
            where = config.phases[first_phase] if first_phase < len(config.phases) else "the end"
            logger.info("resuming from %r at %s", str(ckpt.path), where)
    threads = torch.get_num_threads()
    if data.device.type == "cpu" and config.num_threads:
        # the networks and batches are small: extra intra-op threads only add synchronisation, and
        # oversubscribed cores (another process running) slow multi-threaded torch down many times
        torch.set_num_threads(config.num_threads)
    try:
        for i, phase in enumerate(config.phases):
            if i < first_phase:
                continue
            n = int(config.epochs.get(phase, 0))
            if phase == "score" and config.sigma <= 0:
                n = 0
            on_epoch = None
            if ckpt is not None:

                def on_epoch(state, i=i):
                    _save(ckpt, trainer, i, state, history)

            history[phase] = trainer.run_phase_timed(phase, n, progress, saved if i == first_phase else None, on_epoch)
            if n > 0 and phase != "score":
                trainer.calibrate_total_mass()
            if ckpt is not None:
                _save(ckpt, trainer, i + 1, None, history)
        if config.sigma > 0:
            # cells of each snapshot (a bounded, fixed subset) at which the mean of s is set to zero
            nets.pin_score_level(data.times, [x[:SCORE_PAIRS] for x in data.train])
            trainer.share_rank0_offsets()
    finally:
        torch.set_num_threads(threads)
    return nets, history


def networks_from_config(dim: int, config: TrainConfig) -> RUOTNetworks:
    """Return new networks of the config's flavor: :class:`RUOTNetworks` or :class:`LeastActionNetworks`."""
    cls = LeastActionNetworks if config.flavor == "var_ruot" else RUOTNetworks
    return cls.from_config(dim, config)


def _save(ckpt: Checkpointer, trainer: _Trainer, phase: int, phase_state: dict | None, history: dict) -> None:
    """Write a checkpoint.

    It holds the networks, the random generator, the finished phases' history and, mid-phase, the
    phase's optimiser, scheduler, EMA weights and best state (``phase_state``).
    """
    ckpt.save(
        {
            "phase": phase,
            "phase_state": phase_state,
            "history": history,
            "nets": trainer.nets.state_dict(),
            "generator": trainer.gen.get_state(),
            "generator_device": trainer.gen.device.type,
        }
    )


def _per_particle(values, sizes, like: torch.Tensor) -> torch.Tensor:
    """``values[k]`` repeated ``sizes[k]`` times, as one tensor of ``like``'s dtype and device."""
    parts = [torch.full((n,), v, device=like.device, dtype=like.dtype) for v, n in zip(values, sizes, strict=True)]
    return torch.cat(parts)


@functools.cache
def _hjb_pool() -> ThreadPoolExecutor:
    """One thread for the HJB term of a least-action step, beside the two of :func:`_piece_pool`."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="ruotools-hjb")


def _add_grads(params: list[torch.Tensor], grads) -> None:
    """Add ``grads`` (``None``: no gradient) to the parameters' ``.grad``."""
    for p, g in zip(params, grads, strict=True):
        if g is not None:
            p.grad = g if p.grad is None else p.grad + g


@functools.cache
def _piece_pool() -> ThreadPoolExecutor:
    """Two threads for the independent parts of a training step (not those of the OT solver)."""
    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="ruotools-step")


def _assign(params: list[torch.Tensor], values: list[torch.Tensor]) -> None:
    with torch.no_grad():
        torch._foreach_copy_(params, values)


class _Silent:
    def __init__(self, it):
        self.it = it

    def __iter__(self):
        return iter(self.it)

    def close(self):
        pass
