"""The embedding queue: queued images embedded in batches under leases (a killed worker loses nothing), and the
vectors of rejected images for the copy check only."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import F, Q
from django.utils import timezone

from gallery.models import Image
from gallery.originals import original_read
from search.embedding import Embedder, WeightsUnavailableError, available_cpu_count, get_embedder
from search.services.index_lifecycle import index_refresh_if_needed

logger = logging.getLogger(__name__)


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
    more_left: bool = False  # the run stopped (budget spent, or told to) with images still queued


# Called with the ids of each batch's newly embedded images once their vectors have committed; False stops the
# run after this batch (the pipeline yields to detection when it falls behind).
AfterBatch = Callable[[list[int]], bool]


def _fail_exhausted(now: timezone.datetime) -> int:
    """Images that used up their attempts, however each ended (lease expired after a kill, or claim released
    after an error), are failed with the reason before anyone can claim them again."""
    attempts = settings.IMGSIM_EMBED_MAX_ATTEMPTS
    unclaimed = Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    return Image.objects.filter(unclaimed, status=Image.Status.QUEUED, embed_attempts__gte=attempts).update(
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
    return original_read(image)


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
    for position, error in result.errors.items():
        image = readable[position]
        if image.embed_attempts >= settings.IMGSIM_EMBED_MAX_ATTEMPTS:
            failed += _mark_failed([image], token=token, code="embedding_error", message=error)
        else:
            retried += Image.objects.filter(id=image.id, claim_token=token).update(claimed_until=None, claim_token="")
    summary = EmbedRunSummary(embedded=len(embedded_ids), failed=failed, retried=retried)
    return BatchResult(summary=summary, embedded_ids=embedded_ids)


def embed_pending(*, time_budget_seconds: float = 240.0, after_batch: AfterBatch | None = None) -> EmbedRunSummary:
    """Drain the queue in batches until it is empty, the time budget is spent or after_batch says stop
    (more_left then says whether images are still queued).

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
            _release_claims(token=token)  # counted already: the next claim fails an image at the limit
            raise
        embedded += batch.summary.embedded
        failed += batch.summary.failed
        retried += batch.summary.retried
        go_on = True
        if after_batch is not None and batch.embedded_ids:
            go_on = after_batch(batch.embedded_ids)
        if not go_on or time.monotonic() - started > time_budget_seconds:
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
    unclaimed = Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    exhausted = waiting.filter(unclaimed, embed_attempts__gte=settings.IMGSIM_EMBED_MAX_ATTEMPTS)
    for pk in exhausted.values_list("id", flat=True)[:size]:
        logger.warning("rejected image %s not compared with the library: embedding kept being interrupted", pk)
    exhausted.update(copy_checked_at=now, claimed_until=None, claim_token="")
    claimable = unclaimed
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
