"""Which library images form a pair with a new one, and in which band: pure logic, no Django.

Candidates come from a k-nearest-neighbour search (the served PCA + HNSW index, re-ranked exactly on the
full vectors), never from an all-pairs matrix, so the cost per image stays flat as the library grows.
k adapts: a photo with many copies (or a burst) fills its first k neighbours with look-alikes, so while the
k-th neighbour still reaches the `similar` band the search is repeated with twice the k, up to K_MAX.
bench/duplicates.py measures the recall this keeps compared with all pairs, and the cost per image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# First k asked of the index per image: a photo with a few copies is done in one round.
K_START = 20
# Upper bound of the adaptive k: bounds the cost of an image with hundreds of look-alikes, high enough that
# photos with many copies keep every same-photo pair a fixed k would miss (bench/duplicates.py, figures in
# bench/README.md).
K_MAX = 160

# (queries (m, d), k) -> (exact full-vector cosines (m, k), ids (m, k)), best first, padded with -inf / -1.
NeighbourSearch = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Bands:
    """Cosine thresholds of one backbone: near_duplicate >= similar."""

    near_duplicate: float
    similar: float

    def __post_init__(self) -> None:
        if self.similar > self.near_duplicate:
            raise ValueError(
                f"The similar threshold ({self.similar}) must not exceed "
                f"the near-duplicate one ({self.near_duplicate})."
            )


NEAR_DUPLICATE = "near_duplicate"
SIMILAR = "similar"


def band_of(
    similarity: float, *, bands: Bands, inliers: int | None = None, min_inliers: int | None = None
) -> str | None:
    """near_duplicate, similar or None (not a pair).

    In the grey zone between the two thresholds a pair is a near-duplicate when geometric verification
    found at least `min_inliers` consistent local-feature matches (heavy crops, quarter turns).
    """
    if similarity >= bands.near_duplicate:
        return NEAR_DUPLICATE
    if similarity < bands.similar:
        return None
    if inliers is not None and min_inliers is not None and inliers >= min_inliers:
        return NEAR_DUPLICATE
    return SIMILAR


def needs_verification(similarity: float, *, bands: Bands) -> bool:
    """Only grey-zone pairs are verified: above near_duplicate the embedding alone is precise enough."""
    return bands.similar <= similarity < bands.near_duplicate


@dataclass(frozen=True)
class Neighbour:
    id: int
    similarity: float


def neighbours_above(
    *,
    query_ids: np.ndarray,
    query_vectors: np.ndarray,
    search: NeighbourSearch,
    floor: float,
    k_start: int = K_START,
    k_max: int = K_MAX,
) -> list[list[Neighbour]]:
    """Per query, every neighbour scoring >= floor that an adaptive k-NN search finds (itself excluded).

    Queries whose k-th neighbour still scores >= floor are searched again with 2k, up to k_max; the rest
    are done. Results are best first.
    """
    if k_start < 1 or k_max < k_start:
        raise ValueError(f"need 1 <= k_start <= k_max, got {k_start}, {k_max}")
    ids = np.asarray(query_ids, dtype=np.int64).reshape(-1)
    vectors = np.asarray(query_vectors, dtype=np.float32).reshape(ids.shape[0], -1)
    found: list[list[Neighbour]] = [[] for _ in range(ids.shape[0])]
    todo = np.arange(ids.shape[0])
    k = k_start
    while todo.shape[0]:
        # +1: the query itself is usually its own nearest neighbour and is dropped below.
        scores, neighbour_ids = search(vectors[todo], k + 1)
        again = []
        for row, query in enumerate(todo):
            keep = (neighbour_ids[row] >= 0) & (neighbour_ids[row] != ids[query])
            row_ids, row_scores = neighbour_ids[row][keep][:k], scores[row][keep][:k]
            found[query] = [
                Neighbour(int(pk), float(score))
                for pk, score in zip(row_ids, row_scores, strict=True)
                if score >= floor
            ]
            full = row_ids.shape[0] == k
            if full and row_scores[-1] >= floor and k < k_max:
                again.append(query)
        todo = np.array(again, dtype=np.int64)
        k = min(2 * k, k_max)
    return found


def canonical_pairs(query_ids: np.ndarray, neighbours: list[list[Neighbour]]) -> dict[tuple[int, int], float]:
    """Each pair once, lower id first, with its similarity (found from both sides: the same exact cosine)."""
    pairs: dict[tuple[int, int], float] = {}
    for query, row in zip(np.asarray(query_ids).tolist(), neighbours, strict=True):
        for neighbour in row:
            key = (min(query, neighbour.id), max(query, neighbour.id))
            pairs[key] = max(pairs.get(key, -1.0), neighbour.similarity)
    return pairs
