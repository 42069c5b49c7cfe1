"""Simulators with ground truth: rt.datasets.three_gene_network and rt.datasets.regulatory_network."""

import anndata as ad
import numpy as np
import pytest
from scipy.stats import spearmanr

from ruotools import datasets
from ruotools.datasets import _simulators as sim

SHIPPED_COUNTS = [400, 442, 530, 690, 969]


@pytest.fixture(scope="module")
def three():
    return datasets.three_gene_network(random_state=0)


@pytest.fixture(scope="module")
def linear():
    return datasets.regulatory_network(n_genes=6, n_cells0=300, random_state=1)


@pytest.fixture(scope="module")
def hill():
    return datasets.regulatory_network(n_genes=6, hill=True, n_cells0=300, random_state=2)


@pytest.fixture(scope="module")
def bifurcating():
    return datasets.bifurcating_network(random_state=0)


def _functions(adata):
    """The truth functions of a simulated AnnData, bound to its stored description."""
    truth = adata.uns["truth"]
    if truth["model"] == "three_gene":
        params = truth["params"]
        return (
            lambda x: sim.three_gene_drift(x, params),
            lambda x: sim.three_gene_jacobian(x, params),
            lambda x: sim.three_gene_growth(x, params),
            lambda x: sim.three_gene_growth_gradient(x, params),
            lambda x: sim.three_gene_rates(x, params),
        )
    return (
        lambda x: sim.regulatory_drift(x, truth),
        lambda x: sim.regulatory_jacobian(x, truth),
        lambda x: sim.regulatory_growth(x, truth),
        lambda x: sim.regulatory_growth_gradient(x, truth),
        lambda x: sim.regulatory_rates(x, truth),
    )


def _latent(adata):
    return np.asarray(adata.obsm.get("X_latent", adata.X), dtype=np.float64)


def _central_differences(f, x, eps=1e-6):
    """``out[..., j] = (f(x + eps e_j) − f(x − eps e_j)) / (2 eps)``."""
    cols = []
    for j in range(x.shape[1]):
        step = np.zeros_like(x)
        step[:, j] = eps
        cols.append((f(x + step) - f(x - step)) / (2 * eps))
    return np.stack(cols, axis=-1)


# ---------------------------------------------------------------- layout and resemblance


def test_three_gene_layout(three):
    n = three.n_obs
    assert three.X.dtype == np.float32
    assert three.X.shape == (n, 3)
    assert three.var_names.tolist() == ["x1", "x2", "x3"]
    assert three.obs["time"].dtype == np.float64
    assert sorted(three.obs["time"].unique()) == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert three.obs["lineage"].cat.categories.tolist() == ["quiescent", "switching"]
    assert (three.X >= 0).all()
    assert three.obsm["true_drift"].shape == (n, 3)
    assert three.obsm["true_jacobian"].shape == (n, 3, 3)
    assert three.obsm["true_growth_gradient"].shape == (n, 3)
    assert set(three.uns["dataset"]) >= {"name", "description", "source"}
    truth = three.uns["truth"]
    counts = three.obs["time"].value_counts().sort_index().to_numpy()
    np.testing.assert_array_equal(counts, truth["population_size"])  # every snapshot is the whole population


def test_three_gene_resembles_simulated_gene(three):
    """Cell counts and cluster paths close to the shipped snapshots it re-creates."""
    shipped = datasets.simulated_gene()
    counts = three.obs["time"].value_counts().sort_index().to_numpy()
    np.testing.assert_allclose(counts, SHIPPED_COUNTS, rtol=0.12)
    x_ref, t_ref = np.asarray(shipped.X), shipped.obs["time"].to_numpy()
    x, t = np.asarray(three.X)[:, :2], three.obs["time"].to_numpy()
    switching = (three.obs["lineage"] == "switching").to_numpy()
    for time in (1.0, 2.0, 3.0, 4.0):
        moving_ref = x_ref[(t_ref == time) & (x_ref.sum(axis=1) > 0.5)].mean(axis=0)
        np.testing.assert_allclose(x[(t == time) & switching].mean(axis=0), moving_ref, atol=0.15)
        assert np.abs(x[(t == time) & ~switching].mean(axis=0)).max() < 0.15
    assert x.max() < 2.6


def test_regulatory_layout(linear):
    d = 6
    assert linear.X.dtype == np.float32
    assert linear.X.shape[1] == d
    assert linear.var_names.tolist() == [f"x{i}" for i in range(1, d + 1)]
    truth = linear.uns["truth"]
    w = truth["W"]
    assert w.shape == (d, d)
    assert np.all(np.diag(w) == 0)
    assert np.count_nonzero(w) == 2 * d == len(truth["edges"])
    assert np.all(w[truth["edges"][:, 0], truth["edges"][:, 1]] != 0)
    assert np.max(np.linalg.eigvals(w).real) <= 0.5 * truth["decay"] + 1e-9  # stable linear network
    assert linear.obsm["true_jacobian"].shape == (linear.n_obs, d, d)


# ---------------------------------------------------------------- determinism


@pytest.mark.parametrize(
    "make",
    [
        lambda seed: datasets.three_gene_network(n_cells0=100, times=(0, 1, 2), random_state=seed),
        lambda seed: datasets.regulatory_network(n_genes=4, n_cells0=100, times=(0, 1, 2), random_state=seed),
        lambda seed: datasets.regulatory_network(
            n_genes=4, hill=True, n_cells0=100, times=(0, 1), counts=True, n_count_genes=12, random_state=seed
        ),
        lambda seed: datasets.bifurcating_network(n_noise_genes=0, n_cells0=100, times=(0, 1), random_state=seed),
    ],
    ids=["three_gene", "linear", "hill_counts", "bifurcating"],
)
def test_same_seed_same_data(make):
    a, b, c = make(3), make(3), make(4)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.obs["time"], b.obs["time"])
    np.testing.assert_array_equal(a.obsm["true_jacobian"], b.obsm["true_jacobian"])
    for key, value in a.uns["truth"].items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(value, b.uns["truth"][key])
    assert a.shape != c.shape or not np.array_equal(a.X, c.X)


# ---------------------------------------------------------------- truth against its own functions


@pytest.mark.parametrize("name", ["three", "linear", "hill", "bifurcating"])
def test_truth_matches_finite_differences(name, request):
    adata = request.getfixturevalue(name)
    drift, jacobian, growth, gradient, rates = _functions(adata)
    x = _latent(adata)
    np.testing.assert_array_equal(adata.obsm["true_drift"], drift(x))
    np.testing.assert_array_equal(adata.obs["true_growth"].to_numpy(), growth(x))
    birth, death = rates(x)
    assert (birth >= 0).all()
    assert (death >= 0).all()
    np.testing.assert_allclose(birth - death, adata.obs["true_growth"].to_numpy(), atol=1e-12)

    numeric = _central_differences(drift, x)
    np.testing.assert_allclose(adata.obsm["true_jacobian"], numeric, atol=1e-6)
    np.testing.assert_allclose(jacobian(x), numeric, atol=1e-6)
    numeric_gradient = _central_differences(growth, x)
    np.testing.assert_allclose(adata.obsm["true_growth_gradient"], numeric_gradient, atol=1e-6)
    np.testing.assert_allclose(gradient(x), numeric_gradient, atol=1e-6)
    assert np.abs(numeric).max() > 0.1  # the check is not vacuous


def test_linear_jacobian_is_the_regulation_matrix(linear):
    truth = linear.uns["truth"]
    expected = truth["W"] - truth["decay"] * np.eye(truth["W"].shape[0])
    jac = linear.obsm["true_jacobian"]
    np.testing.assert_allclose(jac, np.broadcast_to(expected, jac.shape))


def test_jacobian_signs_follow_the_regulation(three, hill):
    # three genes: X2 ⊣ X1, X1 ⊣ X2, X3 → X1, X2, X3 in the cells where X3 is on and the regulators expressed
    on = (three.obs["lineage"] == "switching").to_numpy() & (np.asarray(three.X) > 0.05).all(axis=1)
    jac = three.obsm["true_jacobian"][on]
    regulation = three.uns["truth"]["regulation"]
    targets, regulators = np.nonzero(regulation - np.diag(np.diag(regulation)))  # the diagonal also holds decay
    assert len(targets) == 4
    assert np.all(np.sign(jac[:, targets, regulators]) == regulation[targets, regulators])
    # Hill network: sign(J_ij) = sign(W_ij) on every edge where the regulator is expressed
    w = hill.uns["truth"]["W"]
    x = np.asarray(hill.X)
    for i, j in hill.uns["truth"]["edges"]:
        expressed = x[:, j] > 0.05
        assert np.all(np.sign(hill.obsm["true_jacobian"][expressed, i, j]) == np.sign(w[i, j]))


# ---------------------------------------------------------------- population sizes


def test_population_follows_expected_growth():
    """log N(t)/N(0) ≈ ∫ mean g dt, both from the simulator's integral and from the snapshots' growth."""
    times = np.round(np.linspace(0.0, 2.0, 21), 10)
    adata = datasets.regulatory_network(n_genes=6, n_cells0=2000, times=times, growth_coef=0.8, random_state=5)
    truth = adata.uns["truth"]
    sizes = truth["population_size"].astype(float)
    log_ratio = np.log(sizes / sizes[0])
    assert np.ptp(log_ratio) > 0.3  # the population does change
    # demographic noise: sd of log N(t) ≈ sqrt(∫(b + d) dt / N0) ≤ sqrt(max(b + d) t / N0)
    birth, death = sim.regulatory_rates(_latent(adata), truth)
    tol = 4 * np.sqrt((birth + death).max() * times / sizes[0]) + 0.01
    assert np.all(np.abs(log_ratio - truth["expected_log_mass"]) <= tol)
    t = adata.obs["time"].to_numpy()
    mean_growth = np.array([adata.obs["true_growth"].to_numpy()[t == s].mean() for s in times])
    integral = np.concatenate([[0.0], np.cumsum(np.diff(times) * (mean_growth[1:] + mean_growth[:-1]) / 2)])
    assert np.all(np.abs(log_ratio - integral) <= tol + 0.02)


def test_three_gene_population_follows_expected_growth(three):
    truth = three.uns["truth"]
    sizes = truth["population_size"].astype(float)
    log_ratio = np.log(sizes / sizes[0])
    tol = 4 * np.sqrt(0.6 * truth["times"] / sizes[0]) + 0.01
    assert np.all(np.abs(log_ratio - truth["expected_log_mass"]) <= tol)
    assert log_ratio[-1] > 0.7  # the population more than doubles


def test_sample_fraction_keeps_sizes_proportional():
    adata = datasets.regulatory_network(n_genes=4, n_cells0=400, sample_fraction=0.25, random_state=0)
    counts = adata.obs["time"].value_counts().sort_index().to_numpy()
    np.testing.assert_array_equal(counts, np.round(0.25 * adata.uns["truth"]["population_size"]))


def test_default_regulatory_growth_varies_at_every_time():
    adata = datasets.regulatory_network(random_state=0)
    t, g = adata.obs["time"].to_numpy(), adata.obs["true_growth"].to_numpy()
    assert min(g[t == s].std() for s in np.unique(t)) >= 0.1


def test_three_gene_params_override():
    base = datasets.three_gene_network(n_cells0=200, times=(0, 2), random_state=0)
    dying = datasets.three_gene_network(n_cells0=200, times=(0, 2), params={"death": 0.5}, random_state=0)
    assert dying.uns["truth"]["params"]["death"] == 0.5
    assert dying.uns["truth"]["population_size"][-1] < 0.6 * base.uns["truth"]["population_size"][-1]
    np.testing.assert_allclose(
        dying.obs["true_growth"], sim.three_gene_growth(np.asarray(dying.X, dtype=np.float64), {"death": 0.5})
    )


# ---------------------------------------------------------------- given networks and the bifurcating preset


def test_given_hill_regulation_and_initial_state():
    cascade = np.array([[0.0, 0.0, 0.0], [1.2, 0.0, 0.0], [0.0, -0.8, 0.7]])  # x1 → x2 ⊣ x3, x3 → x3
    mean0, std0 = np.array([1.5, 0.5, 1.0]), np.array([0.2, 0.0, 0.1])
    adata = datasets.regulatory_network(
        regulation=cascade, hill=True, initial_mean=mean0, initial_std=std0, basal=[0.3, 0.1, 0.2],
        n_cells0=2000, times=(0, 0.5), random_state=0,
    )  # fmt: skip
    truth = adata.uns["truth"]
    np.testing.assert_array_equal(truth["W"], cascade)
    assert truth["edges"].tolist() == [[1, 0], [2, 1], [2, 2]]  # the non-zero entries, self-loop included
    np.testing.assert_array_equal(truth["basal"], [0.3, 0.1, 0.2])
    np.testing.assert_array_equal(truth["initial_std"], std0)
    assert adata.uns["dataset"]["params"]["regulation_given"] is True
    x0 = np.asarray(adata.X, dtype=np.float64)[adata.obs["time"].to_numpy() == 0]
    np.testing.assert_allclose(x0.mean(axis=0), mean0, atol=0.02)
    np.testing.assert_allclose(x0.std(axis=0), std0, atol=0.01)
    np.testing.assert_array_equal(x0[:, 1], np.float32(0.5))  # sd 0: every cell at the mean
    # the given basal production enters the drift: u = b − decay·x for a gene without inputs
    x = _latent(adata)
    np.testing.assert_allclose(adata.obsm["true_drift"][:, 0], 0.3 - truth["decay"] * x[:, 0], atol=1e-12)


def test_given_linear_regulation_is_used_as_it_is():
    w = np.array([[0.0, 2.0], [2.0, 0.0]])  # eigenvalue 2 > decay / 2: a random network would be scaled down
    adata = datasets.regulatory_network(regulation=w, initial_mean=[1.0, -1.0], n_cells0=100, times=(0, 0.2))
    np.testing.assert_array_equal(adata.uns["truth"]["W"], w)
    decay = adata.uns["truth"]["decay"]
    np.testing.assert_allclose(adata.obsm["true_jacobian"][0], w - decay * np.eye(2))


def test_bifurcating_network_structure(bifurcating):
    truth = bifurcating.uns["truth"]
    w = truth["W"]
    assert bifurcating.shape[1] == 8
    assert truth["model"] == "hill"
    assert bifurcating.uns["dataset"]["name"] == "bifurcating_network"
    assert w[0, 0] > 0
    assert w[1, 1] > 0
    assert w[0, 1] < 0
    assert w[1, 0] < 0
    assert np.all(w[[2, 3], 0] > 0)
    assert np.all(w[[4, 5], 1] > 0)
    assert np.count_nonzero(w) == 8
    assert not np.any(w[6:])
    assert not np.any(w[:, 6:])
    assert truth["growth_genes"].tolist() == [0]
    # the progenitor state is a steady state and a saddle, unstable only along x1 − x2
    mean0 = truth["initial_mean"]
    np.testing.assert_allclose(sim.regulatory_drift(mean0, truth), 0.0, atol=1e-12)
    values, vectors = np.linalg.eig(sim.regulatory_jacobian(mean0, truth)[0])
    unstable = np.flatnonzero(values.real > 0)
    assert len(unstable) == 1
    direction = vectors[:, unstable[0]].real
    np.testing.assert_allclose(direction[0], -direction[1], atol=1e-9)  # x1 − x2 (downstream genes follow)
    assert abs(direction[0]) > 0.3
    np.testing.assert_allclose(direction[6:], 0.0, atol=1e-12)
    np.testing.assert_allclose(truth["growth_center"], [1.0], atol=0.05)  # growth switches at the saddle
    assert datasets.bifurcating_network(n_noise_genes=0, n_cells0=50, times=(0, 1)).shape[1] == 6


def test_bifurcating_network_splits_into_lineages_that_grow_differently(bifurcating):
    obs, x = bifurcating.obs, _latent(bifurcating)
    t, g, lineage = obs["time"].to_numpy(), obs["true_growth"].to_numpy(), obs["lineage"].to_numpy()
    assert np.all(lineage[t == 0] == "progenitor")
    late = t == 4
    assert np.mean(lineage[late] != "progenitor") > 0.9
    one, two = late & (lineage == "x1"), late & (lineage == "x2")
    assert one.sum() >= 50
    assert two.sum() >= 50
    assert np.all(x[one][:, [2, 3]].mean(axis=0) > 0.7)
    assert np.all(x[two][:, [2, 3]].mean(axis=0) < 0.2)
    assert np.all(x[two][:, [4, 5]].mean(axis=0) > 0.7)
    assert np.all(x[one][:, [4, 5]].mean(axis=0) < 0.2)
    assert g[one].mean() > 0.4
    assert g[two].mean() < -0.2
    assert min(g[t == s].std() for s in (1, 2, 3, 4)) >= 0.1
    share = [np.mean(lineage[t == s] == "x1") / np.mean(lineage[t == s] != "progenitor") for s in (2, 3, 4)]
    assert share[0] < share[1] < share[2]  # the growing lineage takes over


def _w1(a, b):
    import ot

    return float(ot.emd2(np.full(len(a), 1 / len(a)), np.full(len(b), 1 / len(b)), ot.dist(a, b, metric="euclidean")))


def _uniform_growth_twin(make):
    """W1 between each snapshot and the uniform-growth twin's, and the sampling floor, per time."""
    adata = make()
    truth = adata.uns["truth"]
    mean_rate = truth["expected_log_mass"][-1] / (truth["times"][-1] - truth["times"][0])
    twin = make(growth_coef=0.0, growth_base=float(mean_rate))
    assert np.all(twin.obs["true_growth"] == mean_rate)
    log_ratio = np.log(twin.uns["truth"]["population_size"][-1] / truth["population_size"][-1])
    assert abs(log_ratio) < 0.2  # the twin grows as much, uniformly
    rng = np.random.default_rng(0)
    t, t_twin = adata.obs["time"].to_numpy(), twin.obs["time"].to_numpy()
    x, x_twin = _latent(adata), _latent(twin)
    twin_w1, floor = {}, {}
    for s in truth["times"][1:]:
        snap = x[t == s]
        half = rng.permutation(len(snap))
        floor[s] = _w1(snap[half[: len(snap) // 2]], snap[half[len(snap) // 2 :]])
        twin_w1[s] = _w1(snap, x_twin[t_twin == s])
    return twin_w1, floor


def test_growth_between_lineages_is_identifiable_from_snapshots():
    """The bifurcating preset's snapshots differ from its uniform-growth twin's well above the sampling floor."""
    twin_w1, floor = _uniform_growth_twin(lambda **kw: datasets.bifurcating_network(random_state=0, **kw))
    for s in (2.0, 3.0, 4.0):
        assert twin_w1[s] > 1.5 * floor[s], (s, twin_w1[s], floor[s])


def test_growth_of_the_linear_network_is_not_identifiable_from_snapshots():
    """Default linear network: a near-Gaussian cloud, whose linear-ish growth acts like a drift.

    Its snapshots are as close to its uniform-growth twin's as two halves of one snapshot are to each other.
    """
    twin_w1, floor = _uniform_growth_twin(lambda **kw: datasets.regulatory_network(random_state=0, **kw))
    for s in (1.0, 2.0, 3.0, 4.0):
        assert twin_w1[s] < 1.15 * floor[s], (s, twin_w1[s], floor[s])


# ---------------------------------------------------------------- h5ad


@pytest.mark.parametrize(
    "make",
    [
        lambda: datasets.three_gene_network(n_cells0=100, times=(0, 1, 2), random_state=0),
        lambda: datasets.regulatory_network(n_genes=5, hill=True, n_cells0=100, times=(0, 1), random_state=0),
        lambda: datasets.regulatory_network(n_genes=5, n_cells0=100, counts=True, n_count_genes=20, random_state=0),
        lambda: datasets.bifurcating_network(n_cells0=100, times=(0, 1), random_state=0),
    ],
    ids=["three_gene", "hill", "linear_counts", "bifurcating"],
)
def test_h5ad_round_trip(make, tmp_path):
    adata = make()
    path = tmp_path / "sim.h5ad"
    adata.write_h5ad(path)
    back = ad.read_h5ad(path)
    np.testing.assert_array_equal(back.X, adata.X)
    for key in adata.obsm:
        np.testing.assert_array_equal(back.obsm[key], adata.obsm[key])
    for key in adata.layers:
        np.testing.assert_array_equal(back.layers[key], adata.layers[key])
    assert set(back.uns["truth"]) == set(adata.uns["truth"])
    # the reloaded description alone reproduces the truth
    drift, jacobian, growth, _, _ = _functions(back)
    x = _latent(back)
    np.testing.assert_allclose(drift(x), adata.obsm["true_drift"])
    np.testing.assert_allclose(jacobian(x), adata.obsm["true_jacobian"])
    np.testing.assert_allclose(growth(x), adata.obs["true_growth"])


# ---------------------------------------------------------------- counts


def test_counts_option():
    d, m = 5, 40
    adata = datasets.regulatory_network(n_genes=d, n_cells0=300, counts=True, n_count_genes=m, random_state=0)
    n = adata.n_obs
    assert adata.shape == (n, m)
    assert adata.X.dtype == np.float32
    assert adata.var_names[0] == "gene1"
    counts = adata.layers["counts"]
    assert np.issubdtype(counts.dtype, np.integer)
    assert (counts >= 0).all()
    np.testing.assert_array_equal(adata.X, counts.astype(np.float32))
    assert adata.obsm["X_latent"].shape == (n, d)
    assert adata.obsm["X_latent"].dtype == np.float32
    assert adata.obsm["true_jacobian"].shape == (n, d, d)
    truth = adata.uns["truth"]
    assert truth["count_loading"].shape == (m, d)
    assert truth["count_offset"].shape == (m,)
    latent = _latent(adata)
    rho = [spearmanr(counts[:, k], latent[:, k % d])[0] for k in range(m)]
    assert np.median(rho) > 0.5
    assert min(rho) > 0.2
    # the whole log-rate model explains the counts
    z = (latent - truth["latent_mean"]) / truth["latent_std"]
    log_rate = truth["count_offset"] + z @ truth["count_loading"].T
    assert np.corrcoef(log_rate.ravel(), np.log1p(counts).ravel())[0, 1] > 0.8


# ---------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    ("make", "kwargs", "match"),
    [
        (datasets.three_gene_network, {"n_cells0": 1}, "n_cells0"),
        (datasets.three_gene_network, {"times": (0,)}, "at least 2"),
        (datasets.three_gene_network, {"times": (0, 2, 1)}, "strictly increasing"),
        (datasets.three_gene_network, {"times": (-1, 1)}, "≥ 0"),
        (datasets.three_gene_network, {"sigma": -0.1}, "sigma"),
        (datasets.three_gene_network, {"dt": 0}, "dt"),
        (datasets.three_gene_network, {"sample_fraction": 1.5}, "sample_fraction"),
        (datasets.three_gene_network, {"params": {"alpha9": 1.0}}, "Unknown three-gene parameters"),
        (datasets.three_gene_network, {"params": {"k12": 0.0}}, "k12"),
        (datasets.regulatory_network, {"n_genes": 1}, "n_genes"),
        (datasets.regulatory_network, {"n_genes": 3, "n_edges": 7}, "n_edges"),
        (datasets.regulatory_network, {"growth_genes": (8,)}, "growth_genes"),
        (datasets.regulatory_network, {"growth_genes": (0, 0)}, "distinct"),
        (datasets.regulatory_network, {"growth_genes": "x1"}, "growth_genes"),
        (datasets.regulatory_network, {"growth_genes": (0, 1), "growth_coef": (1.0, 2.0, 3.0)}, "growth_coef"),
        (datasets.regulatory_network, {"growth_scale": 0.0}, "growth_scale"),
        (datasets.regulatory_network, {"turnover": -1.0}, "turnover"),
        (datasets.regulatory_network, {"hill_n": 0.5}, "hill_n"),
        (datasets.regulatory_network, {"sample_fraction": 0.0}, "sample_fraction"),
        (datasets.regulatory_network, {"n_count_genes": 0}, "n_count_genes"),
        (datasets.regulatory_network, {"growth_coef": 100.0, "n_cells0": 50, "times": (0, 1)}, "too fast"),
        (datasets.regulatory_network, {"regulation": np.zeros((3, 2))}, "square"),
        (datasets.regulatory_network, {"regulation": [[0.0, np.nan], [1.0, 0.0]]}, "finite"),
        (datasets.regulatory_network, {"regulation": "W"}, "regulation"),
        (datasets.regulatory_network, {"regulation": np.zeros((3, 3)), "n_genes": 4}, "n_genes"),
        (datasets.regulatory_network, {"regulation": np.zeros((3, 3)), "n_edges": 2}, "n_edges"),
        (datasets.regulatory_network, {"n_genes": 3, "initial_mean": [1.0, 2.0]}, "initial_mean"),
        (datasets.regulatory_network, {"n_genes": 3, "initial_std": -0.1}, "initial_std"),
        (datasets.regulatory_network, {"n_genes": 3, "initial_mean": [0.0, np.inf, 1.0]}, "initial_mean"),
        (datasets.regulatory_network, {"basal": 0.2}, "hill=True"),
        (datasets.regulatory_network, {"hill": True, "basal": -0.2}, "basal"),
        (datasets.bifurcating_network, {"n_noise_genes": -1}, "n_noise_genes"),
        (datasets.bifurcating_network, {"growth_genes": (9,)}, "growth_genes"),
    ],
)
def test_bad_arguments_raise_value_error(make, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_genes": 2.5}, "n_genes"),
        ({"hill": "yes"}, "hill"),
        ({"sigma": "0.1"}, "sigma"),
        ({"initial_std": "0.1"}, "initial_std"),
        ({"hill": True, "basal": True}, "basal"),
    ],
)
def test_bad_argument_types_raise_type_error(kwargs, match):
    with pytest.raises(TypeError, match=match):
        datasets.regulatory_network(**kwargs)


def test_extinction_is_reported():
    with pytest.raises(RuntimeError, match="died out"):
        datasets.regulatory_network(n_cells0=20, growth_base=-5.0, growth_coef=0.0, times=(0, 4), random_state=0)


def test_truth_functions_check_shapes(linear):
    with pytest.raises(ValueError, match=r"\(n, 6\)"):
        sim.regulatory_drift(np.zeros((3, 4)), linear.uns["truth"])
    with pytest.raises(ValueError, match=r"\(n, 3\)"):
        sim.three_gene_drift(np.zeros((3, 2)))


def test_regulatory_network_starts_from_several_populations():
    means = np.array([[0.0, 0.0, 0.0], [5.0, 5.0, 5.0]])
    w = np.array([[0.0, 0.5, 0.0], [0.0, 0.0, -0.5], [0.5, 0.0, 0.0]])
    adata = datasets.regulatory_network(regulation=w, initial_mean=means, initial_std=0.01, n_cells0=40)
    first = np.asarray(adata.X)[adata.obs["time"].to_numpy() == 0]
    near = np.argmin(((first[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    assert np.bincount(near, minlength=2).tolist() == [20, 20]
    assert np.abs(first - means[near]).max() < 0.1
    np.testing.assert_array_equal(adata.uns["truth"]["initial_mean"], means)
    with pytest.raises(ValueError, match="`initial_mean` must be one number or 3"):
        datasets.regulatory_network(regulation=w, initial_mean=np.zeros((2, 4)))


def test_bifurcating_network_can_start_with_both_lineages():
    adata = datasets.bifurcating_network(random_state=0, start="lineages", sample_fraction=0.5)
    obs = adata.obs
    first = obs[obs["time"] == 0]
    counts = first["lineage"].value_counts()
    # half of the initial cells start in each stable state; the progenitor state is empty
    assert counts["progenitor"] == 0
    assert abs(counts["x1"] - counts["x2"]) <= 0.2 * len(first)
    late = obs[obs["time"] == 4].groupby("lineage", observed=False)["true_growth"].mean()
    assert late["x1"] > 0.4
    assert late["x2"] < 0
    with pytest.raises(ValueError, match="`start` must be 'progenitors' or 'lineages'"):
        datasets.bifurcating_network(start="committed")
