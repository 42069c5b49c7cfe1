"""`RUOTModel`: the trained fields in the user's coordinates and time, and their persistence."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import torch

from ._keys import Keys
from ._validation import check_nonnegative
from .core.config import TrainConfig
from .core.data import Standardizer
from .core.dynamics import integrate
from .core.networks import RUOTNetworks
from .core.train import networks_from_config

MODEL_FILE = "model.pt"
FORMAT_VERSION = 1
# entries of every saved model (``to_dict``); a file without them was written by something else
_MODEL_KEYS = frozenset(
    {"config", "standardizer", "state", "dim", "time_points", "relative_mass", "use_rep", "time_key"}
)


class RUOTModel:
    """A fitted RUOT model: velocity, growth and score fields in the user's units.

    Positions are in the fitted representation (first ``n_dims`` columns of ``use_rep``) and
    times in the user's time unit; every output is converted back from the internal
    standardised units: velocities per unit of the user's time, growth in log-mass per unit
    time, the score s = (σ²/2)·log ρ and the potential −log ρ (up to a constant). Positions may be
    NumPy arrays or torch tensors on any device, whatever the model's device: the fields return
    NumPy arrays for arrays and float32 tensors on the device of the positions for tensors
    (:meth:`simulate` always returns NumPy arrays).

    Create one with :func:`ruotools.tl.fit_ruot`, :meth:`from_adata`, or :meth:`load`.

    Examples
    --------
    >>> import ruotools as rt
    >>> adata = rt.datasets.simulated_gene()
    >>> model = rt.tl.fit_ruot(adata, "time", show_progress_bar=False)  # doctest: +SKIP
    >>> x = adata.X[:5]  # five cells, in the fitted representation
    >>> model.velocity(x, 1.0).shape, model.growth(x, 1.0).shape  # doctest: +SKIP
    ((5, 2), (5,))
    >>> u = model.potential(x, 1.0)  # −log ρ, up to a constant  # doctest: +SKIP
    """

    def __init__(
        self,
        nets: RUOTNetworks,
        config: TrainConfig,
        standardizer: Standardizer,
        *,
        time_points: np.ndarray,
        relative_mass: np.ndarray,
        use_rep: str,
        time_key: str,
        history: dict | None = None,
    ):
        self.nets = nets.eval()
        self.config = config
        self.standardizer = standardizer
        self.time_points = np.asarray(time_points, dtype=np.float64)
        self.relative_mass = np.asarray(relative_mass, dtype=np.float64)
        self.use_rep = use_rep
        self.time_key = time_key
        self.history = history or {}

    # ------------------------------------------------------------------ units
    @property
    def device(self) -> torch.device:
        """Device of the networks."""
        return next(self.nets.parameters()).device

    def to(self, device) -> RUOTModel:
        """Move the networks to ``device`` (in place); returns ``self``."""
        self.nets.to(device)
        return self

    @property
    def n_dims(self) -> int:
        """Dimension of the fitted representation."""
        return self.nets.dim

    @property
    def sigma(self) -> float:
        """Noise level in the user's units (coordinate units per square root of time unit)."""
        st = self.standardizer
        return self.config.sigma * st.x_scale / math.sqrt(st.t_scale)

    def _inputs(self, x, t) -> tuple[torch.Tensor, torch.Tensor, torch.device | None]:
        """Internal-unit tensors on the model's device, and the device of ``x`` if it is a tensor."""
        caller = x.device if torch.is_tensor(x) else None
        xn = _float64(x)
        if xn.ndim != 2 or xn.shape[1] != self.n_dims:
            raise ValueError(f"`x` must have shape (n, {self.n_dims}), got {xn.shape}.")
        tn = np.broadcast_to(_float64(t), (xn.shape[0],))
        st = self.standardizer
        xi = torch.as_tensor(st.x_to_internal(xn), dtype=torch.float32, device=self.device)
        ti = torch.as_tensor(st.t_to_internal(tn), dtype=torch.float32, device=self.device)
        return xi, ti, caller

    @staticmethod
    def _out(value: torch.Tensor, caller: torch.device | None):
        """Return a tensor on the caller's device for tensor input, else a NumPy array."""
        value = value.detach()
        return value.to(caller) if caller is not None else value.cpu().numpy()

    def velocity(self, x, t):
        """Velocity v(x, t) per unit of the user's time, shape (n, d); ``t`` scalar or (n,)."""
        xi, ti, caller = self._inputs(x, t)
        st = self.standardizer
        with torch.no_grad():
            v = self.nets.velocity(xi, ti) * (st.x_scale / st.t_scale)
        return self._out(v, caller)

    def growth(self, x, t):
        """Growth rate g(x, t) in log-mass per unit of the user's time, shape (n,)."""
        xi, ti, caller = self._inputs(x, t)
        with torch.no_grad():
            g = self.nets.growth(xi, ti) / self.standardizer.t_scale
        return self._out(g, caller)

    def _log_density(self, xi, ti) -> torch.Tensor:
        sig = self.config.sigma
        if sig <= 0:
            return torch.full((len(xi),), float("nan"), device=xi.device)
        return 2.0 * self.nets.score(xi, ti) / sig**2 - self.n_dims * math.log(self.standardizer.x_scale)

    def potential(self, x, t):
        """Landscape potential U = −log ρ(x, t) (NaN for a deterministic model).

        −log ρ is defined up to an additive constant at each time; the fit fixes it so that U has
        the same mean over the cells of every time point (linear in between; models saved by
        ruotools before this was added keep a free constant).
        """
        xi, ti, caller = self._inputs(x, t)
        with torch.no_grad():
            u = -self._log_density(xi, ti)
        return self._out(u, caller)

    def score(self, x, t):
        """Score potential s = (σ²/2)·log ρ(x, t) in the user's units, up to a constant."""
        xi, ti, caller = self._inputs(x, t)
        with torch.no_grad():
            s = 0.5 * self.sigma**2 * self._log_density(xi, ti)
        return self._out(s, caller)

    def drift(self, x, t):
        """SDE drift b = v + ∇s per unit of the user's time, shape (n, d)."""
        xi, ti, caller = self._inputs(x, t)
        st = self.standardizer
        with torch.no_grad():
            b = self.nets.drift(xi, ti)
        return self._out(b * (st.x_scale / st.t_scale), caller)

    # ------------------------------------------------------------------ simulation
    @property
    def flavor(self) -> str:
        """``"deepruot"`` or ``"var_ruot"``: the flavor of RUOT this model was fitted with."""
        return self.config.flavor

    def simulate(
        self,
        x0,
        times,
        *,
        log_mass0=None,
        stochastic: bool = True,
        n_steps_per_unit: float = 100,
        random_state: int = 0,
        record_every_step: bool = False,
        with_action: bool = False,
        action_alpha: float | None = None,
    ) -> dict[str, np.ndarray]:
        """Push weighted particles from ``times[0]`` through ``times`` (user units).

        Parameters
        ----------
        x0
            Start positions (n, d) in the fitted representation (array, or tensor on any device).
        times
            Increasing times (T,) in the user's unit; ``times[0]`` is the start time.
        log_mass0
            Start log-masses (n,); default ``−log n`` (masses summing to one).
        stochastic
            Euler–Maruyama on the SDE (drift v + ∇s, noise σ) instead of the deterministic flow.
        n_steps_per_unit
            Integration steps per unit of the user's time (100 is dt = 0.01).
        random_state
            Seed of the Brownian increments.
        record_every_step
            Also keep the states at every integration step.
        with_action
            Also return each particle's path action from ``times[0]``.
        action_alpha
            Weight α of the action's growth term α g² (standardised units); ``None``: the fit's
            ``alpha``. Only the action changes (the particles follow the fitted model); a common
            value compares the actions of fits with different ``alpha``.

        Returns
        -------
        dict
            ``"t"`` (T,), ``"X"`` (T, n, d), ``"log_mass"`` (T, n), in the user's units; with
            ``with_action`` also ``"action"`` (T, n): ``∫ e^ℓ [½|u|² + α·scale²·g²] dt`` along each
            path, with u the SDE drift (:meth:`drift`), g the growth rate and α ``action_alpha``
            (default the fit's growth penalty) in standardised units (``scale``: the representation's
            standardisation scale).

        Examples
        --------
        >>> x0 = adata.X[adata.obs["time"] == 0]  # doctest: +SKIP
        >>> out = model.simulate(x0, [0.0, 1.0, 2.0])  # doctest: +SKIP
        >>> np.exp(out["log_mass"]).sum(axis=1)  # predicted population size relative to t = 0  # doctest: +SKIP
        """
        st = self.standardizer
        x0, times = _float64(x0), _float64(times)
        if times.ndim != 1 or len(times) < 2 or np.any(np.diff(times) <= 0):
            raise ValueError("`times` must be an increasing sequence of at least two time points.")
        xi = torch.as_tensor(st.x_to_internal(x0), dtype=torch.float32, device=self.device)
        if log_mass0 is None:
            ell = torch.full((len(xi),), -math.log(len(xi)), device=self.device)
        else:
            ell = torch.as_tensor(_float64(log_mass0), dtype=torch.float32, device=self.device)
        gen = torch.Generator().manual_seed(int(random_state))
        alpha = self.config.alpha if action_alpha is None else check_nonnegative(action_alpha, "action_alpha")
        with torch.no_grad():
            out = integrate(
                self.nets,
                xi,
                ell,
                list(st.t_to_internal(times)),
                steps_per_unit=n_steps_per_unit * st.t_scale,
                stochastic=stochastic and self.config.sigma > 0,
                sigma=self.config.sigma,
                alpha=alpha,  # the action's weight only: a var_ruot network carries its own α
                generator=gen,
                record_every_step=record_every_step,
                drift_action=with_action,
            )
        xs = torch.stack(out["x"]).cpu().numpy().astype(np.float64)
        result = {
            "t": np.asarray(out["t"]) * st.t_scale + st.t_origin,
            "X": xs * st.x_scale + st.x_mean,
            "log_mass": torch.stack(out["log_mass"]).cpu().numpy().astype(np.float64),
        }
        if with_action:
            # internal → user units: u scales by x_scale / t_scale, g by 1 / t_scale, dt by t_scale
            action = torch.stack(out["drift_action"]).cpu().numpy().astype(np.float64)
            result["action"] = action * st.x_scale**2 / st.t_scale
        return result

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict:
        """Plain, h5ad-safe payload: config, standardisation and weights as numpy arrays."""
        state = {k: v.detach().cpu().numpy() for k, v in self.nets.state_dict().items()}
        return {
            "format_version": FORMAT_VERSION,
            "config": self.config.to_dict(),
            "standardizer": self.standardizer.to_dict(),
            "state": state,
            "dim": self.n_dims,
            "time_points": self.time_points,
            "relative_mass": self.relative_mass,
            "use_rep": self.use_rep,
            "time_key": self.time_key,
        }

    @classmethod
    def from_dict(cls, payload: dict, history: dict | None = None, device="cpu") -> RUOTModel:
        """Rebuild a model from :meth:`to_dict`'s payload (as stored in ``uns`` or on disk)."""
        cfg_d = dict(payload["config"])
        cfg_d = {k: (dict(v) if isinstance(v, dict) else _scalar(v)) for k, v in cfg_d.items()}
        # models saved before the score gain existed (ruotools 0.1.0 up to this field) used gain 1
        cfg_d.setdefault("score_gain", 1.0)
        # models saved before the matching cost was a setting were trained with the squared cost
        cfg_d.setdefault("ot_cost", "sqeuclidean")
        # and those saved before `validation_cells` existed validated on the held-out cells
        cfg_d.setdefault("validation_cells", "held_out")
        # and those saved before the geodesic term existed were trained without it
        cfg_d.setdefault("lambda_geodesic", 0.0)
        # and those saved before the curl penalty existed were trained without it
        cfg_d.setdefault("lambda_curl", 0.0)
        config = TrainConfig(**cfg_d)
        nets = networks_from_config(int(payload["dim"]), config)
        state = {k: torch.as_tensor(np.asarray(v)) for k, v in payload["state"].items()}
        nets.load_state_dict(state)
        return cls(
            nets.to(device),
            config,
            Standardizer.from_dict(payload["standardizer"]),
            time_points=np.asarray(payload["time_points"]),
            relative_mass=np.asarray(payload["relative_mass"]),
            use_rep=str(payload["use_rep"]),
            time_key=str(payload["time_key"]),
            history=history,
        )

    @classmethod
    def from_adata(cls, adata, key_added: str = "ruot", device="cpu") -> RUOTModel:
        """Model stored in ``adata.uns[key_added]['model']`` by :func:`ruotools.tl.fit_ruot`.

        Examples
        --------
        >>> adata.write_h5ad("fitted.h5ad")  # doctest: +SKIP
        >>> model = rt.RUOTModel.from_adata(anndata.read_h5ad("fitted.h5ad"))  # doctest: +SKIP
        """
        key = Keys(key_added).uns
        if key not in adata.uns or "model" not in adata.uns[key]:
            raise KeyError(
                f"`adata.uns['{key}']['model']` not found: run `rt.tl.fit_ruot(adata, ..., key_added='{key_added}')` "
                "first, or pass the `key_added` used when fitting."
            )
        return cls.from_dict(adata.uns[key]["model"], history=adata.uns[key].get("history"), device=device)

    def save(self, path, overwrite: bool = False) -> Path:
        """Save to directory ``path`` (file ``model.pt``, loadable with ``torch.load(weights_only=True)``).

        Examples
        --------
        >>> model.save("my_model")  # doctest: +SKIP
        PosixPath('my_model/model.pt')
        """
        path = Path(path)
        file = path / MODEL_FILE
        if file.exists() and not overwrite:
            raise FileExistsError(f"{file} exists; pass `overwrite=True` to replace it.")
        path.mkdir(parents=True, exist_ok=True)
        payload = _to_torch(self.to_dict())
        payload["history"] = _to_torch(self.history)
        torch.save(payload, file)
        return file

    @classmethod
    def load(cls, path, device="cpu") -> RUOTModel:
        """Load a model saved by :meth:`save` (a directory or the ``model.pt`` file itself).

        The file is read with ``torch.load(weights_only=True)``: it cannot run code.

        Parameters
        ----------
        path : str or os.PathLike
            The directory given to :meth:`save`, or the ``model.pt`` file in it.
        device : str or torch.device
            Device to put the networks on.

        Returns
        -------
        RUOTModel
            The saved model, with its training history.

        Raises
        ------
        FileNotFoundError
            Nothing at ``path``.
        ValueError
            The file is not a ruotools model file: truncated, corrupt, or written by another program.

        Examples
        --------
        >>> model = rt.RUOTModel.load("my_model")  # doctest: +SKIP
        """
        path = Path(path)
        file = path / MODEL_FILE if path.is_dir() else path
        if not file.exists():
            raise FileNotFoundError(f"No saved model at {file}.")
        hint = "Load a file written by `RUOTModel.save` (or `rt.tl.fit_ruot(..., checkpoint_dir=...)`)."
        try:
            with warnings.catch_warnings():
                # the weights-only unpickler comments on a foreign pickle's protocol before refusing it
                warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
                payload = torch.load(file, map_location="cpu", weights_only=True)
        except PermissionError:  # unreadable: the system's message says why
            raise
        except Exception as err:  # random bytes, an empty or truncated file, a pickle of other objects
            raise ValueError(
                f"{str(file)!r} is not a ruotools model file: it is empty, truncated or corrupt, or holds objects "
                f"that are not a saved model ({type(err).__name__}). {hint}"
            ) from err
        missing = sorted(_MODEL_KEYS - set(payload)) if isinstance(payload, dict) else None
        if missing is None or missing:
            what = f"a {type(payload).__name__}" if missing is None else f"a dict without {missing}"
            raise ValueError(f"{str(file)!r} is not a ruotools model file: it holds {what}. {hint}")
        payload = _from_torch(payload)
        history = payload.pop("history", None)
        try:
            model = cls.from_dict(payload, history=history, device="cpu")
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            detail = (str(err).strip().splitlines() or [""])[0]
            raise ValueError(
                f"{str(file)!r} is not a ruotools model file that this version can read: its contents do not "
                f"rebuild a model ({type(err).__name__}: {detail}). {hint}"
            ) from err
        return model.to(device)

    def __repr__(self) -> str:
        return (
            f"RUOTModel(flavor={self.config.flavor!r}, n_dims={self.n_dims}, time_points={self.time_points.tolist()}, "
            f"sigma={self.sigma:.4g}, "
            f"growth={self.config.growth}, use_rep={self.use_rep!r})"
        )


def _float64(a) -> np.ndarray:
    """Return ``a`` as a float64 NumPy array (a tensor on any device, with or without gradient, is copied)."""
    if torch.is_tensor(a):
        return a.detach().cpu().double().numpy()
    return np.asarray(a, dtype=np.float64)


def _scalar(v):
    if isinstance(v, np.ndarray) and v.ndim == 0:
        v = v.item()
    if isinstance(v, np.generic):
        v = v.item()
    return v


def _to_torch(obj):
    """Numpy arrays → tensors, recursively, so the payload loads with ``weights_only=True``."""
    if isinstance(obj, dict):
        return {str(k): _to_torch(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in "US" or obj.dtype == object:
            return [str(x) for x in obj.tolist()]
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _from_torch(obj):
    if isinstance(obj, dict):
        return {k: _from_torch(v) for k, v in obj.items()}
    if torch.is_tensor(obj):
        return obj.numpy()
    return obj
