"""Reads of the search side: k-nearest-neighbour search over the served index plus the not-yet-indexed tail.

A search runs: query vector -> served index (PCA + HNSW, or exact for small libraries) -> exact re-rank on
the full vectors the index file carries -> merged with a search over the in-memory tail (vectors embedded or
changed since the build: exact, or from IMGSIM_TAIL_GRAPH_FROM rows an HNSW graph the view makes in a background
thread, its candidates re-scored exactly, the rows added since it scanned exactly) -> rating-aware ordering ->
the rating fallback when nothing reaches the match threshold. Each process keeps that state in a LibraryView,
kept up to date from the change log (search.models.LibraryChange): deleted, trashed or failed images are excluded
inside faiss. A search runs on
the view as it is and reads one query, whatever the library and tail sizes: the k result rows, with whether
the log has rows the view has not applied (then they are applied and the search runs again).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import IO

import numpy as np
from django.conf import settings
from django.db import connections
from django.db.models import BooleanField, Count, Q
from django.db.models.expressions import RawSQL
from django_q.models import Schedule

from gallery.image_file import decode_upload
from gallery.models import Image
from gallery.services import read_upload_bytes
from search import services
from search.index.scoring import BATCH_FROM_QUERIES, faiss_threads, merge_results, rerank
from search.index.tail import TailSnapshot, VectorTail
from search.index.vector_index import IndexFileError, VectorIndex
from search.models import IndexBuild, LibraryChange
from search.services import VectorRows, vectors_from_rows
from search.thresholds import thresholds_for, thresholds_forget, thresholds_in_force

logger = logging.getLogger(__name__)

# Vectors embedded up to this long before the build's newest one are checked against the index's ids when
# a build is loaded, so a row committed late (or stamped by a worker whose clock is behind) is still searched.
TAIL_MARGIN = timedelta(minutes=10)
# The rating fallback ranks at most this many images per rating step by visual similarity.
FALLBACK_SCAN_LIMIT = 5000


@dataclass(frozen=True)
class SimilarImage:
    image: Image
    similarity: float  # exact cosine of the full vectors: what users see
    score: float  # similarity plus the rating term: what results are ordered by


@dataclass(frozen=True)
class SearchResult:
    results: list[SimilarImage]
    matched: bool  # some result reaches the match threshold
    fallback: bool  # results are the rating fallback
    threshold: float
    query_rating: int | None
    k: int
    index_version: int | None
    searched: int  # how many vectors the search covered (index + tail)
    notes: list[str] = field(default_factory=list)


# Ids per IN (...) list: well under SQLite's bound-parameter limit, and short lists plan well on PostgreSQL.
IDS_PER_QUERY = 2000
# A change id skipped over (its transaction still open, or rolled back) is asked for again this long.
GAP_SECONDS = TAIL_MARGIN.total_seconds()
# Outstanding ids are queried as runs (first, last), so many cost little; the bound is for memory.
MAX_GAPS = 100_000


def stored_vectors(*, model_name: str, ids: Iterable[int]) -> VectorRows:
    """Stored vectors of the searchable images among `ids`, in id order (deleted or re-embedded ones drop out)."""
    wanted = sorted({int(pk) for pk in ids})
    rows: list[tuple[int, bytes, int | None]] = []
    for start in range(0, len(wanted), IDS_PER_QUERY):
        chunk = Image.objects.searchable(model_name=model_name).filter(id__in=wanted[start : start + IDS_PER_QUERY])
        rows.extend(chunk.order_by("id").values_list("id", "embedding", "rating"))
    return vectors_from_rows(rows)


@dataclass(frozen=True)
class LibraryState:
    """What one search works on: the served build and index, the tail, and the index ids no longer
    searchable. Immutable: a refresh publishes a new one, so searches on other threads never see a half
    update (nor a half-loaded index during a switch)."""

    build: IndexBuild | None
    index: VectorIndex | None
    tail: TailSnapshot | None
    removed: np.ndarray  # sorted ids in the index that were deleted, trashed or re-embedded away since
    mark: int = 0  # every change up to this id is applied...
    gaps: tuple[tuple[int, int], ...] = ()  # ...except these runs of ids, not committed when it was read

    def has_unseen_changes(self) -> RawSQL:
        """Whether the change log has rows this state has not applied, as a boolean column: a search reads it
        in its results query."""
        return has_unseen_changes(mark=self.mark, gaps=self.gaps)


def gap_runs(gaps: Iterable[int]) -> tuple[tuple[int, int], ...]:
    """Outstanding change ids as (first, last) runs: a rolled-back bulk import leaves thousands in a row."""
    ordered = sorted(gaps)
    runs: list[tuple[int, int]] = []
    for pk in ordered:
        if runs and pk == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], pk)
        else:
            runs.append((pk, pk))
    return tuple(runs)


def unseen_changes(*, mark: int, gaps: tuple[tuple[int, int], ...]) -> Q:
    """Change ids above the mark or within the outstanding runs: a short query whatever their number."""
    condition = Q(id__gt=mark)
    for low, high in gaps:
        condition |= Q(id=low) if low == high else Q(id__range=(low, high))
    return condition


# Outstanding runs probed one by one in a search's change check; the rest share one probe.
GAP_PROBES = 16


def has_unseen_changes(*, mark: int, gaps: tuple[tuple[int, int], ...]) -> RawSQL:
    """unseen_changes() as a boolean SQL expression made of primary-key probes, one per run of ids:
    "the first change id at or after `low`, if it is <= `high`" (ORDER BY id LIMIT 1).

    An EXISTS over `id > mark` is planned from the table's statistics: with none, or stale ones after a bulk
    import (PostgreSQL without a recent ANALYZE), it was a sequential scan of the whole log on every search
    (1-2 ms at 20,000 rows, bench/search_product.py). A probe is an index scan whatever the statistics: a
    scan of the table would have to sort it to answer."""
    table = connections[LibraryChange.objects.db].ops.quote_name(LibraryChange._meta.db_table)
    column = connections[LibraryChange.objects.db].ops.quote_name(LibraryChange._meta.pk.column)
    probe = f"(SELECT {column} FROM {table} WHERE {{}} ORDER BY {column} LIMIT 1) IS NOT NULL"
    parts = [probe.format(f"{column} > %s")]
    params: list[int] = [mark]
    for low, high in gaps[:GAP_PROBES]:
        parts.append(probe.format(f"{column} BETWEEN %s AND %s"))
        params += [low, high]
    rest = gaps[GAP_PROBES:]
    if rest:  # many runs (rare): one probe over their span, filtered to the runs
        runs = " OR ".join(f"{column} BETWEEN %s AND %s" for _ in rest)
        parts.append(probe.format(f"{column} BETWEEN %s AND %s AND ({runs})"))
        params += [rest[0][0], rest[-1][1]]
        for low, high in rest:
            params += [low, high]
    return RawSQL(f"({' OR '.join(parts)})", params, output_field=BooleanField())


@dataclass
class _Loaded:
    """A freshly read view of one build (the index mapped, its tail and removals read, the change mark)."""

    build: IndexBuild | None
    index: VectorIndex | None
    tail: VectorTail | None
    removed: set[int]
    mark: int
    gaps: dict[int, float]


class LibraryView:
    """One process's view of the library for one model, kept up to date incrementally.

    The served index is memory-mapped once per build; the vectors embedded since the build (the tail) live
    in memory. Each search first reads the change log past the last change seen (usually no rows, one
    indexed query), fetches the few changed images and applies them; a new build is loaded in a background
    thread while searches go on with the old one plus its tail, then swapped in whole. A big tail gets an
    HNSW graph the same way: made (or copied and extended) in a background thread over the tail's rows as
    of then, and published in a new state; searches never see a graph being added to.
    """

    # Tests switch synchronously, to see a rebuild in the very next search.
    switch_in_background = True
    # A tail graph is extended once this many rows came after the rows it covers (they are scanned exactly
    # meanwhile: ~0.15 ms per 2,000 rows; extending copies the graph and adds them, ~0.2 ms of one core per row).
    graph_step = 2000

    def __init__(self, *, model_name: str) -> None:
        self.model_name = model_name
        self._lock = threading.Lock()  # serialises refreshes; searches read the published state lock-free
        self._state: LibraryState | None = None
        self._current: _Loaded | None = None
        self._refreshed_at = 0.0
        self._switching_to: int | None = None
        self._gaps_expire_at = float("inf")
        self._graphing: threading.Thread | None = None  # extending the tail's graph, off the request path
        self._graph_failed: tuple[VectorTail, int] | None = None  # (tail, rows) a graph could not be made for
        self.loads = 0  # full reads of the tail (start, rebuild, retired index): for tests and the bench
        self.graphs = 0  # tail graphs made and attached: for tests and the bench
        # Set by the first search of fewer than BATCH_FROM_QUERIES queries, the only kind a graph serves: a task
        # worker that only runs detection's batches never spends a core and memory on one.
        self._graph_wanted = False

    def current(self) -> LibraryState:
        """The state after every change committed so far (a new build may still be loading)."""
        with self._lock:
            if self._current is None or self._stale():
                self._adopt(self._load(self._newest_build()))
            else:
                self._catch_up()
            self._refreshed_at = time.monotonic()
            assert self._state is not None
            return self._state

    def published(self) -> LibraryState:
        """The state as last brought up to date, without reading the change log: for a search that checks
        `state.has_unseen_changes()` in the same query as its results, and calls current() if there are any.
        Reads the log itself only when nothing is loaded yet, or skipped change ids are due to be dropped."""
        state = self._state
        if state is None or self._stale() or time.monotonic() >= self._gaps_expire_at:
            return self.current()
        return state

    def confirmed(self, state: LibraryState, *, at: float) -> None:
        """A search read no unseen change for `state` in a query started at `at` (time.monotonic()): the
        state was current then, as if current() had run."""
        if state is self._state:
            self._refreshed_at = max(self._refreshed_at, at)

    def _stale(self) -> bool:
        """Not refreshed for half the log's retention: changes may have been pruned unseen, so reload."""
        return time.monotonic() - self._refreshed_at > services.CHANGE_LOG_RETENTION.total_seconds() / 2

    def wait_for_switch(self, timeout: float = 60.0) -> None:
        """Block until a background switch to a new build has finished (tests, bench)."""
        deadline = time.monotonic() + timeout
        while self._switching_to is not None and time.monotonic() < deadline:
            time.sleep(0.01)

    def wait_for_tail_graph(self, timeout: float = 600.0) -> None:
        """Block until no tail graph is being made (tests, bench); one is started when one is due."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                self._consider_graph()
                running = self._graphing
            if running is None:
                return
            running.join(max(0.0, deadline - time.monotonic()))

    def graph_wanted(self) -> None:
        """A search of a few queries ran in this process: keep a graph of a big tail from now on."""
        if self._graph_wanted:
            return
        with self._lock:
            self._graph_wanted = True
            self._consider_graph()

    def _consider_graph(self) -> None:
        """Start a background thread that makes the tail's graph over its rows as of now, when the tail holds
        IMGSIM_TAIL_GRAPH_FROM live rows (0: never) and graph_step rows came after the graph's, in a process that
        runs single searches (graph_wanted). Caller holds the lock."""
        loaded = self._current
        threshold = settings.IMGSIM_TAIL_GRAPH_FROM
        if not self._graph_wanted or not threshold or self._graphing is not None:
            return
        if loaded is None or loaded.tail is None:
            return
        tail = loaded.tail
        if len(tail) < threshold or tail.rows - tail.graph_rows < self.graph_step:
            return
        failed = self._graph_failed
        if failed is not None and failed[0] is tail and tail.rows - failed[1] < self.graph_step:
            return  # not again for every change: after graph_step more rows
        self._graphing = threading.Thread(
            target=self._make_graph, args=(tail, tail.snapshot()), name="tail-graph", daemon=True
        )
        self._graphing.start()

    def _make_graph(self, tail: VectorTail, snapshot: TailSnapshot) -> None:
        """Background thread: a graph over the snapshot's rows (the older graph copied, the newer rows added),
        attached if the tail is still served with the same row numbers, then the next one considered."""
        try:
            with faiss_threads(1):  # one core: the other one stays free for requests
                graph = snapshot.graph_extended()
            with self._lock:
                current = self._current
                if current is not None and current.tail is tail and tail.attach_graph(graph):
                    self.graphs += 1
                    self._publish()
        except Exception:
            logger.exception("making the tail's graph failed; the tail is searched exactly")
            self._graph_failed = (tail, snapshot.ids.shape[0])
        finally:
            with self._lock:
                self._graphing = None
                self._consider_graph()

    def _newest_build(self) -> IndexBuild | None:
        return IndexBuild.objects.latest_ready(model_name=self.model_name)

    def _catch_up(self) -> None:
        loaded = self._current
        assert loaded is not None
        changes = LibraryChange.objects.filter(unseen_changes(mark=loaded.mark, gaps=gap_runs(loaded.gaps)))
        rows = list(changes.order_by("id").values_list("id", "kind", "image_id"))
        if not rows and not loaded.gaps:
            return
        _track_gaps(loaded, [pk for pk, _, _ in rows])
        image_ids = {image_id for _, kind, image_id in rows if kind == LibraryChange.Kind.IMAGE}
        if image_ids:
            self._apply(loaded, image_ids)
        if any(kind == LibraryChange.Kind.INDEX for _, kind, _ in rows):
            self._consider_build(self._newest_build())
        if any(kind == LibraryChange.Kind.THRESHOLDS for _, kind, _ in rows):
            thresholds_forget()  # applied or undone in some process: read again at the next use
        self._publish()

    def _apply(self, loaded: _Loaded, image_ids: set[int]) -> None:
        """Changed images: searchable ones (new, re-embedded, restored) into the tail, the others out."""
        ids, vectors, ratings = stored_vectors(model_name=self.model_name, ids=image_ids)
        gone = image_ids - set(ids.tolist())
        if loaded.tail is not None:
            loaded.tail.remove(gone)
        if ids.shape[0]:
            if loaded.tail is None:
                loaded.tail = VectorTail(dim=vectors.shape[1])
            loaded.tail.upsert(ids=ids, vectors=vectors, ratings=ratings)
        if loaded.index is not None:
            candidates = np.fromiter(gone, dtype=np.int64, count=len(gone))
            loaded.removed |= set(candidates[loaded.index.contains(candidates)].tolist())
            loaded.removed -= set(ids.tolist())

    def _consider_build(self, build: IndexBuild | None) -> None:
        """A build was served or retired: switch to the newest ready one (in the background if serving)."""
        loaded = self._current
        assert loaded is not None
        current_pk = loaded.build.pk if loaded.build is not None else None
        wanted_pk = build.pk if build is not None else None
        if wanted_pk == current_pk or (wanted_pk is not None and wanted_pk == self._switching_to):
            return
        if build is None or loaded.index is None or not self.switch_in_background:
            self._adopt(self._load(build))
            return
        self._switching_to = build.pk
        threading.Thread(target=self._switch, args=(build,), name=f"index-switch-v{build.pk}", daemon=True).start()

    def _switch(self, build: IndexBuild) -> None:
        """Background thread: map and verify the new build and read its tail, then swap it in whole."""
        try:
            fresh = self._load(build)
            with self._lock:
                if self._switching_to == build.pk:
                    self._adopt(fresh)
        except Exception:
            logger.exception("switching to index v%s failed; still serving the previous one", build.pk)
        finally:
            with self._lock:
                if self._switching_to == build.pk:
                    self._switching_to = None
            connections.close_all()  # this thread's connections only

    def _load(self, build: IndexBuild | None) -> _Loaded:
        """Everything a build needs read once: its index, the vectors newer than it, removals since it."""
        index = None
        if build is not None:
            try:
                index = VectorIndex.load(services.index_path(build))
            except IndexFileError as error:
                services.index_mark_broken(build=build, error=str(error))
                build = None
        mark, still_open = services.library_change_mark()
        thresholds_forget()  # changes before the mark are not read one by one: thresholds among them too
        gaps = dict.fromkeys(still_open, time.monotonic())
        loaded = _Loaded(build=build, index=index, tail=None, removed=set(), mark=mark, gaps=gaps)
        searchable = Image.objects.searchable(model_name=self.model_name)
        changed: set[int] = set()
        if index is None or build is None:
            rows = searchable  # no index: the whole library is searched exactly (small libraries)
        elif build.changes_through is not None:
            # Only what changed after the build read the library: its change ids tell exactly.
            rows = searchable.none()
            after = Q(id__gt=build.changes_through) | Q(id__in=build.params.get("changes_open", []))
            since = LibraryChange.objects.filter(after, kind=LibraryChange.Kind.IMAGE, id__lte=mark)
            changed = set(since.values_list("image_id", flat=True))
        else:
            # A build from before the change log: vectors embedded around and after its newest one.
            cutoff = build.max_embedded_at
            rows = searchable.filter(embedded_at__gte=cutoff - TAIL_MARGIN) if cutoff is not None else searchable.none()
            since = LibraryChange.objects.filter(
                kind=LibraryChange.Kind.IMAGE, created_at__gte=build.created_at - TAIL_MARGIN, id__lte=mark
            )
            changed = set(since.values_list("image_id", flat=True))
        ids, vectors, ratings = vectors_from_rows(list(rows.values_list("id", "embedding", "rating")))
        if index is not None and ids.shape[0]:
            # Rows the build already holds stay out of the tail, unless they changed since (re-embedded).
            keep = ~index.contains(ids) | np.isin(ids, np.fromiter(changed, dtype=np.int64, count=len(changed)))
            ids, vectors, ratings = ids[keep], vectors[keep], ratings[keep]
        if ids.shape[0]:
            loaded.tail = VectorTail(dim=vectors.shape[1])
            loaded.tail.upsert(ids=ids, vectors=vectors, ratings=ratings)
        others = changed - set(ids.tolist())
        if others:
            self._apply(loaded, others)
        self.loads += 1
        return loaded

    def _adopt(self, loaded: _Loaded) -> None:
        self._current = loaded
        self._publish()

    def _publish(self) -> None:
        loaded = self._current
        assert loaded is not None
        self._state = LibraryState(
            build=loaded.build,
            index=loaded.index,
            tail=loaded.tail.snapshot() if loaded.tail is not None and len(loaded.tail) else None,
            removed=np.array(sorted(loaded.removed), dtype=np.int64),
            mark=loaded.mark,
            gaps=gap_runs(loaded.gaps),
        )
        self._gaps_expire_at = min(loaded.gaps.values(), default=float("inf")) + GAP_SECONDS
        self._consider_graph()


def _track_gaps(loaded: _Loaded, seen: list[int]) -> None:
    """Advance the mark; change ids skipped over may belong to transactions still open: ask again later."""
    now = time.monotonic()
    newest = max(seen, default=loaded.mark)
    seen_set = set(seen)
    for pk in range(loaded.mark + 1, newest + 1):
        if pk not in seen_set:
            loaded.gaps[pk] = now
    for pk in seen_set:
        loaded.gaps.pop(pk, None)
    loaded.gaps = {pk: at for pk, at in loaded.gaps.items() if now - at < GAP_SECONDS}
    if len(loaded.gaps) > MAX_GAPS:
        logger.warning("%d change ids outstanding; keeping the newest %d", len(loaded.gaps), MAX_GAPS)
        loaded.gaps = dict(sorted(loaded.gaps.items())[-MAX_GAPS:])
    loaded.mark = newest


_views: dict[str, LibraryView] = {}
_views_lock = threading.Lock()


def library_view(*, model_name: str) -> LibraryView:
    """This process's view of the library for a model (one per process, shared by its threads)."""
    with _views_lock:
        view = _views.get(model_name)
        if view is None:
            view = _views[model_name] = LibraryView(model_name=model_name)
        return view


def served_index(*, model_name: str) -> tuple[IndexBuild | None, VectorIndex | None]:
    """The index this process serves for the model (mapped once per build), with its build."""
    state = library_view(model_name=model_name).current()
    return state.build, state.index


def forget_served_indexes() -> None:
    """Drop this process's library views (tests; a new process starts like this)."""
    with _views_lock:
        _views.clear()
    thresholds_forget()


class LibrarySearch:
    """k-NN over the whole library: the served index's candidates re-ranked by exact cosine on the stored
    vectors, merged with an exact search over the in-memory tail (vectors embedded since the build).

    Takes one library state (by default the process's current one), so a batch of queries (duplicate
    detection) sees one state. The index file carries the candidates' full vectors and the tail is in
    memory: a search reads nothing from the database (an index saved without them reads O(k) rows).
    Scores are exact cosine plus `weight` times the rating term (0: purely visual).
    """

    def __init__(self, *, model_name: str, state: LibraryState | None = None) -> None:
        self.model_name = model_name
        self.state = state if state is not None else library_view(model_name=model_name).current()
        self.build, self.index = self.state.build, self.state.index

    @property
    def size(self) -> int:
        """How many vectors a search covers (index + tail)."""
        indexed = len(self.index) - int(self.state.removed.shape[0]) if self.index is not None else 0
        return indexed + (len(self.state.tail) if self.state.tail is not None else 0)

    @property
    def version(self) -> int | None:
        return self.build.pk if self.build is not None and self.index is not None else None

    def search(
        self,
        queries: np.ndarray,
        *,
        k: int,
        query_ratings: list[float | None] | None = None,
        weight: float = 0.0,
        exclude_ids: tuple[int, ...] = (),
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of each query's k nearest images, best first, padded with -inf / -1."""
        queries = np.asarray(queries, dtype=np.float32).reshape(-1, np.asarray(queries).shape[-1])
        partials = []
        if self.index is not None and len(self.index):
            candidates, (ids, vectors, ratings) = self._index_candidates(queries, query_ratings, k, exclude_ids)
            if ids.shape[0]:
                partials.append(
                    rerank(
                        query_vectors=queries,
                        query_ratings=query_ratings,
                        candidate_ids=candidates,
                        ids=ids,
                        vectors=vectors,
                        ratings=ratings,
                        k=k,
                        weight=weight,
                    )
                )
        if self.state.tail is not None:
            if queries.shape[0] < BATCH_FROM_QUERIES and len(self.state.tail) >= settings.IMGSIM_TAIL_GRAPH_FROM > 0:
                library_view(model_name=self.model_name).graph_wanted()
            partials.append(
                self.state.tail.search(
                    queries, k=k, query_ratings=query_ratings, weight=weight, exclude_ids=exclude_ids
                )
            )
        if not partials:
            return np.full((queries.shape[0], k), -np.inf, np.float32), np.full((queries.shape[0], k), -1, np.int64)
        return partials[0] if len(partials) == 1 else merge_results(*partials, k=k)

    def similarities(self, query: np.ndarray, ids: list[int]) -> dict[int, float]:
        """Exact cosine of the query with these images' vectors as this state searched them (tail first,
        then the index file; the database only for an index saved without its vectors)."""
        unit = np.asarray(query, dtype=np.float32).reshape(-1)
        unit = unit / max(float(np.linalg.norm(unit)), 1e-12)
        wanted = np.asarray(ids, dtype=np.int64)
        found: dict[int, float] = {}
        if self.state.tail is not None:
            tail_ids, tail_vectors, _ = self.state.tail.stored(wanted)
            found.update(zip(tail_ids.tolist(), (tail_vectors @ unit).tolist(), strict=True))
        rest = np.array([pk for pk in ids if pk not in found], dtype=np.int64)
        if rest.shape[0] and self.index is not None and self.index.has_stored_vectors:
            index_ids, index_vectors, _ = self.index.stored(rest)
            found.update(zip(index_ids.tolist(), (index_vectors @ unit).tolist(), strict=True))
        rest = np.array([pk for pk in ids if pk not in found], dtype=np.int64)
        if rest.shape[0]:
            db_ids, db_vectors, _ = stored_vectors(model_name=self.model_name, ids=rest.tolist())
            norms = np.maximum(np.linalg.norm(db_vectors, axis=1), 1e-12)
            found.update(zip(db_ids.tolist(), ((db_vectors @ unit) / norms).tolist(), strict=True))
        return found

    def _index_candidates(
        self,
        queries: np.ndarray,
        query_ratings: list[float | None] | None,
        k: int,
        exclude_ids: tuple[int, ...],
    ) -> tuple[np.ndarray, VectorRows]:
        """Candidates with their full vectors: from the index file when it carries them (no database read),
        else from the database. Images known to be gone are excluded inside faiss; ones the tail holds are
        scored there, with their current vector and rating. An image deleted after this state was taken has
        no stored row, so with database reads fetch more until every query has k live candidates."""
        assert self.index is not None
        excluded = np.concatenate([np.asarray(exclude_ids, dtype=np.int64), self.state.removed])
        want = self.index.candidate_count(k)
        while True:
            fetch = min(want, len(self.index))
            _, candidates = self.index.search(queries, k=fetch, query_ratings=query_ratings, exclude_ids=excluded)
            wanted = candidates[candidates >= 0]
            if self.state.tail is not None:
                wanted = wanted[~self.state.tail.contains(wanted)]
            if self.index.has_stored_vectors:
                return candidates, self.index.stored(wanted)
            known = stored_vectors(model_name=self.model_name, ids=wanted.tolist())
            live = np.isin(candidates, known[0]).sum(axis=1)
            if fetch >= len(self.index) or int(live.min(initial=k)) >= k:
                return candidates, known
            want = fetch * 4


def similar_images(
    *, vector: np.ndarray, k: int, rating: int | None = None, exclude_ids: tuple[int, ...] = ()
) -> SearchResult:
    """The k library images most similar to a vector, rating-aware, with the fallback when nothing matches.

    One database query in the common case: the result rows, read together with whether the library changed
    since the state searched (then the changes are applied and the search runs again)."""
    model_name = settings.IMGSIM_MODEL
    query = np.asarray(vector, dtype=np.float32).reshape(1, -1)
    view = library_view(model_name=model_name)
    state, checking = view.published(), True
    while True:
        library = LibrarySearch(model_name=model_name, state=state)
        scores, ids = library.search(
            query,
            k=k,
            query_ratings=[None if rating is None else float(rating)],
            weight=settings.IMGSIM_RATING_WEIGHT,
            exclude_ids=exclude_ids,
        )
        ranked = [(int(pk), float(score)) for pk, score in zip(ids[0], scores[0], strict=True) if pk >= 0]
        asked_at = time.monotonic()
        results, changed = _with_images(library, query[0], ranked, check=state if checking else None)
        if not changed:
            if checking:
                view.confirmed(state, at=asked_at)
            break
        state, checking = view.current(), False  # apply what changed, search again, and trust that state
    threshold = thresholds_for(model_name).match
    matched = any(result.similarity >= threshold for result in results)
    if matched or rating is None:
        return SearchResult(results, matched, False, threshold, rating, k, library.version, library.size)
    fallback = _rating_fallback(library, query[0], rating=rating, k=k, exclude_ids=exclude_ids)
    return SearchResult(fallback, False, True, threshold, rating, k, library.version, library.size)


def _with_images(
    library: LibrarySearch, query: np.ndarray, ranked: list[tuple[int, float]], *, check: LibraryState | None
) -> tuple[list[SimilarImage], bool]:
    """Result rows with their Image (without the embedding: the cosine comes from the searched vectors), and
    whether the change log has rows `check` has not applied, read in the same query (same snapshot)."""
    rows = Image.objects.defer("embedding").filter(pk__in=[pk for pk, _ in ranked])
    if check is not None:
        rows = rows.annotate(library_changed=check.has_unseen_changes())
    images = {image.pk: image for image in rows} if ranked else {}
    if check is not None:
        # No row to carry the answer (no results, or all deleted meanwhile): ask on its own.
        changed = any(image.library_changed for image in images.values()) if images else _log_moved(check)
        if changed:
            return [], True
    similarity = library.similarities(query, list(images))
    results = [
        SimilarImage(image=images[pk], similarity=similarity[pk], score=score)
        for pk, score in ranked
        if pk in images and pk in similarity  # deleted between the search and now
    ]
    return results, False


def _log_moved(state: LibraryState) -> bool:
    """state.has_unseen_changes() on its own, for a search with no result row to read it with."""
    condition = state.has_unseen_changes()
    with connections[LibraryChange.objects.db].cursor() as cursor:
        cursor.execute(f"SELECT {condition.sql}", condition.params)
        return bool(cursor.fetchone()[0])


def _rating_fallback(
    library: LibrarySearch, query: np.ndarray, *, rating: int, k: int, exclude_ids: tuple[int, ...]
) -> list[SimilarImage]:
    """Images ranked by closeness of rating first and visual similarity second (unrated ones are not used).

    Per rating step it reads the ids of at most FALLBACK_SCAN_LIMIT images (the newest); their vectors come
    from the library state the search used, and only the k chosen rows are read, without their embeddings.
    """
    rated = Image.objects.searchable(model_name=library.model_name).filter(rating__isnull=False)
    rated = rated.exclude(id__in=exclude_ids)
    chosen: list[tuple[int, float]] = []
    for distance in range(6):
        stars = {value for value in (rating - distance, rating + distance) if 0 <= value <= 5}
        if not stars:
            continue
        group = list(rated.filter(rating__in=stars).order_by("-id").values_list("id", flat=True)[:FALLBACK_SCAN_LIMIT])
        similarity = library.similarities(query, group)
        ranked = sorted(similarity.items(), key=lambda item: (-item[1], item[0]))
        chosen.extend(ranked[: k - len(chosen)])
        if len(chosen) >= k:
            break
    images = Image.objects.defer("embedding").in_bulk([pk for pk, _ in chosen])
    return [SimilarImage(image=images[pk], similarity=value, score=value) for pk, value in chosen if pk in images]


def similar_to_image(*, image: Image, k: int, rating: int | None = None) -> SearchResult:
    """ "Find similar" for a library image: its own vector and rating, itself excluded."""
    vector = image.vector
    if vector is None:
        raise ValueError("This image has no embedding yet.")
    return similar_images(
        vector=vector, k=k, rating=image.rating if rating is None else rating, exclude_ids=(image.pk,)
    )


@dataclass(frozen=True)
class QueryImage:
    vector: np.ndarray
    rating: int | None
    width: int
    height: int


def query_image_from_upload(*, data: bytes) -> QueryImage:
    """Validate and embed an uploaded query image without storing it (the model loads once per process).

    The file is decoded once: the validated, upright, reduced preview is what the model sees.
    """
    decoded = decode_upload(data, max_pixels=settings.IMGSIM_MAX_PIXELS)
    embedder = services.embedder_get()
    vector = embedder.embed_images([decoded.preview])[0]
    return QueryImage(vector=vector, rating=decoded.exif.rating, width=decoded.width, height=decoded.height)


def similar_to_upload(*, upload: IO[bytes], k: int, rating: int | None = None) -> SearchResult:
    """Search by an uploaded photo (web page and API alike): validated like an upload, never stored here.

    The query's rating is the chosen one, else the photo's own EXIF rating.
    """
    data = read_upload_bytes(upload, max_bytes=settings.IMGSIM_MAX_UPLOAD_BYTES)
    query = query_image_from_upload(data=data)
    return similar_images(vector=query.vector, k=k, rating=query.rating if rating is None else rating)


def library_counts(*, model_name: str) -> dict[str, int]:
    """The library's images (the trash left out) by what search does with them; the parts add up to `images`:
    searchable, waiting for embedding, rejected, failed, and indexed by another model (not searchable with
    this one). The library page's tabs count the same rows."""
    in_library = Image.objects.in_library().order_by()
    by_status = dict(in_library.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    searchable = Image.objects.searchable(model_name=model_name).count()
    return {
        "images": sum(by_status.values()),
        "searchable": searchable,
        "waiting": by_status.get(Image.Status.QUEUED, 0),
        "rejected": by_status.get(Image.Status.REJECTED, 0),
        "failed": by_status.get(Image.Status.FAILED, 0),
        "other_model": by_status.get(Image.Status.INDEXED, 0) - searchable,
    }


def index_status() -> dict[str, object]:
    """What the index serves: model, version, kind, the vectors it was built from, the searchable images it
    covers and the newer ones searched exactly until the next build, the library's counts, the last build."""
    model_name = settings.IMGSIM_MODEL
    build = IndexBuild.objects.latest_ready(model_name=model_name)
    library = library_counts(model_name=model_name)
    searchable = library["searchable"]
    # Images embedded after the build are searched exactly; some of the images the build was made from may
    # have been deleted or trashed since, so it can have been built from more images than it now covers.
    if build is None:
        pending = searchable
    elif build.max_embedded_at is None:
        pending = max(0, searchable - build.vector_count)
    else:
        newer = Image.objects.searchable(model_name=model_name).filter(embedded_at__gt=build.max_embedded_at)
        pending = newer.count()
    last = IndexBuild.objects.order_by("-id").first()
    by_status = dict(Image.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    return {
        "model": model_name,
        "version": build.pk if build else None,
        "kind": build.kind if build else "",
        "indexed": build.vector_count if build else 0,
        "searchable": searchable,
        "pending": pending,
        "covered": searchable - pending,
        "library": library,
        "queued_for_embedding": by_status.get(Image.Status.QUEUED, 0),
        "built_at": build.finished_at if build else None,
        "build_seconds": build.build_seconds if build else None,
        "rebuilding": IndexBuild.objects.filter(status=IndexBuild.Status.BUILDING).exists(),
        "last_build": {
            "version": last.pk,
            "status": last.status,
            "error": last.error,
            "created_at": last.created_at,
        }
        if last
        else None,
        "thresholds": thresholds_in_force(model_name=model_name).as_dict(),
        "repair": _repair_status(model_name),
    }


def _repair_status(model_name: str) -> dict[str, object] | None:
    """Failed automatic builds since the last good one and when the next attempt runs; None when healthy."""
    failures = list(IndexBuild.objects.automatic_failures_since_ready(model_name=model_name).order_by("-id"))
    if not failures:
        return None
    retry = Schedule.objects.filter(name=services.REPAIR_RETRY_SCHEDULE).values_list("next_run", flat=True).first()
    return {"failures": len(failures), "last_error": failures[0].error, "next_attempt_at": retry}
