"""Calibration: measured thresholds for the configured backbone from edited copies of the library's own images.

The measuring itself (edits, precision and recall per threshold, the plot) is pure and lives in
duplicates/threshold_measurement.py; this module samples the library, embeds the copies and stores the run.
"""

from __future__ import annotations

import logging

import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile
from django.utils import timezone
from PIL import Image as PILImage

from core.task_queue import task_queue_after_commit
from core.users import Actor, recorded_user
from duplicates import geometry, threshold_measurement
from duplicates.features import Verifier
from duplicates.models import CalibrationRun, DuplicatePair
from duplicates.selectors.detection import geometric_verification_enabled
from gallery.models import Image
from gallery.originals import original_open
from search.services.embedding_queue import embedder_get
from search.stored_vectors import stored_vectors

logger = logging.getLogger(__name__)

CALIBRATE_TASK = "duplicates.tasks.calibrate"
# Negatives are the sampled copies against this many library images at most (a random subset beyond).
CALIBRATION_POOL_MAX = 20_000
CALIBRATION_MIN_IMAGES = 10


def calibration_run_create(
    *,
    sample_size: int,
    target_precision: float,
    requested_by: Actor = None,
    schedule: bool = True,
    automatic: bool = False,
) -> CalibrationRun:
    """A queued calibration run; with schedule, a background task runs it once the transaction commits."""
    run = CalibrationRun.objects.create(
        model_name=settings.IMGSIM_MODEL,
        sample_size=sample_size,
        target_precision=target_precision,
        requested_by=recorded_user(requested_by),
        automatic=automatic,
    )
    if schedule:
        task_queue_after_commit(CALIBRATE_TASK, run.pk, task_name=f"calibrate duplicates #{run.pk}")
    return run


def calibration_run_execute(*, run: CalibrationRun, seed: int = 0) -> CalibrationRun:
    """Sample, edit, embed and compare (duplicates/threshold_measurement.py); store the result and the plot."""
    CalibrationRun.objects.filter(pk=run.pk).update(status=CalibrationRun.Status.RUNNING)
    try:
        model_name = run.model_name
        ids = list(Image.objects.searchable(model_name=model_name).order_by("id").values_list("id", flat=True))
        if len(ids) < CALIBRATION_MIN_IMAGES:
            raise ValueError(
                f"Calibration needs at least {CALIBRATION_MIN_IMAGES} embedded images of {model_name}; "
                f"the library has {len(ids)}."
            )
        rng = np.random.default_rng(seed)
        sample = sorted(rng.choice(ids, size=min(run.sample_size, len(ids)), replace=False).tolist())
        pool_list = (
            ids
            if len(ids) <= CALIBRATION_POOL_MAX
            else sorted(rng.choice(ids, size=CALIBRATION_POOL_MAX, replace=False).tolist())
        )
        pool_ids, pool_vectors, _ = stored_vectors(model_name=model_name, ids=pool_list)
        sample_ids, sample_vectors, _ = stored_vectors(model_name=model_name, ids=sample)
        source_vectors = {int(pk): vector for pk, vector in zip(sample_ids, sample_vectors, strict=True)}
        images = Image.objects.defer("embedding").in_bulk(source_vectors)
        embedder = embedder_get()
        copy_rng = np.random.default_rng(seed + 1)
        vectors, sources, transforms = [], [], []
        for pk in source_vectors:
            try:
                with original_open(images[pk]) as handle, PILImage.open(handle) as picture:
                    copies = threshold_measurement.edited_copies(picture, rng=copy_rng)
            except (OSError, ValueError, PILImage.DecompressionBombError) as error:
                logger.warning("calibration skips image %s: %s", pk, error)
                continue
            vectors.append(embedder.embed_images([copy for _, copy in copies]))
            sources.extend([pk] * len(copies))
            transforms.extend(name for name, _ in copies)
        if not vectors:
            raise ValueError("None of the sampled images could be read from storage.")
        copy_vectors = np.vstack(vectors)
        copy_sources = np.array(sources, dtype=np.int64)
        probable = _probable_copies(source_vectors, copy_vectors, copy_sources, pool_ids, pool_vectors, images)
        result = threshold_measurement.calibrate(
            threshold_measurement.CalibrationSet(
                copy_vectors=copy_vectors,
                copy_source=copy_sources,
                copy_transform=transforms,
                source_vectors={pk: source_vectors[pk] for pk in set(sources)},
                pool_ids=pool_ids,
                pool_vectors=pool_vectors,
                probable_copies=probable,
            ),
            target_precision=run.target_precision,
        )
        payload = result.as_json()
        payload["library_size"] = len(ids)
        payload["pool_size"] = int(pool_ids.shape[0])
        payload["sampled"] = len(set(sources))
        run.result = payload
        run.suggested_near_duplicate = result.suggested_near_duplicate
        run.suggested_similar = result.suggested_similar
        title = (
            f"{model_name}: {len(set(sources))} sampled images x {len(threshold_measurement.TRANSFORMS)} edits, "
            f"{len(ids)} in library"
        )
        run.plot.save("plot.png", ContentFile(threshold_measurement.plot_png(result, title=title)), save=False)
        run.status = CalibrationRun.Status.DONE
    except Exception as error:
        logger.exception("calibration run %s failed", run.pk)
        run.status = CalibrationRun.Status.FAILED
        run.error = str(error)[:2000]
    run.finished_at = timezone.now()
    run.save()
    return run


def _probable_copies(
    source_vectors: dict[int, np.ndarray],
    copy_vectors: np.ndarray,
    copy_sources: np.ndarray,
    pool_ids: np.ndarray,
    pool_vectors: np.ndarray,
    images: dict[int, Image],
) -> dict[int, set[int]]:
    """Library images that already are copies of a sampled one: confirmed by a reviewer, or scoring like an
    edited copy and matched by geometric verification. They are set aside, not counted as negatives."""
    probable: dict[int, set[int]] = {pk: set() for pk in source_vectors}
    confirmed = DuplicatePair.objects.filter(review_status=DuplicatePair.ReviewStatus.CONFIRMED)
    for a_id, b_id in confirmed.filter(image_a_id__in=list(probable)).values_list("image_a_id", "image_b_id"):
        probable[a_id].add(b_id)
    for a_id, b_id in confirmed.filter(image_b_id__in=list(probable)).values_list("image_a_id", "image_b_id"):
        probable[b_id].add(a_id)
    different = set(
        DuplicatePair.objects.filter(review_status=DuplicatePair.ReviewStatus.NOT_DUPLICATE).values_list(
            "image_a_id", "image_b_id"
        )
    )
    verifier = Verifier(enabled=geometric_verification_enabled())
    positives = np.einsum("ij,ij->i", copy_vectors, np.stack([source_vectors[int(pk)] for pk in copy_sources]))
    floor = threshold_measurement.suspect_floor(positives)
    suspects_by_source = {
        pk: threshold_measurement.copy_suspects(
            source_id=pk,
            vectors=np.vstack([vector, copy_vectors[copy_sources == pk]]),
            floor=floor,
            pool_ids=pool_ids,
            pool_vectors=pool_vectors,
        )
        for pk, vector in source_vectors.items()
        if (copy_sources == pk).any()
    }
    suspect_images = Image.objects.defer("embedding").in_bulk(
        {other for others in suspects_by_source.values() for other in others}
    )
    for pk, others in suspects_by_source.items():
        for other in others:
            if other in probable[pk] or (min(pk, other), max(pk, other)) in different or other not in suspect_images:
                continue
            inliers = verifier.inliers(images[pk], suspect_images[other])
            if inliers is not None and inliers >= geometry.MIN_INLIERS:
                probable[pk].add(other)
    return {pk: others for pk, others in probable.items() if others}
