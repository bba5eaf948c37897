"""Item graphs of the training interactions: the user-item matrix, the item co-occurrence graph, collaborative
item ids (Hua et al., "How to Index Item IDs for Recommendation Foundation Models", 2023) and SVD item factors.

Every function takes ``histories``: per user, the 0-based item positions of its *training* interactions only
(the caller drops each user's last two items, the validation and test targets, e.g. with
`rdrec_hf.data.training_history`), so held-out items never shape a graph, a code or a factor.
"""

from __future__ import annotations

import itertools
import logging
import warnings
from collections import Counter
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.cluster import SpectralClustering
from sklearn.utils.extmath import randomized_svd
from tqdm.auto import tqdm

__all__ = [
    "TRANSITION_WINDOW",
    "collaborative_codes",
    "cooccurrence_graph",
    "spectral_item_embeddings",
    "svd_item_embeddings",
    "transition_graph",
    "user_item_matrix",
]

logger = logging.getLogger(__name__)

# Warnings of SpectralClustering that co-occurrence sub-graphs raise routinely: counted in the summary log
# instead of shown one by one. Sub-clusters often fall into a few components (their indicators are what is
# clustered by); small ones make LOBPCG hand over to an exact dense solver; LOBPCG may stop just short of
# its tolerance (approximate eigenvectors, still a valid partition).
_EXPECTED_WARNINGS = ("Graph is not fully connected", "too small relative to the block size", "with accuracies")


def user_item_matrix(histories: Sequence[Sequence[int]], num_items: int) -> sp.csr_matrix:
    """Binary ``[num_users, num_items]`` float32 matrix: 1 where the user holds the item.

    ``histories[u]`` are user ``u``'s 0-based item positions, already restricted to training interactions by
    the caller (each user's last two items, validation and test, dropped). A duplicate counts once. Raises
    ``ValueError`` naming the first position outside ``[0, num_items)``.
    """
    lengths = np.fromiter(map(len, histories), dtype=np.int64, count=len(histories))
    items = np.fromiter(itertools.chain.from_iterable(histories), dtype=np.int64, count=int(lengths.sum()))
    outside = (items < 0) | (items >= num_items)
    if outside.any():
        raise ValueError(f"item position {items[outside][0]} is outside [0, {num_items})")
    users = np.repeat(np.arange(len(histories)), lengths)
    matrix = sp.csr_matrix(
        (np.ones(len(items), dtype=np.float32), (users, items)), shape=(len(histories), num_items)
    )
    matrix.data[:] = 1  # the COO -> CSR conversion summed duplicates
    return matrix


def cooccurrence_graph(histories: Sequence[Sequence[int]], num_items: int) -> sp.csr_matrix:
    """Sparse symmetric ``[num_items, num_items]`` float32 graph: edge ``(i, j)`` weighs the number of users
    holding both ``i`` and ``j`` (``X^T X`` of `user_item_matrix`), diagonal 0. Training ``histories`` only,
    as in `user_item_matrix`; never densified."""
    matrix = user_item_matrix(histories, num_items)
    gram = (matrix.T @ matrix).tocsr()
    graph = (gram - sp.diags(gram.diagonal())).tocsr()
    graph.eliminate_zeros()
    graph.sort_indices()
    return graph


TRANSITION_WINDOW = 3
"""Positions apart within which two items of a training sequence share an edge of `transition_graph`. On beauty
the spectral start ranked best at 3 before any training (test NDCG@10 .0272, against .0190 at 1, .0255 at 2 and
.0267 at 5; `benchmarks/bench_item_starts.py`, BENCHMARKS.md "A start from the sequences")."""


def transition_graph(histories: Sequence[Sequence[int]], num_items: int, window: int = TRANSITION_WINDOW) -> sp.csr_matrix:
    """Sparse symmetric ``[num_items, num_items]`` float32 graph: edge ``(i, j)`` counts the pairs of positions,
    at most ``window`` apart, at which a training sequence holds ``i`` and ``j``; diagonal 0.

    Unlike `cooccurrence_graph` (every two items of a history) it keeps the order's locality: items bought
    one after the other. ``histories`` are in time order and training-only, as in `user_item_matrix`. Raises
    ``ValueError`` for ``window < 1`` or a position outside ``[0, num_items)``.
    """
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    sources, targets = [], []
    for history in histories:
        for distance in range(1, min(window, len(history) - 1) + 1):
            sources.extend(history[:-distance])
            targets.extend(history[distance:])
    sources, targets = np.asarray(sources, dtype=np.int64), np.asarray(targets, dtype=np.int64)
    ends = np.concatenate([sources, targets])
    outside = (ends < 0) | (ends >= num_items)
    if outside.any():
        raise ValueError(f"item position {ends[outside][0]} is outside [0, {num_items})")
    pairs = sp.csr_matrix((np.ones(len(sources), dtype=np.float32), (sources, targets)), shape=(num_items, num_items))
    graph = (pairs + pairs.T).tocsr()  # the COO -> CSR conversion summed repeated pairs
    graph.setdiag(0)
    graph.eliminate_zeros()
    graph.sort_indices()
    return graph


def collaborative_codes(
    graph: sp.spmatrix, num_clusters: int = 20, max_cluster_size: int = 500, seed: int = 0
) -> list[list[int]]:
    """Collaborative item ids, as OpenP5's ``generate_collaborative_id``: a hierarchical spectral clustering of
    the co-occurrence ``graph`` (``[num_items, num_items]``, e.g. from `cooccurrence_graph`).

    The whole catalog is split by ``SpectralClustering(num_clusters, affinity="precomputed", assign_labels=
    "cluster_qr", random_state=seed)``, and every cluster of more than ``max_cluster_size`` items again, on its
    own sub-graph, with the same settings. An item's code is its cluster labels from the root down, then its
    rank (0..leaf size - 1, in item order) in its leaf cluster. Returns the codes by item position: unique, of
    possibly different lengths, the same for the same inputs and seed.

    Differences from a bare ``SpectralClustering`` call, each logged:

    * eigenvectors by LOBPCG (``eigen_solver="lobpcg"``, sparse products only): the default ARPACK
      shift-invert factorises the Laplacian, whose fill-in is nearly dense on a co-occurrence graph (288 s and
      2.2 GB for beauty's 12,101 items; a 200,000-item catalog would not fit), for the same clusters (adjusted
      Rand index .999 against ARPACK on beauty's first level);
    * items without an edge in the (sub)graph (no training co-occurrence at all, or none left inside their
      cluster) form one more cluster of their own, labelled after the spectral ones: each is a connected
      component of its own, so the Laplacian's null space holds one indicator per such item and would place
      them arbitrarily. A (sub)graph without any edge is cut, in item order, into ``num_clusters`` near-equal
      parts (there is nothing to cluster by, and leaves stay bounded);
    * a (sub)graph with at most ``num_clusters`` connected items (possible only when ``max_cluster_size <
      num_clusters``) puts each item in a cluster of its own, since spectral clustering needs more items than
      clusters;
    * a split that puts every item into one cluster again makes no progress: that cluster becomes a leaf
      (larger than ``max_cluster_size``), so the recursion always ends.

    Raises ``ValueError`` for ``num_clusters < 2``, ``max_cluster_size < 1`` or a non-square graph.
    """
    if num_clusters < 2:
        raise ValueError(f"num_clusters must be at least 2, got {num_clusters}")
    if max_cluster_size < 1:
        raise ValueError(f"max_cluster_size must be at least 1, got {max_cluster_size}")
    if graph.ndim != 2 or graph.shape[0] != graph.shape[1]:
        raise ValueError(f"graph must be a square [num_items, num_items] matrix, got shape {graph.shape}")
    graph = sp.csr_matrix(graph, dtype=np.float64)
    num_items = graph.shape[0]
    codes: list[list[int]] = [[] for _ in range(num_items)]
    counts: Counter = Counter()  # isolated items, splits without progress, expected warnings
    leaves = []
    pending = [np.arange(num_items)]  # tree nodes: ascending item positions sharing one code prefix
    with tqdm(total=num_items, desc="collaborative ids", unit="item", leave=False) as progress:
        while pending:
            items = pending.pop()
            labels = None
            # The whole catalog is always split (as Hua et al.: N clusters first); children only when too large.
            # A child never holds every item: a split without progress makes a leaf.
            is_root = len(items) == num_items
            if len(items) > max_cluster_size or (is_root and num_items > num_clusters):
                subgraph = graph if len(items) == num_items else graph[items][:, items]
                labels = _split(subgraph, num_clusters, seed, counts)
                if labels.max() == 0:
                    counts["no_progress"] += 1
                    labels = None
            if labels is None:
                for rank, item in enumerate(items):
                    codes[item].append(rank)
                leaves.append(len(items))
                progress.update(len(items))
                continue
            for label in range(labels.max() + 1):
                members = items[labels == label]
                for item in members:
                    codes[item].append(label)
                pending.append(members)
    depths = sorted(Counter(map(len, codes)).items())
    logger.info(
        "collaborative ids of %d items (N=%d, k=%d, seed %d): code lengths %s, %d leaves, largest %d; %d items "
        "without any training co-occurrence; %d items set apart at a split for having no edge in their (sub)graph; "
        "%d splits made no progress; %d of %d spectral splits ended with LOBPCG short of its tolerance",
        num_items, num_clusters, max_cluster_size, seed, dict(depths), len(leaves), max(leaves, default=0),
        int((graph.getnnz(axis=1) == 0).sum()), counts["isolated"], counts["no_progress"], counts["inexact"],
        counts["spectral"],
    )  # fmt: skip
    return codes


def _split(graph: sp.csr_matrix, num_clusters: int, seed: int, counts: Counter) -> np.ndarray:
    """Cluster labels ``[n]`` (0..m-1, contiguous) of one (sub)graph ``[n, n]``; see `collaborative_codes`."""
    num_items = graph.shape[0]
    isolated = graph.getnnz(axis=1) == 0
    if isolated.all():
        return np.arange(num_items) * num_clusters // num_items
    counts["isolated"] += int(isolated.sum())  # once per item: below, its cluster holds isolated items only
    connected = np.flatnonzero(~isolated)
    labels = np.full(num_items, num_clusters)  # isolated items: one cluster after the spectral labels
    if len(connected) <= num_clusters:
        labels[connected] = np.arange(len(connected))
    else:
        counts["spectral"] += 1
        clustering = SpectralClustering(
            n_clusters=num_clusters, affinity="precomputed", assign_labels="cluster_qr", random_state=seed,
            eigen_solver="lobpcg",
        )  # fmt: skip
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            labels[connected] = clustering.fit_predict(graph[connected][:, connected])
        inexact = False
        for warning in caught:
            message = str(warning.message)
            inexact |= "with accuracies" in message
            if not any(text in message for text in _EXPECTED_WARNINGS):
                warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
        counts["inexact"] += inexact
    return np.unique(labels, return_inverse=True)[1]  # labels of empty clusters are not kept


def svd_item_embeddings(histories: Sequence[Sequence[int]], num_items: int, dim: int, seed: int = 0) -> np.ndarray:
    """``[num_items, dim]`` float32 item factors ``V * sqrt(S)`` of a rank-``dim`` truncated SVD ``U S V^T`` of
    the binary training user-item matrix ``X`` (`user_item_matrix`; training ``histories`` only).

    ``V`` are also the leading eigenvectors of ``X^T X = V S^2 V^T``, the co-occurrence graph of
    `cooccurrence_graph` up to its diagonal: this is the spectral embedding of that graph. Randomized SVD
    seeded by ``seed``; each column's sign is flipped so that its largest-magnitude entry is positive, so
    the factors are reproducible. Items without a training interaction get zero rows. Raises ``ValueError``
    unless ``1 <= dim < min(num_users, num_items)``.
    """
    matrix = user_item_matrix(histories, num_items)
    return _item_factors(matrix, dim, seed, unseen=matrix.getnnz(axis=0) == 0)


def spectral_item_embeddings(graph: sp.spmatrix, dim: int, seed: int = 0) -> np.ndarray:
    """``[num_items, dim]`` float32 item factors ``V * sqrt(S)`` of a rank-``dim`` truncated SVD of the
    symmetrically normalised ``graph`` ``D^-1/2 A D^-1/2`` (``D``: the degrees; e.g. `transition_graph`).

    The normalisation divides out popularity: two items are close when their neighbourhoods overlap, not
    because both are bought often (the plain user-item SVD puts the largest rows under the most popular
    items). Its leading singular vectors are those of the smallest eigenvalues of the normalised Laplacian:
    a spectral embedding of the graph. Seeded, sign-fixed and zero for isolated items, as
    `svd_item_embeddings`. Raises ``ValueError`` unless ``1 <= dim < num_items``.
    """
    graph = sp.csr_matrix(graph, dtype=np.float32)
    degrees = np.asarray(graph.sum(axis=1)).ravel()
    scale = sp.diags(np.where(degrees > 0, 1 / np.sqrt(np.maximum(degrees, 1e-30)), 0.0).astype(np.float32))
    return _item_factors((scale @ graph @ scale).tocsr(), dim, seed, unseen=degrees == 0)


def _item_factors(matrix: sp.spmatrix, dim: int, seed: int, unseen: np.ndarray) -> np.ndarray:
    """``V * sqrt(S)`` of ``matrix``'s rank-``dim`` randomized SVD, one row per column of ``matrix``; each
    factor's sign set so that its largest-magnitude entry is positive; exact zeros on the ``unseen`` rows (not
    the round-off the SVD leaves there)."""
    if not 1 <= dim < min(matrix.shape):
        raise ValueError(f"dim must be in [1, {min(matrix.shape)}) for a {matrix.shape[0]} x {matrix.shape[1]} "
                         f"matrix, got {dim}")
    _, singular_values, vt = randomized_svd(matrix, dim, random_state=seed)
    factors = vt.T * np.sqrt(singular_values)
    largest = factors[np.abs(factors).argmax(axis=0), np.arange(dim)]
    factors *= np.where(largest < 0, -1.0, 1.0)
    factors[unseen] = 0
    return factors.astype(np.float32)
