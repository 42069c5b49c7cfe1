"""Training checkpoints: the complete state of a fit after every epoch, for bit-exact resumption."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

from .config import TrainConfig
from .data import Snapshots

#: File name of the training state inside a checkpoint directory.
STATE_FILE = "training_state.pt"
FORMAT = 1

# settings that change neither the trajectory of the optimisation nor its result
_NOT_FINGERPRINTED = ("show_progress_bar", "num_threads", "early_stopping", "patience")


def fingerprint(data: Snapshots, config: TrainConfig) -> str:
    """Hash of the data and of every setting that shapes the optimisation.

    A checkpoint is only resumed by a fit with the same fingerprint: resuming it with other data or
    other hyper-parameters would silently mix two different fits.
    """
    h = hashlib.sha256()
    cfg = {k: v for k, v in config.to_dict().items() if k not in _NOT_FINGERPRINTED}
    if cfg.get("ot_cost") == "sqeuclidean":  # the only cost before it was a setting: old checkpoints still resume
        del cfg["ot_cost"]
    if cfg.get("validation_cells") == "held_out":  # likewise the only validation before it was a setting
        del cfg["validation_cells"]
    if cfg.get("lambda_geodesic") == 0:  # off, as in every fit before the setting existed
        cfg.pop("lambda_geodesic")
        cfg.pop("geodesic_alpha", None)
    h.update(json.dumps(cfg, sort_keys=True, default=str).encode())
    h.update(json.dumps({"times": data.times, "masses": data.masses}).encode())
    for part in (data.train, data.val):
        for x in part:
            h.update(np.ascontiguousarray(x.detach().cpu().numpy()).tobytes())
    return h.hexdigest()


class Checkpointer:
    """Writes and reads the training state of one fit in ``directory``.

    Each write replaces the file atomically (write to a temporary file, then rename), so a run
    killed at any moment leaves either the previous state or the new one, never a torn file.

    Parameters
    ----------
    directory
        Folder of the checkpoint (created when missing).
    fingerprint
        :func:`fingerprint` of the fit; stored with every state and checked on loading.
    """

    def __init__(self, directory: str | os.PathLike, fingerprint: str):
        self.directory = Path(directory)
        self.path = self.directory / STATE_FILE
        self.fingerprint = fingerprint

    def save(self, state: dict) -> None:
        """Write ``state`` (tensors, numbers, lists, dicts) atomically."""
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        torch.save({"format": FORMAT, "fingerprint": self.fingerprint, **state}, tmp)
        os.replace(tmp, self.path)

    def load(self, device: torch.device) -> dict | None:
        """Read the saved state; ``None`` when there is none.

        Raises
        ------
        ValueError
            The file cannot be read (truncated, corrupt, or not a ruotools checkpoint), or the
            checkpoint belongs to another fit (other data or settings) or another format. Nothing
            is written in either case.
        """
        if not self.path.exists():
            return None
        how = (
            "Delete it to start over (or fit with `resume=False`, which overwrites it), or use another "
            "`checkpoint_dir`."
        )
        try:
            state = torch.load(self.path, map_location=device, weights_only=False)
        except PermissionError:  # unreadable: the system's message says why
            raise
        except Exception as err:  # a torn zip archive, random bytes, a pickle of another program's classes
            detail = str(err).strip().split("\n")[0].split(". ")[0]  # the first sentence says what failed
            reason = type(err).__name__ + (f": {detail}" if detail else "")
            raise ValueError(
                f"The checkpoint {str(self.path)!r} is truncated or corrupt and cannot be resumed ({reason}). {how}"
            ) from err
        if not isinstance(state, dict) or "fingerprint" not in state:
            raise ValueError(
                f"The file {str(self.path)!r} is not a ruotools training checkpoint (it holds a "
                f"{type(state).__name__} without a fit's fingerprint). {how}"
            )
        if state.get("format") != FORMAT:
            raise ValueError(
                f"The checkpoint {str(self.path)!r} has format {state.get('format')!r}, this version reads {FORMAT}. "
                "Delete it or fit with another `checkpoint_dir`."
            )
        if state.get("fingerprint") != self.fingerprint:
            raise ValueError(
                f"The checkpoint in {str(self.directory)!r} was written by a fit with other data or settings; "
                "resuming it would mix two fits. Use the same data and arguments as the interrupted call, "
                "another `checkpoint_dir`, or `resume=False` to start over (the checkpoint is then overwritten)."
            )
        return state
