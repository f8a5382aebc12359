"""Nearest-neighbour index over image embeddings: PCA + FAISS HNSW, or exact search for small libraries.

The stored full vectors are the source of truth; an index is derived from them and rebuildable. A search
for k results runs in three steps, and the caller owns the vectors for the last two:

1. ``VectorIndex.search(queries, k=index.candidate_count(k))`` -> candidate ids (approximate for HNSW);
2. ``rerank(...)`` with the candidates' full vectors -> exact cosine + rating term, best k;
3. ``exact_search(...)`` over the vectors added since the build (the "tail"), then ``merge_results``
   (the product's tail is a VectorTail; from a few thousand rows its older rows are searched through a
   TailGraph, the candidates re-scored exactly).

Scores from step 1 live in the indexed space (PCA cosine for HNSW); steps 2 and 3 score on the full
vectors, so only their results are comparable and mergeable.

Numpy and faiss only: the web process imports this module and must not pull in torch.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import math
import mmap
import os
import struct
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

import faiss
import numpy as np

IndexKind = Literal["exact", "hnsw"]

FILE_MAGIC = b"IMGSIMIX"
FORMAT_VERSION = 2
# Format 1, still read: magic, format version, header length, payload length, sha256 of header + payload.
_PREFIX = struct.Struct("<8sIQQ32s")
# Format 2, at the end of the file: magic, format version, faiss blob length, header offset, header length,
# sha256 of every byte before the trailer.
_TRAILER = struct.Struct("<8sIQQQ32s")
_SECTION_ALIGN = 64
_HASH_CHUNK = 8 << 20
_MAP_SECTIONS_FROM = 1 << 20
# A header is a few kB of JSON; a bigger length field means a corrupt file, not a bigger header.
_MAX_HEADER_BYTES = 1 << 20

PCA_FIT_MAX_ROWS = 100_000
# Fewer rows than this per input dimension and the second-moment matrix is too noisy to trust.
PCA_MIN_ROWS_PER_DIM = 4
RATING_DIMS = 2
MAX_RATING = 5.0


class IndexFileError(Exception):
    """An index file is missing, truncated, corrupt or from an unknown format version."""


@dataclass(frozen=True)
class IndexParams:
    """How an index is built and searched; stored in the file's metadata so a search knows its build.

    Defaults measured with bench/search.py (512-d clustered vectors, 2 cores): at 1M vectors efSearch 64
    gave recall@10 0.989 and 128 gave 0.998 after re-rank, for ~0.1 ms more per query; efConstruction
    200 built twice as slowly as 100 for no measurable recall gain once efSearch >= 64.
    """

    pca_dim: int = 128
    hnsw_m: int = 32
    ef_construction: int = 100
    ef_search: int = 128
    rating_weight: float = 0.05
    # Exact search on full vectors beat PCA + HNSW + re-rank up to ~5-7.5k vectors (in-memory re-rank,
    # 1 thread); the product's re-rank also fetches the candidates' vectors from the database, so the
    # switch is at 10k, where exact still answers in under 1 ms with perfect recall.
    exact_below: int = 10_000
    # Candidates fetched per wanted result for the exact re-rank (PCA reorders near neighbours). With
    # efSearch 128, recall@10 after re-rank was 0.998 (2 x k) and 1.000 (4 x k) at 100k, 0.998 (4 x k) at 1M.
    rerank_factor: int = 4

    def __post_init__(self) -> None:
        positive = ("pca_dim", "hnsw_m", "ef_construction", "ef_search", "rerank_factor")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"IndexParams.{name} must be >= 1, got {getattr(self, name)}")
        if self.exact_below < 0:
            raise ValueError(f"IndexParams.exact_below must be >= 0, got {self.exact_below}")
        if not (math.isfinite(self.rating_weight) and self.rating_weight >= 0):
            raise ValueError(f"IndexParams.rating_weight must be finite and >= 0, got {self.rating_weight}")


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


def _padded(scores: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Missing results as id -1 and score -inf (faiss pads with -FLT_MAX or leaves garbage)."""
    ids = np.asarray(ids, dtype=np.int64)
    scores = np.where(ids < 0, -np.inf, scores).astype(np.float32)
    return scores, ids


# Fewer queries than this per call are scored one by one with faiss's single-threaded SIMD kernels; more go to
# BLAS. A multi-threaded BLAS product waits for its threads to be scheduled: on the loaded 2-core machine
# one query against 5,000 tail vectors took 20 ms through numpy's matmul and 0.15 ms on one core
# (bench/search_product.py). Batches (duplicate detection: 256 queries) amortise that wait.
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
    query), not the whole (queries x items) matrix and an argpartition per row: 256 queries x 20,000 tail
    vectors took 58 ms instead of 172 (one thread).

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


def _fit_projection(vectors: np.ndarray, *, pca_dim: int, seed: int) -> tuple[np.ndarray, float, int]:
    """Top eigenvectors of the uncentred second-moment matrix, fitted on a sample of rows.

    Uncentred (truncated SVD) rather than mean-centred PCA: it best preserves x.y, the score we rank by;
    bench/search.py measured higher recall for it than for centred PCA on the same vectors.
    Hand-written rather than scikit-learn's TruncatedSVD (the same projection): on 100k x 512 rows its fit
    took 5.4x (randomized, which also kept less energy and recall) to 8.8x (arpack) as long as this one
    (one run, interleaved, 2 cores), about a quarter more total build time, and importing sklearn takes
    seconds in every process that imports this module.
    Returns (projection (pca_dim, full_dim) float32, kept energy fraction, rows used).
    """
    rng = np.random.default_rng(seed)
    rows = vectors.shape[0]
    sample_size = min(rows, PCA_FIT_MAX_ROWS)
    sample = vectors
    if sample_size < rows:
        sample = vectors[np.sort(rng.choice(rows, sample_size, replace=False))]
    moment = np.zeros((vectors.shape[1], vectors.shape[1]), dtype=np.float64)
    for start in range(0, sample_size, 16_384):
        block = sample[start : start + 16_384].astype(np.float64)
        moment += block.T @ block
    eigenvalues, eigenvectors = np.linalg.eigh(moment)
    top = np.argsort(eigenvalues)[::-1][:pca_dim]
    kept = float(eigenvalues[top].sum() / max(eigenvalues.sum(), 1e-30))
    return np.ascontiguousarray(eigenvectors[:, top].T, dtype=np.float32), kept, sample_size


def _project(vectors: np.ndarray, projection: np.ndarray | None) -> np.ndarray:
    """Unit rows in the indexed visual space, so inner product there is a cosine again."""
    if projection is None:
        return vectors
    projected = np.empty((vectors.shape[0], projection.shape[0]), dtype=np.float32)
    for start in range(0, vectors.shape[0], 65_536):
        block = vectors[start : start + 65_536] @ projection.T
        norms = np.linalg.norm(block, axis=1, keepdims=True)
        projected[start : start + 65_536] = block / np.where(norms > 0, norms, 1.0)
    return projected


class VectorIndex:
    """A built index: immutable, and safe to search from many threads (no per-search state is shared)."""

    def __init__(self, *, faiss_index: faiss.Index, projection: np.ndarray | None, metadata: dict[str, Any]) -> None:
        self._faiss_index = faiss_index
        self._projection = projection
        self._metadata = copy.deepcopy(metadata)
        self.params = IndexParams(**metadata["params"])
        self.kind: IndexKind = metadata["kind"]
        self.full_dim: int = metadata["full_dim"]
        ids = faiss.vector_to_array(faiss.downcast_index(faiss_index).id_map).astype(np.int64)
        ids.setflags(write=False)
        self.ids: np.ndarray = ids
        self._sorted_ids = np.sort(ids)
        # Full stored vectors and ratings in sorted-id order, for the exact re-rank without a database
        # read; memory-mapped from the file once saved (shared by every process on the machine).
        self._stored_vectors: np.ndarray | None = None
        self._stored_ratings: np.ndarray | None = None

    def with_stored_vectors(self, *, ids: np.ndarray, vectors: np.ndarray, ratings: np.ndarray | None) -> VectorIndex:
        """The same index also carrying the full vectors it was built from (saved with it, for re-ranks)."""
        given = np.asarray(ids, dtype=np.int64).reshape(-1)
        in_order = bool(np.all(given[1:] > given[:-1]))  # the library is read in id order: no reordering copy
        order = np.arange(given.shape[0]) if in_order else np.argsort(given, kind="stable")
        if not np.array_equal(given[order], self._sorted_ids):
            raise ValueError("stored vectors must be given for exactly the index's ids")
        other = copy.copy(self)
        other._stored_vectors = _unit_rows(vectors if in_order else np.asarray(vectors)[order], name="vectors")
        other._stored_ratings = _item_rating_array(ratings, order.shape[0])[order].astype(np.float32)
        return other

    @property
    def has_stored_vectors(self) -> bool:
        return self._stored_vectors is not None

    def stored(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ids, unit vectors, ratings) of those `ids` the index holds, as stored at build time, in id order."""
        if self._stored_vectors is None or self._stored_ratings is None:
            raise ValueError("this index was saved without its stored vectors")
        wanted = np.unique(np.asarray(ids, dtype=np.int64))
        wanted = wanted[self.contains(wanted)]
        positions = np.searchsorted(self._sorted_ids, wanted)
        return wanted, np.asarray(self._stored_vectors[positions]), np.asarray(self._stored_ratings[positions])

    @property
    def metadata(self) -> dict[str, Any]:
        """A copy: what to store on the IndexBuild row (pca_dim, count, params, faiss version, ...)."""
        return copy.deepcopy(self._metadata)

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def __repr__(self) -> str:
        return f"<VectorIndex {self.kind} count={len(self)} dim={self.full_dim}>"

    def candidate_count(self, k: int) -> int:
        """How many results to ask search() for so that rerank() finds the true top k."""
        return k if self.kind == "exact" else k * self.params.rerank_factor

    def search(
        self,
        queries: np.ndarray,
        *,
        k: int,
        query_ratings: Sequence[float | None] | None = None,
        exclude_ids: Iterable[int] | None = None,
        ef_search: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (queries, k), best first, padded with -inf / -1.

        Scores are in the indexed space: PCA cosine + rating term for HNSW, full cosine + rating term
        for exact. exclude_ids (deleted images, the query itself) are filtered inside faiss with an
        IDSelector, so k results still come back when excluded ids are among the nearest.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        vectors = _unit_rows(queries, name="queries")
        if vectors.shape[1] != self.full_dim:
            raise ValueError(f"queries have {vectors.shape[1]} dims, the index expects {self.full_dim}")
        ratings = _query_rating_array(query_ratings, vectors.shape[0])
        features = rating_features(ratings, weight=self.params.rating_weight)
        indexed = np.ascontiguousarray(np.hstack([_project(vectors, self._projection), features]))

        selector = None
        excluded = None
        if exclude_ids is not None:
            excluded = np.unique(np.fromiter(exclude_ids, dtype=np.int64))
        if excluded is not None and excluded.shape[0] > 0:
            # The batch selector must outlive the search: IDSelectorNot only holds a pointer to it.
            batch = faiss.IDSelectorBatch(excluded)
            selector = faiss.IDSelectorNot(batch)
        if self.kind == "hnsw":
            # Per-call parameters instead of setting hnsw.efSearch: nothing shared is mutated.
            search_params = faiss.SearchParametersHNSW()
            search_params.efSearch = max(ef_search or self.params.ef_search, k)
        else:
            search_params = faiss.SearchParameters()
        if selector is not None:
            search_params.sel = selector
        scores, ids = self._faiss_index.search(indexed, k, params=search_params)
        return _padded(scores, ids)

    def contains(self, ids: np.ndarray) -> np.ndarray:
        """Which of `ids` the index holds: a binary search per id in the sorted ids (no per-call set)."""
        wanted = np.asarray(ids, dtype=np.int64).reshape(-1)
        if not self._sorted_ids.shape[0]:
            return np.zeros(wanted.shape[0], dtype=bool)
        positions = np.minimum(np.searchsorted(self._sorted_ids, wanted), self._sorted_ids.shape[0] - 1)
        return self._sorted_ids[positions] == wanted

    def save(self, path: str | Path) -> str:
        """Write atomically (temp file in the same dir, fsync, rename); returns the file's sha256.

        Layout (format 2): the faiss blob first, so that faiss itself can memory-map the vectors from the
        file (every process on a machine then shares one copy in the page cache); then the other sections,
        the JSON header and a fixed-size trailer with the lengths and the sha256 of everything before it.
        A crash or error midway leaves the previous file at path untouched, so serving continues.
        """
        target = Path(path)
        blob = faiss.serialize_index(self._faiss_index)
        sections: list[tuple[str, np.ndarray]] = []
        if self._projection is not None:
            sections.append(("projection", self._projection))
        if self._stored_vectors is not None and self._stored_ratings is not None:
            sections += [("stored_vectors", self._stored_vectors), ("stored_ratings", self._stored_ratings)]
        parts: list[bytes | np.ndarray] = [blob]
        offset = blob.nbytes
        layout = []
        for name, array in sections:
            padding = -offset % _SECTION_ALIGN
            parts.append(b"\0" * padding)
            offset += padding
            layout.append({"name": name, "dtype": array.dtype.str, "shape": list(array.shape), "offset": offset})
            parts.append(array)
            offset += array.nbytes
        header = json.dumps({"metadata": self._metadata, "sections": layout}, sort_keys=True).encode()
        parts.append(header)
        digest = hashlib.sha256()
        for part in parts:
            digest.update(memoryview(np.ascontiguousarray(part)).cast("B") if isinstance(part, np.ndarray) else part)
        parts.append(_TRAILER.pack(FILE_MAGIC, FORMAT_VERSION, blob.nbytes, offset, len(header), digest.digest()))
        del blob

        target.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            # mkstemp makes the file 0600; web processes may run as another user than the builder.
            os.fchmod(descriptor, 0o644)
            with os.fdopen(descriptor, "wb") as stream:
                _write_all(stream, parts)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temp_name, target)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
        _fsync_directory(target.parent)
        return digest.hexdigest()

    @classmethod
    def load(cls, path: str | Path) -> VectorIndex:
        """Verify a saved index, then map it: IndexFileError before faiss ever sees damaged bytes.

        The sha256 is streamed through the page cache (no copy of the file in this process); faiss then
        memory-maps the stored vectors read-only, so N processes on a machine hold one copy of them. Only
        the graph (HNSW neighbour lists) and the id map are private to each process. Files of format 1
        (written before the layout could be mapped) are still read, into memory.
        """
        source = Path(path)
        try:
            with source.open("rb") as stream:
                size = os.fstat(stream.fileno()).st_size
                if stream.read(len(FILE_MAGIC)) == FILE_MAGIC:
                    stream.seek(0)
                    return cls._load_format_1(source, stream, size)
                trailer, digest = _verified_trailer(source, stream, size)
                _, _, _, header_offset, header_len, _ = trailer
                stream.seek(header_offset)
                header = json.loads(stream.read(header_len))
                arrays = _read_sections_from(stream, header["sections"], limit=header_offset)
                # Through /proc/self/fd, faiss maps the very file that was verified, even if a rebuild
                # renamed another one over the path in between.
                proc_path = f"/proc/self/fd/{stream.fileno()}"
                faiss_index = faiss.read_index(
                    proc_path if os.path.exists(proc_path) else str(source),
                    faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY,
                )
        except FileNotFoundError as exc:
            raise IndexFileError(f"{source}: no such index file") from exc
        except IndexFileError:
            raise
        except OSError as exc:
            raise IndexFileError(f"{source}: cannot read index file: {exc}") from exc
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise IndexFileError(f"{source}: inconsistent index file: {exc}") from exc
        index = cls._checked(source, faiss_index, arrays.get("projection"), header, digest, size)
        if "stored_vectors" in arrays and "stored_ratings" in arrays:
            if arrays["stored_vectors"].shape != (len(index), index.full_dim) or arrays["stored_ratings"].shape != (
                len(index),
            ):
                raise IndexFileError(f"{source}: stored vectors do not match the index")
            index._stored_vectors, index._stored_ratings = arrays["stored_vectors"], arrays["stored_ratings"]
        return index

    @classmethod
    def _checked(
        cls,
        source: Path,
        faiss_index: faiss.Index,
        projection: np.ndarray | None,
        header: dict[str, Any],
        digest: bytes,
        size: int,
    ) -> VectorIndex:
        """The loaded index, after checking that faiss agrees with the metadata."""
        try:
            metadata = header["metadata"]
            metadata["checksum"] = digest.hex()
            metadata["file_bytes"] = size
            index = cls(faiss_index=faiss_index, projection=projection, metadata=metadata)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise IndexFileError(f"{source}: inconsistent index file: {exc}") from exc
        if len(index) != metadata["count"] or faiss_index.d != metadata["indexed_dim"]:
            raise IndexFileError(f"{source}: faiss index does not match its metadata")
        return index

    @classmethod
    def _load_format_1(cls, source: Path, stream: BinaryIO, size: int) -> VectorIndex:
        """Format 1 (length + sha256 prefix, faiss blob inside): read whole into memory, not mappable."""
        prefix = stream.read(_PREFIX.size)
        if len(prefix) < _PREFIX.size:
            raise IndexFileError(f"{source}: truncated ({size} bytes), not an index file")
        _, version, header_len, payload_len, expected = _PREFIX.unpack(prefix)
        if version != 1:
            raise IndexFileError(f"{source}: format {version}, this code reads {FORMAT_VERSION}")
        if header_len > _MAX_HEADER_BYTES or size != _PREFIX.size + header_len + payload_len:
            raise IndexFileError(
                f"{source}: {size} bytes on disk, header says "
                f"{_PREFIX.size + header_len + payload_len}: truncated or corrupt"
            )
        body = np.empty(header_len + payload_len, dtype=np.uint8)
        if stream.readinto(memoryview(body)) != body.shape[0]:
            raise IndexFileError(f"{source}: changed while being read")
        if hashlib.sha256(memoryview(body)).digest() != expected:
            raise IndexFileError(f"{source}: checksum mismatch, the file is corrupt")
        try:
            header = json.loads(body[:header_len].tobytes())
            arrays = _read_sections(body[header_len:], header["sections"])
            faiss_index = faiss.deserialize_index(arrays["faiss_index"])
            # A copy, so the file buffer (the whole index) can be freed once faiss has parsed it.
            projection = arrays["projection"].copy() if "projection" in arrays else None
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise IndexFileError(f"{source}: inconsistent index file: {exc}") from exc
        return cls._checked(source, faiss_index, projection, header, expected, size)


def _verified_trailer(source: Path, stream: BinaryIO, size: int) -> tuple[tuple[Any, ...], bytes]:
    """The format-2 trailer, its lengths bounds-checked and the sha256 of the file verified by streaming."""
    if size < _TRAILER.size:
        raise IndexFileError(f"{source}: truncated ({size} bytes), not an index file")
    stream.seek(size - _TRAILER.size)
    trailer = _TRAILER.unpack(stream.read(_TRAILER.size))
    magic, version, faiss_len, header_offset, header_len, expected = trailer
    if magic != FILE_MAGIC:
        raise IndexFileError(f"{source}: truncated, or not an imgsim index file (no trailer)")
    if version != FORMAT_VERSION:
        raise IndexFileError(f"{source}: format {version}, this code reads {FORMAT_VERSION}")
    if (
        header_len > _MAX_HEADER_BYTES
        or faiss_len > header_offset
        or size != header_offset + header_len + _TRAILER.size
    ):
        raise IndexFileError(
            f"{source}: {size} bytes on disk, trailer says {header_offset + header_len + _TRAILER.size}: "
            "truncated or corrupt"
        )
    digest = hashlib.sha256()
    stream.seek(0)
    buffer = bytearray(_HASH_CHUNK)
    view = memoryview(buffer)
    remaining = header_offset + header_len
    while remaining:
        read = stream.readinto(view[: min(remaining, _HASH_CHUNK)])
        if not read:
            raise IndexFileError(f"{source}: changed while being read")
        digest.update(view[:read])  # hashlib releases the GIL: searches on other threads go on
        remaining -= read
    if digest.digest() != expected:
        raise IndexFileError(f"{source}: checksum mismatch, the file is corrupt")
    return trailer, expected


def _read_sections_from(stream: BinaryIO, layout: list[dict[str, Any]], *, limit: int) -> dict[str, np.ndarray]:
    """Sections read from the file (small: the projection), bounds-checked against the header's end."""
    arrays = {}
    for entry in layout:
        dtype = np.dtype(entry["dtype"])
        shape = tuple(int(n) for n in entry["shape"])
        start = int(entry["offset"])
        length = dtype.itemsize * math.prod(shape)
        if start < 0 or start + length > limit:
            raise ValueError(f"section {entry['name']} lies outside the payload")
        if length >= _MAP_SECTIONS_FROM:
            # Large sections (the stored vectors) are mapped read-only, like the faiss blob: one copy per machine.
            mapped = np.memmap(stream, dtype=dtype, mode="r", offset=start, shape=shape)
            # Re-ranks read a few scattered rows: without this, read-around faults in ~128 kB per row read.
            raw = getattr(mapped, "_mmap", None)
            if raw is not None and hasattr(mmap, "MADV_RANDOM"):
                raw.madvise(mmap.MADV_RANDOM)
            arrays[entry["name"]] = mapped
            continue
        stream.seek(start)
        arrays[entry["name"]] = np.frombuffer(stream.read(length), dtype=dtype).reshape(shape).copy()
    return arrays


def _write_all(stream: BinaryIO, parts: Sequence[bytes | np.ndarray]) -> None:
    """Write buffers without concatenating them (the faiss blob can be hundreds of MB)."""
    for part in parts:
        view = memoryview(np.ascontiguousarray(part)).cast("B") if isinstance(part, np.ndarray) else part
        stream.write(view)


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable; without it a power cut can bring the old name back."""
    if os.name != "posix":
        return
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _read_sections(payload: np.ndarray, layout: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Views into the payload, bounds-checked against the layout the header claims."""
    arrays = {}
    for entry in layout:
        dtype = np.dtype(entry["dtype"])
        shape = tuple(int(n) for n in entry["shape"])
        start = int(entry["offset"])
        stop = start + dtype.itemsize * math.prod(shape)
        if start < 0 or stop > payload.shape[0]:
            raise ValueError(f"section {entry['name']} lies outside the payload")
        arrays[entry["name"]] = np.frombuffer(payload[start:stop], dtype=dtype).reshape(shape)
    return arrays


def build_index(
    *, ids: np.ndarray, vectors: np.ndarray, ratings: np.ndarray | None, params: IndexParams
) -> VectorIndex:
    """Index the library's vectors under their primary keys: exact below params.exact_below, else HNSW.

    The HNSW path fits the projection on at most PCA_FIT_MAX_ROWS rows. Vectors are re-normalised, so
    inner product is cosine either way.
    """
    started = time.perf_counter()
    item_ids = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
    items = _unit_rows(vectors, name="vectors")
    count, full_dim = items.shape
    if item_ids.shape[0] != count:
        raise ValueError(f"{item_ids.shape[0]} ids for {count} vectors")
    if np.unique(item_ids).shape[0] != count:
        raise ValueError("ids must be unique")
    features = rating_features(_item_rating_array(ratings, count), weight=params.rating_weight)

    kind = choose_kind(count=count, full_dim=full_dim, params=params)
    projection = None
    pca_info: dict[str, Any] = {"pca_dim": None, "pca_fit_rows": 0, "pca_kept_energy": None}
    if kind == "hnsw" and params.pca_dim < full_dim:
        projection, kept, fit_rows = _fit_projection(items, pca_dim=params.pca_dim, seed=count)
        pca_info = {"pca_dim": params.pca_dim, "pca_fit_rows": fit_rows, "pca_kept_energy": round(kept, 6)}
    indexed = np.ascontiguousarray(np.hstack([_project(items, projection), features]))
    del items
    indexed_dim = indexed.shape[1]

    if kind == "hnsw":
        inner = faiss.IndexHNSWFlat(indexed_dim, params.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = params.ef_construction
        inner.hnsw.efSearch = params.ef_search
    else:
        inner = faiss.IndexFlatIP(indexed_dim)
    faiss_index = faiss.IndexIDMap(inner)
    faiss_index.add_with_ids(indexed, item_ids)

    metadata = {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "count": count,
        "full_dim": full_dim,
        "indexed_dim": indexed_dim,
        **pca_info,
        "params": asdict(params),
        "rated_count": int(np.count_nonzero(~np.isnan(_item_rating_array(ratings, count)))),
        "build_seconds": round(time.perf_counter() - started, 3),
        "built_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "faiss_version": faiss.__version__,
        "numpy_version": np.__version__,
    }
    return VectorIndex(faiss_index=faiss_index, projection=projection, metadata=metadata)


def choose_kind(*, count: int, full_dim: int, params: IndexParams) -> IndexKind:
    """Exact below the measured threshold, and whenever there are too few rows to fit the projection."""
    needs_pca = params.pca_dim < full_dim
    if count < params.exact_below or (needs_pca and count < PCA_MIN_ROWS_PER_DIM * full_dim):
        return "exact"
    return "hnsw"


# The tail's HNSW graph (TailGraph): item rating features are indexed at this weight, as in the served index (a
# small pull towards equal ratings in the graph); queries carry theirs scaled so that the inner product is the
# searched score, cosine + weight x rating term, whatever the search's weight.
TAIL_GRAPH_RATING_WEIGHT = 0.05
# M 32, efConstruction 64, efSearch 64, 4 x k candidates re-scored exactly: on 20,000 tail vectors of the bench
# (bench/README.md, fourth session) the tail's part of a search 0.58 ms against 1.46 ms exact (one thread), merged
# top-10 lists identical to the exact tail's for 300 / 300 queries at 100k + 20k; built in 3.7 s (one thread).
TAIL_GRAPH_M = 32
TAIL_GRAPH_EF_CONSTRUCTION = 64
TAIL_GRAPH_EF_SEARCH = 64
TAIL_GRAPH_CANDIDATES_PER_RESULT = 4


@dataclass(frozen=True)
class TailGraph:
    """An HNSW graph (faiss, inner product) over the first `rows` rows of one generation of a tail's arrays:
    faiss labels are row numbers. Never added to once made: a longer one is a copy with the newer rows added
    (VectorTail.snapshot().graph_extended()), so searches on other threads never see a graph being changed."""

    index: faiss.IndexHNSWFlat
    rows: int
    generation: int  # VectorTail's: rows are renumbered when it compacts, and its graph is dropped

    def search(self, queries: np.ndarray, *, want: int, usable: np.ndarray) -> np.ndarray:
        """(queries, want) row numbers, best first by the indexed score, -1 padding; rows not `usable` (retired
        since, or excluded by the search) are filtered inside faiss, so `want` usable rows still come back."""
        search_params = faiss.SearchParametersHNSW()
        search_params.efSearch = max(TAIL_GRAPH_EF_SEARCH, want)
        bitmap = None
        if not usable.all():
            bitmap = np.packbits(usable, bitorder="little")  # must outlive the search: faiss holds a pointer
            selector = faiss.IDSelectorBitmap(bitmap.shape[0], faiss.swig_ptr(bitmap))  # n: bytes
            search_params.sel = selector
        with faiss_threads(1):
            _, rows = self.index.search(queries, want, params=search_params)
        return rows


def tail_graph_queries(queries: np.ndarray, query_features: np.ndarray, *, weight: float) -> np.ndarray:
    """Unit queries with their rating features scaled so that the graph's inner product with an item is
    cosine + weight x rating term (item features are indexed at TAIL_GRAPH_RATING_WEIGHT)."""
    scale = weight / math.sqrt(TAIL_GRAPH_RATING_WEIGHT)
    return np.ascontiguousarray(np.hstack([queries, query_features * scale]), dtype=np.float32)


@dataclass(frozen=True)
class TailSnapshot:
    """The tail as one search sees it: immutable views, so searches never lock against updates."""

    ids: np.ndarray
    vectors: np.ndarray  # unit rows, float32
    features: np.ndarray  # rating_features(ratings, weight=1.0)
    alive: np.ndarray  # False for rows replaced or removed since they were added
    generation: int = 0  # the VectorTail's row numbering (see TailGraph)
    graph: TailGraph | None = None  # over the first graph.rows rows; the rows after it are scanned exactly
    _sorted_ids: np.ndarray = field(init=False, repr=False, compare=False)
    _sorted_rows: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Live ids sorted with their rows: membership and lookups by binary search, no per-search set.
        live_rows = np.flatnonzero(self.alive)
        order = np.argsort(self.ids[live_rows], kind="stable")
        object.__setattr__(self, "_sorted_ids", self.ids[live_rows][order])
        object.__setattr__(self, "_sorted_rows", live_rows[order])

    def __len__(self) -> int:
        return int(self._sorted_ids.shape[0])

    def contains(self, ids: np.ndarray) -> np.ndarray:
        """Which of `ids` are live rows of this tail."""
        return self._rows_of(ids) >= 0

    def _rows_of(self, ids: np.ndarray) -> np.ndarray:
        wanted = np.asarray(ids, dtype=np.int64).reshape(-1)
        if not self._sorted_ids.shape[0]:
            return np.full(wanted.shape[0], -1, dtype=np.int64)
        positions = np.minimum(np.searchsorted(self._sorted_ids, wanted), self._sorted_ids.shape[0] - 1)
        return np.where(self._sorted_ids[positions] == wanted, self._sorted_rows[positions], -1)

    def stored(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ids, unit vectors, rating features) of those `ids` the tail holds, in the order given."""
        rows = self._rows_of(ids)
        rows = rows[rows >= 0]
        return self.ids[rows], self.vectors[rows], self.features[rows]

    def search(
        self,
        queries: np.ndarray,
        *,
        k: int,
        query_ratings: Sequence[float | None] | None,
        weight: float,
        exclude_ids: Iterable[int] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact search over the live rows, scored like exact_search (cosine + weight x rating term): one pass
        over the tail's vectors per query (single-threaded SIMD; BLAS for batches), the rest vectorised."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        queries = _unit_rows(queries, name="queries")
        if queries.shape[1] != self.vectors.shape[1] and len(self):
            raise ValueError(f"queries have {queries.shape[1]} dims, the tail holds {self.vectors.shape[1]}")
        usable = self.alive
        if exclude_ids is not None:
            rows = self._rows_of(np.fromiter(exclude_ids, dtype=np.int64))
            rows = rows[rows >= 0]
            if rows.shape[0]:
                usable = usable.copy()
                usable[rows] = False
        query_features = rating_features(_query_rating_array(query_ratings, queries.shape[0]), weight=1.0)
        graph = self.graph
        if graph is None or queries.shape[0] >= BATCH_FROM_QUERIES:  # batches: BLAS over every row, exact
            return _scored_top_k(
                queries, query_features, self.vectors, self.features, self.ids, usable, k=k, weight=weight
            )
        covered = graph.rows
        scores, ids = self._graph_candidates(queries, query_features, usable, k=k, weight=weight)
        if usable[covered:].any():  # rows added since the graph was made: scanned exactly
            recent = _scored_top_k(
                queries,
                query_features,
                self.vectors[covered:],
                self.features[covered:],
                self.ids[covered:],
                usable[covered:],
                k=k,
                weight=weight,
            )
            scores, ids = np.concatenate([scores, recent[0]], axis=1), np.concatenate([ids, recent[1]], axis=1)
        return _top_k(scores, ids, k)  # the graph's rows and the newer ones are distinct: no id twice

    def _graph_candidates(
        self, queries: np.ndarray, query_features: np.ndarray, usable: np.ndarray, *, k: int, weight: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of the graph's candidates among the rows it covers, k x TAIL_GRAPH_CANDIDATES_PER_RESULT
        per query, scored again exactly with the kernel and rating term of the exact scan (a row scores the same
        either way); padding scores -inf with id -1."""
        assert self.graph is not None
        rows = self.graph.search(
            tail_graph_queries(queries, query_features, weight=weight),
            want=k * TAIL_GRAPH_CANDIDATES_PER_RESULT,
            usable=usable[: self.graph.rows],
        )
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        scores = np.empty(rows.shape, dtype=np.float32)
        faiss.fvec_inner_products_by_idx(  # -1 rows are padding, scored -inf below
            faiss.swig_ptr(scores),
            faiss.swig_ptr(queries),
            faiss.swig_ptr(self.vectors),
            faiss.swig_ptr(rows),
            queries.shape[1],
            queries.shape[0],
            rows.shape[1],
        )
        picked = np.maximum(rows, 0)
        if weight:
            scores += weight * _rating_term(query_features, self.features[picked])
        scores[rows < 0] = -np.inf
        return scores, np.where(rows >= 0, self.ids[picked], -1)

    def graph_extended(self) -> TailGraph:
        """A graph over every row of this snapshot: a copy of its graph with the newer rows added, or a new one.
        Slow (~0.2 ms per row added, one thread): for a background thread, never a request."""
        count = self.ids.shape[0]
        graph = self.graph
        if graph is not None and graph.generation == self.generation and graph.rows <= count:
            index, start = faiss.clone_index(graph.index), graph.rows
        else:
            index = faiss.IndexHNSWFlat(self.vectors.shape[1] + RATING_DIMS, TAIL_GRAPH_M, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = TAIL_GRAPH_EF_CONSTRUCTION
            start = 0
        scale = math.sqrt(TAIL_GRAPH_RATING_WEIGHT)
        for begin in range(start, count, 4096):  # a bounded copy at a time, not the whole tail's
            end = min(begin + 4096, count)
            index.add(np.ascontiguousarray(np.hstack([self.vectors[begin:end], self.features[begin:end] * scale])))
        return TailGraph(index=index, rows=count, generation=self.generation)


class VectorTail:
    """Vectors searched exactly beside an index (embedded since its build): appended to as images are
    embedded, rows retired as images go, without copying the whole tail per change.

    Not thread-safe for writes (the owner serialises them); snapshot() views stay valid while it grows.
    """

    def __init__(self, *, dim: int) -> None:
        self.dim = dim
        self._size = 0
        self._ids = np.zeros(0, np.int64)
        self._vectors = np.zeros((0, dim), np.float32)
        self._features = np.zeros((0, RATING_DIMS), np.float32)
        self._alive = np.zeros(0, bool)
        self._row_of: dict[int, int] = {}
        self._snapshot: TailSnapshot | None = None
        self._generation = 0  # +1 when rows are renumbered (compaction): graphs of older ones no longer apply
        self._graph: TailGraph | None = None

    def __len__(self) -> int:
        return len(self._row_of)

    def __contains__(self, pk: int) -> bool:
        return int(pk) in self._row_of

    def upsert(self, *, ids: np.ndarray, vectors: np.ndarray, ratings: np.ndarray) -> None:
        """Add rows; an id already present is replaced (a re-embedded image)."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if not ids.shape[0]:
            return
        self.remove(ids)
        units = _unit_rows(vectors, name="vectors")
        if units.shape[1] != self.dim:
            raise ValueError(f"vectors have {units.shape[1]} dims, the tail holds {self.dim}")
        features = rating_features(_item_rating_array(ratings, ids.shape[0]), weight=1.0)
        self._reserve(self._size + ids.shape[0])
        stop = self._size + ids.shape[0]
        self._ids[self._size : stop] = ids
        self._vectors[self._size : stop] = units
        self._features[self._size : stop] = features
        self._alive[self._size : stop] = True
        for offset, pk in enumerate(ids.tolist()):
            self._row_of[pk] = self._size + offset
        self._size = stop
        self._snapshot = None

    def remove(self, ids: Iterable[int]) -> None:
        """Retire rows (deleted, trashed, replaced); unknown ids are ignored."""
        rows = [row for row in (self._row_of.pop(int(pk), None) for pk in ids) if row is not None]
        if rows:
            self._alive[rows] = False  # snapshots hold their own copy of the mask
            self._snapshot = None
        if self._size > 1024 and len(self._row_of) < self._size // 2:
            self._compact()

    def snapshot(self) -> TailSnapshot:
        if self._snapshot is None:
            n = self._size
            self._snapshot = TailSnapshot(
                ids=self._ids[:n],
                vectors=self._vectors[:n],
                features=self._features[:n],
                alive=self._alive[:n].copy(),
                generation=self._generation,
                graph=self._graph,
            )
        return self._snapshot

    @property
    def graph_rows(self) -> int:
        """Rows the graph covers (0: none); the rows after them are searched exactly."""
        return self._graph.rows if self._graph is not None else 0

    @property
    def rows(self) -> int:
        """Rows held, retired ones included (they keep their row numbers until a compaction)."""
        return self._size

    def attach_graph(self, graph: TailGraph) -> bool:
        """Search the rows `graph` covers through it from the next snapshot on; False when it no longer applies
        (the rows were renumbered since, or a graph covering as many is attached already)."""
        if graph.generation != self._generation or graph.rows > self._size or graph.rows <= self.graph_rows:
            return False
        self._graph = graph
        self._snapshot = None
        return True

    def _reserve(self, rows: int) -> None:
        """Grow by doubling into new arrays, so the views of earlier snapshots are never written to."""
        if rows <= self._ids.shape[0]:
            return
        capacity = max(rows, 2 * self._ids.shape[0], 256)
        n = self._size
        ids, vectors = np.zeros(capacity, np.int64), np.zeros((capacity, self.dim), np.float32)
        features, alive = np.zeros((capacity, RATING_DIMS), np.float32), np.zeros(capacity, bool)
        ids[:n], vectors[:n] = self._ids[:n], self._vectors[:n]
        features[:n], alive[:n] = self._features[:n], self._alive[:n]
        self._ids, self._vectors, self._features, self._alive = ids, vectors, features, alive

    def _compact(self) -> None:
        """Drop retired rows into fresh arrays once they are half the tail."""
        keep = np.flatnonzero(self._alive[: self._size])
        self._ids, self._vectors = self._ids[keep].copy(), self._vectors[keep].copy()
        self._features, self._alive = self._features[keep].copy(), np.ones(keep.shape[0], bool)
        self._size = int(keep.shape[0])
        self._row_of = {pk: row for row, pk in enumerate(self._ids.tolist())}
        self._snapshot = None
        self._generation += 1
        self._graph = None
