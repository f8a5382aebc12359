"""The tail: vectors embedded since the served index was built, searched exactly beside it (VectorTail), and
from a few thousand rows through an HNSW graph over its older rows (TailGraph), the candidates re-scored exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import faiss
import numpy as np

from search.index.scoring import (
    BATCH_FROM_QUERIES,
    RATING_DIMS,
    _item_rating_array,
    _query_rating_array,
    _rating_term,
    _scored_top_k,
    _top_k,
    _unit_rows,
    faiss_threads,
    rating_features,
)

# The tail's HNSW graph (TailGraph): item rating features are indexed at this weight, as in the served index (a
# small pull towards equal ratings in the graph); queries carry theirs scaled so that the inner product is the
# searched score, cosine + weight x rating term, whatever the search's weight.
TAIL_GRAPH_RATING_WEIGHT = 0.05
# M 32, efConstruction 64, efSearch 64, 4 x k candidates re-scored exactly: small enough to build in a background
# thread within seconds, and with the exact re-score the merged top-k lists match the exact tail's while the
# tail's part of a search costs a fraction of the exact scan (figures in bench/README.md, search_product.py).
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
        Slow (an HNSW insertion per row added, one thread): for a background thread, never a request."""
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
