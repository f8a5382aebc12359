"""The tail's HNSW graph: made in a background thread once the tail is big, searched with the rows added since
scanned exactly, and giving the same top k as the exact tail scan while images come, go, are trashed and
re-embedded, the graph is extended, the tail compacts and the index is rebuilt."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from django.db import transaction
from django.utils import timezone

from duplicates.services.trash import images_trash
from gallery.models import Image
from gallery.services import image_delete
from search import selectors
from search.index.scoring import BATCH_FROM_QUERIES
from search.index.tail import TailGraph, TailSnapshot, VectorTail
from search.library_view import LibrarySearch, LibraryState, LibraryView, library_view
from search.services.index_lifecycle import index_rebuild
from tests.search.test_library_view import DIM, MODEL, synthetic_library

CENTRES = np.random.default_rng(42).normal(size=(25, DIM)).astype(np.float32)


def clustered(count: int, *, seed: int) -> np.ndarray:
    """Vectors shaped like embeddings (clusters of similar images), not uniform noise."""
    rng = np.random.default_rng(seed)
    return (CENTRES[rng.integers(0, len(CENTRES), count)] + 0.9 * rng.normal(size=(count, DIM))).astype(np.float32)


def ratings(count: int, *, seed: int) -> list[int | None]:
    rng = np.random.default_rng(seed)
    return [None if rng.random() < 0.4 else int(rng.integers(0, 6)) for _ in range(count)]


@pytest.fixture
def graph_searches(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """A tail graph from 300 rows, extended every 100; yields a list that counts graph searches."""
    settings.IMGSIM_TAIL_GRAPH_FROM = 300
    monkeypatch.setattr(LibraryView, "graph_step", 100)
    calls: list[int] = []
    real_search = TailGraph.search

    def counted(self: TailGraph, *args: Any, **kwargs: Any) -> np.ndarray:
        calls.append(self.rows)
        return real_search(self, *args, **kwargs)

    monkeypatch.setattr(TailGraph, "search", counted)
    library_view(model_name=MODEL).graph_wanted()  # as the first single search of a web process does
    yield calls
    library_view(model_name=MODEL).wait_for_tail_graph(timeout=60)  # no thread outlives the test


def exactly(state: LibraryState) -> LibraryState:
    """The same state with its tail scanned exactly, row by row (what every search did before the graph)."""
    assert state.tail is not None
    return dataclasses.replace(state, tail=dataclasses.replace(state.tail, graph=None))


def graph_state() -> LibraryState:
    """The view's state once its graph is made (a search would have gone on with the exact tail meanwhile)."""
    view = library_view(model_name=MODEL)
    view.current()
    view.wait_for_tail_graph()
    state = view.current()
    assert state.tail is not None
    assert state.tail.graph is not None
    return state


def assert_same_as_exact(state: LibraryState, queries: np.ndarray, *, seed: int) -> None:
    """Top 10 through the graph == top 10 of the exact scan (ids, order and scores), with and without a rating,
    an excluded id, and a few queries at once; none of them retired."""
    rng = np.random.default_rng(seed)
    searchable = set(Image.objects.searchable(model_name=MODEL).values_list("id", flat=True))
    tail_ids = state.tail.ids[state.tail.alive].tolist() if state.tail is not None else []
    for start in range(0, len(queries), 3):
        batch = queries[start : start + 3]
        query_ratings = [None if rng.random() < 0.3 else float(rng.integers(0, 6)) for _ in batch]
        exclude = (int(rng.choice(tail_ids)),) if tail_ids and start % 2 else ()
        kwargs = {"k": 10, "query_ratings": query_ratings, "weight": 0.05, "exclude_ids": exclude}
        scores, ids = LibrarySearch(model_name=MODEL, state=state).search(batch, **kwargs)
        exact_scores, exact_ids = LibrarySearch(model_name=MODEL, state=exactly(state)).search(batch, **kwargs)
        np.testing.assert_array_equal(ids, exact_ids)
        np.testing.assert_array_equal(scores, exact_scores)
        assert set(ids.ravel().tolist()) <= searchable
        assert not set(exclude) & set(ids.ravel().tolist())


def queries_near(vectors: list[np.ndarray], *, seed: int, count: int = 30) -> np.ndarray:
    """Half perturbed copies of the given vectors (near-duplicates), half new images from the same clusters."""
    rng = np.random.default_rng(seed)
    chosen = np.stack([vectors[i] for i in rng.integers(0, len(vectors), count // 2)])
    near = chosen + 0.02 * rng.normal(size=chosen.shape).astype(np.float32)
    return np.vstack([near, clustered(count - count // 2, seed=seed + 1)]).astype(np.float32)


def reembed(image_ids: list[int], vectors: np.ndarray) -> None:
    with transaction.atomic():
        for pk, vector in zip(image_ids, vectors, strict=True):
            unit = (vector / np.linalg.norm(vector)).astype(np.float32)
            Image.objects.filter(pk=pk).update(embedding=unit.tobytes(), embedded_at=timezone.now())


@pytest.mark.django_db
def test_a_long_lived_view_searches_a_big_tail_through_its_graph_with_the_exact_scans_results(graph_searches):
    base = synthetic_library(200, vectors=clustered(200, seed=1), ratings=ratings(200, seed=1))
    index_rebuild()
    view = library_view(model_name=MODEL)
    tail = synthetic_library(400, start=1000, vectors=clustered(400, seed=2), ratings=ratings(400, seed=2))
    tail_ids = list(tail)

    state = graph_state()
    first_graph = state.tail.graph
    assert first_graph.rows == 400
    assert view.graphs == 1
    assert_same_as_exact(state, queries_near(list(tail.values()), seed=3), seed=3)
    assert graph_searches  # the searches above went through the graph
    # The product's search uses it too, and finds a tail image by its own vector.
    graph_searches.clear()
    found = selectors.similar_images(vector=tail[tail_ids[7]], k=3, rating=2)
    assert found.results[0].image.pk == tail_ids[7]
    assert graph_searches == [400]

    # New (fewer than graph_step: scanned exactly beside the graph), deleted, trashed and re-embedded images,
    # all among the rows the graph covers; one re-embedded onto another tail image's vector (a tie).
    new = synthetic_library(50, start=2000, vectors=clustered(50, seed=4), ratings=ratings(50, seed=4))
    for pk in tail_ids[:10]:
        image_delete(image=Image.objects.get(pk=pk))
    images_trash(images=list(Image.objects.filter(pk__in=tail_ids[10:20])), user=None)
    moved = clustered(9, seed=5)
    reembed(tail_ids[20:29], moved)
    reembed([tail_ids[29]], tail[tail_ids[30]].reshape(1, -1))
    retired = set(tail_ids[:20])

    graph_searches.clear()
    state = view.current()
    assert state.tail.graph is first_graph  # 60 rows since: below the step, no new graph
    vectors = [tail[pk] for pk in tail_ids[:40]] + list(moved) + list(new.values())
    assert_same_as_exact(state, queries_near(vectors, seed=6), seed=6)
    assert graph_searches
    for pk in tail_ids[:20]:  # their own vectors do not find them; k results still come back
        result = selectors.similar_images(vector=tail[pk], k=10)
        assert len(result.results) == 10
        assert not {item.image.pk for item in result.results} & retired
    assert selectors.similar_images(vector=moved[0], k=1).results[0].image.pk == tail_ids[20]
    assert selectors.similar_images(vector=tail[tail_ids[21]], k=10).results[0].image.pk != tail_ids[21]
    tie = selectors.similar_images(vector=tail[tail_ids[30]], k=2).results
    assert [item.image.pk for item in tie] == [tail_ids[29], tail_ids[30]]  # equal scores: the smaller id first
    assert tie[0].score == tie[1].score
    first_new = next(iter(new))
    assert selectors.similar_images(vector=new[first_new], k=1).results[0].image.pk == first_new

    # 100 more: the graph is extended in a copy; a search holding the older state still uses the older graph.
    synthetic_library(100, start=3000, vectors=clustered(100, seed=7), ratings=ratings(100, seed=7))
    state = graph_state()
    assert state.tail.graph is not first_graph
    assert state.tail.graph.rows == 560
    assert view.graphs == 2
    assert first_graph.rows == first_graph.index.ntotal == 400
    assert_same_as_exact(state, queries_near(vectors, seed=8), seed=8)

    # A rebuild folds the tail into the index: no tail, no graph; a small tail again stays exact.
    index_rebuild()
    assert view.current().tail is None
    synthetic_library(50, start=4000, vectors=clustered(50, seed=9))
    view.wait_for_tail_graph()
    assert view.current().tail.graph is None
    assert view.graphs == 2
    assert base  # the indexed images were searched beside the tail throughout


@pytest.mark.django_db
def test_the_graph_is_made_in_the_background_while_searches_scan_the_tail(graph_searches, monkeypatch):
    synthetic_library(100, vectors=clustered(100, seed=1))
    index_rebuild()
    view = library_view(model_name=MODEL)
    release = threading.Event()
    real_extended = TailSnapshot.graph_extended

    def slow_extended(self: TailSnapshot) -> TailGraph:
        release.wait(30)  # the graph is "still being made" until the test lets it finish
        return real_extended(self)

    monkeypatch.setattr(TailSnapshot, "graph_extended", slow_extended)
    tail = synthetic_library(350, start=1000, vectors=clustered(350, seed=2))
    pk, vector = next(iter(tail.items()))
    during = selectors.similar_images(vector=vector, k=1)
    assert [item.image.pk for item in during.results] == [pk]
    assert view.current().tail.graph is None
    assert not graph_searches
    release.set()
    view.wait_for_tail_graph()
    assert view.current().tail.graph.rows == 350
    assert [item.image.pk for item in selectors.similar_images(vector=vector, k=1).results] == [pk]
    assert graph_searches == [350]


@pytest.mark.django_db
def test_a_compacted_tail_drops_its_graph_and_gets_one_for_its_new_rows(graph_searches):
    synthetic_library(100, vectors=clustered(100, seed=1))
    index_rebuild()
    view = library_view(model_name=MODEL)
    tail = synthetic_library(1100, start=1000, vectors=clustered(1100, seed=2))
    tail_ids = list(tail)
    old = graph_state().tail
    assert old.graph.rows == 1100

    with transaction.atomic():  # more than half the tail trashed: its rows are compacted (renumbered)
        Image.objects.filter(pk__in=tail_ids[:600]).update(trashed_at=timezone.now())
    state = graph_state()
    assert state.tail.generation != old.generation
    assert state.tail.graph.rows == len(state.tail) == 500
    assert view.graphs == 2
    assert_same_as_exact(state, queries_near(list(tail.values()), seed=3), seed=3)
    assert graph_searches


def test_batches_of_queries_scan_the_tail_exactly(monkeypatch):
    """Duplicate detection's batches (BATCH_FROM_QUERIES and more) keep the exact BLAS path over every row."""
    tail = VectorTail(dim=DIM)
    tail.upsert(ids=np.arange(1, 401), vectors=clustered(400, seed=1), ratings=np.full(400, np.nan))
    assert tail.attach_graph(tail.snapshot().graph_extended())
    snapshot = tail.snapshot()
    monkeypatch.setattr(TailGraph, "search", lambda *args, **kwargs: pytest.fail("graph searched for a batch"))
    queries = clustered(BATCH_FROM_QUERIES, seed=2)
    scores, ids = snapshot.search(queries, k=5, query_ratings=None, weight=0.0)
    exact_scores, exact_ids = dataclasses.replace(snapshot, graph=None).search(
        queries, k=5, query_ratings=None, weight=0.0
    )
    np.testing.assert_array_equal(ids, exact_ids)
    np.testing.assert_array_equal(scores, exact_scores)


@pytest.mark.django_db
def test_a_graph_that_cannot_be_made_leaves_the_tail_exact_and_is_retried_only_after_more_rows(
    graph_searches, monkeypatch
):
    synthetic_library(100, vectors=clustered(100, seed=1))
    index_rebuild()
    view = library_view(model_name=MODEL)
    attempts: list[int] = []

    def failing(self: TailSnapshot) -> TailGraph:
        attempts.append(self.ids.shape[0])
        raise MemoryError("no room for the graph")

    monkeypatch.setattr(TailSnapshot, "graph_extended", failing)
    tail = synthetic_library(350, start=1000, vectors=clustered(350, seed=2))
    view.current()  # what the next search does
    view.wait_for_tail_graph(timeout=10)
    synthetic_library(20, start=2000, vectors=clustered(20, seed=3))  # a change: not a reason to try again
    view.current()
    view.wait_for_tail_graph(timeout=10)
    pk, vector = next(iter(tail.items()))
    assert [item.image.pk for item in selectors.similar_images(vector=vector, k=1).results] == [pk]
    assert attempts == [350]
    assert view.current().tail.graph is None
    synthetic_library(100, start=3000, vectors=clustered(100, seed=4))
    view.current()
    view.wait_for_tail_graph(timeout=10)
    assert attempts == [350, 470]


@pytest.mark.django_db
def test_only_a_process_that_runs_single_searches_makes_a_graph(settings, monkeypatch):
    """A task worker runs detection's batches, which never use a graph: it makes none. The first search of a
    few queries (a web request) asks for one."""
    settings.IMGSIM_TAIL_GRAPH_FROM = 300
    monkeypatch.setattr(LibraryView, "graph_step", 100)
    synthetic_library(100, vectors=clustered(100, seed=1))
    index_rebuild()
    view = library_view(model_name=MODEL)
    tail = synthetic_library(400, start=1000, vectors=clustered(400, seed=2))
    batch = clustered(BATCH_FROM_QUERIES, seed=3)
    LibrarySearch(model_name=MODEL).search(batch, k=5)
    view.wait_for_tail_graph(timeout=60)
    assert view.graphs == 0
    assert view.current().tail.graph is None

    pk, vector = next(iter(tail.items()))
    assert [item.image.pk for item in selectors.similar_images(vector=vector, k=1).results] == [pk]
    view.wait_for_tail_graph(timeout=60)
    assert view.graphs == 1
    assert view.current().tail.graph.rows == 400
