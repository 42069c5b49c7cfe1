"""benchmarks/action_bound.py: the Hellinger–Kantorovich least action between snapshots."""

import numpy as np
import pytest


@pytest.mark.parametrize(
    ("m0", "m1", "d", "delta"),
    [(1.0, 1.0, 0.5, 1.0), (1.0, 2.5, 0.3, 0.7), (0.4, 1.0, 2.0, 1.0), (2.0, 0.5, 0.0, 1.3)],
)
def test_two_points_match_the_cone_distance(action_bound, m0, m1, d, delta):
    # one point to one point: δ² (m0 + m1 − 2 √(m0 m1) cos(min(d/δ, π/2))), the cone distance of LMS 2018
    lower, upper = action_bound.hk_squared([[0.0, 0.0]], [m0], [[d, 0.0]], [m1], delta)
    exact = delta**2 * (m0 + m1 - 2 * np.sqrt(m0 * m1) * np.cos(min(d / delta, np.pi / 2)))
    assert lower <= exact + 1e-9 <= upper + 2e-9
    assert lower == pytest.approx(exact, rel=1e-4, abs=1e-9)


def test_pure_growth_costs_the_hellinger_distance(action_bound):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 2))
    a = rng.random(30)
    lower, upper = action_bound.hk_squared(x, a, x, 3.0 * a, delta=0.5)
    exact = 0.25 * (np.sqrt(3.0) - 1.0) ** 2 * a.sum()  # each point grows in place: δ² (√(3a) − √a)²
    assert lower == pytest.approx(exact, rel=1e-3)
    assert upper == pytest.approx(exact, rel=1e-3)


def test_large_delta_is_balanced_transport(action_bound):
    # with equal masses and δ far above the distances, destroying mass is dear: HK_δ² → W2² (POT's exact EMD)
    import ot

    rng = np.random.default_rng(2)
    x0, x1 = rng.normal(size=(40, 2)), rng.normal(size=(50, 2)) + np.array([0.5, 0.0])
    a, b = np.full(40, 1 / 40), np.full(50, 1 / 50)
    w2sq = ot.emd2(a, b, ot.dist(x0, x1))
    lower, upper = action_bound.hk_squared(x0, a, x1, b, delta=20.0, eps=1e-7)  # ε in units of ℓ ≈ (d / δ)²
    assert lower <= w2sq * (1 + 1e-6)  # growth is one more way to move mass: never dearer than transport
    assert lower == pytest.approx(w2sq, rel=0.005)
    assert upper == pytest.approx(w2sq, rel=0.005)


def test_bounds_bracket_and_are_tight_on_unequal_clouds(action_bound):
    rng = np.random.default_rng(3)
    x0, x1 = rng.normal(size=(60, 3)), 0.5 * rng.normal(size=(80, 3)) + 1.0
    a, b = rng.random(60) / 60, 2.0 * rng.random(80) / 80
    lower, upper = action_bound.hk_squared(x0, a, x1, b, delta=1.2)
    assert 0 < lower <= upper
    assert upper - lower < 0.01 * upper


def test_flow_action_equals_the_action_of_a_deterministic_fit(action_bound):
    # without noise the SDE drift is the velocity: evaluate's action and the trapezoid rule agree
    import ruotools as rt

    rt.settings.verbosity = "warning"
    adata = rt.datasets.simulated_gene()
    adata = adata[np.random.default_rng(0).choice(adata.n_obs, 400, replace=False)].copy()
    rt.tl.fit_ruot(adata, "time", sigma=0.0, max_epochs=1, random_state=0)
    model = rt.RUOTModel.from_adata(adata)
    times = model.time_points
    x0 = np.asarray(adata.X[adata.obs["time"].to_numpy() == times[0]], np.float64)
    table = rt.tl.evaluate(adata, stochastic=False, action_alpha=1.0)
    flow = action_bound.flow_action(model, x0, times)
    assert flow[0] == 0.0
    np.testing.assert_allclose(flow[1:], table["action"].to_numpy(), rtol=2e-3)


def test_interpolant_starts_and_ends_at_the_snapshots(action_bound):
    rng = np.random.default_rng(4)
    x0, x1 = rng.normal(size=(20, 2)), rng.normal(size=(25, 2)) + 0.7
    a, b = np.full(20, 1 / 20), np.full(25, 2.0 / 25)
    for fraction, x, m in ((0.0, x0, a), (1.0, x1, b)):
        pts, w = action_bound.hk_interpolate(x0, a, x1, b, delta=1.5, fraction=fraction)
        # every point sits on a support point of the snapshot, carrying that point's mass in total
        nearest = np.argmin(((pts[:, None] - x[None]) ** 2).sum(-1), axis=1)
        assert np.allclose(pts, x[nearest])
        np.testing.assert_allclose(np.bincount(nearest, weights=w, minlength=len(x)), m, rtol=1e-3, atol=1e-6)


def test_interpolant_of_two_points_follows_the_cone_geodesic(action_bound):
    # pure growth in place: √mass is linear in time; a move of d < πδ/2: position along the cone's chord
    pts, w = action_bound.hk_interpolate([[0.0]], [1.0], [[0.0]], [4.0], delta=1.0, fraction=0.5)
    assert w.sum() == pytest.approx(((1 + 2) / 2) ** 2, rel=1e-4)
    theta, s = 0.6, 0.3
    pts, w = action_bound.hk_interpolate([[0.0]], [1.0], [[theta]], [1.0], delta=1.0, fraction=s)
    z = (1 - s) + s * np.exp(1j * theta)
    assert pts[0, 0] == pytest.approx(np.angle(z), rel=1e-4)
    assert w.sum() == pytest.approx(abs(z) ** 2, rel=1e-4)


def test_interpolant_is_a_geodesic(action_bound):
    # on a constant-speed geodesic HK(μ0, μs) = s·HK(μ0, μ1) and HK(μs, μ1) = (1 − s)·HK(μ0, μ1)
    rng = np.random.default_rng(5)
    x0, x1 = rng.normal(size=(15, 2)), 0.6 * rng.normal(size=(20, 2)) + np.array([1.0, 0.3])
    a, b = rng.random(15) / 15 + 0.02, 2 * rng.random(20) / 20 + 0.02
    full = np.sqrt(action_bound.hk_squared(x0, a, x1, b, 1.5)[0])
    for s in (0.3, 0.6):
        pts, w = action_bound.hk_interpolate(x0, a, x1, b, 1.5, s)
        assert np.sqrt(action_bound.hk_squared(x0, a, pts, w, 1.5)[0]) == pytest.approx(s * full, rel=1e-3)
        assert np.sqrt(action_bound.hk_squared(pts, w, x1, b, 1.5)[0]) == pytest.approx((1 - s) * full, rel=1e-3)


def test_mass_without_a_partner_is_destroyed_or_created_in_place(action_bound):
    # x = 5 is beyond πδ/2 from the only target: its mass decays as (1 − s)² where it is
    x0, a, x1, b = [[0.0], [5.0]], [1.0, 1.0], [[0.3]], [2.0]
    for s in (0.0, 0.5, 1.0):
        pts, w = action_bound.hk_interpolate(x0, a, x1, b, delta=1.0, fraction=s)
        far = np.isclose(pts[:, 0], 5.0)
        assert w[far].sum() == pytest.approx((1 - s) ** 2, abs=1e-9)
    assert w.sum() == pytest.approx(2.0, rel=1e-6)  # s = 1: all of μ1
