"""Item graphs of the training interactions: user-item matrix, co-occurrence and transition graphs,
collaborative ids, SVD and spectral item factors."""

from __future__ import annotations

import itertools
import logging
from collections import Counter

import numpy as np
import pytest

from rdrec_hf.data.item_graph import (
    collaborative_codes,
    cooccurrence_graph,
    spectral_item_embeddings,
    svd_item_embeddings,
    transition_graph,
    user_item_matrix,
)
from rdrec_hf.paths import p5_dataset_dir

# Users 0-2 buy items 0, 1, 2 (one twice); user 3 buys 2 and 3; item 4 is never bought.
HISTORIES = [[0, 1, 2], [1, 2, 1], [0, 1], [2, 3]]


def communities(num_users: int, items_per_group: int, seed: int = 0) -> list[list[int]]:
    """Two disjoint groups of users, each buying 5 items of its own disjoint item group."""
    rng = np.random.default_rng(seed)
    return [
        (rng.choice(items_per_group, size=5, replace=False) + group * items_per_group).tolist()
        for group in (0, 1) for _ in range(num_users)
    ]  # fmt: skip


def leaf_sizes(codes: list[list[int]]) -> Counter:
    return Counter(tuple(code[:-1]) for code in codes)


def test_user_item_matrix_is_binary_and_checks_positions():
    matrix = user_item_matrix(HISTORIES, 5)
    assert matrix.shape == (4, 5) and matrix.dtype == np.float32
    assert matrix.toarray().tolist() == [[1, 1, 1, 0, 0], [0, 1, 1, 0, 0], [1, 1, 0, 0, 0], [0, 0, 1, 1, 0]]
    with pytest.raises(ValueError, match="item position 5 is outside"):
        user_item_matrix([[0], [5]], 5)
    with pytest.raises(ValueError, match="item position -1 is outside"):
        user_item_matrix([[-1]], 5)


def test_cooccurrence_weights_count_users_holding_both_items():
    graph = cooccurrence_graph(HISTORIES, 5)
    expected = np.zeros((5, 5))
    for (i, j), users in {(0, 1): 2, (0, 2): 1, (1, 2): 2, (2, 3): 1}.items():
        expected[i, j] = expected[j, i] = users
    assert graph.format == "csr" and graph.dtype == np.float32
    np.testing.assert_array_equal(graph.toarray(), expected)


def test_codes_are_unique_and_recursion_bounds_leaves(caplog):
    num_items = 120
    graph = cooccurrence_graph(communities(100, num_items // 2), num_items)
    with caplog.at_level(logging.INFO, logger="rdrec_hf.data.item_graph"):
        codes = collaborative_codes(graph, num_clusters=2, max_cluster_size=10, seed=0)
    assert len(codes) == num_items and len({tuple(code) for code in codes}) == num_items
    assert "0 splits made no progress" in caplog.text
    assert max(map(len, codes)) >= 5  # leaves of <= 10 out of 120 items: >= 4 binary splits, then the rank
    assert max(leaf_sizes(codes).values()) <= 10
    for prefix, size in leaf_sizes(codes).items():  # leaf ranks are 0..size-1, in item order
        members = [item for item, code in enumerate(codes) if tuple(code[:-1]) == prefix]
        assert [codes[item][-1] for item in members] == list(range(size))


def test_codes_are_seeded():
    graph = cooccurrence_graph(communities(100, 60), 120)
    codes = collaborative_codes(graph, num_clusters=3, max_cluster_size=8, seed=5)
    assert collaborative_codes(graph, num_clusters=3, max_cluster_size=8, seed=5) == codes


@pytest.mark.parametrize("num_clusters", [2, 4])
def test_each_community_gets_its_own_first_level_labels(num_clusters):
    codes = collaborative_codes(cooccurrence_graph(communities(100, 60), 120), num_clusters, max_cluster_size=20)
    first = [{code[0] for code in codes[:60]}, {code[0] for code in codes[60:]}]
    assert not first[0] & first[1]
    if num_clusters == 2:
        assert first[0] != first[1] and len(first[0]) == len(first[1]) == 1


def test_isolated_items_get_codes_of_their_own_cluster(caplog):
    num_items = 130  # 10 items nobody bought
    graph = cooccurrence_graph(communities(100, 60), num_items)
    with caplog.at_level(logging.INFO, logger="rdrec_hf.data.item_graph"):
        codes = collaborative_codes(graph, num_clusters=2, max_cluster_size=20)
    assert len({tuple(code) for code in codes}) == num_items
    isolated_labels = {code[0] for code in codes[120:]}
    assert isolated_labels == {2} and all(code[0] < 2 for code in codes[:120])  # after the spectral labels
    assert "10 items without any training co-occurrence" in caplog.text


def test_graphs_without_edges_or_with_few_items():
    codes = collaborative_codes(cooccurrence_graph([], 50), num_clusters=4, max_cluster_size=5)
    assert len({tuple(code) for code in codes}) == 50 and max(leaf_sizes(codes).values()) <= 5
    clique = cooccurrence_graph([[0, 1, 2, 3, 4]], 5)  # 5 items > k = 2, yet <= N = 20: one item per cluster
    assert collaborative_codes(clique, num_clusters=20, max_cluster_size=2) == [[i, 0] for i in range(5)]
    assert collaborative_codes(clique) == [[i] for i in range(5)]  # the whole graph is one leaf


def test_collaborative_codes_validate_arguments():
    graph = cooccurrence_graph(HISTORIES, 5)
    with pytest.raises(ValueError, match="num_clusters must be at least 2"):
        collaborative_codes(graph, num_clusters=1)
    with pytest.raises(ValueError, match="max_cluster_size must be at least 1"):
        collaborative_codes(graph, max_cluster_size=0)
    with pytest.raises(ValueError, match="square"):
        collaborative_codes(graph[:3])


def test_svd_item_embeddings():
    histories = communities(50, 30, seed=1)
    factors = svd_item_embeddings(histories, 65, dim=8, seed=0)  # items 60..64 never bought
    assert factors.shape == (65, 8) and factors.dtype == np.float32
    np.testing.assert_array_equal(factors, svd_item_embeddings(histories, 65, dim=8, seed=0))
    assert not factors[60:].any() and np.abs(factors[:60]).sum(axis=1).min() > 0
    unit = factors[:60] / np.linalg.norm(factors[:60], axis=1, keepdims=True)
    cosine = unit @ unit.T
    group = np.arange(60) // 30
    same = np.equal.outer(group, group)
    assert cosine[~same].max() < cosine[same & ~np.eye(60, dtype=bool)].mean()
    with pytest.raises(ValueError, match="dim must be in"):
        svd_item_embeddings(HISTORIES, 5, dim=4)


def test_transition_graph_counts_pairs_within_the_window():
    histories = [[0, 1, 2, 3], [3, 1], [4]]
    assert transition_graph(histories, 6, window=1).toarray().tolist() == [
        [0, 1, 0, 0, 0, 0], [1, 0, 1, 1, 0, 0], [0, 1, 0, 1, 0, 0],
        [0, 1, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0],
    ]  # fmt: skip
    wide = transition_graph(histories, 6, window=2)
    assert wide[0, 2] == 1 and wide[1, 3] == 2 and wide[0, 3] == 0  # (1, 3): at distance 2, then 1
    assert (wide != wide.T).nnz == 0 and not wide.diagonal().any()
    assert transition_graph([[2, 2, 1]], 3, window=1).toarray().tolist() == [[0, 0, 0], [0, 0, 1], [0, 1, 0]]
    with pytest.raises(ValueError, match="window must be at least 1"):
        transition_graph(histories, 6, window=0)
    with pytest.raises(ValueError, match="item position 6 is outside"):
        transition_graph([[0, 6]], 6)


def test_spectral_item_embeddings_separate_communities_whatever_their_popularity():
    histories = communities(50, 30, seed=1)
    histories[50:] = histories[50:60]  # the second group is bought by 10 users instead of 50
    graph = transition_graph(histories, 65)  # items 60..64 never bought
    factors = spectral_item_embeddings(graph, dim=8, seed=0)
    assert factors.shape == (65, 8) and factors.dtype == np.float32
    np.testing.assert_array_equal(factors, spectral_item_embeddings(graph, dim=8, seed=0))
    bought = np.asarray(graph.sum(axis=1)).ravel() > 0
    assert not factors[~bought].any() and np.abs(factors[bought]).sum(axis=1).min() > 0
    unit = factors[bought] / np.linalg.norm(factors[bought], axis=1, keepdims=True)
    group = (np.arange(65) // 30)[bought]
    same = np.equal.outer(group, group)
    assert (unit @ unit.T)[~same].max() < (unit @ unit.T)[same & ~np.eye(len(group), dtype=bool)].mean()
    # Degree normalisation: the rarely bought group's rows are not dwarfed by the popular group's.
    norms = np.linalg.norm(factors, axis=1)
    assert norms[bought & (np.arange(65) >= 30)].mean() > 0.5 * norms[np.arange(65) < 30].mean()
    svd_norms = np.linalg.norm(svd_item_embeddings(histories, 65, dim=8, seed=0), axis=1)
    assert svd_norms[bought & (np.arange(65) >= 30)].mean() < 0.5 * svd_norms[np.arange(65) < 30].mean()
    with pytest.raises(ValueError, match="dim must be in"):
        spectral_item_embeddings(graph, dim=65)


def test_beauty_training_graph_holds_no_held_out_edge(shared):
    """The real beauty graph from training histories: symmetric, zero diagonal, exactly the training pairs."""
    sequences = [
        [int(item) - 1 for item in line.split()[1:]]
        for line in (p5_dataset_dir("beauty") / "sequential.txt").read_text().splitlines()
    ]
    num_items = max(map(max, sequences)) + 1
    graph = cooccurrence_graph([items[:-2] for items in sequences], num_items)
    assert (graph != graph.T).nnz == 0 and not graph.diagonal().any()
    training = Counter(pair for items in sequences for pair in itertools.combinations(sorted(set(items[:-2])), 2))
    held_out_only = {
        pair for items in sequences for pair in itertools.combinations(sorted(set(items)), 2)
    } - training.keys()  # fmt: skip
    assert held_out_only  # pairs a leaky graph would hold
    rows, cols = np.array(sorted(held_out_only)).T
    assert not np.asarray(graph[rows, cols]).any()
    upper = graph.tocoo()
    upper_pairs = upper.row < upper.col
    assert dict(zip(zip(upper.row[upper_pairs].tolist(), upper.col[upper_pairs].tolist()),
                    upper.data[upper_pairs].tolist())) == training  # fmt: skip
