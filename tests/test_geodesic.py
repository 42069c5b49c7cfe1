"""ruotools.core.geodesic: the least-action interpolant between two snapshots and its midpoint targets."""

import numpy as np
import pytest

from ruotools.core.geodesic import hk_interpolate, midpoint_targets


def _cloud(n, seed, shift=0.0):
    return np.random.default_rng(seed).normal(size=(n, 2)) * 0.2 + [shift, 0.0]


def test_midpoint_of_a_translation_is_halfway_with_the_same_shape():
    # equal masses and δ = √(8α) = 4 above the shift: transport, not growth, and each cell moves half-way
    x0 = _cloud(300, 0)
    x1 = x0 + np.array([1.0, 0.0])  # the same cells shifted: the optimal plan pairs each with its own image
    (mid,) = midpoint_targets([x0, x1], [1.0, 1.0], alpha=2.0, n_cells=300, random_state=0)
    assert mid.shape == (300, 2)
    assert mid.dtype == np.float32
    assert mid.mean(0) == pytest.approx([0.5, 0.0], abs=0.05)
    assert mid.std(0) == pytest.approx(x0.std(0), abs=0.03)


def test_pure_growth_stays_in_place_and_the_mass_follows_the_hellinger_path():
    x = _cloud(80, 2)
    a = np.full(80, 1 / 80)
    points, weights = hk_interpolate(x, a, x, 4.0 * a, delta=1.0, fraction=0.5)
    # each cell grows in place along (1 − s + 2s)²: 2.25 × its mass halfway
    assert weights.sum() == pytest.approx(2.25, rel=1e-3)
    nearest = np.min(np.linalg.norm(points[:, None] - x[None], axis=2), axis=1)
    assert np.average(nearest, weights=weights) < 0.02


def test_mass_far_away_is_destroyed_and_created_not_moved():
    # beyond πδ/2 transport never pays: halfway, (1 − s)² of the first cloud and s² of the second are left in place
    x0, x1 = _cloud(50, 3), _cloud(50, 4, shift=10.0)
    points, weights = hk_interpolate(x0, np.full(50, 0.02), x1, np.full(50, 0.02), delta=1.0, fraction=0.5)
    assert weights.sum() == pytest.approx(0.5, rel=1e-3)
    between = (points[:, 0] > 2.0) & (points[:, 0] < 8.0)
    assert weights[between].sum() < 1e-6


def test_midpoint_targets_are_seeded_and_bounded():
    xs = [_cloud(1500, 5), _cloud(1200, 6, 0.5), _cloud(40, 7, 1.0)]
    first = midpoint_targets(xs, [1.0, 1.5, 2.0], alpha=1.0, n_cells=200, random_state=4)
    again = midpoint_targets(xs, [1.0, 1.5, 2.0], alpha=1.0, n_cells=200, random_state=4)
    other = midpoint_targets(xs, [1.0, 1.5, 2.0], alpha=1.0, n_cells=200, random_state=5)
    assert [m.shape for m in first] == [(200, 2), (200, 2)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0], other[0])
