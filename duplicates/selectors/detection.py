"""Reads of detection: whether geometric verification is on, the settings a check depends on, which images
still await detection, the library k-NN it searches, and "check before upload"."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Exists, OuterRef, QuerySet

from duplicates import geometry
from duplicates.candidate_pairs import NeighbourSearch, band_of, needs_verification
from duplicates.models import DetectionCheck
from duplicates.selectors.thresholds import duplicate_bands
from gallery.models import Image
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
    """What a detection result depends on (backbone, both thresholds, geometric verification): an image
    checked under another key is checked again, so a model or threshold change re-detects the library."""
    model = model_name or settings.IMGSIM_MODEL
    bands = duplicate_bands(model_name=model)
    geometry_flag = f"geo:{geometry.CHECK}" if geometric_verification_enabled() else "nogeo"
    return f"{model}:{bands.near_duplicate:.4f}:{bands.similar:.4f}:{geometry_flag}"[:100]


def images_awaiting_detection(*, model_name: str | None = None) -> QuerySet[Image]:
    """Searchable images without a detection check under the settings in force (the durable to-do list)."""
    model = model_name or settings.IMGSIM_MODEL
    key = detection_settings_key(model_name=model)
    checked = DetectionCheck.objects.filter(image_id=OuterRef("pk"), settings_key=key)
    return Image.objects.searchable(model_name=model).filter(~Exists(checked))


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
        with image.file.open("rb") as handle:
            other = geometry.local_features(geometry.load_for_matching(handle))
    except (OSError, ValueError):
        return None
    return geometry.count_inliers(features, other)
