"""The least-action flavor (``flavor="var_ruot"``): HJB residual, Laplacians, λ → drift/growth, fits."""

import math

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch

import ruotools as rt
from ruotools.core import checkpoint as ckpt_mod
from ruotools.core import train
from ruotools.core.config import TrainConfig
from ruotools.core.data import Snapshots, Standardizer
from ruotools.core.least_action import LeastActionNetworks, hjb_residual, integrate_potential, laplacian
from ruotools.core.train import fit

# --------------------------------------------------------------------------- the HJB residual


class AnalyticPotential:
    """Stand-in for ``LeastActionNetworks`` (the attributes ``hjb_residual`` reads) with a closed-form λ."""

    def __init__(self, fn, growth=False, alpha=1.0):
        self.fn, self.has_growth, self.alpha = fn, growth, alpha

    def potential(self, x, t):
        return self.fn(x, t.reshape(-1))


def _points(n=50, d=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64), torch.rand(n, generator=g, dtype=torch.float64)


A_VEC = torch.tensor([0.7, -1.3], dtype=torch.float64)


def _plane_wave(x, t):  # λ = a·x − ½|a|² t
    return x @ A_VEC - 0.5 * (A_VEC @ A_VEC) * t


def _spreading(x, t, c=0.5):  # λ = |x|² / (2(t + c))
    return (x * x).sum(1) / (2 * (t + c))


@pytest.mark.parametrize("sigma", [0.0, 0.3])
def test_hjb_residual_vanishes_on_the_plane_wave(sigma):
    x, t = _points()
    r = hjb_residual(AnalyticPotential(_plane_wave), x, t, sigma=sigma, exact_laplacian=True)
    np.testing.assert_allclose(r.detach().numpy(), 0.0, atol=1e-12)


def test_hjb_residual_vanishes_on_the_spreading_solution_without_noise():
    x, t = _points()
    r = hjb_residual(AnalyticPotential(_spreading), x, t, sigma=0.0, exact_laplacian=True)
    np.testing.assert_allclose(r.detach().numpy(), 0.0, atol=1e-12)
    # with noise the Laplacian term, (σ²/2)·d/(t + c), is what is left
    r = hjb_residual(AnalyticPotential(_spreading), x, t, sigma=0.4, exact_laplacian=True)
    np.testing.assert_allclose(r.detach().numpy(), 0.5 * 0.16 * 2 / (t.numpy() + 0.5), rtol=1e-12)


def test_hjb_residual_with_growth_matches_the_formula_pointwise():
    """R = ∂ₜλ + ½|∇λ|² + (σ²/2)Δλ + λ²/(4α) for a quadratic λ with known derivatives."""
    m = torch.tensor([[1.0, 0.3], [0.3, 2.0]], dtype=torch.float64)
    b = torch.tensor([0.2, -0.5], dtype=torch.float64)

    def quadratic(x, t):  # λ = ½ xᵀMx·(1 + t) + b·x + 0.4 t
        return 0.5 * ((x @ m) * x).sum(1) * (1 + t) + x @ b + 0.4 * t

    x, t = _points()
    alpha, sigma = 0.7, 0.3
    r = hjb_residual(AnalyticPotential(quadratic, growth=True, alpha=alpha), x, t, sigma=sigma, exact_laplacian=True)
    lam = quadratic(x, t)
    dt = 0.5 * ((x @ m) * x).sum(1) + 0.4
    grad = (x @ m) * (1 + t)[:, None] + b
    lap = torch.trace(m) * (1 + t)
    expected = dt + 0.5 * (grad * grad).sum(1) + 0.5 * sigma**2 * lap + lam**2 / (4 * alpha)
    np.testing.assert_allclose(r.detach().numpy(), expected.numpy(), rtol=1e-12)


def test_growth_term_is_g_lambda_minus_alpha_g_squared():
    """With g = λ/(2α) (our α·g² convention), gλ − αg² equals the residual's λ²/(4α), pointwise."""
    alpha = 0.35
    nets = LeastActionNetworks(2, hidden_dim=8, n_layers=2, sigma=0.1, alpha=alpha).double()
    torch.nn.init.normal_(nets.flow_net.w2)  # a non-constant λ
    x, t = _points()
    lam = nets.potential(x, t).detach()
    g = nets.growth(x, t)
    np.testing.assert_allclose(g.numpy(), lam.numpy() / (2 * alpha), rtol=1e-12)
    np.testing.assert_allclose((g * lam - alpha * g * g).numpy(), (lam**2 / (4 * alpha)).numpy(), rtol=1e-10)
    with_growth = hjb_residual(nets, x, t, sigma=0.1, exact_laplacian=True)
    nets.has_growth = False
    without = hjb_residual(nets, x, t, sigma=0.1, exact_laplacian=True)
    np.testing.assert_allclose((with_growth - without).detach().numpy(), (lam**2 / (4 * alpha)).numpy(), rtol=1e-8)


def test_init_growth_sets_a_uniform_rate_through_lambda():
    nets = LeastActionNetworks(3, hidden_dim=8, n_layers=2, sigma=0.1, alpha=2.5).double()
    nets.init_growth(0.3)
    x, t = _points(d=3)
    np.testing.assert_allclose(nets.growth(x, t).numpy(), 0.3, rtol=1e-12)
    np.testing.assert_allclose(nets.potential(x, t).detach().numpy(), 2 * 2.5 * 0.3, rtol=1e-12)
    np.testing.assert_allclose(nets.drift(x, t).numpy(), 0.0, atol=1e-15)


def test_drift_is_the_gradient_of_lambda():
    nets = LeastActionNetworks(3, hidden_dim=16, n_layers=2, sigma=0.0).double()
    torch.nn.init.normal_(nets.flow_net.w2)
    x, t = _points(n=10, d=3)
    u = nets.drift(x, t).numpy()
    eps = 1e-6
    for i in range(3):
        step = torch.zeros(3, dtype=torch.float64)
        step[i] = eps
        fd = (nets.potential(x + step, t) - nets.potential(x - step, t)).detach().numpy() / (2 * eps)
        np.testing.assert_allclose(u[:, i], fd, rtol=1e-6, atol=1e-9)
    # without noise the probability-flow velocity is the drift
    np.testing.assert_allclose(nets.velocity(x, t).numpy(), u, rtol=1e-12)


def test_hutchinson_laplacian_is_unbiased():
    nets = LeastActionNetworks(12, hidden_dim=16, n_layers=2, sigma=0.1).double()
    torch.nn.init.normal_(nets.flow_net.w2)
    x, t = _points(n=4, d=12)
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad(nets.potential(x, t).sum(), x, create_graph=True)
    exact = laplacian(grad, x, exact=True).detach().numpy()
    g = torch.Generator().manual_seed(1)
    draws = np.stack([laplacian(grad, x, exact=False, probes=1, generator=g).detach().numpy() for _ in range(2000)])
    stderr = draws.std(0, ddof=1) / math.sqrt(len(draws))
    assert np.all(np.abs(draws.mean(0) - exact) < 4 * stderr)
    assert np.all(stderr > 0)  # the estimate does vary: the check above is not vacuous


# --------------------------------------------------------------------------- the action column


class ConstantFields(torch.nn.Module):
    """Fields with a constant SDE drift ``u`` and growth ``g`` (no score), in internal units."""

    def __init__(self, u, g, stochastic):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # gives the model a device
        self.u, self.g, self.dim, self.has_growth, self.stochastic = torch.tensor(u), g, len(u), True, stochastic

    def fields(self, x, t):
        return self.u.to(x).expand(len(x), -1), torch.full((len(x),), self.g, dtype=x.dtype)

    def velocity(self, x, t):
        return self.fields(x, t)[0]

    def growth(self, x, t):
        return self.fields(x, t)[1]

    def drift(self, x, t):
        return self.velocity(x, t)

    def score(self, x, t):
        return torch.zeros(len(x), dtype=x.dtype)

    def score_grad(self, x, t, create_graph=False):
        return self.score(x, t), torch.zeros_like(x)


@pytest.mark.parametrize("sigma", [0.0, 0.2])
def test_evaluate_action_matches_the_closed_form(sigma):
    """∫₀ᵀ (1/N)Σ wᵢ [½|u|² + α·scale²·g²] dt = (½|u|² + α·scale²·g²)(e^{gT} − 1)/g in the user's units."""
    u_int, g_int, alpha, x_scale, t_scale = [0.6, -0.2], 0.4, 0.7, 2.0, 0.5
    st = Standardizer(np.zeros(2), x_scale, 0.0, t_scale)
    times = np.array([0.0, 0.5, 1.0])
    model = rt.RUOTModel(
        ConstantFields(u_int, g_int, stochastic=sigma > 0),
        TrainConfig(sigma=sigma, alpha=alpha),
        st,
        time_points=times,
        relative_mass=np.exp(g_int / t_scale * times),
        use_rep="X",
        time_key="time",
    )
    rng = np.random.default_rng(0)
    adata = ad.AnnData(rng.normal(size=(90, 2)).astype(np.float32), obs=pd.DataFrame({"time": np.repeat(times, 30)}))
    table = rt.tl.evaluate(adata, model=model)
    u_user = np.asarray(u_int) * x_scale / t_scale
    g_user = g_int / t_scale
    rate = 0.5 * u_user @ u_user + alpha * x_scale**2 * g_user**2
    expected = rate * (np.exp(g_user * times[1:]) - 1) / g_user
    np.testing.assert_allclose(table["action"].to_numpy(), expected, rtol=1e-4)
    # another α weighs only the growth term; W1 and the masses are those of the same particles
    other = rt.tl.evaluate(adata, model=model, action_alpha=2.5)
    rate_other = 0.5 * u_user @ u_user + 2.5 * x_scale**2 * g_user**2
    np.testing.assert_allclose(other["action"].to_numpy(), expected * rate_other / rate, rtol=1e-4)
    np.testing.assert_array_equal(other[["W1", "TMV"]].to_numpy(), table[["W1", "TMV"]].to_numpy())
    with pytest.raises(ValueError, match=r"`action_alpha` must be a finite number ≥ 0"):
        rt.tl.evaluate(adata, model=model, action_alpha=-1)


# --------------------------------------------------------------------------- fits

VAR_FIT = {
    "flavor": "var_ruot",
    "max_epochs": {"least_action": 20, "score": 2},
    "hidden_dim": 16,
    "batch_size": 64,
    "show_progress_bar": False,
    "accelerator": "cpu",
    "train_kwargs": {"steps_per_epoch": 5, "hjb_points": 64},
}


def _moving_blob(n=150, seed=0):
    """A Gaussian blob that moves 2 units to the right per time unit and grows: 150, 200, 260 cells."""
    rng = np.random.default_rng(seed)
    counts = [n, int(n * 1.33), int(n * 1.73)]
    x = np.concatenate([rng.normal(size=(c, 2)) * 0.3 + [2.0 * k, 0.0] for k, c in enumerate(counts)])
    t = np.repeat([0.0, 1.0, 2.0], counts)
    return ad.AnnData(x.astype(np.float32), obs=pd.DataFrame({"day": t}, index=[f"c{i}" for i in range(len(t))]))


@pytest.fixture(scope="module")
def blob_fitted():
    adata = _moving_blob()
    model = rt.tl.fit_ruot(adata, "day", use_rep="X", **VAR_FIT)
    return adata, model


def test_var_ruot_fit_beats_no_motion_by_far(blob_fitted):
    adata, model = blob_fitted
    table = rt.tl.evaluate(adata)
    x, t = adata.X, adata.obs["day"].to_numpy()
    from ruotools.core.ot import wasserstein

    for k in (1.0, 2.0):
        no_motion = wasserstein(x[t == 0], x[t == k], None, None, p=1)
        assert no_motion > 1.9
        assert table.loc[k, "W1"] < 0.35 * no_motion
    assert (table["action"] > 0).all()
    assert table["action"].is_monotonic_increasing
    assert adata.uns["ruot"]["params"]["flavor"] == "var_ruot"
    assert model.flavor == "var_ruot"
    assert list(model.history) == ["least_action", "score"]
    # the written drift is ∇λ and the velocity ∇λ − ∇s
    drift = adata.layers["ruot_drift"]
    vel = adata.layers["ruot_velocity"]
    xs, ts = adata.X[:20], t[:20]
    np.testing.assert_allclose(drift[:20], model.drift(xs, ts), rtol=1e-5, atol=1e-6)
    xi = torch.as_tensor(model.standardizer.x_to_internal(xs), dtype=torch.float32)
    ti = torch.as_tensor(model.standardizer.t_to_internal(ts), dtype=torch.float32)
    _, grad_s = model.nets.score_grad(xi, ti)
    scale = model.standardizer.x_scale / model.standardizer.t_scale
    np.testing.assert_allclose(vel[:20], drift[:20] - grad_s.numpy() * scale, rtol=1e-4, atol=1e-5)
    assert np.isfinite(adata.obs["ruot_potential"]).all()


def test_var_ruot_h5ad_round_trip_and_save_load(blob_fitted, tmp_path):
    adata, model = blob_fitted
    path = tmp_path / "fitted.h5ad"
    adata.write_h5ad(path)
    back = ad.read_h5ad(path)
    reloaded = rt.RUOTModel.from_adata(back)
    assert reloaded.flavor == "var_ruot"
    assert isinstance(reloaded.nets, LeastActionNetworks)
    x, t = adata.X[:30], adata.obs["day"].to_numpy()[:30]
    for field in ("velocity", "drift", "growth", "potential"):
        np.testing.assert_array_equal(getattr(reloaded, field)(x, t), getattr(model, field)(x, t))
    saved = rt.RUOTModel.load(model.save(tmp_path / "model"))
    assert saved.flavor == "var_ruot"
    np.testing.assert_array_equal(saved.drift(x, t), model.drift(x, t))
    assert "flavor='var_ruot'" in repr(saved)
    assert saved.config.ot_cost == "euclidean"
    assert saved.config.alpha == 3.0
    # a model saved before the matching cost was a setting was trained with the squared cost
    payload = model.to_dict()
    payload["config"] = {k: v for k, v in payload["config"].items() if k != "ot_cost"}
    assert rt.RUOTModel.from_dict(payload).config.ot_cost == "sqeuclidean"
    # every downstream tool runs on the reloaded fit
    rt.tl.simulate(back)
    rt.tl.landscape(back)
    assert np.isfinite(back.uns["ruot_landscape"]["potential"]).any()


def test_every_tool_and_plot_runs_on_a_var_ruot_fit(blob_fitted, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    adata = blob_fitted[0].copy()
    adata.obs["side"] = np.where(adata.X[:, 1] > 0, "up", "down")
    adata.obsm["X_emb"] = adata.X[:, ::-1].copy()
    fates = rt.tl.fate_probabilities(adata, "side", n_samples=2)
    np.testing.assert_allclose(fates.sum(axis=1), 1.0, atol=1e-6)
    couplings = rt.tl.couplings(adata)
    assert len(couplings) == 2
    transition = rt.tl.velocity_transition_matrix(adata)
    np.testing.assert_allclose(np.asarray(transition.sum(axis=1)).ravel(), 1.0, atol=1e-6)
    rt.tl.velocity_embedding(adata, basis="emb")
    assert np.isfinite(adata.obsm["ruot_velocity_emb"]).all()
    rt.tl.simulate(adata, n_particles=50)
    rt.tl.evaluate(adata)
    rt.tl.landscape(adata)
    assert not rt.get.trajectories(adata).empty
    assert np.isfinite(rt.get.mass(adata)["total_mass"]).all()
    assert not rt.get.growth(adata).empty
    for plot in (rt.pl.trajectories, rt.pl.growth, rt.pl.potential, rt.pl.mass, rt.pl.history, rt.pl.metrics):
        plot(adata, show=False)
    assert adata.uns["ruot"]["params"]["ot_cost"] == "euclidean"
    assert adata.uns["ruot"]["params"]["validation_cells"] == "all"
    assert "(all cells: W1 + 5" in rt.pl.history(adata, return_fig=True).get_supxlabel()
    titles = [a.get_title().split()[0] for a in rt.pl.history(adata, show=False)]
    assert titles == ["least_action", "score"]
    # the action panel says which growth weight the stored action used
    labels = [a.get_ylabel() for a in rt.pl.metrics(adata, show=False)]
    assert labels[-1] == "path action from the first time\n(α = 3)"
    rt.tl.evaluate(adata, action_alpha=1.0)
    assert rt.pl.metrics(adata, show=False)[-1].get_ylabel() == "path action from the first time\n(α = 1)"
    rt.pl.landscape(adata, show=False)
    plt.close("all")


def test_unknown_flavor_is_a_value_error_listing_the_choices():
    adata = _moving_blob(30)
    before = set(adata.uns)
    with pytest.raises(ValueError, match=r"Unknown `flavor` 'varruot'; choose one of \['deepruot', 'var_ruot'\]"):
        rt.tl.fit_ruot(adata, "day", use_rep="X", **{**VAR_FIT, "flavor": "varruot"})
    assert set(adata.uns) == before


@pytest.mark.parametrize(
    ("flavor", "key"),
    [
        ("var_ruot", "lambda_mass"),
        ("var_ruot", "lambda_fp"),
        ("var_ruot", "lambda_curl"),
        ("deepruot", "lambda_hjb"),
        ("deepruot", "lambda_geodesic"),
    ],
)
def test_train_kwargs_of_the_other_flavor_are_refused_by_name(flavor, key):
    adata = _moving_blob(30)
    kwargs = {**VAR_FIT, "flavor": flavor, "max_epochs": 1, "train_kwargs": {key: 0.5}}
    with pytest.raises(ValueError, match=rf"`train_kwargs` key '{key}' does not apply to flavor '{flavor}'"):
        rt.tl.fit_ruot(adata, "day", use_rep="X", **kwargs)
    assert "ruot" not in adata.uns


def test_alpha_epochs_and_steps_per_epoch_default_by_flavor(blob_fitted):
    assert TrainConfig().alpha == 1.0
    assert TrainConfig().steps_per_epoch == 10
    assert TrainConfig(flavor="var_ruot").steps_per_epoch == 15
    assert TrainConfig(flavor="var_ruot", steps_per_epoch=7).steps_per_epoch == 7
    assert TrainConfig(flavor="var_ruot").alpha == 3.0
    assert TrainConfig(flavor="var_ruot", alpha=0.5).alpha == 0.5
    assert TrainConfig(flavor="var_ruot").epochs == {"least_action": 60, "score": 40}
    adata, _ = blob_fitted  # fitted without `alpha`
    assert adata.uns["ruot"]["params"]["alpha"] == 3.0


def _config_before(*keys):
    """A TrainConfig class whose saved dict lacks ``keys``, as configs written before those settings existed."""

    class OldConfig(TrainConfig):
        def to_dict(self):
            return {k: v for k, v in super().to_dict().items() if k not in keys}

    return OldConfig


def test_checkpoints_of_squared_cost_fits_keep_their_fingerprint(snapshots):
    from ruotools.core.checkpoint import fingerprint

    # before `ot_cost` existed every fit used the squared cost and the config had no such key
    OldConfig = _config_before("ot_cost")
    for flavor in ("deepruot", "var_ruot"):
        old = OldConfig(flavor=flavor, ot_cost="sqeuclidean")
        assert fingerprint(snapshots, TrainConfig(flavor=flavor, ot_cost="sqeuclidean")) == fingerprint(snapshots, old)
    w1 = fingerprint(snapshots, TrainConfig(flavor="var_ruot"))
    assert w1 != fingerprint(snapshots, OldConfig(flavor="var_ruot"))


@pytest.mark.parametrize(
    ("key", "deepruot", "var_ruot", "bad", "message"),
    [
        (
            "ot_cost",
            "sqeuclidean",
            "euclidean",
            "w1",
            r"Unknown transport cost 'w1'; choose one of \['sqeuclidean', 'euclidean'\]",
        ),
        (
            "validation_cells",
            "held_out",
            "all",
            "train",
            r"Unknown `validation_cells` 'train'; choose one of \['held_out', 'all'\]",
        ),
    ],
)
def test_settings_default_by_flavor_and_unknown_choices_are_refused(key, deepruot, var_ruot, bad, message):
    assert getattr(TrainConfig(), key) == deepruot
    assert getattr(TrainConfig(flavor="var_ruot"), key) == var_ruot
    assert getattr(TrainConfig(flavor="var_ruot", **{key: deepruot}), key) == deepruot
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{key: bad})
    adata = _moving_blob(30)
    with pytest.raises(ValueError, match=message):
        rt.tl.fit_ruot(adata, "day", use_rep="X", **{**VAR_FIT, "train_kwargs": {key: bad}})
    assert "ruot" not in adata.uns


def test_validation_compares_with_the_held_out_or_with_all_cells(snapshots):
    def targets(choice, seed=0):
        config = TrainConfig(flavor="var_ruot", validation_cells=choice, random_state=seed)
        return train._Trainer(snapshots, config, train.networks_from_config(snapshots.dim, config)).val_targets

    def rows(x):
        return {tuple(r) for r in x.tolist()}

    held, every = targets("held_out"), targets("all")
    for k in range(len(snapshots)):
        n_all = min(len(snapshots.all[k]), train.VAL_TARGETS)
        assert rows(held[k]) == rows(snapshots.val[k][: train.VAL_TARGETS])
        assert len(every[k]) == n_all
        assert rows(every[k]) <= rows(snapshots.all[k])
        # "all" draws from the training cells too, not only from the held-out ones
        assert rows(every[k]) & rows(snapshots.train[k])
    # the same cells for the same seed, other cells for another
    assert all(torch.equal(a, b) for a, b in zip(every, targets("all"), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(every, targets("all", seed=1), strict=True))


def test_models_and_checkpoints_from_before_validation_cells_validated_on_held_out_cells(blob_fitted, snapshots):
    from ruotools.core.checkpoint import fingerprint

    _, model = blob_fitted
    assert model.config.validation_cells == "all"
    payload = model.to_dict()
    payload["config"] = {k: v for k, v in payload["config"].items() if k != "validation_cells"}
    assert rt.RUOTModel.from_dict(payload).config.validation_cells == "held_out"
    OldConfig = _config_before("validation_cells")
    old = OldConfig(validation_cells="held_out")
    assert fingerprint(snapshots, TrainConfig()) == fingerprint(snapshots, old)
    assert fingerprint(snapshots, TrainConfig(flavor="var_ruot")) != fingerprint(
        snapshots, OldConfig(flavor="var_ruot", validation_cells="held_out")
    )


def test_max_epochs_names_the_phases_of_the_flavor():
    adata = _moving_blob(30)
    with pytest.raises(ValueError, match=r"unknown phase\(s\) \['pretrain'\]; accepted: \['least_action', 'score'\]"):
        rt.tl.fit_ruot(adata, "day", use_rep="X", **{**VAR_FIT, "max_epochs": {"pretrain": 2}})


# --------------------------------------------------------------------------- resume


def _var_config(**kw):
    base = {
        "flavor": "var_ruot",
        "epochs": {"least_action": 4, "score": 2},
        "hidden_dim": 16,
        "batch_size": 32,
        "steps_per_epoch": 3,
        "hjb_points": 32,
        "show_progress_bar": False,
    }
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def snapshots():
    rng = np.random.default_rng(0)
    xs = [(rng.normal(size=(60, 2)) + k).astype(np.float32) for k in range(3)]
    return Snapshots(xs, [0.0, 1.0, 2.0], [1.0, 1.2, 1.5])


# 8 saves in all: 4 + 2 epochs and 2 phase ends; interrupt inside each phase and at the phase end
@pytest.mark.parametrize("kill_after", [2, 5, 7])
def test_interrupted_var_ruot_fit_resumes_bitwise(snapshots, tmp_path, monkeypatch, kill_after):
    ref_nets, ref_hist = fit(snapshots, _var_config())
    save, calls = ckpt_mod.Checkpointer.save, []

    def interrupting_save(self, state):
        save(self, state)
        calls.append(state["phase"])
        if len(calls) == kill_after:
            raise KeyboardInterrupt

    monkeypatch.setattr(ckpt_mod.Checkpointer, "save", interrupting_save)
    with pytest.raises(KeyboardInterrupt):
        fit(snapshots, _var_config(), checkpoint_dir=tmp_path)
    monkeypatch.setattr(ckpt_mod.Checkpointer, "save", save)
    nets, hist = fit(snapshots, _var_config(), checkpoint_dir=tmp_path, resume=True)
    ref_state, state = ref_nets.state_dict(), nets.state_dict()
    assert ref_state.keys() == state.keys()
    assert all(torch.equal(ref_state[k], state[k]) for k in state)
    for phase in ref_hist:
        np.testing.assert_array_equal(hist[phase]["val"], ref_hist[phase]["val"])


def test_var_ruot_fits_are_deterministic_and_seeded(snapshots):
    a, _ = fit(snapshots, _var_config())
    b, _ = fit(snapshots, _var_config())
    c, _ = fit(snapshots, _var_config(random_state=1))
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def _least_action_step(data, config, threaded, local):
    torch.manual_seed(1)
    nets = train.networks_from_config(data.dim, config)
    with torch.no_grad():
        for p in nets.flow_net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    trainer = train._Trainer(data, config, nets)
    trainer.threaded, trainer.local = threaded, local
    loss, parts = trainer.step("least_action")
    if loss.requires_grad:
        loss.backward()
    # the output bias of λ moves no particle (nor, in a balanced model, any mass): it gets no gradient there
    grads = [p.grad for p in nets.flow_net.parameters() if p.grad is not None]
    return loss.item(), {k: float(v) for k, v in parts.items()}, grads, trainer.gen.get_state()


# the local stage (per-particle times) and whole trajectories; exact Laplacian (2-D) and Hutchinson's (12-D),
# and a balanced model (its log-masses carry no gradient)
@pytest.mark.parametrize("local", [True, False])
# (with the geodesic target: given, or by default on two time points, one interval)
@pytest.mark.parametrize(
    ("dim", "growth", "geodesic", "n_times"),
    [
        (2, True, 0.0, 3),
        (12, True, 0.0, 3),
        (2, False, 0.0, 3),
        (2, True, 0.5, 3),
        (12, False, 0.5, 3),
        (2, True, None, 2),
    ],
)
def test_least_action_step_in_two_threads_has_the_one_pass_loss_and_gradient(local, dim, growth, geodesic, n_times):
    rng = np.random.default_rng(0)
    xs = [(rng.normal(size=(60, dim)) + k).astype(np.float32) for k in range(n_times)]
    data = Snapshots(xs, [0.0, 1.0, 2.5][:n_times], [1.0, 1.2, 1.5][:n_times])
    config = _var_config(batch_size=40, lambda_action=0.5, lambda_hjb=0.5, growth=growth, lambda_geodesic=geodesic)
    loss_1, parts_1, grads_1, gen_1 = _least_action_step(data, config, threaded=False, local=local)
    runs = [_least_action_step(data, config, threaded=True, local=local) for _ in range(3)]
    loss_2, parts_2, grads_2, gen_2 = runs[0]
    assert torch.equal(gen_2, gen_1)  # the same random numbers drawn: the next step starts alike
    assert list(parts_2) == list(parts_1)
    assert loss_2 == pytest.approx(loss_1, rel=1e-5)
    assert parts_2 == pytest.approx(parts_1, rel=1e-5)
    assert min(parts_1["ot"], parts_1["action"], parts_1["hjb"]) > 0
    assert ("geodesic" in parts_1) == (geodesic != 0.0)
    assert parts_1.get("geodesic", 1.0) > 0
    assert len(grads_1) == len(grads_2) >= 7  # of 8
    for a, b in zip(grads_1, grads_2, strict=True):
        assert torch.count_nonzero(a) > 0
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)
    for loss, parts, grads, _ in runs[1:]:  # the threads' order does not change a bit
        assert (loss, parts) == (loss_2, parts_2)
        assert all(torch.equal(a, b) for a, b in zip(grads_2, grads, strict=True))


def test_geodesic_term_is_on_by_default_for_two_time_points_only_and_keeps_old_checkpoints(snapshots):
    from ruotools.core.checkpoint import fingerprint
    from ruotools.core.config import GEODESIC_ONE_INTERVAL

    def trainer(data=snapshots, **kw):
        config = _var_config(**kw)
        return train._Trainer(data, config, train.networks_from_config(data.dim, config))

    two = Snapshots(snapshots.all[:2], [0.0, 1.0], [1.0, 1.2])
    assert TrainConfig(flavor="var_ruot").lambda_geodesic is None  # resolved when a fit starts
    # three time points: off, and the config says so
    assert trainer().midpoints is None
    assert trainer().cfg.lambda_geodesic == 0.0
    # two: on, with the flavor's weight, unless given (0 turns it off); never for deepruot
    on = trainer(two)
    assert on.cfg.lambda_geodesic == GEODESIC_ONE_INTERVAL == 0.1
    assert [tuple(m.shape) for m in on.midpoints] == [(1000, 2)]
    assert trainer(two, lambda_geodesic=0.0).midpoints is None
    deep = TrainConfig(epochs={"pretrain": 1, "refine": 1, "score": 1, "joint": 1})
    assert train._Trainer(two, deep, train.networks_from_config(2, deep)).cfg.lambda_geodesic == 0.0
    on = trainer(lambda_geodesic=0.5)
    # one target per interval, between its snapshots (they are one unit apart along the diagonal)
    assert [tuple(m.shape) for m in on.midpoints] == [(1000, 2), (1000, 2)]
    for k, m in enumerate(on.midpoints):
        before, after = snapshots.train[k].mean(0), snapshots.train[k + 1].mean(0)
        assert torch.all((before + 0.2 < m.mean(0)) & (m.mean(0) < after - 0.2))
    # a fit of three time points keeps the fingerprint of checkpoints written before the setting existed
    OldConfig = _config_before("lambda_geodesic", "geodesic_alpha")
    resolved = TrainConfig(flavor="var_ruot")
    resolved.resolve_lambda_geodesic(3)
    assert fingerprint(snapshots, resolved) == fingerprint(snapshots, OldConfig(flavor="var_ruot"))
    assert fingerprint(snapshots, TrainConfig(flavor="var_ruot", lambda_geodesic=0.5)) != fingerprint(
        snapshots, resolved
    )


def test_fit_resolves_the_geodesic_weight_on_a_copy_and_old_checkpoints_still_resume(snapshots, tmp_path):
    from ruotools.core.checkpoint import fingerprint

    config = _var_config(epochs={"least_action": 1, "score": 1})
    two = Snapshots(snapshots.all[:2], [0.0, 1.0], [1.0, 1.2])
    fit(two, config)  # resolved to 0.1 for this fit only: the caller's config is left as it was
    assert config.lambda_geodesic is None
    fit(snapshots, config, checkpoint_dir=tmp_path)
    # the checkpoint of three time points carries the fingerprint a version without the setting wrote
    OldConfig = _config_before("lambda_geodesic", "geodesic_alpha")
    old = OldConfig(**{k: v for k, v in config.to_dict().items() if k not in ("lambda_geodesic", "geodesic_alpha")})
    assert ckpt_mod.Checkpointer(tmp_path, fingerprint(snapshots, old)).load("cpu")["fingerprint"]


def test_fit_ruot_stores_the_resolved_geodesic_weight_and_old_models_load_without_it(tmp_path, ruotools_log):
    adata = _moving_blob(40)
    two = adata[adata.obs["day"] < 1.5].copy()
    kwargs = {**VAR_FIT, "max_epochs": {"least_action": 1, "score": 1}}
    model = rt.tl.fit_ruot(two, "day", use_rep="X", **kwargs)
    assert model.config.lambda_geodesic == 0.1
    assert "halfway where the model-free least-action path" in ruotools_log.text  # the user is told
    ruotools_log.clear()
    assert rt.tl.fit_ruot(adata, "day", use_rep="X", **kwargs).config.lambda_geodesic == 0.0
    assert "least-action path" not in ruotools_log.text
    # given 0, or a balanced model (the target's mass created and destroyed halfway it could not follow): off
    off = {**kwargs, "train_kwargs": {**kwargs["train_kwargs"], "lambda_geodesic": 0}}
    assert rt.tl.fit_ruot(two.copy(), "day", use_rep="X", **off).config.lambda_geodesic == 0.0
    assert rt.tl.fit_ruot(two.copy(), "day", use_rep="X", growth=False, **kwargs).config.lambda_geodesic == 0.0
    assert "least-action path" not in ruotools_log.text
    two.write_h5ad(tmp_path / "two.h5ad")
    reloaded = rt.RUOTModel.from_adata(ad.read_h5ad(tmp_path / "two.h5ad"))
    assert reloaded.config.lambda_geodesic == 0.1
    payload = model.to_dict()
    payload["config"] = {k: v for k, v in payload["config"].items() if k != "lambda_geodesic"}
    assert rt.RUOTModel.from_dict(payload).config.lambda_geodesic == 0.0  # saved before the term existed


def test_a_fit_with_the_geodesic_term_passes_halfway_where_the_geodesic_does():
    adata = _moving_blob()
    kwargs = {**VAR_FIT, "train_kwargs": {**VAR_FIT["train_kwargs"], "lambda_geodesic": 1.0}}
    model = rt.tl.fit_ruot(adata, "day", use_rep="X", **kwargs)
    x0 = adata.X[adata.obs["day"].to_numpy() == 0]
    out = model.simulate(x0, [0.0, 0.5, 1.5], stochastic=False)
    # the blob moves 2 units per day: halfway through each interval it is 1 unit on
    for k, x_mid in enumerate(out["X"][1:]):
        w = np.exp(out["log_mass"][k + 1])
        assert np.average(x_mid[:, 0], weights=w) == pytest.approx(1.0 + 2.0 * k, abs=0.3)
    assert adata.uns["ruot"]["params"]["flavor"] == "var_ruot"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [("lambda_geodesic", -1.0, "≥ 0"), ("geodesic_alpha", 0.0, "> 0")],
)
def test_bad_geodesic_settings_are_refused(key, value, message):
    adata = _moving_blob(30)
    with pytest.raises(ValueError, match=rf"`train_kwargs\['{key}'\]` must be a finite number {message}"):
        rt.tl.fit_ruot(adata, "day", use_rep="X", **{**VAR_FIT, "train_kwargs": {key: value}})
    assert "ruot" not in adata.uns


def test_the_particles_matched_with_the_geodesic_are_those_halfway_through_each_interval():
    # σ = 0 and batches larger than the snapshots: nothing random moves a particle, so one integration through
    # the halfway times gives the particles that the step matches with the geodesic's cells
    rng = np.random.default_rng(0)
    xs = [(rng.normal(size=(40, 2)) + k).astype(np.float32) for k in range(3)]
    data = Snapshots(xs, [0.0, 1.0, 2.5], [1.0, 1.2, 1.5], train_size=1.0)
    config = _var_config(sigma=0.0, batch_size=64, lambda_geodesic=1.0)
    nets = train.networks_from_config(data.dim, config)
    trainer = train._Trainer(data, config, nets)
    trainer.threaded, seen = False, {}

    losses = trainer._snapshot_losses

    def capture(*args):
        seen["mids"], seen["targets"] = args[5][:2], args[5][2]
        return losses(*args)

    trainer._snapshot_losses = capture
    trainer.step("least_action")
    x0 = data.train[0]
    times = [0.0, 0.5, 1.0, 1.75, 2.5]
    out = integrate_potential(
        nets, x0, trainer._start(x0), times, steps_per_unit=config.steps_per_unit, sigma=0.0, alpha=config.alpha
    )
    positions, log_masses = seen["mids"]
    for k, i in enumerate((1, 3)):
        torch.testing.assert_close(positions[k], out["x"][i])
        torch.testing.assert_close(log_masses[k], out["log_mass"][i])
        assert len(seen["targets"][k]) == 64
