"""Bands and the adaptive k-NN candidate search, with an exact search over real-shaped vectors."""

from __future__ import annotations

import numpy as np
import pytest

from duplicates.candidate_pairs import Bands, band_of, canonical_pairs, needs_verification, neighbours_above

BANDS = Bands(near_duplicate=0.85, similar=0.70)


@pytest.mark.parametrize(
    ("similarity", "inliers", "band"),
    [
        (0.90, None, "near_duplicate"),
        (0.85, None, "near_duplicate"),
        (0.80, None, "similar"),
        (0.80, 19, "similar"),
        (0.80, 20, "near_duplicate"),  # grey zone, verified geometrically
        (0.70, 200, "near_duplicate"),
        (0.69, 200, None),  # below the similar band nothing is a pair, whatever the geometry says
    ],
)
def test_band_of(similarity, inliers, band):
    assert band_of(similarity, bands=BANDS, inliers=inliers, min_inliers=20) == band


def test_only_the_grey_zone_is_verified_and_bands_are_ordered():
    assert [needs_verification(s, bands=BANDS) for s in (0.69, 0.70, 0.84, 0.85)] == [False, True, True, False]
    with pytest.raises(ValueError, match="must not exceed"):
        Bands(near_duplicate=0.7, similar=0.8)


def exact_search(ids: np.ndarray, vectors: np.ndarray, calls: list[int]):
    def search(queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        calls.append(k)
        scores = queries @ vectors.T
        order = np.argsort(-scores, axis=1)[:, :k]
        return np.take_along_axis(scores, order, axis=1), ids[order]

    return search


def clustered(rng: np.random.Generator, sizes: list[int], dim: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Clusters of near-copies (cosine ~0.97 within) around random unrelated centres (~0 between)."""
    rows = []
    for size in sizes:
        centre = rng.normal(size=dim)
        rows.extend(centre + 0.15 * rng.normal(size=dim) for _ in range(size))
    vectors = np.array(rows, dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True), np.arange(100, 100 + len(rows))


def test_adaptive_k_finds_every_copy_of_a_photo_with_many_copies():
    rng = np.random.default_rng(0)
    vectors, ids = clustered(rng, [60, 3, 1, 1, 1])
    calls: list[int] = []
    found = neighbours_above(
        query_ids=ids, query_vectors=vectors, search=exact_search(ids, vectors, calls), floor=0.7, k_start=8, k_max=128
    )
    assert [len(row) for row in found[:60]] == [59] * 60  # k grew 8 -> 16 -> 32 -> 64 for the big cluster
    assert [len(row) for row in found[60:63]] == [2, 2, 2]
    assert found[63:] == [[], [], []]
    assert calls == [9, 17, 33, 65]  # each round asks one more for the query itself
    assert all(row[0].similarity >= row[-1].similarity for row in found if row)
    pairs = canonical_pairs(ids, found)
    assert len(pairs) == 60 * 59 // 2 + 3
    assert all(a < b for a, b in pairs)


def test_k_max_bounds_the_cost_of_a_huge_cluster():
    rng = np.random.default_rng(1)
    vectors, ids = clustered(rng, [50])
    calls: list[int] = []
    found = neighbours_above(
        query_ids=ids[:1],
        query_vectors=vectors[:1],
        search=exact_search(ids, vectors, calls),
        floor=0.7,
        k_start=4,
        k_max=16,
    )
    assert calls == [5, 9, 17]
    assert len(found[0]) == 16
    with pytest.raises(ValueError, match="k_start"):
        neighbours_above(
            query_ids=ids, query_vectors=vectors, search=exact_search(ids, vectors, []), floor=0.7, k_start=0
        )
