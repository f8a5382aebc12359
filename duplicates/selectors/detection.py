"""Reads of detection: whether geometric verification is on, the settings a check depends on, which images
still await detection, the library k-NN it searches, and "check before upload"."""

from __future__ import annotations

import hashlib
import io
import math
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Exists, Min, OuterRef, QuerySet
from django.utils import timezone

from duplicates import geometry, scene_match
from duplicates.candidate_pairs import NeighbourSearch, band_of, needs_verification
from duplicates.models import DetectionCheck
from duplicates.selectors.thresholds import duplicate_bands
from gallery.models import Image
from gallery.originals import original_open
from search.embedding import available_cpu_count
from search.library_view import LibrarySearch
from search.selectors import query_image_from_upload


def geometric_verification_enabled() -> bool:
    """On by default: bench/duplicates.py measured it raising recall at the same precision."""
    return settings.IMGSIM_DUPLICATE_GEOMETRY


def verification_threads() -> int:
    """Threads a worker verifies pairs on: its share of the cores (IMGSIM_TORCH_THREADS when set), as for
    embedding, so that several workers on one machine do not oversubscribe it."""
    if settings.IMGSIM_TORCH_THREADS:
        return int(settings.IMGSIM_TORCH_THREADS)
    workers = int(str(settings.Q_CLUSTER.get("workers", 1)))
    return max(1, available_cpu_count() // max(1, workers))


def detection_settings_key(*, model_name: str | None = None) -> str:
    """What a detection result depends on (backbone, both thresholds, geometric verification, the similar
    band's scene check): an image checked under another key is checked again, so a model or threshold change
    re-detects the library."""
    model = model_name or settings.IMGSIM_MODEL
    bands = duplicate_bands(model_name=model)
    geometry_flag = f"geo:{geometry.CHECK}" if geometric_verification_enabled() else "nogeo"
    return f"{model}:{bands.near_duplicate:.4f}:{bands.similar:.4f}:{geometry_flag}:{scene_match.CHECK}"[:100]


def images_awaiting_detection(*, model_name: str | None = None, settings_key: str | None = None) -> QuerySet[Image]:
    """Searchable images without a detection check under the settings in force (the durable to-do list);
    `settings_key`: that of the settings in force, when the caller has read it already."""
    model = model_name or settings.IMGSIM_MODEL
    key = settings_key or detection_settings_key(model_name=model)
    checked = DetectionCheck.objects.filter(image_id=OuterRef("pk"), settings_key=key)
    return Image.objects.searchable(model_name=model).filter(~Exists(checked))


# The recent checks that give the detection rate: long enough to span several batches of a run, short enough
# that a run that stopped soon shows no estimate.
DETECTION_RATE_WINDOW = timedelta(minutes=5)
# How long a counted backlog is shared (the cache): about the review page's polling interval.
BACKLOG_CACHE_SECONDS = 10
# The shortest span a rate is measured over: a batch that committed a second ago says little about the pace.
DETECTION_RATE_MIN_SPAN = timedelta(seconds=15)


@dataclass(frozen=True)
class DetectionBacklog:
    """Images still to be checked for duplicates, and the time they should take at the recent pace."""

    waiting: int
    per_minute: float | None  # checks per minute over the last few minutes; None when none were made
    seconds_left: int | None  # None when the pace is unknown

    @property
    def summary(self) -> str:
        """One line for the review page: "Still checking 1,180 photos for duplicates, about 3 minutes left." """
        if not self.waiting:
            return "Every photo has been checked for duplicates."
        photos = f"{self.waiting:,} photo{'s' if self.waiting != 1 else ''}"
        if self.seconds_left is None:
            return f"Still checking {photos} for duplicates."
        if self.seconds_left < 60:
            left = "less than a minute"
        elif self.seconds_left < 90:
            left = "about a minute"
        elif self.seconds_left < 3600:
            left = f"about {round(self.seconds_left / 60)} minutes"
        else:
            hours = self.seconds_left / 3600
            left = "about an hour" if hours < 1.5 else f"about {round(hours)} hours"
        return f"Still checking {photos} for duplicates, {left} left."


def detection_backlog(*, model_name: str | None = None) -> DetectionBacklog:
    """How many images await detection (images_awaiting_detection, counted) and, while some do, the pace of
    the checks committed in the last minutes. The count is an anti-join over every searchable image (about a
    second on a million images, bench/README.md), so it is shared through the cache for a few seconds: the
    review pages polling it cost one count per BACKLOG_CACHE_SECONDS however many are open."""
    model = model_name or settings.IMGSIM_MODEL
    key = detection_settings_key(model_name=model)
    cache_key = f"duplicates:detection-backlog:{hashlib.sha256(key.encode()).hexdigest()[:32]}"
    cached = cache.get(cache_key)
    if cached is not None:
        return DetectionBacklog(*cached)
    backlog = _detection_backlog(model=model, key=key)
    cache.set(cache_key, (backlog.waiting, backlog.per_minute, backlog.seconds_left), BACKLOG_CACHE_SECONDS)
    return backlog


def _detection_backlog(*, model: str, key: str) -> DetectionBacklog:
    waiting = images_awaiting_detection(model_name=model, settings_key=key).count()
    if not waiting:
        return DetectionBacklog(waiting=0, per_minute=None, seconds_left=None)
    now = timezone.now()
    recent = DetectionCheck.objects.filter(settings_key=key, checked_at__gte=now - DETECTION_RATE_WINDOW).aggregate(
        checks=Count("pk"), first=Min("checked_at")
    )
    if not recent["checks"]:
        return DetectionBacklog(waiting=waiting, per_minute=None, seconds_left=None)
    span = max(now - recent["first"], DETECTION_RATE_MIN_SPAN).total_seconds()
    per_second = recent["checks"] / span
    return DetectionBacklog(
        waiting=waiting, per_minute=round(per_second * 60, 1), seconds_left=math.ceil(waiting / per_second)
    )


def library_neighbour_search(*, model_name: str) -> NeighbourSearch:
    """Purely visual k-NN over the library (served index + tail, exact cosine); the tail is read once."""
    library = LibrarySearch(model_name=model_name)
    return lambda queries, k: library.search(queries, k=k)


@dataclass(frozen=True)
class UploadMatch:
    image: Image
    similarity: float
    band: str | None  # near_duplicate, similar, or None (just the nearest)
    inliers: int | None


@dataclass(frozen=True)
class UploadCheck:
    exact_duplicate: Image | None
    matches: list[UploadMatch]
    near_duplicate: float
    similar: float
    model: str


def check_upload(*, data: bytes, k: int = 10) -> UploadCheck:
    """The nearest library images to an upload with the band detection would give them; nothing is stored."""
    sha256 = hashlib.sha256(data).hexdigest()
    exact = Image.objects.defer("embedding").filter(sha256=sha256).first()
    query = query_image_from_upload(data=data)  # validates (4xx for a bad file) and embeds
    model_name = settings.IMGSIM_MODEL
    bands = duplicate_bands(model_name=model_name)
    scores, ids = library_neighbour_search(model_name=model_name)(query.vector.reshape(1, -1), k)
    ranked = [(int(pk), float(score)) for pk, score in zip(ids[0], scores[0], strict=True) if pk >= 0]
    images = Image.objects.defer("embedding").in_bulk([pk for pk, _ in ranked])
    upload_features = None
    matches = []
    for pk, similarity in ranked:
        image = images.get(pk)
        if image is None:
            continue
        inliers = None
        if geometric_verification_enabled() and needs_verification(similarity, bands=bands):
            if upload_features is None:
                upload_features = geometry.local_features(geometry.load_for_matching(io.BytesIO(data)))
            inliers = _inliers_with(upload_features, image)
        band = band_of(similarity, bands=bands, inliers=inliers, min_inliers=geometry.MIN_INLIERS)
        matches.append(UploadMatch(image=image, similarity=similarity, band=band, inliers=inliers))
    return UploadCheck(
        exact_duplicate=exact,
        matches=matches,
        near_duplicate=bands.near_duplicate,
        similar=bands.similar,
        model=model_name,
    )


def _inliers_with(features: geometry.LocalFeatures, image: Image) -> int | None:
    try:
        with original_open(image) as handle:
            other = geometry.local_features(geometry.load_for_matching(handle))
    except (OSError, ValueError):
        return None
    return geometry.count_inliers(features, other)
