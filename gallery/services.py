"""Writes to the image library: creating images from uploads, deleting them, overriding a rejection.

Nothing here queues the next step: the pipeline app composes image_create with embedding and detection.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import IO

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.users import Actor
from gallery.image_file import UploadRejected, decode_upload, thumbnail_webp
from gallery.models import Image
from gallery.quality import QualityThresholds, assess_quality
from gallery.source_moves import image_files_follow_restore, image_files_follow_trash, images_files_follow_purge

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageCreateResult:
    """What happened to one upload: a new image (queued or rejected), or the existing identical one (which
    may be in the trash: then the upload is not in the library, and restoring that image is the way back)."""

    image: Image
    created: bool

    @property
    def outcome(self) -> str:
        if not self.created:
            return "exact_duplicate_in_trash" if self.image.trashed_at is not None else "exact_duplicate"
        return "rejected" if self.image.status == Image.Status.REJECTED else "accepted"


def quality_thresholds_from_settings() -> QualityThresholds:
    """The quality thresholds, with settings overriding the measured defaults where set."""
    overrides: dict[str, float | int | bool] = {
        "min_width": settings.IMGSIM_MIN_WIDTH,
        "min_height": settings.IMGSIM_MIN_HEIGHT,
    }
    optional = {
        "solid_color_max_std": settings.IMGSIM_SOLID_COLOR_MAX_STD,
        "blur_min_score": settings.IMGSIM_BLUR_MIN_SCORE,
        "dark_max_fraction": settings.IMGSIM_DARK_MAX_FRACTION,
        "bright_max_fraction": settings.IMGSIM_BRIGHT_MAX_FRACTION,
    }
    overrides.update({name: value for name, value in optional.items() if value is not None})
    return QualityThresholds(**overrides)


def read_upload_bytes(upload: IO[bytes], *, max_bytes: int) -> bytes:
    """The upload's bytes, refusing (413) anything over the cap without reading it all into memory."""
    size = getattr(upload, "size", None)
    if size is not None and size > max_bytes:
        raise _file_too_large(size, max_bytes)
    if hasattr(upload, "seek"):
        upload.seek(0)
    data = upload.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise _file_too_large(None, max_bytes)
    return data


def _file_too_large(size: int | None, max_bytes: int) -> UploadRejected:
    what = f"{size / 1_048_576:.1f} MB" if size else "larger than allowed"
    return UploadRejected(
        "file_too_large",
        f"The file is too large ({what}); the limit is {max_bytes / 1_048_576:.0f} MB.",
        status=413,
    )


def image_create(
    *,
    data: bytes,
    original_name: str,
    uploaded_by: Actor = None,
    store_original: bool = True,
) -> ImageCreateResult:
    """Validate, check quality and store an upload (status queued or rejected); identical bytes return the
    existing image. Queueing the embedding is the caller's step (pipeline.services.image_ingest).
    store_original=False keeps no copy in media: a library source's file, read where it is (gallery.originals)."""
    if len(data) > settings.IMGSIM_MAX_UPLOAD_BYTES:
        raise _file_too_large(len(data), settings.IMGSIM_MAX_UPLOAD_BYTES)
    sha256 = hashlib.sha256(data).hexdigest()
    existing = Image.objects.filter(sha256=sha256).first()
    if existing is not None:
        if store_original and not existing.file:
            _keep_copy(existing, data)
        return ImageCreateResult(image=existing, created=False)

    decoded = decode_upload(data, max_pixels=settings.IMGSIM_MAX_PIXELS)
    exif = decoded.exif
    report = assess_quality(
        decoded.preview, thresholds=quality_thresholds_from_settings(), size=(decoded.width, decoded.height)
    )

    image = Image(
        original_name=(original_name or "")[:255],
        sha256=sha256,
        width=decoded.width,
        height=decoded.height,
        format=decoded.format,
        file_size=len(data),
        camera_make=exif.camera_make,
        camera_model=exif.camera_model,
        taken_at=_aware(exif.taken_at),
        orientation=exif.orientation,
        rating=exif.rating,
        quality_scores={name: round(float(value), 6) for name, value in report.scores.items()},
        uploaded_by=uploaded_by if uploaded_by is not None and uploaded_by.is_authenticated else None,
    )
    if report.rejection is not None:
        image.status = Image.Status.REJECTED
        image.reason_code = report.rejection.reason
        image.status_message = report.rejection.message
        image.quality_score = report.rejection.score
        image.quality_threshold = report.rejection.threshold

    if store_original:
        image.file.save("original", ContentFile(data), save=False)  # named from image.format: original_upload_to
    thumb = thumbnail_webp(decoded.preview, size=settings.IMGSIM_THUMBNAIL_SIZE)
    image.thumbnail.save("thumb.webp", ContentFile(thumb), save=False)
    stored_names = [image.file.name, image.thumbnail.name]
    try:
        with transaction.atomic():
            image.save()
    except IntegrityError:
        _delete_files(stored_names)
        # The same bytes were stored by a concurrent upload between our lookup and our insert.
        existing = Image.objects.filter(sha256=sha256).first()
        if existing is None:
            raise
        return ImageCreateResult(image=existing, created=False)
    except BaseException:
        _delete_files(stored_names)
        raise
    return ImageCreateResult(image=image, created=True)


def _keep_copy(image: Image, data: bytes) -> None:
    """An upload of an image only a library source held: its bytes are kept in media, so the image no longer
    depends on the folder (it stays when the source's file goes)."""
    image.file.save("original", ContentFile(data), save=False)
    if not Image.objects.filter(pk=image.pk, file="").update(file=image.file.name):
        _delete_files([image.file.name])  # a concurrent upload kept its copy first
        image.refresh_from_db(fields=["file"])


def _aware(moment: timezone.datetime | None) -> timezone.datetime | None:
    """EXIF times without an offset are taken as UTC: the camera's zone is unknown."""
    if moment is None or timezone.is_aware(moment):
        return moment
    return moment.replace(tzinfo=UTC)


def _delete_files(names: list[str]) -> None:
    from django.core.files.storage import default_storage

    for name in names:
        if name:
            try:
                default_storage.delete(name)
            except OSError:
                logger.warning("could not delete stored file %s", name, exc_info=True)


def image_delete(*, image: Image) -> None:
    """Delete an image with its pairs; its files go once the deletion has committed."""
    images_delete(images=[image])


def images_delete(*, images: list[Image]) -> None:
    """Delete images with their pairs, a statement per table for all of them (emptying a large trash); their
    files go once the deletion has committed."""
    names = [name for image in images for name in (image.file.name, image.thumbnail.name)]
    with transaction.atomic():
        images_files_follow_purge(image_ids=[image.pk for image in images])
        Image.objects.filter(pk__in=[image.pk for image in images]).delete()
        transaction.on_commit(lambda: _delete_files(names))


def image_purge(*, image: Image) -> None:
    """Delete for good (from the trash, or at once): the row, its pairs and, after the commit, its files."""
    image_delete(image=image)


def image_trash(*, image: Image, user: Actor = None) -> Image:
    """Move an image to the trash: out of the library grid, search and duplicate detection; its file is kept
    until it is purged (by hand, or IMGSIM_TRASH_DAYS later), and in a writable library source it moves into
    the source's quarantine folder once this commits. Trashing a trashed image changes nothing."""
    changed = Image.objects.filter(pk=image.pk, trashed_at__isnull=True).update(
        trashed_at=timezone.now(),
        trashed_by=user if user is not None and user.is_authenticated else None,
        updated_at=timezone.now(),
    )
    if changed:
        image.refresh_from_db(fields=["trashed_at", "trashed_by", "updated_at"])
        image_files_follow_trash(image=image, by=user)
    return image


def image_restore(*, image: Image, by: Actor = None) -> Image:
    """Take an image out of the trash: back in the library and search (the index tail until a rebuild); its
    quarantined source files move back once this commits."""
    now = timezone.now()
    changed = Image.objects.filter(pk=image.pk, trashed_at__isnull=False).update(
        trashed_at=None, trashed_by=None, restored_at=now, updated_at=now
    )
    if changed:
        image.refresh_from_db(fields=["trashed_at", "trashed_by", "restored_at", "updated_at"])
        image_files_follow_restore(image=image, by=by)
    return image


def trash_purge_expired(*, days: int | None = None) -> int:
    """Purge the images that have been in the trash for `days` (IMGSIM_TRASH_DAYS); how many were purged."""
    cutoff = timezone.now() - timedelta(days=settings.IMGSIM_TRASH_DAYS if days is None else days)
    purged = 0
    for image in Image.objects.filter(trashed_at__lte=cutoff).defer("embedding").iterator(chunk_size=200):
        image_purge(image=image)
        purged += 1
    return purged


def image_accept_rejected(*, image: Image) -> Image:
    """A person overrides a quality rejection (or retries a failure): the image is queued like a new upload."""
    if image.status not in (Image.Status.REJECTED, Image.Status.FAILED):
        return image
    with transaction.atomic():
        image.status = Image.Status.QUEUED
        image.reason_code = ""
        image.status_message = ""
        image.embed_attempts = 0
        image.claimed_until = None
        image.claim_token = ""
        image.copy_of = None  # an accepted image's copies are duplicate pairs, found by detection
        image.copy_similarity = None
        image.save(
            update_fields=[
                "status",
                "reason_code",
                "status_message",
                "embed_attempts",
                "claimed_until",
                "claim_token",
                "copy_of",
                "copy_similarity",
                "updated_at",
            ]
        )
    return image


@dataclass(frozen=True)
class UploadOutcome:
    """One uploaded file's result, for the API and the upload page alike."""

    name: str
    result: ImageCreateResult | None = None
    error: UploadRejected | None = None

    @property
    def outcome(self) -> str:
        return self.result.outcome if self.result is not None else "error"

    @property
    def http_status(self) -> int:
        if self.error is not None:
            return self.error.status
        assert self.result is not None
        return 201 if self.result.created else 200


def image_create_from_upload(*, upload: IO[bytes], name: str, uploaded_by: Actor = None) -> UploadOutcome:
    """image_create for a file object; a refused file becomes an outcome carrying the reason, not an exception."""
    try:
        data = read_upload_bytes(upload, max_bytes=settings.IMGSIM_MAX_UPLOAD_BYTES)
        result = image_create(data=data, original_name=name, uploaded_by=uploaded_by)
    except UploadRejected as error:
        logger.info("upload %r refused: %s (%s)", name, error.code, error.message)
        return UploadOutcome(name=name, error=error)
    return UploadOutcome(name=name, result=result)
