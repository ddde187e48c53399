"""2-D projections (analysis/explorer/projection.py): PCA against scikit-learn, UMAP and t-SNE
seeded and
neighbourhood-preserving on real digits, bad input refused."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ortho_group
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.manifold import trustworthiness

from analysis.errors import InputError
from analysis.explorer.projection import project

SEEDS = [0, 1, 2]


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    return load_digits().data[:400].astype(np.float32)


def same_up_to_sign(a: np.ndarray, b: np.ndarray, atol: float) -> bool:
    signs = np.sign((a * b).sum(axis=0))
    return np.allclose(a, b * signs, atol=atol)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", [(200, 12), (30, 80)])  # covariance and Gram paths
def test_pca_agrees_with_scikit_learn(seed, shape):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * np.linspace(3, 0.5, shape[1]) + 4.0
    ours = project(x, "pca")
    peer = PCA(n_components=2, svd_solver="full").fit(x)
    assert ours.coordinates.dtype == np.float32 and ours.coordinates.shape == (shape[0], 2)
    assert same_up_to_sign(ours.coordinates, peer.transform(x), atol=1e-4)
    assert ours.explained_variance == pytest.approx(list(peer.explained_variance_ratio_), abs=1e-9)


@pytest.mark.parametrize("seed", SEEDS)
def test_pca_signs_are_fixed_and_rotations_change_nothing_but_signs(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((150, 6)) * [4, 2, 1, 1, 0.5, 0.2]
    first = project(x, "pca").coordinates
    assert np.array_equal(first, project(x.copy(), "pca").coordinates)
    rotated = project(x @ ortho_group.rvs(6, random_state=seed) + 7.0, "pca").coordinates
    assert same_up_to_sign(rotated, first, atol=1e-4)


@pytest.mark.parametrize("method", ["umap", "tsne"])
def test_nonlinear_projections_are_seeded_and_keep_neighbourhoods(digits, method):
    first = project(digits, method, seed=3)
    again = project(digits, method, seed=3)
    assert first.coordinates.shape == (400, 2) and first.coordinates.dtype == np.float32
    assert np.array_equal(first.coordinates, again.coordinates)
    assert first.params["seed"] == 3
    # Real digits: the 2-D map keeps most 10-nearest neighbourhoods (PCA keeps fewer).
    kept = trustworthiness(digits, first.coordinates, n_neighbors=10)
    linear = trustworthiness(digits, project(digits, "pca").coordinates, n_neighbors=10)
    assert kept > 0.9 and kept > linear


def test_umap_parameters_are_used_and_checked(digits):
    result = project(digits[:100], "umap", n_neighbors=5, min_dist=0.5, metric="cosine")
    assert result.params == {"n_neighbors": 5, "min_dist": 0.5, "metric": "cosine", "seed": 0}
    with pytest.raises(InputError, match="n_neighbors must be between 2 and 99"):
        project(digits[:100], "umap", n_neighbors=100)
    with pytest.raises(InputError, match="min_dist"):
        project(digits[:100], "umap", min_dist=2.0)
    with pytest.raises(InputError, match="perplexity"):
        project(digits[:30], "tsne", perplexity=30)


@pytest.mark.parametrize(
    ("x", "kwargs", "message"),
    [
        (np.full((10, 3), np.nan), {}, "NaN"),
        (np.ones((10, 3)), {}, "constant"),
        (np.ones((3, 3)), {}, "at least 4 samples"),
        (np.eye(5), {"method": "isomap"}, "unknown projection"),
        (np.eye(5), {"metric": "manhattan"}, "unknown metric"),
    ],
)
def test_bad_input_is_refused(x, kwargs, message):
    with pytest.raises(InputError, match=message):
        project(x, **kwargs)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_neighbourhoods_agree_with_scikit_learn(digits, metric):
    from sklearn.neighbors import NearestNeighbors

    from analysis.explorer.projection import neighbourhoods

    x = digits[:200].astype(np.float64) + 0.01  # no all-zero row for cosine
    coordinates = project(x, "pca").coordinates
    # 12 neighbours kept for comparisons between spaces; the 7 nearest judge the projection.
    near = neighbourhoods(x, coordinates, k=7, metric=metric, width=12)
    assert near.indices.shape == near.distances.shape == (200, 12)
    peer = NearestNeighbors(n_neighbors=13, algorithm="brute", metric=metric).fit(x)
    distances, indices = peer.kneighbors()  # one more, to see ties at the boundary
    # Integer pixel values tie exactly: ours are the same distances (to the same-ranked
    # neighbours), and where a row has no ties, the same neighbours.
    np.testing.assert_allclose(near.distances, distances[:, :12], rtol=1e-5, atol=1e-6)
    untied = np.all(np.diff(distances[:, :8], axis=1) > 1e-9, axis=1)
    assert untied.mean() > 0.5
    np.testing.assert_array_equal(near.indices[untied, :7], indices[untied, :7])
    in_2d = NearestNeighbors(n_neighbors=7).fit(coordinates).kneighbors(return_distance=False)
    expected = [len(set(a[:7]) & set(b)) / 7 for a, b in zip(near.indices, in_2d, strict=True)]
    np.testing.assert_allclose(near.kept, expected)
    assert near.indices.dtype == np.int32 and near.kept.dtype == np.float32


def test_a_projection_that_is_the_data_itself_keeps_every_neighbourhood():
    from analysis.explorer.projection import neighbourhoods

    x = np.random.default_rng(0).standard_normal((100, 2))
    assert np.all(neighbourhoods(x, x.astype(np.float32), k=5).kept == 1.0)


def test_procrustes_aligned_pca_moves_each_picture_onto_the_previous(digits):
    from analysis.explorer.projection import project_aligned
    from analysis.explorer.selections import similarity_align

    x = digits[:300].astype(np.float64)
    rng = np.random.default_rng(0)
    second = np.tanh(x @ rng.normal(size=(64, 32)) / 8)
    layers = [x, second, second[:, ::-1] * 3.0]
    results = project_aligned(layers, "pca")
    assert [r.method for r in results] == ["aligned-pca"] * 3
    assert [r.params["position"] for r in results] == [0, 1, 2]
    own = [project(layer, "pca").coordinates for layer in layers]
    np.testing.assert_array_equal(results[0].coordinates, own[0])
    np.testing.assert_allclose(
        results[1].coordinates, similarity_align(own[1], own[0])[0], rtol=1e-5, atol=1e-4
    )
    # The third space is the second one with its columns reversed and scaled: aligned to the
    # previous picture, it lands where the second one is.
    scale = np.abs(results[1].coordinates).max()
    np.testing.assert_allclose(results[2].coordinates, results[1].coordinates, atol=1e-4 * scale)
    # Each picture keeps its own shape: alignment changes distances by one factor.
    d_own = np.linalg.norm(own[1][:50, None] - own[1][None, :50], axis=2)
    d_aligned = np.linalg.norm(
        results[1].coordinates[:50, None] - results[1].coordinates[None, :50], axis=2
    )
    ratio = d_aligned[d_own > 0] / d_own[d_own > 0]
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-4)


def test_aligned_umap_keeps_samples_in_comparable_places(digits):
    from analysis.explorer.projection import project_aligned

    x = digits[:400].astype(np.float32)
    noisy = x + np.random.default_rng(1).normal(scale=0.5, size=x.shape).astype(np.float32)
    aligned = project_aligned([x, noisy], "umap", n_neighbors=10, seed=0)
    apart = [
        project(layer, "umap", n_neighbors=10, seed=s).coordinates
        for s, layer in enumerate([x, noisy])
    ]

    def spread(a, b):  # mean distance between a sample's two positions, in units of a's radius
        radius = np.sqrt(np.mean(np.sum((a - a.mean(0)) ** 2, axis=1)))
        return float(np.mean(np.linalg.norm(a - b, axis=1)) / radius)

    assert spread(aligned[0].coordinates, aligned[1].coordinates) < 0.5 * spread(*apart)
    assert aligned[0].estimator.startswith("umap-learn") and "AlignedUMAP" in aligned[0].estimator


@pytest.mark.parametrize(
    "spaces, kwargs, message",
    [
        (1, {}, "at least two spaces"),
        (2, {"method": "tsne"}, "unknown aligned projection"),
        (2, {"metric": "manhattan"}, "unknown metric"),
        (2, {"n_neighbors": 1}, "n_neighbors"),
    ],
)
def test_bad_aligned_projections_are_refused(spaces, kwargs, message):
    from analysis.explorer.projection import project_aligned

    x = np.random.default_rng(0).normal(size=(20, 4))
    with pytest.raises(InputError, match=message):
        project_aligned([x] * spaces, **kwargs)
    with pytest.raises(InputError, match="same samples"):
        project_aligned([x, x[:10]], "pca")


def clustered(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(8, d))
    return (centres[rng.integers(0, 8, size=n)] + rng.standard_normal((n, d))).astype(np.float32)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_approximate_neighbours_report_their_true_recall(metric):
    from sklearn.neighbors import NearestNeighbors

    from analysis.explorer.projection import nearest_neighbours

    x = clustered(3_000, 24, seed=3)
    # Above the (lowered) limit: NN-descent, its recall measured on 300 random rows.
    search = nearest_neighbours(x, 10, metric, seed=0, exact_limit=1_000, recall_sample=300)
    assert search.method == "nn-descent" and search.indices.shape == (3_000, 10)
    assert search.indices.dtype == np.int32 and search.distances.dtype == np.float32
    assert not np.any(search.indices == np.arange(3_000)[:, None])  # self excluded
    assert np.all(np.diff(search.distances, axis=1) >= 0)  # nearest first
    exact = NearestNeighbors(n_neighbors=10, algorithm="brute", metric=metric).fit(x)
    true_distances, truth = exact.kneighbors()
    per_row = np.array(
        [len(set(a) & set(b)) / 10 for a, b in zip(search.indices, truth, strict=True)]
    )
    # The reported recall is an estimate of the recall over every row: within its interval
    # (up to sampling), and the lists are good.
    assert search.recall_low - 0.02 <= per_row.mean() <= search.recall_high + 0.02
    assert search.recall > 0.9 and search.recall_sample == 300
    # The distances are those of the listed neighbours.
    rows = np.arange(3_000)[:, None]
    if metric == "euclidean":
        own = np.linalg.norm(x[search.indices] - x[rows], axis=2)
    else:
        unit = x / np.linalg.norm(x, axis=1, keepdims=True)
        own = 1 - np.einsum("ij,ikj->ik", unit, unit[search.indices])
    np.testing.assert_allclose(search.distances, own, rtol=1e-4, atol=1e-4)
    # Seeded: the same lists again.
    again = nearest_neighbours(x, 10, metric, seed=0, exact_limit=1_000, recall_sample=300)
    np.testing.assert_array_equal(again.indices, search.indices)
    assert search.provenance()["recall"] == search.recall


def test_exact_neighbours_of_queries_agree_with_scikit_learn():
    from sklearn.neighbors import NearestNeighbors

    from analysis.explorer.projection import exact_neighbours_of

    x = clustered(2_000, 16, seed=4)
    queries = np.array([0, 5, 999, 1_999])
    ours = exact_neighbours_of(x, queries, 7)
    peer = NearestNeighbors(n_neighbors=7, algorithm="brute").fit(x).kneighbors()[1][queries]
    assert [set(a) for a in ours] == [set(b) for b in peer]


def test_above_the_limit_the_kept_share_is_still_exact_in_2d():
    from analysis.explorer.projection import nearest_neighbours, neighbourhoods

    x = clustered(1_500, 12, seed=5)
    coordinates = project(x, "pca").coordinates
    exact = neighbourhoods(x, coordinates, k=7, width=12)
    assert exact.search["method"] == "exact"
    # The same (exact) original lists, the 2-D neighbours from the k-d tree above the limit.
    search = nearest_neighbours(x, 12, exact_limit=10**9)
    tree = neighbourhoods(x, coordinates, k=7, width=12, search=search, exact_limit=100)
    np.testing.assert_array_equal(tree.kept, exact.kept)


def test_umap_on_a_given_neighbour_graph_is_seeded_and_says_so():
    from analysis.explorer.projection import nearest_neighbours

    x = clustered(1_200, 16, seed=6)
    search = nearest_neighbours(x, 20, seed=0, exact_limit=500, recall_sample=100)
    first = project(x, "umap", n_neighbors=10, search=search)
    assert "NN-descent 20-NN" in first.estimator
    np.testing.assert_array_equal(
        first.coordinates, project(x, "umap", n_neighbors=10, search=search).coordinates
    )
    # The picture keeps the clusters' neighbourhoods as one built on umap-learn's own search.
    assert trustworthiness(x, first.coordinates, n_neighbors=10) > 0.9
