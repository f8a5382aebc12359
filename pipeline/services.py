"""The pipeline: upload -> image_create (gallery) -> embedding (search) -> detection (duplicates), one way.

Every entry point that adds or re-queues images (upload page, API, folder import, search's add-to-library,
retry / accept anyway) calls this module, and the background embedding run is this module's, so each batch
of new vectors is followed by a detection run. Detection itself is driven by its durable record
(duplicates.models.DetectionCheck): queueing it here is the fast path, the two-minute schedule the safety net.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import IO

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Model
from django.utils import timezone

from core.planner_statistics import planner_statistics_refresh
from core.task_queue import task_queue_once_after_commit
from core.users import Actor
from duplicates.models import DetectionCheck, DuplicateGroup, DuplicateGroupMember, DuplicatePair
from duplicates.selectors.detection import images_awaiting_detection
from duplicates.services.detection import PendingDetectionSummary, duplicate_detection_run, duplicate_detection_schedule
from duplicates.services.rejected_copies import rejected_copies_check
from duplicates.services.trash import images_trash
from gallery.models import Image
from gallery.services import (
    ImageCreateResult,
    UploadOutcome,
    image_accept_rejected,
    image_create,
    image_create_from_upload,
)
from search.models import LibraryChange
from search.services.embedding_queue import EmbedRunSummary, embed_pending, embed_rejected_pending

logger = logging.getLogger(__name__)

EMBED_TASK = "pipeline.tasks.embed_pending"
# The images whose detection lag holds embedding back: those embedded this recently.
DETECTION_LAG_WINDOW = timedelta(minutes=10)


def embedding_schedule() -> None:
    """Queue a background embedding run once the current transaction has committed, unless one is waiting
    already (it embeds whatever is queued when it starts)."""
    task_queue_once_after_commit(EMBED_TASK, task_name="embed pending images")


def _needs_embedding(result: ImageCreateResult) -> bool:
    """New and accepted (queued), or rejected as blurry: embedded for the copy check, never searchable."""
    image = result.image
    return result.created and (image.status == Image.Status.QUEUED or image.copy_check == "pending")


def image_ingest(*, data: bytes, original_name: str, uploaded_by: Actor = None) -> ImageCreateResult:
    """Store an upload and queue its embedding (and so its detection, or a rejected image's copy check)."""
    result = image_create(data=data, original_name=original_name, uploaded_by=uploaded_by)
    if _needs_embedding(result):
        embedding_schedule()
    return result


def image_ingest_upload(*, upload: IO[bytes], name: str, uploaded_by: Actor = None) -> UploadOutcome:
    """image_ingest for an uploaded file object; a refused file is an outcome with its reason, not an error."""
    outcome = image_create_from_upload(upload=upload, name=name, uploaded_by=uploaded_by)
    if outcome.result is not None and _needs_embedding(outcome.result):
        embedding_schedule()
    return outcome


def image_retry(*, image: Image) -> Image:
    """A person accepts a rejected image anyway, or retries a failed one: it is queued like a new upload."""
    with transaction.atomic():
        image = image_accept_rejected(image=image)
        if image.status == Image.Status.QUEUED:
            embedding_schedule()
    return image


def _detection_after_batch(image_ids: list[int]) -> None:
    """Queue detection for what is unchecked; a failure here loses nothing (the schedule finds them)."""
    try:
        duplicate_detection_schedule()
    except Exception:
        logger.exception("could not queue duplicate detection after embedding %d images", len(image_ids))


def _detection_lags() -> bool:
    """Whether more than IMGSIM_EMBED_AHEAD_OF_DETECTION images embedded in the last few minutes (by any
    worker) still await detection: then the run yields to detection, so detection stays level with embedding
    instead of facing the whole upload session's backlog once embedding is done (on dense families a check
    costs more than an embedding). A bounded read (recent images, stops at the limit); an old backlog (a
    re-detection of the library) never holds new uploads back; when the read fails, embedding goes on."""
    ahead = settings.IMGSIM_EMBED_AHEAD_OF_DETECTION
    recent = images_awaiting_detection().filter(embedded_at__gte=timezone.now() - DETECTION_LAG_WINDOW)
    try:
        return recent.order_by()[: ahead + 1].count() > ahead
    except DatabaseError:
        logger.warning("could not count the images awaiting detection; embedding goes on", exc_info=True)
        return False


def embedding_run(*, time_budget_seconds: float | None = None) -> EmbedRunSummary:
    """The background embedding run: batches until the queue is empty, the budget is spent
    (IMGSIM_EMBED_RUN_SECONDS unless given) or detection lags behind recent embeddings; a follow-up run
    is then queued, behind the detection run the batches queued, so detection keeps pace during a long
    upload. Then the rejected images awaiting the copy check, after the queue, so a photo uploaded just before
    its blurred copy is in the library when the copy is compared with it."""
    if time_budget_seconds is None:
        time_budget_seconds = float(settings.IMGSIM_EMBED_RUN_SECONDS)
    started = time.monotonic()

    def after_batch(batch_ids: list[int]) -> bool:
        _detection_after_batch(batch_ids)
        return not _detection_lags()

    summary = embed_pending(time_budget_seconds=time_budget_seconds, after_batch=after_batch)
    rejected = EmbedRunSummary(embedded=0, failed=0, retried=0)
    if not summary.more_left:
        rejected = embed_rejected_pending(time_budget_seconds=time_budget_seconds - (time.monotonic() - started))
    _copy_check()
    if summary.more_left or rejected.more_left:
        embedding_schedule()
    return summary


def _copy_check() -> None:
    """Name the library photo each embedded rejected image copies; a failure here loses nothing (the next
    run checks what is unchecked)."""
    try:
        rejected_copies_check()
    except Exception:
        logger.exception("the copy check of rejected images failed; the next embedding run retries it")


def embed_and_detect_now() -> tuple[EmbedRunSummary, PendingDetectionSummary]:
    """Embed everything queued and detect its pairs in this process (manage.py import_images --embed-now)."""
    embedded = embed_pending(time_budget_seconds=float("inf"))
    embed_rejected_pending(time_budget_seconds=float("inf"))
    rejected_copies_check()
    return embedded, duplicate_detection_run(time_budget_seconds=float("inf"))


def import_statistics_refresh(*, embedded: bool) -> list[str]:
    """After a folder import, the planner's statistics of the tables it filled: the images, and when it
    embedded and detected in the same process, the change log and detection's checks, pairs and groups."""
    models: list[type[Model]] = [Image]
    if embedded:
        models += [LibraryChange, DetectionCheck, DuplicatePair, DuplicateGroup, DuplicateGroupMember]
    return planner_statistics_refresh(models=models)


def image_trash(*, image: Image, user: Actor = None) -> Image:
    """Move an image to the trash, as every delete in the web UI does: out of the library, search and its
    duplicate groups (logged for every process's search view), its file kept until it is purged from there."""
    images_trash(images=[image], user=user)
    return image
