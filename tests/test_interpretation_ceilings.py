"""Helpers of benchmarks/interpretation.py: the symmetric-Jacobian ceilings (``var_ruot``) and the true fates."""

import numpy as np
import pytest


def test_ceilings_of_a_small_network_by_hand(interpretation):
    # W[i, j]: effect of gene j on gene i. 0 ⇄ 1 with opposite signs, 1 → 2 one way
    w = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    c = interpretation.symmetric_ceilings(w)
    assert c["edges"] == 3
    assert c["one-way edges"] == 1
    assert c["edge sign agreement"] == pytest.approx(2 / 3)  # one edge of the opposite pair is lost
    # positives score 2, 2, 1; negatives 1 (the reverse of 1 → 2, tied), 0, 0: (3 + 3 + 2.5) / 9
    assert c["edge AUROC"] == pytest.approx(8.5 / 9)


def test_no_symmetric_score_beats_the_ceiling(interpretation):
    rng = np.random.default_rng(0)
    for _ in range(20):
        w = rng.normal(size=(6, 6)) * (rng.random((6, 6)) < 0.3)
        np.fill_diagonal(w, 0.0)
        if not (w != 0).any():
            continue
        c = interpretation.symmetric_ceilings(w)
        off = ~np.eye(6, dtype=bool)
        edges = (w != 0) & off
        for score in (np.abs(w) + np.abs(w).T, np.abs(w + w.T), rng.random((6, 6)) + rng.random((6, 6)).T):
            assert interpretation.auroc(score[off], edges[off]) <= c["edge AUROC"] + 1e-12
        sign = np.sign(w + w.T)  # the best symmetric signs
        assert np.mean(sign[edges] == np.sign(w[edges])) <= c["edge sign agreement"] + 1e-12
        # a directed matrix can be perfect
        assert interpretation.auroc(np.abs(w)[off], edges[off]) == 1.0


def test_true_fate_probabilities_follow_the_start_state(interpretation):
    import ruotools as rt

    # half of the first cells start in each lineage's stable state: their fate is decided already
    adata = rt.datasets.bifurcating_network(start="lineages", n_cells0=40, times=(0, 1), random_state=0)
    first = adata.obs["time"].to_numpy() == 0
    x1_side = np.asarray(adata.X[first, 0] > adata.X[first, 1])
    p = interpretation.true_fate_probabilities(adata, n_paths=20)
    assert p.shape == (first.sum(),)
    assert np.all((p >= 0) & (p <= 1))
    assert p[x1_side].min() > 0.9
    assert p[~x1_side].max() < 0.1
    # the same paths again for the same seed
    np.testing.assert_array_equal(p, interpretation.true_fate_probabilities(adata, n_paths=20))


def test_twin_ratios_mark_growth_between_lineages_and_give_the_first_time_the_second(interpretation):
    import ruotools as rt

    loader, load_kw, _ = interpretation.DATASETS["lineages_mild"]
    kw = {**load_kw, "times": (0, 1, 2, 3)}
    adata = getattr(rt.datasets, loader)(random_state=0, **kw)
    ratios = interpretation.twin_ratios(adata, loader, kw)
    assert sorted(ratios) == [0, 1, 2, 3]
    assert ratios[0] == ratios[1]  # the first time's growth shows first in the second snapshot
    # growth that differs between separate lineages leaves a trace that uniform growth does not
    assert ratios[3] > 2 * interpretation.MIN_TWIN_RATIO
    # growth inside one unimodal cloud does not (regulatory_network's docstring: 0.92-1.03 floors)
    loader, load_kw, _ = interpretation.DATASETS["regulatory"]
    kw = {**load_kw, "times": (0, 1, 2, 3)}
    cloud = interpretation.twin_ratios(getattr(rt.datasets, loader)(random_state=0, **kw), loader, kw)
    assert max(cloud.values()) < interpretation.MIN_TWIN_RATIO
