"""Scoring on the full vectors, shared by the index's re-rank and the tail: the rating term, exact search, top k
(ties to the smaller id), re-rank and merge. Scores are cosine plus weight x the rating term."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

import faiss
import numpy as np

RATING_DIMS = 2
MAX_RATING = 5.0


def rating_features(ratings: np.ndarray, *, weight: float) -> np.ndarray:
    """Two dims whose inner product is weight * cos(pi * (r1 - r2) / 5): an angle per star, 0 when unrated.

    Unrated (nan) maps to (0, 0), so it adds nothing to any score: exactly neutral.
    """
    values = np.asarray(ratings, dtype=np.float64).reshape(-1)
    rated = ~np.isnan(values)
    if np.any((values[rated] < 0) | (values[rated] > MAX_RATING)):
        raise ValueError(f"ratings must be within 0..{MAX_RATING:g} or nan (unrated)")
    features = np.zeros((values.shape[0], RATING_DIMS), dtype=np.float32)
    angle = np.pi * values[rated] / MAX_RATING
    scale = math.sqrt(weight)
    features[rated, 0] = scale * np.cos(angle)
    features[rated, 1] = scale * np.sin(angle)
    return features


def combined_score(
    visual: np.ndarray, query_rating: float | None, item_ratings: np.ndarray, *, weight: float
) -> np.ndarray:
    """Visual cosine plus the rating term, the score every search path ranks by; for explaining a score."""
    visual = np.asarray(visual, dtype=np.float32)
    if query_rating is None or weight == 0 or math.isnan(query_rating):
        return visual.copy()
    items = np.asarray(item_ratings, dtype=np.float64)
    term = np.cos(np.pi * (float(query_rating) - items) / MAX_RATING)
    term = np.where(np.isnan(items), 0.0, weight * term)
    return (visual + term).astype(np.float32)


def _query_rating_array(query_ratings: Sequence[float | None] | None, count: int) -> np.ndarray:
    """Per-query ratings as floats with nan for unrated, checked against the number of queries."""
    if query_ratings is None:
        return np.full(count, np.nan)
    if len(query_ratings) != count:
        raise ValueError(f"query_ratings has {len(query_ratings)} entries for {count} queries")
    return np.array([np.nan if r is None else float(r) for r in query_ratings], dtype=np.float64)


def _item_rating_array(ratings: np.ndarray | None, count: int) -> np.ndarray:
    """Item ratings as floats with nan for unrated; None means nobody is rated."""
    if ratings is None:
        return np.full(count, np.nan)
    values = np.asarray(ratings, dtype=np.float64).reshape(-1)
    if values.shape[0] != count:
        raise ValueError(f"ratings has {values.shape[0]} entries for {count} vectors")
    return values


def _unit_rows(vectors: np.ndarray, *, name: str) -> np.ndarray:
    """A float32 C-contiguous copy with unit rows, so inner product is cosine whatever the caller sent."""
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows, dims), got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains nan or inf")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return np.ascontiguousarray(array / np.where(norms > 0, norms, 1.0), dtype=np.float32)


# Fewer queries than this per call are scored one by one with faiss's single-threaded SIMD kernels; more go to
# BLAS. A multi-threaded BLAS product waits for its threads to be scheduled, which on a loaded machine costs a
# single query far more than the product itself (bench/search_product.py; figures in bench/README.md).
# Batches (duplicate detection: 256 queries) amortise that wait.
BATCH_FROM_QUERIES = 8


@contextmanager
def faiss_threads(count: int | None) -> Iterator[None]:
    """faiss's OpenMP threads for this thread's calls inside the block (None: unchanged). One query on one
    thread: a parallel region for it only adds the wait for the other threads to be scheduled."""
    if count is None:
        yield
        return
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(count)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


def inner_products(queries: np.ndarray, items: np.ndarray) -> np.ndarray:
    """queries @ items.T in float32: one core for a few queries (no thread hand-off), BLAS for batches."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    items = np.ascontiguousarray(items, dtype=np.float32)
    if queries.shape[0] >= BATCH_FROM_QUERIES:
        return queries @ items.T
    out = np.empty((queries.shape[0], items.shape[0]), dtype=np.float32)
    if items.shape[0]:
        for row in range(queries.shape[0]):
            faiss.fvec_inner_products_ny(
                faiss.swig_ptr(out[row]),
                faiss.swig_ptr(queries[row]),
                faiss.swig_ptr(items),
                items.shape[1],
                items.shape[0],
            )
    return out


def _rating_term(query_features: np.ndarray, item_features: np.ndarray) -> np.ndarray:
    """(queries, items) rating term from rating_features(weight=1) rows: elementwise, no BLAS call. Items are
    (items, 2), shared by every query, or (queries, items, 2), each query's own candidates."""
    return query_features[:, 0:1] * item_features[..., 0] + query_features[:, 1:2] * item_features[..., 1]


def _top_k(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the k best (score, id) by score then smaller id, padded with -inf / -1; -inf scores are padding.

    ids is (n,), shared by every row, or (rows, n). Vectorised over rows: no Python loop per query.
    """
    rows, n = scores.shape
    out_scores = np.full((rows, k), -np.inf, dtype=np.float32)
    out_ids = np.full((rows, k), -1, dtype=np.int64)
    take = min(k, n)
    if take == 0 or rows == 0:
        return out_scores, out_ids
    if take < n:
        columns = np.argpartition(scores, n - take, axis=1)[:, n - take :]  # the largest, no negated copy
        # argpartition picks any of the scores tied with the k-th: rows with such a tie get a full sort.
        kth = np.take_along_axis(scores, columns, axis=1).min(axis=1, keepdims=True)
        tied = (scores == kth).sum(axis=1) > (np.take_along_axis(scores, columns, axis=1) == kth).sum(axis=1)
        tied &= np.isfinite(kth[:, 0])
        if tied.any():
            columns = columns.copy()
            for row in np.flatnonzero(tied):
                row_ids = ids if ids.ndim == 1 else ids[row]
                columns[row] = np.lexsort((row_ids, -scores[row]))[:take]
    else:
        columns = np.broadcast_to(np.arange(n), (rows, n))
    top_scores = np.take_along_axis(scores, columns, axis=1)
    top_ids = ids[columns] if ids.ndim == 1 else np.take_along_axis(ids, columns, axis=1)
    order = np.lexsort((top_ids, -top_scores), axis=-1)
    top_scores = np.take_along_axis(top_scores, order, axis=1)
    top_ids = np.take_along_axis(top_ids, order, axis=1)
    missing = np.isneginf(top_scores)
    out_scores[:, :take] = top_scores
    out_ids[:, :take] = np.where(missing, -1, top_ids)
    return out_scores, out_ids


def exact_search(
    *,
    query_vectors: np.ndarray,
    query_ratings: Sequence[float | None] | None,
    ids: np.ndarray,
    vectors: np.ndarray,
    ratings: np.ndarray | None,
    k: int,
    weight: float,
    exclude_ids: Iterable[int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Brute force over full vectors: the tail newer than the last build, and the re-rank of candidates.

    Scores are full-vector cosine plus the rating term; ties are broken by smaller id so results are
    reproducible. Returns (scores, ids), each (queries, k), padded with -inf / -1.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    queries = _unit_rows(query_vectors, name="query_vectors")
    item_ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    items = _unit_rows(vectors, name="vectors")
    if items.shape[0] != item_ids.shape[0]:
        raise ValueError(f"{item_ids.shape[0]} ids for {items.shape[0]} vectors")
    if items.shape[1] != queries.shape[1]:
        raise ValueError(f"queries have {queries.shape[1]} dims, vectors {items.shape[1]}")
    query_features = rating_features(_query_rating_array(query_ratings, queries.shape[0]), weight=1.0)
    item_features = rating_features(_item_rating_array(ratings, item_ids.shape[0]), weight=1.0)
    excluded = np.zeros(item_ids.shape[0], dtype=bool)
    if exclude_ids is not None:
        excluded = np.isin(item_ids, np.fromiter(exclude_ids, dtype=np.int64))
    return _scored_top_k(queries, query_features, items, item_features, item_ids, ~excluded, k=k, weight=weight)


def _scored_top_k(
    queries: np.ndarray,
    query_features: np.ndarray,
    items: np.ndarray,
    item_features: np.ndarray,
    item_ids: np.ndarray,
    usable: np.ndarray,
    *,
    k: int,
    weight: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force top k of unit queries over unit items (cosine + weight x rating term), unusable rows left out."""
    out_scores = np.full((queries.shape[0], k), -np.inf, dtype=np.float32)
    out_ids = np.full((queries.shape[0], k), -1, dtype=np.int64)
    if not np.any(usable):
        return out_scores, out_ids
    dead = ~usable
    todo = np.arange(queries.shape[0])
    # faiss 1.15 runs its blocked k-NN through BLAS once queries x dims reach this threshold (128,000: 250
    # queries of 512 dims); below it, a heap per query over single-vector products, slower than the path below.
    if not weight and queries.shape[0] * queries.shape[1] >= faiss.cvar.distance_compute_blas_threshold:
        blocked = _blocked_top_k(queries, items, item_ids, np.flatnonzero(dead), k=k)
        if blocked is not None:
            out_scores, out_ids, unsure = blocked
            todo = np.flatnonzero(unsure)
    # Bound the (queries x items) score block to ~64 MB however big the tail is; the rows the blocked path was
    # unsure of one by one (faiss's one-core kernel, the same sums for equal vectors).
    chunk = 1 if todo.shape[0] < queries.shape[0] else max(1, (1 << 24) // max(1, item_ids.shape[0]))
    for start in range(0, todo.shape[0], chunk):
        rows = todo[start : start + chunk]
        block = inner_products(queries[rows], items)
        if weight:
            block += weight * _rating_term(query_features[rows], item_features)
        block[:, dead] = -np.inf
        out_scores[rows], out_ids[rows] = _top_k(block, item_ids, k)
    return out_scores, out_ids


# A batch asks faiss's blocked k-NN for k + this many more at most to step over unusable rows; with more of
# them (a tail half retired), the whole score matrix is formed instead.
BLOCKED_MAX_SKIPPED = 256
# Float32 inner products of unit 512-d vectors summed in another order differ by well under this.
BLOCKED_MARGIN = 1e-4


def _blocked_top_k(
    queries: np.ndarray, items: np.ndarray, item_ids: np.ndarray, dead_rows: np.ndarray, *, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """A batch's top k by inner product through faiss's blocked k-NN (BLAS on cache-sized blocks, a heap per
    query), not the whole (queries x items) matrix and an argpartition per row: cache-sized blocks keep a
    large batch over a large tail several times faster (bench/search_product.py; figures in bench/README.md).

    Unusable rows are asked for beyond k and dropped. The candidates are scored again pair by pair (one kernel
    for every pair, so equal vectors score equal and a tie goes to the smaller id, as in _top_k). A row is
    `unsure` when its k-th score does not clear every item faiss left out by BLOCKED_MARGIN (a near tie at the
    boundary, or fewer than k usable): the caller scores those rows query by query. None when it does not apply.
    """
    want = k + dead_rows.shape[0] + 1  # +1: the best score left out bounds everything not returned
    if dead_rows.shape[0] > BLOCKED_MAX_SKIPPED or want > items.shape[0]:
        return None
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    items = np.ascontiguousarray(items, dtype=np.float32)
    approximate = np.empty((queries.shape[0], want), dtype=np.float32)
    rows = np.empty((queries.shape[0], want), dtype=np.int64)
    faiss.knn_inner_product(
        faiss.swig_ptr(queries),
        faiss.swig_ptr(items),
        queries.shape[1],
        queries.shape[0],
        items.shape[0],
        want,
        faiss.swig_ptr(approximate),
        faiss.swig_ptr(rows),
    )
    returned = rows >= 0
    floor = np.where(returned, approximate, np.inf).min(axis=1)  # nothing left out scores above this
    if dead_rows.shape[0]:
        rows = np.where(np.isin(rows, dead_rows), -1, rows)
    scores = np.empty(rows.shape, dtype=np.float32)
    faiss.fvec_inner_products_by_idx(  # -1 rows score -inf
        faiss.swig_ptr(scores),
        faiss.swig_ptr(queries),
        faiss.swig_ptr(items),
        faiss.swig_ptr(rows),
        queries.shape[1],
        queries.shape[0],
        want,
    )
    scores[rows < 0] = -np.inf
    top_scores, top_ids = _top_k(scores, np.where(rows >= 0, item_ids[np.maximum(rows, 0)], -1), k)
    unsure = ~(top_scores[:, -1] > floor + BLOCKED_MARGIN)
    return top_scores, top_ids, unsure


def rerank(
    *,
    query_vectors: np.ndarray,
    query_ratings: Sequence[float | None] | None,
    candidate_ids: np.ndarray,
    ids: np.ndarray,
    vectors: np.ndarray,
    ratings: np.ndarray | None,
    k: int,
    weight: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact scores for each query's candidates, best k; PCA ranks near neighbours only approximately.

    ids/vectors/ratings are the full stored vectors of (at least) the candidates, in any order; a
    candidate missing from them (deleted since the build) is dropped. -1 candidates are padding.
    """
    queries = _unit_rows(query_vectors, name="query_vectors")
    candidates = np.asarray(candidate_ids, dtype=np.int64)
    if candidates.ndim != 2 or candidates.shape[0] != queries.shape[0]:
        raise ValueError(f"candidate_ids must be (queries, m), got {candidates.shape}")
    known_ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    known_ratings = _item_rating_array(ratings, known_ids.shape[0])
    if not known_ids.shape[0] or not candidates.shape[1]:
        return _top_k(np.full(candidates.shape, -np.inf, np.float32), candidates, k)
    items = _unit_rows(vectors, name="vectors")
    if items.shape[1] != queries.shape[1]:
        raise ValueError(f"queries have {queries.shape[1]} dims, vectors {items.shape[1]}")
    order = np.argsort(known_ids, kind="stable")
    sorted_ids = known_ids[order]
    positions = np.minimum(np.searchsorted(sorted_ids, candidates), sorted_ids.shape[0] - 1)
    found = (candidates >= 0) & (sorted_ids[positions] == candidates)
    found &= ~_repeated(candidates)
    rows = np.where(found, order[positions], -1)  # row of each candidate in `items`; -1 scores -inf
    scores = np.empty(candidates.shape, dtype=np.float32)
    with faiss_threads(1 if queries.shape[0] < BATCH_FROM_QUERIES else None):
        faiss.fvec_inner_products_by_idx(
            faiss.swig_ptr(scores),
            faiss.swig_ptr(queries),
            faiss.swig_ptr(items),
            faiss.swig_ptr(np.ascontiguousarray(rows)),
            queries.shape[1],
            queries.shape[0],
            candidates.shape[1],
        )
    if weight:
        query_features = rating_features(_query_rating_array(query_ratings, queries.shape[0]), weight=1.0)
        item_features = rating_features(known_ratings, weight=1.0)[np.maximum(rows, 0)]
        scores += weight * (
            query_features[:, 0:1] * item_features[:, :, 0] + query_features[:, 1:2] * item_features[:, :, 1]
        )
    scores[~found] = -np.inf
    return _top_k(scores, candidates, k)


def _repeated(ids: np.ndarray) -> np.ndarray:
    """Per row, True where an id already occurred earlier in the row (stable: the first one stays)."""
    order = np.argsort(ids, axis=1, kind="stable")
    in_order = np.take_along_axis(ids, order, axis=1)
    repeated_in_order = np.zeros(ids.shape, dtype=bool)
    repeated_in_order[:, 1:] = in_order[:, 1:] == in_order[:, :-1]
    repeated = np.empty_like(repeated_in_order)
    np.put_along_axis(repeated, order, repeated_in_order, axis=1)
    return repeated


def merge_results(*results: tuple[np.ndarray, np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best k per query over several result sets (index + tail), each id once with its best score.

    Only merge results scored in the same space (re-ranked index results with exact tail results).
    """
    if not results:
        raise ValueError("merge_results needs at least one (scores, ids) pair")
    scores = np.concatenate([np.asarray(s, dtype=np.float32) for s, _ in results], axis=1)
    ids = np.concatenate([np.asarray(i, dtype=np.int64) for _, i in results], axis=1)
    scores = np.where(ids < 0, -np.inf, scores).astype(np.float32)
    # Best score first within each id, so that the first occurrence kept is the best one.
    order = np.lexsort((-scores, ids), axis=-1)
    ids, scores = np.take_along_axis(ids, order, axis=1), np.take_along_axis(scores, order, axis=1)
    scores[_repeated(ids)] = -np.inf
    return _top_k(scores, ids, k)
