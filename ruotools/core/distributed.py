"""Data-parallel training on ``torch.distributed``: local worker processes, or ranks started by torchrun."""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from .config import TrainConfig
from .data import Snapshots
from .train import fit

#: Environment variables set by ``torchrun`` (and by SLURM wrappers around it) for every rank.
LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def launched_by_torchrun() -> bool:
    """Whether this process is one rank of a job started by ``torchrun`` (its variables are set)."""
    return all(v in os.environ for v in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))


def backend_for(device_type: str) -> str:
    """``"nccl"`` for CUDA, ``"gloo"`` otherwise."""
    return "nccl" if device_type == "cuda" else "gloo"


def local_gpu(local_rank: int, n_visible: int) -> int:
    """Index of the GPU a rank uses among those it sees.

    Launchers either show every GPU of the node to every rank (rank ``LOCAL_RANK`` takes GPU
    ``LOCAL_RANK``) or give each rank its own GPU (SLURM's ``--gpus-per-task=1`` sets
    ``CUDA_VISIBLE_DEVICES`` per task: the rank sees one GPU, index 0).
    """
    if n_visible == 1:
        return 0
    if not 0 <= local_rank < n_visible:
        raise ValueError(
            f"This rank has LOCAL_RANK={local_rank} but sees {n_visible} GPU(s): start at most one rank per GPU "
            "(`torchrun --nproc_per_node` no larger than the node's GPU count), or give each rank one GPU."
        )
    return local_rank


def per_rank_config(config: TrainConfig, world_size: int) -> TrainConfig:
    """Split the batch over the ranks.

    Each rank draws ``ceil(batch_size / world_size)`` cells per time point, so the total batch of a
    step is that of a single-process fit.
    """
    return replace(config, batch_size=max(1, math.ceil(config.batch_size / world_size)))


def weights_checksum(nets: torch.nn.Module) -> str:
    """SHA-256 of every parameter and buffer, to check that all ranks hold identical weights."""
    h = hashlib.sha256()
    for name, value in sorted(nets.state_dict().items()):
        h.update(name.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def fit_spawned(
    xs: list[np.ndarray],
    times: list[float],
    masses: list[float],
    config: TrainConfig,
    *,
    n_processes: int,
    device_type: str,
    train_size: float,
    random_state: int,
) -> tuple[dict, dict, list[str]]:
    """Train with ``n_processes`` local worker processes (``torch.multiprocessing.spawn``).

    Parameters
    ----------
    xs, times, masses
        Snapshots in internal units (as for :class:`~ruotools.core.data.Snapshots`).
    config
        Hyper-parameters; ``config.batch_size`` is the total over the processes.
    n_processes
        Number of processes (ranks); with CUDA, rank r uses GPU r.
    device_type
        ``"cpu"`` (gloo) or ``"cuda"`` (NCCL).
    train_size, random_state
        Validation split and seed; every rank holds the same split.

    Returns
    -------
    state, history, checksums
        Rank 0's network weights (on CPU) and history, and the :func:`weights_checksum` of every rank.
    """
    with tempfile.TemporaryDirectory(prefix="ruotools-ddp-") as tmp:
        torch.multiprocessing.spawn(
            _spawned_worker,
            args=(n_processes, tmp, xs, times, masses, config, device_type, train_size, random_state),
            nprocs=n_processes,
            join=True,
        )
        results = [torch.load(Path(tmp) / f"rank{r}.pt", weights_only=False) for r in range(n_processes)]
    return results[0]["state"], results[0]["history"], [r["checksum"] for r in results]


def _spawned_worker(rank, world_size, tmp, xs, times, masses, config, device_type, train_size, random_state):
    torch.set_num_threads(1)
    dist.init_process_group(
        backend_for(device_type), init_method=f"file://{Path(tmp) / 'rendezvous'}", rank=rank, world_size=world_size
    )
    try:
        device = torch.device(f"cuda:{rank}") if device_type == "cuda" else torch.device("cpu")
        if device.type == "cuda":
            torch.cuda.set_device(device)
        data = Snapshots(xs, times, masses, train_size=train_size, random_state=random_state, device=device)
        nets, history = fit(data, per_rank_config(config, world_size), distributed=True)
        result = {"state": {k: v.detach().cpu() for k, v in nets.state_dict().items()}, "checksum": ""}
        result["checksum"] = weights_checksum(nets)
        result["history"] = history if rank == 0 else None
        torch.save(result, Path(tmp) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def fit_in_launched_job(
    xs: list[np.ndarray],
    times: list[float],
    masses: list[float],
    config: TrainConfig,
    *,
    device_type: str,
    train_size: float,
    random_state: int,
    progress=None,
):
    """Train as one rank of a job started by ``torchrun`` (this process is one of the ranks).

    Initialises the process group from the launcher's environment when it is not initialised yet
    (``env://``; NCCL with CUDA, on the GPU chosen by :func:`local_gpu`), and leaves it initialised.

    Returns
    -------
    nets, history, rank, checksums
        This rank's networks (identical on all ranks) and history, its rank, and every rank's
        :func:`weights_checksum`.
    """
    device = torch.device("cpu")
    if device_type == "cuda":
        device = torch.device("cuda", local_gpu(int(os.environ.get("LOCAL_RANK", 0)), torch.cuda.device_count()))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend_for(device_type), init_method="env://")
    elif device_type == "cpu" and dist.get_backend() == "nccl":
        raise ValueError(
            "The process group already started here uses NCCL, which communicates CUDA tensors only; "
            "train on the GPUs (`accelerator='cuda'`) or start the group with the gloo backend for CPU training."
        )
    rank, world_size = dist.get_rank(), dist.get_world_size()
    data = Snapshots(xs, times, masses, train_size=train_size, random_state=random_state, device=device)
    # one progress bar for the job, on rank 0
    progress = progress if rank == 0 else None
    nets, history = fit(data, per_rank_config(config, world_size), progress=progress, distributed=True)
    checksums = [None] * world_size
    dist.all_gather_object(checksums, weights_checksum(nets))
    return nets, history, rank, checksums
