"""The index's lifecycle: build and serve a new index, queue a rebuild, repair a broken or failed one with
backoff, and refresh it once the vectors added since the build grow too many."""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_q.models import Schedule

from core.task_queue import task_queue_after_commit
from gallery.models import Image
from search.index.vector_index import IndexParams, build_index
from search.models import AUTOMATIC_REQUESTERS, IndexBuild, LibraryChange
from search.services.library_changes import CHANGE_LOG_RETENTION, index_change_record, library_change_mark
from search.stored_vectors import library_vectors

logger = logging.getLogger(__name__)

REBUILD_TASK = "search.tasks.index_rebuild"
# A build row older than this while still "building" belongs to a builder that died.
STALE_BUILD_SECONDS = 3 * 3600


class RebuildAlreadyRunningError(Exception):
    """Another process is building the index right now."""


def index_params() -> IndexParams:
    """Index parameters from settings; the HNSW ones are the measured defaults of search.index.vector_index."""
    params = IndexParams(pca_dim=settings.IMGSIM_PCA_DIM, rating_weight=settings.IMGSIM_RATING_WEIGHT)
    if settings.IMGSIM_EXACT_SEARCH_BELOW is not None:
        params = dataclasses.replace(params, exact_below=settings.IMGSIM_EXACT_SEARCH_BELOW)
    return params


def index_path(build: IndexBuild) -> Path:
    return Path(settings.IMGSIM_INDEX_DIR) / build.file_name


def _fail_stale_builds() -> None:
    cutoff = timezone.now() - timedelta(seconds=STALE_BUILD_SECONDS)
    IndexBuild.objects.filter(status=IndexBuild.Status.BUILDING, created_at__lt=cutoff).update(
        status=IndexBuild.Status.FAILED, error="The builder stopped before finishing.", finished_at=timezone.now()
    )


def index_rebuild(*, requested_by: str = "") -> IndexBuild:
    """Build a fresh index from every searchable vector and serve it; only one build runs at a time."""
    _fail_stale_builds()
    model_name = settings.IMGSIM_MODEL
    try:
        with transaction.atomic():
            build = IndexBuild.objects.create(model_name=model_name, requested_by=requested_by[:150])
    except IntegrityError:
        raise RebuildAlreadyRunningError("An index rebuild is already running.") from None
    started = time.monotonic()
    try:
        changes_through, changes_open = library_change_mark()
        library = library_vectors(model_name=model_name)
        if library.ids.shape[0] == 0:
            raise ValueError("There are no embedded images to index yet.")
        index = build_index(ids=library.ids, vectors=library.vectors, ratings=library.ratings, params=index_params())
        # Saved with the index and mapped by every process: the re-rank then reads no rows from the database.
        index = index.with_stored_vectors(ids=library.ids, vectors=library.vectors, ratings=library.ratings)
        build.file_name = f"{model_name}-v{build.pk}-{uuid.uuid4().hex[:8]}.index"
        checksum = index.save(index_path(build))
        _delete_stale_temp_files(index_path(build).parent)
    except Exception as error:
        IndexBuild.objects.filter(pk=build.pk).update(
            status=IndexBuild.Status.FAILED, error=str(error)[:2000], finished_at=timezone.now()
        )
        logger.exception("index build %s failed", build.pk)
        if build.requested_by in AUTOMATIC_REQUESTERS:
            index_repair_retry_schedule(model_name=model_name)
        raise
    metadata = index.metadata
    build.status = IndexBuild.Status.READY
    build.kind = metadata["kind"]
    build.full_dim = metadata["full_dim"]
    build.index_dim = metadata["indexed_dim"]
    build.vector_count = metadata["count"]
    build.max_embedded_at = library.max_embedded_at
    build.params = {**metadata, "checksum": checksum, "changes_open": changes_open}
    build.changes_through = changes_through
    build.build_seconds = round(time.monotonic() - started, 3)
    build.finished_at = timezone.now()
    with transaction.atomic():
        build.save()
        older = list(
            IndexBuild.objects.filter(status=IndexBuild.Status.READY, model_name=model_name).exclude(pk=build.pk)
        )
        IndexBuild.objects.filter(pk__in=[old.pk for old in older]).update(status=IndexBuild.Status.SUPERSEDED)
        index_change_record()
        transaction.on_commit(lambda: _delete_index_files(older))
    _repair_retry_cancel()
    LibraryChange.objects.filter(created_at__lt=timezone.now() - CHANGE_LOG_RETENTION).delete()
    logger.info("index v%s ready: %s vectors, %s, %.1fs", build.pk, build.vector_count, build.kind, build.build_seconds)
    return build


def _delete_stale_temp_files(directory: Path, *, older_than_seconds: float = 3600) -> None:
    """Temp files of saves that were killed midway (a finished save renames its temp file away)."""
    cutoff = time.time() - older_than_seconds
    for leftover in directory.glob(".*.tmp"):
        try:
            if leftover.stat().st_mtime < cutoff:
                leftover.unlink()
        except OSError:
            continue


def _delete_index_files(builds: list[IndexBuild]) -> None:
    """Old files go once the new build is served (processes that mapped them keep serving them until they
    switch: an unlinked file lives on while it is mapped)."""
    for build in builds:
        if build.file_name:
            index_path(build).unlink(missing_ok=True)


def index_rebuild_schedule(*, requested_by: str = "") -> bool:
    """Queue a rebuild in the background unless one is already running; True when one was queued."""
    _fail_stale_builds()
    if IndexBuild.objects.filter(status=IndexBuild.Status.BUILDING).exists():
        return False
    task_queue_after_commit(REBUILD_TASK, requested_by=requested_by, task_name="rebuild the search index")
    return True


REPAIR_RETRY_SCHEDULE = "imgsim: retry the index build"
# A failed automatic build is retried after 1, 2, 4 ... minutes, at most an hour apart, until one succeeds:
# without a ready index every search reads all the vectors from the database.
REPAIR_RETRY_FIRST_SECONDS = 60
REPAIR_RETRY_MAX_SECONDS = 3600


def repair_retry_delay(*, failures: int) -> timedelta:
    """The wait before the next attempt after `failures` failed automatic builds in a row."""
    seconds = REPAIR_RETRY_FIRST_SECONDS * 2 ** min(max(failures - 1, 0), 16)
    return timedelta(seconds=min(seconds, REPAIR_RETRY_MAX_SECONDS))


def index_repair_retry_schedule(*, model_name: str) -> datetime:
    """Schedule the next automatic build with backoff (one pending retry at most); returns when it runs."""
    failures = IndexBuild.objects.automatic_failures_since_ready(model_name=model_name).count()
    next_run = timezone.now() + repair_retry_delay(failures=failures)
    Schedule.objects.update_or_create(
        name=REPAIR_RETRY_SCHEDULE,
        defaults={
            "func": REBUILD_TASK,
            "kwargs": repr({"requested_by": "repair retry"}),
            "schedule_type": Schedule.ONCE,
            "repeats": -1,
            "next_run": next_run,
        },
    )
    logger.warning("automatic index build failed %d time(s) in a row; retrying at %s", failures, next_run)
    return next_run


def _repair_retry_cancel() -> None:
    Schedule.objects.filter(name=REPAIR_RETRY_SCHEDULE).delete()


def index_mark_broken(*, build: IndexBuild, error: str) -> None:
    """A served index file is missing or damaged: stop serving it and build a new one."""
    with transaction.atomic():
        updated = IndexBuild.objects.filter(pk=build.pk, status=IndexBuild.Status.READY).update(
            status=IndexBuild.Status.FAILED, error=f"Index file unusable: {error}"[:2000]
        )
        if updated:
            index_change_record()
    if updated:
        logger.error("index v%s is unusable (%s); rebuilding", build.pk, error)
        index_rebuild_schedule(requested_by="self-repair")


def index_refresh_if_needed() -> bool:
    """Queue a rebuild when the vectors not in the served index pass IMGSIM_REBUILD_FRACTION of it, or
    IMGSIM_REBUILD_MAX_PENDING: every search reads those vectors exactly, so their number is kept bounded."""
    model_name = settings.IMGSIM_MODEL
    searchable = Image.objects.searchable(model_name=model_name).count()
    if searchable == 0:
        return False
    build = IndexBuild.objects.latest_ready(model_name=model_name)
    indexed = build.vector_count if build is not None else 0
    pending = searchable - indexed
    allowed = min(settings.IMGSIM_REBUILD_FRACTION * indexed, settings.IMGSIM_REBUILD_MAX_PENDING)
    if build is not None and pending <= allowed:
        return False
    return index_rebuild_schedule(requested_by="automatic")
