"""The per-process library view: a long-lived process sees new, deleted, re-embedded and failed images and a
rebuild through the change log, without reading the whole tail again, and a search's database reads do not
grow with the tail."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from duplicates.services.trash import images_trash
from gallery.models import Image
from gallery.services import image_delete
from pipeline.services import image_ingest
from search import selectors
from search.index.vector_index import VectorIndex
from search.library_view import GAP_PROBES, LibraryView, library_view
from search.models import LibraryChange
from search.services.index_lifecycle import index_rebuild
from search.services.library_changes import index_change_record
from tests.images import photo_jpeg

MODEL = "mobilenet_v2"
DIM = 1280


def synthetic_library(
    count: int,
    *,
    seed: int = 3,
    start: int = 0,
    vectors: np.ndarray | None = None,
    ratings: list[int | None] | None = None,
) -> dict[int, np.ndarray]:
    """Images with stored unit vectors (no files are read by search): id -> vector. Random ones unless given."""
    if vectors is None:
        vectors = np.random.default_rng(seed).normal(size=(count, DIM)).astype(np.float32)
    vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    now = timezone.now()
    images = Image.objects.bulk_create(
        Image(
            sha256=f"{start + n:064x}",
            width=100,
            height=100,
            format="JPEG",
            file_size=1,
            file=f"originals/{start + n}.jpg",
            status=Image.Status.INDEXED,
            embedding=vectors[n].tobytes(),
            embedding_model=MODEL,
            embedded_at=now,
            rating=None if ratings is None else ratings[n],
        )
        for n in range(count)
    )
    if connection.vendor == "sqlite" and images[0].pk is None:  # older SQLite cannot return ids
        ids = list(Image.objects.order_by("-id").values_list("id", flat=True)[:count])[::-1]
    else:
        ids = [image.pk for image in images]
    return dict(zip(ids, vectors, strict=True))


def top_ids(vector: np.ndarray, k: int = 5, **kwargs: Any) -> list[int]:
    return [item.image.pk for item in selectors.similar_images(vector=vector, k=k, **kwargs).results]


@pytest.mark.ml
@pytest.mark.django_db
def test_new_deleted_reembedded_failed_images_and_a_rebuild_reach_a_long_lived_view(committed, staff_api):
    library = synthetic_library(300)
    first = index_rebuild()
    view = library_view(model_name=MODEL)
    ids = list(library)
    assert top_ids(library[ids[0]], k=1) == [ids[0]]
    assert view.loads == 1

    # New: a real photo uploaded and embedded by the task, found at once, not in the index.
    new_id = committed(image_ingest, data=photo_jpeg(5), original_name="new.jpg").image.pk
    new_vector = Image.objects.get(pk=new_id).vector
    assert top_ids(new_vector, k=1) == [new_id]
    state = view.current()
    assert new_id not in state.index.ids
    assert new_id in state.tail.ids

    # Deleted through the API: an indexed image and the new one drop out, k results still come back.
    committed(staff_api.delete, f"/api/images/{ids[1]}/")
    committed(staff_api.delete, f"/api/images/{new_id}/")
    assert ids[1] not in top_ids(library[ids[1]], k=10)
    assert len(top_ids(library[ids[1]], k=10)) == 10
    assert new_id not in top_ids(new_vector, k=10)
    assert ids[1] in view.current().removed

    # Re-embedded: the stored vector changes (what a re-embed writes), search follows the new vector.
    moved = library[ids[3]]
    with transaction.atomic():
        Image.objects.filter(pk=ids[2]).update(embedding=moved.tobytes(), embedded_at=timezone.now())
    assert set(top_ids(moved, k=2)) == {ids[2], ids[3]}

    # Status change: a failed image is no longer searchable.
    with transaction.atomic():
        Image.objects.filter(pk=ids[4]).update(status=Image.Status.FAILED)
    assert ids[4] not in top_ids(library[ids[4]], k=10)
    assert view.loads == 1  # all of it incrementally

    # Rebuild: the next search serves the new build; the tail read once for it, now empty.
    second = index_rebuild()
    result = selectors.similar_images(vector=moved, k=2)
    assert result.index_version == second.pk != first.pk
    assert {item.image.pk for item in result.results} == {ids[2], ids[3]}
    state = view.current()
    assert view.loads == 2
    assert state.tail is None
    assert not state.removed.shape[0]
    assert set(state.index.ids.tolist()) == set(ids) - {ids[1], ids[4]}
    assert result.searched == 298


@pytest.mark.django_db
def test_a_searchs_database_reads_do_not_grow_with_the_tail():
    library = synthetic_library(200)
    index_rebuild()
    query = next(iter(library.values()))
    top_ids(query)  # the view is loaded

    def reads_per_search() -> list[str]:
        with CaptureQueriesContext(connection) as queries:
            top_ids(query, k=5)
        return [entry["sql"] for entry in queries.captured_queries]

    small_tail = reads_per_search()
    synthetic_library(1500, seed=4, start=10_000)  # a bulk import since the build: tail of 1,500
    top_ids(query)  # the changes are applied once...
    big_tail = reads_per_search()  # ...and not read again
    assert len(big_tail) == len(small_tail) == 1  # the k result rows, read with the change-log check
    assert not any('"embedded_at" >=' in sql for sql in big_tail)  # no window of recent rows
    assert max(sql.count(",") for sql in big_tail if " IN (" in sql) < 80  # O(k) ids per read
    assert library_view(model_name=MODEL).current().tail is not None
    assert len(library_view(model_name=MODEL).current().tail) == 1500


@pytest.mark.django_db
def test_a_change_committed_after_a_newer_one_is_still_seen():
    """Two transactions can commit their change ids out of order (PostgreSQL sequences): a skipped id is
    asked for again until it turns up."""
    library = synthetic_library(50)
    index_rebuild()
    view = library_view(model_name=MODEL)
    view.current()
    mark = LibraryChange.objects.order_by("-id").values_list("id", flat=True).first()
    ids = list(library)
    for pk in ids[:2]:  # the database logs each write: ids mark + 1 and mark + 2
        Image.objects.filter(pk=pk).update(status=Image.Status.FAILED)
    late = LibraryChange.objects.get(id=mark + 1)
    assert late.image_id == ids[0]
    late.delete()  # as if its transaction had not committed yet

    state = view.current()
    assert ids[1] in state.removed
    assert ids[0] not in state.removed
    LibraryChange.objects.create(id=mark + 1, kind=LibraryChange.Kind.IMAGE, image_id=ids[0])
    assert ids[0] in view.current().removed


@pytest.mark.django_db(transaction=True)
def test_a_rebuild_is_loaded_in_the_background_while_searches_go_on(monkeypatch):
    monkeypatch.setattr(LibraryView, "switch_in_background", True)
    library = synthetic_library(200)
    first = index_rebuild()
    ids = list(library)
    assert top_ids(library[ids[0]], k=1) == [ids[0]]
    loaded = threading.Event()
    real_load = VectorIndex.load

    def slow_load(path: Any) -> Any:
        loaded.wait(30)  # the new build is "still loading" until the test lets it finish
        return real_load(path)

    monkeypatch.setattr(VectorIndex, "load", slow_load)
    extra = synthetic_library(20, seed=9, start=5000)
    second = index_rebuild()

    during = selectors.similar_images(vector=extra[next(iter(extra))], k=1)
    assert during.index_version == first.pk  # the old build and its tail answer meanwhile
    assert [item.image.pk for item in during.results] == [next(iter(extra))]
    loaded.set()
    view = library_view(model_name=MODEL)
    view.wait_for_switch()
    after = selectors.similar_images(vector=extra[next(iter(extra))], k=1)
    assert after.index_version == second.pk
    assert [item.image.pk for item in after.results] == [next(iter(extra))]
    assert view.current().tail is None


@pytest.mark.django_db(transaction=True)
def test_an_index_change_is_recorded_only_inside_the_writes_transaction():
    before = LibraryChange.objects.count()
    with pytest.raises(RuntimeError, match="inside the transaction"):
        index_change_record()
    assert LibraryChange.objects.count() == before


@pytest.mark.ml
@pytest.mark.django_db
def test_deleting_an_image_logs_the_change_with_the_delete(committed):
    image = committed(image_ingest, data=photo_jpeg(6), original_name="a.jpg").image
    before = LibraryChange.objects.count()
    image_pk = image.pk
    committed(image_delete, image=image)
    assert list(LibraryChange.objects.order_by("id").values_list("kind", "image_id")[before:]) == [
        (LibraryChange.Kind.IMAGE, image_pk)
    ]


@pytest.mark.django_db
def test_a_search_reads_one_query_and_still_sees_what_changed_since_its_state(committed, staff_api):
    """The search runs on the state the process has, and reads its results together with whether the change
    log moved since: a delete and a new image committed by another process are both seen at once."""
    library = synthetic_library(120)
    index_rebuild()
    ids = list(library)
    top_ids(library[ids[0]])  # the view is loaded
    view = library_view(model_name=MODEL)
    before = view.published()

    committed(staff_api.delete, f"/api/images/{ids[0]}/")
    extra = synthetic_library(1, seed=11, start=9000)
    extra_id, extra_vector = next(iter(extra.items()))
    assert view.published() is before  # nothing has told this process yet

    with CaptureQueriesContext(connection) as queries:
        found = top_ids(library[ids[0]], k=3)
    assert ids[0] not in found
    # The results with the news, then the log and the changed rows read, then the results again.
    assert len(queries.captured_queries) <= 4
    assert top_ids(extra_vector, k=1) == [extra_id]
    with CaptureQueriesContext(connection) as queries:
        top_ids(extra_vector, k=1)
    assert len(queries.captured_queries) == 1


@pytest.mark.django_db
def test_result_similarities_are_the_exact_cosines_of_the_stored_vectors():
    library = synthetic_library(150)
    index_rebuild()
    synthetic_library(30, seed=12, start=7000)  # a tail beside the index
    ids = list(library)
    query = library[ids[3]] + 0.5 * library[ids[4]]

    result = selectors.similar_images(vector=query, k=20)

    assert len(result.results) == 20
    unit = query / np.linalg.norm(query)
    for item in result.results:
        stored = Image.objects.get(pk=item.image.pk).vector
        assert item.similarity == pytest.approx(float(stored @ unit), abs=1e-5)
    assert [item.similarity for item in result.results] == sorted(
        (item.similarity for item in result.results), reverse=True
    )


@pytest.mark.django_db
def test_thousands_of_skipped_change_ids_keep_a_searchs_query_short():
    """A rolled-back bulk import leaves a run of change ids that never commit: they are asked for again as a
    range, not as thousands of ids in every search's query; one that does commit late is still seen."""
    library = synthetic_library(60)
    index_rebuild()
    ids = list(library)
    view = library_view(model_name=MODEL)
    view.current()
    mark = LibraryChange.objects.order_by("-id").values_list("id", flat=True).first()
    Image.objects.filter(pk=ids[1]).update(status=Image.Status.FAILED)
    LibraryChange.objects.create(id=mark + 5000, kind=LibraryChange.Kind.IMAGE, image_id=ids[1])
    view.current()  # ids mark+1 .. mark+4999 are outstanding
    top_ids(library[ids[2]])  # the first search after a load also reads the thresholds in force, once

    with CaptureQueriesContext(connection) as queries:
        top_ids(library[ids[0]])
    assert len(queries.captured_queries) == 1
    assert len(queries.captured_queries[0]["sql"]) < 3000

    Image.objects.filter(pk=ids[0]).update(status=Image.Status.FAILED)
    LibraryChange.objects.create(id=mark + 17, kind=LibraryChange.Kind.IMAGE, image_id=ids[0])  # commits late
    assert ids[0] not in top_ids(library[ids[0]])
    assert ids[0] in view.current().removed


@pytest.mark.django_db
def test_a_process_that_keeps_searching_is_not_reloaded_for_staleness(monkeypatch):
    """Each search checks the change log in its results query, so a busy process stays current without
    reloading; one that has not looked for half the log's retention reloads (pruned changes may be unseen)."""
    library = synthetic_library(80)
    index_rebuild()
    query = next(iter(library.values()))
    view = library_view(model_name=MODEL)
    top_ids(query)
    loads = view.loads
    offset = [0.0]
    real_monotonic = time.monotonic
    monkeypatch.setattr(time, "monotonic", lambda: real_monotonic() + offset[0])
    hours = 3600.0

    offset[0] = 7 * hours
    top_ids(query)
    offset[0] = 14 * hours  # 14 h after the last reload, 7 h after the last search
    top_ids(query)
    assert view.loads == loads

    offset[0] = 27 * hours  # nobody searched for 13 h
    top_ids(query)
    assert view.loads == loads + 1


@pytest.mark.django_db
def test_a_searchs_change_check_reads_the_log_by_id_whatever_its_length_statistics_and_skipped_runs():
    """After a bulk import the log has thousands of rows the planner has no statistics for (PostgreSQL
    before its next ANALYZE), and concurrent writers leave runs of skipped ids: the check in every search's
    query still reads the log by primary key (not a scan of the whole log), and sees a late commit in any run,
    also beyond the runs it probes one by one."""
    library = synthetic_library(60)
    index_rebuild()
    ids = list(library)
    LibraryChange.objects.bulk_create(
        LibraryChange(kind=LibraryChange.Kind.IMAGE, image_id=n) for n in range(1_000_000, 1_020_000)
    )
    view = library_view(model_name=MODEL)
    view.current()  # the view applies the import (no such images: nothing to search)
    mark = LibraryChange.objects.order_by("-id").values_list("id", flat=True).first()
    runs = GAP_PROBES + 5
    for n in range(1, runs + 1):  # ids mark+2, mark+4, ... commit; the ones between are skipped
        LibraryChange.objects.create(id=mark + 2 * n, kind=LibraryChange.Kind.THRESHOLDS)
    view.current()
    assert len(view.published().gaps) >= runs
    top_ids(library[ids[2]])  # the first search after a load also reads the thresholds in force

    with CaptureQueriesContext(connection) as queries:
        top_ids(library[ids[0]])
    assert len(queries.captured_queries) == 1
    sql = queries.captured_queries[0]["sql"]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"EXPLAIN {sql}")
            plan = "\n".join(row[0] for row in cursor.fetchall())
            assert "Seq Scan on search_librarychange" not in plan, plan
        else:
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}")
            plan = "\n".join(str(row[-1]) for row in cursor.fetchall())
            assert "SCAN U0" not in plan, plan
            assert "SCAN search_librarychange" not in plan, plan

    Image.objects.filter(pk=ids[0]).update(status=Image.Status.FAILED)
    LibraryChange.objects.create(id=mark + 2 * runs - 1, kind=LibraryChange.Kind.IMAGE, image_id=ids[0])
    assert ids[0] not in top_ids(library[ids[0]])
    assert ids[0] in view.published().removed


@pytest.mark.django_db
def test_the_search_page_counts_agree_with_the_library_and_with_what_a_search_covers(committed, staff_api, web):
    """An index built from 40 images, 10 of them trashed and 5 deleted since, 6 embedded after it, and one
    image each waiting, rejected and failed: every count of the library says the same."""
    ids = list(synthetic_library(40))
    index_rebuild()
    committed(images_trash, images=list(Image.objects.filter(pk__in=ids[:10])), user=None)
    for pk in ids[10:15]:
        committed(staff_api.delete, f"/api/images/{pk}/")
    synthetic_library(6, seed=4, start=100)
    for n, status in enumerate([Image.Status.QUEUED, Image.Status.REJECTED, Image.Status.FAILED]):
        Image.objects.create(
            sha256=f"{200 + n:064x}", width=100, height=100, format="JPEG", file_size=1, file=f"{n}.jpg", status=status
        )

    page = web.get("/search/").content.decode()
    assert "31 of 34 images searchable</strong>, 1 waiting for embedding, 1 rejected, 1 failed." in page
    assert "covers 25 of them; 6 newer are searched exactly" in page
    assert "from 31 searchable images" in web.get(f"/images/{ids[20]}/similar/").content.decode()
    library = web.get("/").content.decode()
    assert ">All 34</a>" in library
    assert ">Indexed 31</a>" in library
