"""The library as this process serves it, one LibraryView per model: the served index plus the not-yet-indexed tail.

The view maps the served index file once per build and keeps the vectors embedded or changed since the build in
memory (the tail: searched exactly, or from IMGSIM_TAIL_GRAPH_FROM rows through an HNSW graph the view makes in a
background thread, its candidates re-scored exactly, the rows added since it scanned exactly). It is kept up to
date from the change log (search.models.LibraryChange): deleted, trashed or failed images are excluded inside
faiss, and a new build is loaded in a background thread. Searches read its published LibraryState lock-free;
LibrarySearch is k-NN over one state. An index file found unusable is marked broken (and rebuilt) through the
index lifecycle service.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.db import connections
from django.db.models import BooleanField, Q
from django.db.models.expressions import RawSQL

from gallery.models import Image
from search.index.scoring import BATCH_FROM_QUERIES, faiss_threads, merge_results, rerank
from search.index.tail import TailSnapshot, VectorTail
from search.index.vector_index import IndexFileError, VectorIndex
from search.models import IndexBuild, LibraryChange
from search.services.index_lifecycle import index_mark_broken, index_path
from search.services.library_changes import CHANGE_LOG_RETENTION, library_change_mark
from search.stored_vectors import VectorRows, stored_vectors, vectors_from_rows
from search.thresholds import thresholds_forget

logger = logging.getLogger(__name__)

# Vectors embedded up to this long before the build's newest one are checked against the index's ids when
# a build is loaded, so a row committed late (or stamped by a worker whose clock is behind) is still searched.
TAIL_MARGIN = timedelta(minutes=10)
# A change id skipped over (its transaction still open, or rolled back) is asked for again this long.
GAP_SECONDS = TAIL_MARGIN.total_seconds()
# Outstanding ids are queried as runs (first, last), so many cost little; the bound is for memory.
MAX_GAPS = 100_000


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
    import (PostgreSQL without a recent ANALYZE), it can be a sequential scan of the whole log on every search
    (bench/search_product.py; figures in bench/README.md). A probe is an index scan whatever the statistics:
    a scan of the table would have to sort it to answer."""
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
    # A tail graph is extended once this many rows came after the rows it covers: scanning that many exactly
    # meanwhile costs a search little, and each extension copies the whole graph before adding rows, so it is
    # not worth doing for every change (figures in bench/README.md, search_product.py).
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
        return time.monotonic() - self._refreshed_at > CHANGE_LOG_RETENTION.total_seconds() / 2

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
                index = VectorIndex.load(index_path(build))
            except IndexFileError as error:
                index_mark_broken(build=build, error=str(error))
                build = None
        mark, still_open = library_change_mark()
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
            # A build that recorded no change mark: its change ids cannot tell, so vectors embedded around and
            # after its newest one.
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
