import numpy as np
import pytest

from analysis.explorer.ordering import hierarchical_order


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_groups_of_similar_models_end_up_adjacent(seed):
    rng = np.random.default_rng(seed)
    groups = np.array([0, 1, 0, 2, 1, 2, 0, 1])
    similarity = np.where(groups[:, None] == groups[None, :], 0.9, 0.2)
    similarity += rng.uniform(-0.05, 0.05, similarity.shape)
    order = hierarchical_order(similarity, larger_is_more_similar=True)
    assert sorted(order) == list(range(len(groups)))
    ordered = groups[order]
    changes = np.count_nonzero(ordered[1:] != ordered[:-1])
    assert changes == 2  # three contiguous blocks


def test_distances_are_ordered_the_other_way_round():
    distance = np.array([[0, 5, 1], [5, 0, 5], [1, 5, 0]], dtype=float)
    order = hierarchical_order(distance, larger_is_more_similar=False)
    assert abs(order.index(0) - order.index(2)) == 1


def test_small_matrices_keep_their_order():
    assert hierarchical_order(np.eye(2), True) == [0, 1]
