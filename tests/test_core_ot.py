"""Optimal-transport primitives of ``ruotools.core.ot`` against independent references."""

import numpy as np
import ot
import pytest
import torch
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from ruotools.core.ot import (
    EUCLIDEAN_SMOOTHING,
    ground_cost,
    ot_loss,
    ot_losses,
    sinkhorn_log,
    sq_cost,
    transport_plan,
    transport_plans,
    wasserstein,
)


def _weights(rng, n):
    w = rng.uniform(0.2, 1.0, n)
    return w / w.sum()


@pytest.fixture
def clouds():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 3))
    y = rng.normal(size=(40, 3)) + np.array([0.5, -0.3, 0.2])
    return x, y, _weights(rng, 30), _weights(rng, 40)


# --------------------------------------------------------------------------- wasserstein


def test_w1_matches_pot_with_weights(clouds):
    x, y, a, b = clouds
    expected = ot.emd2(a, b, ot.dist(x, y, metric="euclidean"))
    assert wasserstein(x, y, a, b, p=1) == pytest.approx(expected, rel=1e-10)


def test_w2_matches_pot_with_weights(clouds):
    x, y, a, b = clouds
    expected = np.sqrt(ot.emd2(a, b, ot.dist(x, y, metric="sqeuclidean")))
    assert wasserstein(x, y, a, b, p=2) == pytest.approx(expected, rel=1e-10)


def test_weights_are_normalised(clouds):
    x, y, a, b = clouds
    assert wasserstein(x, y, 7 * a, 0.1 * b, p=1) == pytest.approx(wasserstein(x, y, a, b, p=1), rel=1e-10)


def test_default_weights_are_uniform(clouds):
    x, y, _, _ = clouds
    uniform_a, uniform_b = np.full(len(x), 1 / len(x)), np.full(len(y), 1 / len(y))
    for p in (1, 2):
        assert wasserstein(x, y, p=p) == pytest.approx(wasserstein(x, y, uniform_a, uniform_b, p=p), rel=1e-10)


@pytest.mark.parametrize("p", [1, 2])
def test_equal_size_uniform_clouds_match_assignment(p):
    # with n points and uniform weights on both sides, OT is an optimal assignment (Birkhoff)
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(25, 3)), rng.normal(size=(25, 3)) * 1.5 + 1.0
    cost = cdist(x, y) ** p
    rows, cols = linear_sum_assignment(cost)
    expected = cost[rows, cols].mean() ** (1 / p)
    assert wasserstein(x, y, p=p) == pytest.approx(expected, rel=1e-9)


def test_w1_of_a_shifted_copy_is_the_shift_norm():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(50, 3))
    shift = np.array([0.3, -0.4, 1.2])  # norm 1.3
    assert wasserstein(x, x + shift, p=1) == pytest.approx(np.linalg.norm(shift), rel=1e-9)
    assert wasserstein(x, x + shift, p=2) == pytest.approx(np.linalg.norm(shift), rel=1e-9)


def test_identical_clouds_have_zero_distance(clouds):
    x, _, a, _ = clouds
    assert wasserstein(x, x, a, a, p=1) == pytest.approx(0.0, abs=1e-12)


def test_unsupported_order_raises(clouds):
    x, y, _, _ = clouds
    with pytest.raises(ValueError, match="p"):
        wasserstein(x, y, p=3)


# --------------------------------------------------------------------------- plans


def test_transport_plan_is_the_exact_plan_below_emd_max(clouds):
    x, y, a, b = clouds
    plan, f = transport_plan(torch.tensor(x), torch.tensor(y), torch.tensor(a), torch.tensor(b))
    reference = ot.emd(a, b, ot.dist(x, y, metric="sqeuclidean"))
    np.testing.assert_allclose(plan.numpy(), reference, atol=1e-12)
    # the dual potential is centred: Σ a_i f_i = 0
    assert float((torch.tensor(a) * f).sum()) == pytest.approx(0.0, abs=1e-10)


def test_transport_plan_does_not_modify_its_inputs(clouds):
    # BUG (reported): `_emd` normalises `a`/`b` in place on the NumPy view of a float64 CPU tensor,
    # so the caller's weight tensors are rescaled as a side effect.
    x, y, a, b = clouds
    a_t, b_t = torch.tensor(3 * a), torch.tensor(2 * b)
    a_before, b_before = a_t.clone(), b_t.clone()
    transport_plan(torch.tensor(x), torch.tensor(y), a_t, b_t)
    torch.testing.assert_close(a_t, a_before)
    torch.testing.assert_close(b_t, b_before)


def test_sinkhorn_marginals_and_cost_approach_emd(clouds):
    x, y, a, b = clouds
    cost = ot.dist(x, y, metric="sqeuclidean")
    exact = ot.emd2(a, b, cost)
    plan, f = sinkhorn_log(torch.tensor(a), torch.tensor(b), torch.tensor(cost), epsilon=0.01, n_iter=20_000)
    plan = plan.numpy()
    np.testing.assert_allclose(plan.sum(1), a, atol=1e-3)
    np.testing.assert_allclose(plan.sum(0), b, atol=1e-3)
    assert (plan * cost).sum() == pytest.approx(exact, rel=0.05)
    assert float((torch.tensor(a) * f).sum()) == pytest.approx(0.0, abs=1e-8)


def test_sinkhorn_cost_decreases_towards_emd_with_epsilon(clouds):
    x, y, a, b = clouds
    cost = ot.dist(x, y, metric="sqeuclidean")
    exact = ot.emd2(a, b, cost)
    gaps = []
    for eps in (1.0, 0.1, 0.01):
        plan, _ = sinkhorn_log(torch.tensor(a), torch.tensor(b), torch.tensor(cost), epsilon=eps, n_iter=20_000)
        gaps.append(abs(float((plan.numpy() * cost).sum()) - exact))
    assert gaps[0] > gaps[1] > gaps[2]


def test_sinkhorn_matches_pot_entropic_plan(clouds):
    # the entropic plan at a moderate epsilon is unique: compare with POT's log-domain solver
    x, y, a, b = clouds
    cost = ot.dist(x, y, metric="sqeuclidean")
    plan, _ = sinkhorn_log(torch.tensor(a), torch.tensor(b), torch.tensor(cost), epsilon=0.5, n_iter=5000, tol=1e-12)
    reference = ot.sinkhorn(a, b, cost, reg=0.5, method="sinkhorn_log", numItermax=5000, stopThr=1e-12)
    np.testing.assert_allclose(plan.numpy(), reference, atol=1e-8)


def test_transport_plan_switches_to_sinkhorn_above_emd_max(clouds):
    x, y, a, b = clouds
    xt, yt, at, bt = (torch.tensor(v) for v in (x, y, a, b))
    exact, _ = transport_plan(xt, yt, at, bt, emd_max=40)
    entropic, _ = transport_plan(xt, yt, at, bt, emd_max=39, epsilon=0.5)
    # EMD plans are sparse (at most n + m - 1 non-zeros), entropic plans are dense
    assert int((exact > 1e-12).sum()) <= len(x) + len(y) - 1
    assert int((entropic > 0).sum()) == len(x) * len(y)
    reference, _ = sinkhorn_log(at, bt, sq_cost(xt, yt), 0.5)
    torch.testing.assert_close(entropic, reference)


def test_sinkhorn_fallback_plan_has_the_right_marginals(clouds):
    # BUG (reported): above `emd_max` the plan comes from `sinkhorn_log` with its default 200
    # iterations at the default epsilon=0.01; on unit-scale data that is far from converged and the
    # plan's first marginal is off by ~60 % of a weight (transport cost ~25 % low), silently.
    x, y, a, b = clouds
    xt, yt, at, bt = (torch.tensor(v) for v in (x, y, a, b))
    plan, _ = transport_plan(xt, yt, at, bt, emd_max=10)
    np.testing.assert_allclose(plan.sum(1).numpy(), a, atol=1e-3)
    np.testing.assert_allclose(plan.sum(0).numpy(), b, atol=1e-3)


# --------------------------------------------------------------------------- ot_loss


def test_ot_loss_value_is_squared_w2(clouds):
    x, y, a, b = clouds
    expected = ot.emd2(a, b, ot.dist(x, y, metric="sqeuclidean"))
    value = ot_loss(torch.tensor(x), torch.tensor(y), torch.tensor(a), torch.tensor(b))
    assert float(value) == pytest.approx(expected, rel=1e-8)
    # uniform target weights by default
    value_uniform = ot_loss(torch.tensor(x), torch.tensor(y), torch.tensor(a))
    expected_uniform = ot.emd2(a, np.full(len(y), 1 / len(y)), ot.dist(x, y, metric="sqeuclidean"))
    assert float(value_uniform) == pytest.approx(expected_uniform, rel=1e-8)


def test_ot_loss_gradient_in_positions_is_the_envelope_gradient(clouds):
    x, y, a, b = clouds
    xt = torch.tensor(x, requires_grad=True)
    ot_loss(xt, torch.tensor(y), torch.tensor(a), torch.tensor(b)).backward()
    plan = ot.emd(a, b, ot.dist(x, y, metric="sqeuclidean"))
    expected = 2 * (plan.sum(1)[:, None] * x - plan @ y)  # 2 Σ_j P_ij (x_i − y_j)
    np.testing.assert_allclose(xt.grad.numpy(), expected, atol=1e-10)


def test_ot_loss_gradient_in_positions_matches_finite_differences(clouds):
    x, y, a, b = clouds
    xt = torch.tensor(x, requires_grad=True)
    ot_loss(xt, torch.tensor(y), torch.tensor(a), torch.tensor(b)).backward()
    direction = np.random.default_rng(3).normal(size=x.shape)
    h = 1e-6

    def w2sq(z):
        return ot.emd2(a, b, ot.dist(z, y, metric="sqeuclidean"))

    fd = (w2sq(x + h * direction) - w2sq(x - h * direction)) / (2 * h)
    assert float((xt.grad.numpy() * direction).sum()) == pytest.approx(fd, rel=1e-5)


def test_ot_loss_gradient_in_weights_matches_finite_differences(clouds):
    # the weights enter through the centred dual potential; the loss normalises them
    x, y, a, b = clouds
    at = torch.tensor(2 * a, requires_grad=True)
    ot_loss(torch.tensor(x), torch.tensor(y), at, torch.tensor(b)).backward()
    direction = np.random.default_rng(4).normal(size=a.shape) * a
    h = 1e-7
    cost = ot.dist(x, y, metric="sqeuclidean")

    def w2sq(w):
        return ot.emd2(w / w.sum(), b, cost)

    fd = (w2sq(2 * a + h * direction) - w2sq(2 * a - h * direction)) / (2 * h)
    assert float((at.grad.numpy() * direction).sum()) == pytest.approx(fd, rel=1e-4, abs=1e-8)


def _smoothed_euclidean(x, y):
    delta = EUCLIDEAN_SMOOTHING
    return np.sqrt(cdist(x, y, "sqeuclidean") + delta**2) - delta


def test_euclidean_ot_loss_is_w1_with_the_envelope_gradient(clouds):
    x, y, a, b = clouds
    xt = torch.tensor(x, requires_grad=True)
    value = ot_loss(xt, torch.tensor(y), torch.tensor(a), torch.tensor(b), cost="euclidean")
    assert float(value) == pytest.approx(ot.emd2(a, b, _smoothed_euclidean(x, y)), rel=1e-8)
    # within the smoothing length of the exact W1
    assert abs(float(value) - ot.emd2(a, b, ot.dist(x, y, metric="euclidean"))) <= EUCLIDEAN_SMOOTHING
    value.backward()
    plan = ot.emd(a, b, _smoothed_euclidean(x, y))
    diff = x[:, None, :] - y[None, :, :]
    norm = np.sqrt((diff**2).sum(2, keepdims=True) + EUCLIDEAN_SMOOTHING**2)
    np.testing.assert_allclose(xt.grad.numpy(), (plan[:, :, None] * diff / norm).sum(1), atol=1e-10)
    # the batched form gives the same value
    (batched,) = ot_losses([(torch.tensor(x), torch.tensor(y), torch.tensor(a))], cost="euclidean")
    expected_uniform = ot.emd2(a, np.full(len(y), 1 / len(y)), _smoothed_euclidean(x, y))
    assert float(batched) == pytest.approx(expected_uniform, rel=1e-8)


@pytest.mark.parametrize("offset", [0.0, 1e-4])
def test_euclidean_ot_loss_gradient_is_bounded_where_particles_sit_on_cells(offset):
    # float32 and > 25 rows: torch.cdist's matrix-product path, whose rounding blurs tiny distances;
    # each particle's gradient is at most its plan mass (its weight) times |∇ distance| ≤ 1
    rng = np.random.default_rng(6)
    y = torch.tensor(rng.normal(size=(60, 4)), dtype=torch.float32)
    x = (y + offset * torch.tensor(rng.normal(size=(60, 4)), dtype=torch.float32)).requires_grad_(True)
    value = ot_loss(x, y, torch.ones(60), cost="euclidean")
    value.backward()
    assert float(value) == pytest.approx(0.0, abs=1e-4)
    assert torch.isfinite(x.grad).all()
    assert float(x.grad.norm(dim=1).max()) <= 1.05 / 60


def test_unknown_ground_cost_is_a_value_error_listing_the_choices(clouds):
    x, y, a, _ = clouds
    with pytest.raises(
        ValueError, match=r"Unknown transport cost 'cityblock'; choose one of \['sqeuclidean', 'euclidean'\]"
    ):
        ot_loss(torch.tensor(x), torch.tensor(y), torch.tensor(a), cost="cityblock")
    assert ground_cost("sqeuclidean") is sq_cost


def test_plans_solved_concurrently_equal_plans_solved_one_by_one():
    rng = np.random.default_rng(5)
    problems = []
    for n, m in ((60, 50), (80, 80), (30, 90), (70, 40)):
        a = rng.random(n) + 0.1
        problems.append(
            (
                torch.tensor(rng.normal(size=(n, 3))),
                torch.tensor(rng.normal(size=(m, 3)) + 0.5),
                torch.tensor(a / a.sum()),
                torch.full((m,), 1.0 / m, dtype=torch.float64),
            )
        )
    together = transport_plans(problems)
    for (x, y, a, b), (plan, f) in zip(problems, together, strict=True):
        plan1, f1 = transport_plan(x, y, a, b)
        torch.testing.assert_close(plan, plan1, rtol=0, atol=0)
        torch.testing.assert_close(f, f1, rtol=0, atol=0)
    losses = ot_losses([(x, y, 3 * a) for x, y, a, _ in problems])
    for (x, y, a, _), loss in zip(problems, losses, strict=True):
        torch.testing.assert_close(loss, ot_loss(x, y, a), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("emd_max", [3000, 10])  # exact and Sinkhorn
@pytest.mark.parametrize("where", ["positions", "weights"])
def test_non_finite_input_gives_a_nan_plan_at_once(clouds, emd_max, where, recwarn, ruotools_log):
    """A training step after a NaN loss gets NaN plans, with no solver run (no warning, no iterations)."""
    x, y, a, b = (torch.tensor(v) for v in clouds)
    if where == "positions":
        x[3, 1] = float("nan")
    else:
        a[0] = float("nan")
    plan, f = transport_plan(x, y, a, b, emd_max=emd_max)
    assert plan.shape == (len(x), len(y))
    assert torch.isnan(plan).all()
    assert torch.isnan(f).all()
    assert len(recwarn) == 0  # POT: "Problem unbounded"
    assert ruotools_log.records == []  # Sinkhorn: "did not converge" after all its iterations
    assert torch.isnan(ot_loss(x.requires_grad_(True), y, a, emd_max=emd_max))
