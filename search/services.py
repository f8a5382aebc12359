"""Writes of the search side: embedding queued images in batches (with leases, so a killed worker loses nothing)
and building the index. What follows embedding (duplicate detection) is composed by the pipeline app."""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from django_q.models import Schedule

from core.errors import ServiceError
from gallery.models import Image
from search.embedding import Embedder, WeightsUnavailableError, available_cpu_count, get_embedder
from search.index.vector_index import IndexParams, build_index
from search.models import AUTOMATIC_REQUESTERS, IndexBuild, LibraryChange, ThresholdSetting
from search.stored_vectors import VectorRows, vectors_from_rows
from search.thresholds import ThresholdsInForce, thresholds_forget, thresholds_in_force

logger = logging.getLogger(__name__)

# Change-log rows are kept this long; a process that has not searched for longer reloads its view.
CHANGE_LOG_RETENTION = timedelta(days=1)


def library_changed(*, image_ids: Collection[int] = (), index_changed: bool = False) -> None:
    """Tell every process's library view that these images (or the served index) changed.

    Call it inside the transaction of the write itself (an image embedded, re-embedded, deleted, trashed,
    restored, or its status or rating changed; an index build served or retired), so that the change and
    the news of it commit together: a search then sees both or neither.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("library_changed() must run inside the transaction of the write it reports")
    now = timezone.now()
    rows = [LibraryChange(kind=LibraryChange.Kind.IMAGE, image_id=int(pk), created_at=now) for pk in set(image_ids)]
    if index_changed:
        rows.append(LibraryChange(kind=LibraryChange.Kind.INDEX, created_at=now))
    LibraryChange.objects.bulk_create(rows, batch_size=500)


# Change ids this far below the newest are checked for transactions still open when a mark is taken.
CHANGE_LOOKBACK = 64


def library_change_mark() -> tuple[int, list[int]]:
    """(newest change id, ids below it not yet visible): everything a reader has seen once it read both.

    Ids come from a sequence in insert order but commit in any order, so an id missing just below the
    newest may still commit; readers ask for those again.
    """
    mark = LibraryChange.objects.order_by("-id").values_list("id", flat=True).first() or 0
    seen = set(LibraryChange.objects.filter(id__gt=mark - CHANGE_LOOKBACK).values_list("id", flat=True))
    return mark, [pk for pk in range(max(1, mark - CHANGE_LOOKBACK + 1), mark + 1) if pk not in seen]


def torch_threads() -> int:
    """Cores per worker process, so that several workers on one machine do not oversubscribe the CPU."""
    if settings.IMGSIM_TORCH_THREADS:
        return settings.IMGSIM_TORCH_THREADS
    workers = int(str(settings.Q_CLUSTER.get("workers", 1)))
    return max(1, available_cpu_count() // max(1, workers))


def embedder_get() -> Embedder:
    """The configured backbone, loaded once per process and kept."""
    return get_embedder(
        model_name=settings.IMGSIM_MODEL, weights_path=settings.IMGSIM_WEIGHTS, num_threads=torch_threads()
    )


@dataclass(frozen=True)
class EmbedRunSummary:
    embedded: int
    failed: int
    retried: int
    more_left: bool = False  # the time budget ran out with images still queued


# Called with the ids of each batch's newly embedded images once their vectors have committed.
AfterBatch = Callable[[list[int]], None]


def _fail_exhausted(now: timezone.datetime) -> int:
    """Images whose leases expired too often (worker killed, timed out) are failed with the reason."""
    attempts = settings.IMGSIM_EMBED_MAX_ATTEMPTS
    return Image.objects.filter(status=Image.Status.QUEUED, claimed_until__lt=now, embed_attempts__gte=attempts).update(
        status=Image.Status.FAILED,
        reason_code="embedding_interrupted",
        status_message=(
            f"Embedding did not finish after {attempts} attempts (the worker stopped or timed out). "
            "Retry it from the image page or the admin once the worker is healthy."
        ),
        claimed_until=None,
        claim_token="",
    )


def _claim_batch(*, size: int) -> tuple[str, list[Image]]:
    """Lease up to `size` queued images to this run; a single UPDATE makes the claim atomic across workers.

    The claim does not count an attempt: a worker killed while the model loads has not tried the images
    (_count_attempt counts it once embedding really starts).
    """
    now = timezone.now()
    _fail_exhausted(now)
    claimable = Q(status=Image.Status.QUEUED) & (Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
    ids = list(Image.objects.filter(claimable).order_by("id").values_list("id", flat=True)[:size])
    if not ids:
        return "", []
    token = uuid.uuid4().hex
    Image.objects.filter(claimable, id__in=ids).update(
        claim_token=token, claimed_until=now + timedelta(seconds=settings.IMGSIM_EMBED_LEASE_SECONDS)
    )
    return token, list(Image.objects.filter(claim_token=token, status=Image.Status.QUEUED).order_by("id"))


def _count_attempt(*, token: str, images: list[Image]) -> None:
    """The model is loaded and embedding starts: from here an interruption counts against the images."""
    Image.objects.filter(claim_token=token).update(embed_attempts=F("embed_attempts") + 1)
    for image in images:
        image.embed_attempts += 1


def _release_claims(*, token: str, status: str = Image.Status.QUEUED) -> int:
    """Give the batch's images back at once (after an error), rather than after the whole lease."""
    try:
        return Image.objects.filter(claim_token=token, status=status).update(claimed_until=None, claim_token="")
    except DatabaseError:
        logger.warning("could not release embedding claims %s; they expire with their lease", token, exc_info=True)
        return 0


def _read_file(image: Image) -> bytes:
    with image.file.open("rb") as handle:
        return handle.read()


def _mark_failed(images: list[Image], *, token: str, code: str, message: str) -> int:
    return Image.objects.filter(id__in=[image.id for image in images], claim_token=token).update(
        status=Image.Status.FAILED, reason_code=code, status_message=message[:2000], claimed_until=None, claim_token=""
    )


@dataclass(frozen=True)
class BatchResult:
    summary: EmbedRunSummary
    embedded_ids: list[int]


def embed_batch(*, token: str, images: list[Image], embedder: Embedder) -> BatchResult:
    """Embed one claimed batch and store each vector; failures are retried until the attempts run out."""
    sources: list[bytes] = []
    readable: list[Image] = []
    failed = retried = 0
    for image in images:
        try:
            sources.append(_read_file(image))
            readable.append(image)
        except OSError as error:
            failed += _mark_failed(
                [image], token=token, code="file_missing", message=f"Stored file unreadable: {error}"
            )
    result = embedder.embed_sources(sources)
    now = timezone.now()
    embedded_ids: list[int] = []
    with transaction.atomic():
        for row, position in enumerate(result.ok_indices):
            image = readable[position]
            vector = np.ascontiguousarray(result.vectors[row], dtype=np.float32)
            if Image.objects.filter(id=image.id, claim_token=token).update(
                embedding=vector.tobytes(),
                embedding_model=embedder.model_name,
                embedded_at=now,
                status=Image.Status.INDEXED,
                reason_code="",
                status_message="",
                claimed_until=None,
                claim_token="",
            ):
                embedded_ids.append(image.id)
        library_changed(image_ids=embedded_ids)
    for position, error in result.errors.items():
        image = readable[position]
        if image.embed_attempts >= settings.IMGSIM_EMBED_MAX_ATTEMPTS:
            failed += _mark_failed([image], token=token, code="embedding_error", message=error)
        else:
            retried += Image.objects.filter(id=image.id, claim_token=token).update(claimed_until=None, claim_token="")
    summary = EmbedRunSummary(embedded=len(embedded_ids), failed=failed, retried=retried)
    return BatchResult(summary=summary, embedded_ids=embedded_ids)


def embed_pending(*, time_budget_seconds: float = 240.0, after_batch: AfterBatch | None = None) -> EmbedRunSummary:
    """Drain the queue in batches until it is empty or the time budget is spent (more_left then says so).

    after_batch runs after each batch with the ids it embedded (the pipeline queues detection there). An
    error mid-batch releases the batch's claims before it propagates, so the images are retried at once.
    """
    started = time.monotonic()
    embedded = failed = retried = 0
    more_left = False
    while True:
        token, images = _claim_batch(size=settings.IMGSIM_EMBED_BATCH_SIZE)
        if not images:
            break
        try:
            try:
                embedder = embedder_get()
            except WeightsUnavailableError as error:
                failed += _mark_failed(images, token=token, code="model_unavailable", message=str(error))
                logger.error("embedding model unavailable: %s", error)
                break
            _count_attempt(token=token, images=images)
            batch = embed_batch(token=token, images=images, embedder=embedder)
        except BaseException:
            _release_claims(token=token)
            raise
        embedded += batch.summary.embedded
        failed += batch.summary.failed
        retried += batch.summary.retried
        if after_batch is not None and batch.embedded_ids:
            after_batch(batch.embedded_ids)
        if time.monotonic() - started > time_budget_seconds:
            more_left = Image.objects.filter(status=Image.Status.QUEUED).exists()
            break
    if embedded or failed:
        logger.info("embedded %d images, %d failed, %d to retry", embedded, failed, retried)
    if embedded:
        index_refresh_if_needed()
    return EmbedRunSummary(embedded=embedded, failed=failed, retried=retried, more_left=more_left)


# --- rejected images: a vector for the copy check only ------------------------------------------------


def _copy_check_give_up(ids: list[int], *, token: str, why: str) -> int:
    """No vector can be had (unreadable file, model missing, attempts used up): checked, with no copy found."""
    logger.warning("rejected images %s not compared with the library: %s", ids, why)
    return Image.objects.filter(id__in=ids, claim_token=token).update(
        copy_checked_at=timezone.now(), claimed_until=None, claim_token=""
    )


def _claim_rejected(*, size: int) -> tuple[str, list[Image]]:
    """Lease rejected images that still need a vector for the copy check (same leases as the queue)."""
    now = timezone.now()
    waiting = Image.objects.awaiting_copy_check().filter(embedding__isnull=True)
    exhausted = waiting.filter(claimed_until__lt=now, embed_attempts__gte=settings.IMGSIM_EMBED_MAX_ATTEMPTS)
    for pk in exhausted.values_list("id", flat=True)[:size]:
        logger.warning("rejected image %s not compared with the library: embedding kept being interrupted", pk)
    exhausted.update(copy_checked_at=now, claimed_until=None, claim_token="")
    claimable = Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    ids = list(waiting.filter(claimable).order_by("id").values_list("id", flat=True)[:size])
    if not ids:
        return "", []
    token = uuid.uuid4().hex
    waiting.filter(claimable, id__in=ids).update(
        claim_token=token, claimed_until=now + timedelta(seconds=settings.IMGSIM_EMBED_LEASE_SECONDS)
    )
    return token, list(waiting.filter(claim_token=token).order_by("id"))


def embed_rejected_pending(*, time_budget_seconds: float = 240.0) -> EmbedRunSummary:
    """Embed rejected images awaiting the copy check (Image.objects.awaiting_copy_check), batch by batch.

    The vector is stored and the status stays rejected, so the image is never searchable, indexed or
    detected (ImageQuerySet.searchable wants status indexed) and no change is logged for the library views;
    the duplicates app compares it with the library. A person accepting the image meanwhile clears the
    lease, so its vector is then the queue's to write.
    """
    started = time.monotonic()
    embedded = failed = retried = 0
    more_left = False
    while True:
        token, images = _claim_rejected(size=settings.IMGSIM_EMBED_BATCH_SIZE)
        if not images:
            break
        try:
            try:
                embedder = embedder_get()
            except WeightsUnavailableError as error:
                failed += _copy_check_give_up([image.id for image in images], token=token, why=str(error))
                break
            _count_attempt(token=token, images=images)
            readable: list[Image] = []
            sources: list[bytes] = []
            for image in images:
                try:
                    sources.append(_read_file(image))
                    readable.append(image)
                except OSError as error:
                    failed += _copy_check_give_up([image.id], token=token, why=f"stored file unreadable: {error}")
            result = embedder.embed_sources(sources)
        except BaseException:
            _release_claims(token=token, status=Image.Status.REJECTED)
            raise
        now = timezone.now()
        for row, position in enumerate(result.ok_indices):
            vector = np.ascontiguousarray(result.vectors[row], dtype=np.float32)
            embedded += Image.objects.filter(
                id=readable[position].id, claim_token=token, status=Image.Status.REJECTED
            ).update(
                embedding=vector.tobytes(),
                embedding_model=embedder.model_name,
                embedded_at=now,
                claimed_until=None,
                claim_token="",
            )
        for position, error in result.errors.items():
            image = readable[position]
            if image.embed_attempts >= settings.IMGSIM_EMBED_MAX_ATTEMPTS:
                failed += _copy_check_give_up([image.id], token=token, why=error)
            else:
                retried += Image.objects.filter(id=image.id, claim_token=token).update(
                    claimed_until=None, claim_token=""
                )
        if time.monotonic() - started > time_budget_seconds:
            more_left = Image.objects.awaiting_copy_check().filter(embedding__isnull=True).exists()
            break
    if embedded or failed:
        logger.info("embedded %d rejected images for the copy check, %d not comparable", embedded, failed)
    return EmbedRunSummary(embedded=embedded, failed=failed, retried=retried, more_left=more_left)


# --- the index ------------------------------------------------------------------------------------------

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


@dataclass(frozen=True)
class LibraryVectors:
    ids: np.ndarray
    vectors: np.ndarray
    ratings: np.ndarray
    max_embedded_at: datetime | None


def library_vectors(*, model_name: str) -> LibraryVectors:
    """Every searchable vector of one model, streamed from the database in chunks."""
    rows = Image.objects.searchable(model_name=model_name).order_by("id")
    parts: list[VectorRows] = []
    latest: datetime | None = None
    chunk: list[tuple[int, bytes, int | None]] = []
    for pk, embedding, rating, embedded_at in rows.values_list("id", "embedding", "rating", "embedded_at").iterator(
        chunk_size=2000
    ):
        chunk.append((pk, embedding, rating))
        if embedded_at is not None and (latest is None or embedded_at > latest):
            latest = embedded_at
        if len(chunk) >= 8192:
            parts.append(vectors_from_rows(chunk))
            chunk = []
    if chunk:
        parts.append(vectors_from_rows(chunk))
    if not parts:
        return LibraryVectors(np.zeros(0, np.int64), np.zeros((0, 0), np.float32), np.zeros(0, np.float32), None)
    ids, vectors, ratings = zip(*parts, strict=True)
    return LibraryVectors(np.concatenate(ids), np.vstack(vectors), np.concatenate(ratings), latest)


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
        library_changed(index_changed=True)
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
    from django_q.tasks import async_task

    _fail_stale_builds()
    if IndexBuild.objects.filter(status=IndexBuild.Status.BUILDING).exists():
        return False
    transaction.on_commit(
        lambda: async_task(REBUILD_TASK, requested_by=requested_by, task_name="rebuild the search index")
    )
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
            library_changed(index_changed=True)
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


# --- thresholds applied to a model -----------------------------------------------------------------------


def thresholds_validate(*, match: float, near_duplicate: float, similar: float) -> None:
    """Cosines lie in [-1, 1], and the similar band lies below the near-duplicate one (400 otherwise)."""
    for name, value in (("match", match), ("near_duplicate", near_duplicate), ("similar", similar)):
        if not -1.0 <= value <= 1.0:
            raise ServiceError("threshold_out_of_range", f"The {name} threshold must be between -1 and 1, got {value}.")
    if similar > near_duplicate:
        raise ServiceError(
            "similar_above_near_duplicate",
            f"The similar threshold ({similar}) must not exceed the near-duplicate threshold ({near_duplicate}).",
        )


def threshold_setting_apply(
    *,
    model_name: str,
    match: float,
    near_duplicate: float,
    similar: float,
    origin: str,
    applied_by: AbstractBaseUser | None = None,
    calibration_run_id: int | None = None,
    measured_at: datetime | None = None,
    sample: dict | None = None,
) -> ThresholdSetting:
    """Put measured thresholds in force for a model, logged with who and when; every process learns of it
    through the library change log, committed with the row."""
    thresholds_validate(match=match, near_duplicate=near_duplicate, similar=similar)
    with transaction.atomic():
        before = thresholds_in_force(model_name=model_name)
        setting = ThresholdSetting.objects.create(
            model_name=model_name,
            match=match,
            near_duplicate=near_duplicate,
            similar=similar,
            origin=origin,
            applied_by=applied_by,
            calibration_run_id=calibration_run_id,
            measured_at=measured_at,
            sample=sample or {},
            previous=_thresholds_snapshot(before),
        )
        _thresholds_changed()
    return setting


def threshold_setting_undo(*, setting: ThresholdSetting, user: AbstractBaseUser | None = None) -> ThresholdSetting:
    """Undo the thresholds in force for a model: the ones applied before them (or the defaults) are back."""
    with transaction.atomic():
        current = (
            ThresholdSetting.objects.select_for_update()
            .in_force()
            .filter(model_name=setting.model_name)
            .order_by("-id")
            .first()
        )
        if current is None or current.pk != setting.pk:
            raise ServiceError(
                "thresholds_changed",
                f"Thresholds #{setting.pk} are not the ones in force for {setting.model_name} any more "
                "(undone, or others applied since): reload to see the current ones.",
                status=409,
            )
        current.undone_at = timezone.now()
        current.undone_by = user
        current.save(update_fields=["undone_at", "undone_by"])
        _thresholds_changed()
    return current


def _thresholds_changed() -> None:
    """Log the change for every process (in the write's transaction) and drop this process's cache."""
    LibraryChange.objects.create(kind=LibraryChange.Kind.THRESHOLDS)
    thresholds_forget()
    transaction.on_commit(thresholds_forget)


def _thresholds_snapshot(thresholds: ThresholdsInForce) -> dict[str, object]:
    return {
        "match": thresholds.match,
        "near_duplicate": thresholds.near_duplicate,
        "similar": thresholds.similar,
        "sources": {name: source.description for name, source in thresholds.sources.items()},
        "setting_id": thresholds.setting_id,
    }
