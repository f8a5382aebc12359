"""What detection reads from an image's stored files, cached per process: perceptual hashes and ORB features.

Stored files never change (a new upload is a new row), so a value computed once holds for as long as the
process lives; the caches are bounded so that a scan of a large library does not keep them all.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict

import numpy as np
from PIL import Image as PILImage

from duplicates import geometry, scene_match
from duplicates.evidence import ImageFacts, dhash, hamming, phash, upright
from gallery.models import Image
from gallery.originals import original_open

logger = logging.getLogger(__name__)

_FINGERPRINT_CACHE_SIZE = 8192
_fingerprints: OrderedDict[str, tuple[int, int] | None] = OrderedDict()
_fingerprints_lock = threading.Lock()


def _open_picture(image: Image) -> PILImage.Image:
    """The thumbnail when there is one (small, upright), else the original at reduced scale."""
    with image.thumbnail.open("rb") if image.thumbnail else original_open(image) as handle:
        picture = PILImage.open(handle)
        picture.draft("RGB", (256, 256))
        if not image.thumbnail:
            return upright(picture)  # decoded there, after its memory check
        picture.load()
    return picture


def image_fingerprint(image: Image) -> tuple[int, int] | None:
    """(pHash, dHash) of an image, cached per process by content (sha256); None if its files are unreadable."""
    with _fingerprints_lock:
        if image.sha256 in _fingerprints:
            _fingerprints.move_to_end(image.sha256)
            return _fingerprints[image.sha256]
    try:
        picture = _open_picture(image)
        value: tuple[int, int] | None = (phash(picture), dhash(picture))
    except (OSError, ValueError, PILImage.DecompressionBombError) as error:
        logger.warning("no perceptual hash for image %s: %s", image.pk, error)
        value = None
    with _fingerprints_lock:
        _fingerprints[image.sha256] = value
        while len(_fingerprints) > _FINGERPRINT_CACHE_SIZE:
            _fingerprints.popitem(last=False)
    return value


def fingerprint_distance(first: tuple[int, int] | None, second: tuple[int, int] | None, which: int) -> int | None:
    """Hamming distance of the pHashes (which=0) or dHashes (which=1); None when either is unknown."""
    if first is None or second is None:
        return None
    return hamming(first[which], second[which])


_exposure_thumbnails: OrderedDict[str, np.ndarray | None] = OrderedDict()
_exposure_lock = threading.Lock()


def exposure_thumbnail(image: Image) -> np.ndarray | None:
    """scene_match.exposure_thumbnail of an image, cached per process by content (sha256); None if unreadable."""
    with _exposure_lock:
        if image.sha256 in _exposure_thumbnails:
            _exposure_thumbnails.move_to_end(image.sha256)
            return _exposure_thumbnails[image.sha256]
    try:
        value: np.ndarray | None = scene_match.exposure_thumbnail(_open_picture(image))
    except (OSError, ValueError, PILImage.DecompressionBombError) as error:
        logger.warning("no exposure thumbnail for image %s: %s", image.pk, error)
        value = None
    with _exposure_lock:
        _exposure_thumbnails[image.sha256] = value
        while len(_exposure_thumbnails) > _FINGERPRINT_CACHE_SIZE:
            _exposure_thumbnails.popitem(last=False)
    return value


def similar_scene_evidence(
    first: Image, second: Image, *, a: ImageFacts, b: ImageFacts, inliers: int | None
) -> dict[str, object]:
    """What a similar pair's evidence says about being one scene (scene_match.scene_evidence)."""
    thumbnails = exposure_thumbnail(first), exposure_thumbnail(second)
    agreement = None
    if thumbnails[0] is not None and thumbnails[1] is not None:
        agreement = scene_match.exposure_agreement(thumbnails[0], thumbnails[1])
    return scene_match.scene_evidence(a=a, b=b, inliers=inliers, exposure_agreement=agreement)


def local_features(image: Image) -> geometry.LocalFeatures | None:
    """ORB features of the stored original; None (logged) when the file cannot be read."""
    try:
        with original_open(image) as handle:
            return geometry.local_features(geometry.load_for_matching(handle))
    except (OSError, ValueError, PILImage.DecompressionBombError) as error:
        logger.warning("no local features for image %s: %s", image.pk, error)
        return None


class Verifier:
    """Geometric verification for one detection run; each image's features are kept for the next pairs
    (the most recent FEATURE_CACHE images: a scan of a large library must not keep them all)."""

    FEATURE_CACHE = 512

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self.features: OrderedDict[int, geometry.LocalFeatures | None] = OrderedDict()
        self.checked = 0

    def _features(self, image: Image) -> geometry.LocalFeatures | None:
        if image.pk in self.features:
            self.features.move_to_end(image.pk)
            return self.features[image.pk]
        features = local_features(image)
        self.features[image.pk] = features
        while len(self.features) > self.FEATURE_CACHE:
            self.features.popitem(last=False)
        return features

    def inliers(self, first: Image, second: Image) -> int | None:
        """Consistent ORB matches between the two (RANSAC), or None when disabled or a file is unreadable."""
        if not self.enabled:
            return None
        a, b = self._features(first), self._features(second)
        if a is None or b is None:
            return None
        self.checked += 1
        return geometry.count_inliers(a, b)
