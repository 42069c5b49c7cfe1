"""`RUOTModel`: persistence, input types and units."""

import anndata as ad
import numpy as np
import pytest
import torch

import ruotools as rt
from ruotools import RUOTModel

FIELDS = ("velocity", "growth", "potential", "score", "drift")


def _probe(adata, n=200):
    x = np.asarray(adata.X[:n], dtype=np.float64)
    t = adata.obs["time"].to_numpy()[:n]
    return x, t


def _assert_same_fields(m1, m2, x, t):
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(m1, name)(x, t), getattr(m2, name)(x, t), err_msg=name)


# --------------------------------------------------------------------------- save / load


def test_save_load_round_trip(gene_fitted, tmp_path):
    adata, model = gene_fitted
    file = model.save(tmp_path / "m")
    assert file == tmp_path / "m" / "model.pt"
    assert file.is_file()
    for source in (tmp_path / "m", file):  # the directory or the file itself
        loaded = RUOTModel.load(source)
        x, t = _probe(adata)
        _assert_same_fields(model, loaded, x, t)
        assert loaded.n_dims == model.n_dims
        np.testing.assert_array_equal(loaded.time_points, model.time_points)
        np.testing.assert_array_equal(loaded.relative_mass, model.relative_mass)
        assert loaded.use_rep == model.use_rep
        assert loaded.time_key == model.time_key
        assert loaded.sigma == pytest.approx(model.sigma)
        assert set(loaded.history) == set(model.history)
        np.testing.assert_allclose(
            np.asarray(loaded.history["pretrain"]["loss"]), np.asarray(model.history["pretrain"]["loss"])
        )


def test_save_refuses_to_overwrite(gene_fitted, tmp_path):
    _, model = gene_fitted
    model.save(tmp_path)
    before = (tmp_path / "model.pt").read_bytes()
    with pytest.raises(FileExistsError, match="overwrite"):
        model.save(tmp_path)
    assert (tmp_path / "model.pt").read_bytes() == before
    assert model.save(tmp_path, overwrite=True).is_file()


def test_saved_file_loads_with_weights_only(gene_fitted, tmp_path):
    _, model = gene_fitted
    file = model.save(tmp_path)
    payload = torch.load(file, weights_only=True)
    assert isinstance(payload, dict)
    assert {"config", "standardizer", "state", "time_points"} <= set(payload)
    assert all(torch.is_tensor(v) for v in payload["state"].values())


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        RUOTModel.load(tmp_path / "nothing")


def _write_foreign(kind: str, file, model) -> None:
    """Write at ``file`` a file that is not a readable ruotools model."""
    import pickle

    if kind == "random bytes":
        file.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "empty":
        file.write_bytes(b"")
    elif kind == "pickle of a dict":
        file.write_bytes(pickle.dumps({"config": 1, "weights": [1, 2, 3]}))
    elif kind == "pickle of an array":
        file.write_bytes(pickle.dumps(np.arange(5.0)))
    elif kind == "torch tensor":
        torch.save(torch.zeros(3), file)
    elif kind == "torch state dict":
        torch.save(model.nets.state_dict(), file)  # a torch file, but only the weights: no config, no units
    elif kind == "truncated model":
        model.save(file.parent / "full")
        data = (file.parent / "full" / "model.pt").read_bytes()
        file.write_bytes(data[: len(data) // 2])
    elif kind == "damaged model":  # a saved model whose weights do not match its networks
        payload = torch.load(model.save(file.parent / "full"), weights_only=True)
        payload["state"] = {k: v[..., :1] for k, v in payload["state"].items()}
        torch.save(payload, file)
    else:
        raise AssertionError(kind)


FOREIGN = (
    "random bytes",
    "empty",
    "pickle of a dict",
    "pickle of an array",
    "torch tensor",
    "torch state dict",
    "truncated model",
    "damaged model",
)


@pytest.mark.parametrize("kind", FOREIGN)
def test_load_of_a_foreign_or_corrupt_file_is_a_value_error(kind, gene_fitted, tmp_path):
    """Not torch's unpickling error: a ValueError naming the file and what to load instead."""
    import re
    import warnings

    _, model = gene_fitted
    folder = tmp_path / "m"
    folder.mkdir()
    file = folder / "model.pt"
    _write_foreign(kind, file, model)
    for source in (file, folder):  # the file itself or the directory holding it
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # torch's remarks on a foreign pickle stay inside `load`
            with pytest.raises(ValueError, match=r"is not a ruotools model file") as info:
                RUOTModel.load(source)
        message = str(info.value)
        assert re.search(re.escape(str(file)), message), message
        assert "RUOTModel.save" in message


def test_load_of_a_foreign_file_runs_no_code(tmp_path):
    """A pickle that would run code when unpickled is refused, not executed."""
    import pickle

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    file = tmp_path / "model.pt"
    file.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(ValueError, match="not a ruotools model file"):
        RUOTModel.load(file)
    assert not marker.exists()


def test_h5ad_round_trip_rebuilds_the_model(gene_fitted, tmp_path):
    adata, model = gene_fitted
    path = tmp_path / "fitted.h5ad"
    adata.write_h5ad(path)
    back = ad.read_h5ad(path)
    rebuilt = RUOTModel.from_adata(back)
    x = np.asarray(back.X, dtype=np.float64)
    t = back.obs["time"].to_numpy()
    # the stored outputs were computed in chunks during the fit; computed again they may differ in the last bit
    # (one value of 6,062 in a CI run), so they are compared to rounding
    close = {"rtol": 1e-6, "atol": 1e-7}
    np.testing.assert_array_equal(back.layers["ruot_velocity"], adata.layers["ruot_velocity"])
    np.testing.assert_allclose(rebuilt.velocity(x, t), back.layers["ruot_velocity"], **close)
    np.testing.assert_allclose(rebuilt.growth(x, t), back.obs["ruot_growth_rate"].to_numpy(), **close)
    np.testing.assert_allclose(rebuilt.drift(x, t), back.layers["ruot_drift"], **close)
    # the rebuilt model is the fitted one: the same inputs give the same outputs bit for bit
    _assert_same_fields(model, rebuilt, x[:100], t[:100])


def test_curl_penalty_setting_is_stored_and_old_models_load_without_it(gene_fitted, tmp_path):
    adata, model = gene_fitted
    assert model.config.lambda_curl == 0.01  # the deepruot default, stored with the model
    adata.write_h5ad(tmp_path / "fitted.h5ad")
    assert RUOTModel.from_adata(ad.read_h5ad(tmp_path / "fitted.h5ad")).config.lambda_curl == 0.01
    payload = model.to_dict()
    payload["config"] = {k: v for k, v in payload["config"].items() if k != "lambda_curl"}
    assert RUOTModel.from_dict(payload).config.lambda_curl == 0.0  # saved before the penalty existed


def test_from_adata_without_fit_raises():
    adata = rt.datasets.simulated_gene()
    with pytest.raises(KeyError, match="fit_ruot"):
        RUOTModel.from_adata(adata)


# --------------------------------------------------------------------------- inputs


def test_numpy_and_torch_inputs_agree(gene_fitted):
    adata, model = gene_fitted
    x, t = _probe(adata, 50)
    for name in FIELDS:
        from_numpy = getattr(model, name)(x, t)
        from_torch = getattr(model, name)(torch.as_tensor(x), torch.as_tensor(t))
        from_float32 = getattr(model, name)(torch.as_tensor(x, dtype=torch.float32), t)
        assert isinstance(from_numpy, np.ndarray), name
        assert torch.is_tensor(from_torch), name
        assert torch.is_tensor(from_float32), name
        np.testing.assert_array_equal(from_torch.numpy(), from_numpy, err_msg=name)
        np.testing.assert_allclose(from_float32.numpy(), from_numpy, rtol=1e-5, atol=1e-6, err_msg=name)


def test_tensors_that_require_grad_are_accepted_everywhere(gene_fitted):
    # a field's tensor output, or any tensor in an autograd graph, can be passed on (np.asarray would raise)
    adata, model = gene_fitted
    x, t = _probe(adata, 40)
    xt = torch.as_tensor(x, dtype=torch.float32).requires_grad_(True)
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(model, name)(xt, t).numpy(), getattr(model, name)(xt.detach(), t).numpy())
    pushed = xt + 0.1 * model.velocity(xt, 0.0)
    kwargs = {"stochastic": True, "random_state": 3}
    start_mass = torch.zeros(40).requires_grad_()
    from_tensors = model.simulate(pushed, torch.tensor([0.0, 1.0]), log_mass0=start_mass, **kwargs)
    from_numpy = model.simulate(pushed.detach().numpy(), [0.0, 1.0], log_mass0=np.zeros(40), **kwargs)
    for key in ("t", "X", "log_mass"):
        assert isinstance(from_tensors[key], np.ndarray), key
        np.testing.assert_array_equal(from_tensors[key], from_numpy[key], err_msg=key)


def test_output_shapes_and_scalar_time(gene_fitted):
    adata, model = gene_fitted
    x, _ = _probe(adata, 30)
    assert model.velocity(x, 1.0).shape == (30, 2)
    assert model.drift(x, 1.0).shape == (30, 2)
    assert model.growth(x, 1.0).shape == (30,)
    assert model.potential(x, 1.0).shape == (30,)
    np.testing.assert_array_equal(model.velocity(x, 1.5), model.velocity(x, np.full(30, 1.5)))
    # time enters the fields
    assert not np.array_equal(model.velocity(x, 0.0), model.velocity(x, 4.0))


def test_wrong_input_shape_raises(gene_fitted):
    _, model = gene_fitted
    with pytest.raises(ValueError, match="shape"):
        model.velocity(np.zeros((5, 3)), 0.0)
    with pytest.raises(ValueError, match="shape"):
        model.growth(np.zeros(2), 0.0)


def test_device_and_to(gene_fitted):
    _, model = gene_fitted
    assert model.device == torch.device("cpu")
    assert model.to("cpu") is model


def test_simulate_shapes_and_start_mass(gene_fitted):
    adata, model = gene_fitted
    x0 = np.asarray(adata.X[adata.obs["time"] == 0], dtype=np.float64)
    out = model.simulate(x0, [0.0, 1.0, 2.5], stochastic=False)
    np.testing.assert_allclose(out["t"], [0.0, 1.0, 2.5])
    assert out["X"].shape == (3, len(x0), 2)
    assert out["log_mass"].shape == (3, len(x0))
    np.testing.assert_allclose(out["X"][0], x0, atol=1e-5)
    assert np.exp(out["log_mass"][0]).sum() == pytest.approx(1.0, rel=1e-5)
    with pytest.raises(ValueError, match="increasing"):
        model.simulate(x0, [1.0, 0.0])


# --------------------------------------------------------------------------- units


def test_outputs_are_per_unit_of_the_users_time_and_space(gene_fitted, tiny_fit_kwargs):
    # Training runs in standardised units, so coordinates ×10 and time ×2 (same seed) give the same
    # internal problem: velocities must come out ×10/2 = ×5, growth rates ÷2, σ ×10/√2, and the
    # potential −log ρ shifted by d·log 10 (a constant).
    adata, model = gene_fitted
    scaled = ad.AnnData(X=np.asarray(adata.X, dtype=np.float64) * 10, obs=adata.obs[["time"]].copy())
    scaled.obs["time"] = scaled.obs["time"] * 2
    model2 = rt.tl.fit_ruot(scaled, "time", use_rep="X", random_state=0, **tiny_fit_kwargs)

    v1, v2 = adata.layers["ruot_velocity"], scaled.layers["ruot_velocity"]
    np.testing.assert_allclose(v2, 5 * v1, rtol=1e-3, atol=1e-4 * np.abs(5 * v1).max())
    d1, d2 = adata.layers["ruot_drift"], scaled.layers["ruot_drift"]
    np.testing.assert_allclose(d2, 5 * d1, rtol=1e-3, atol=1e-4 * np.abs(5 * d1).max())
    g1, g2 = adata.obs["ruot_growth_rate"].to_numpy(), scaled.obs["ruot_growth_rate"].to_numpy()
    assert np.abs(g1).max() > 0  # the comparison is not between two zero fields
    np.testing.assert_allclose(g2, g1 / 2, rtol=1e-3, atol=1e-4 * np.abs(g1).max())
    p1, p2 = adata.obs["ruot_potential"].to_numpy(), scaled.obs["ruot_potential"].to_numpy()
    np.testing.assert_allclose(p2 - p1, 2 * np.log(10), atol=1e-3 * max(1.0, np.abs(p1).max()))
    assert model2.sigma == pytest.approx(model.sigma * 10 / np.sqrt(2), rel=1e-6)
    np.testing.assert_array_equal(model2.time_points, 2 * model.time_points)
