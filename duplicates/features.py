"""What detection reads from an image's stored files, cached per process: perceptual hashes and ORB features.

Stored files never change (a new upload is a new row), so a value computed once holds for as long as the
process lives; the caches are bounded so that a scan of a large library does not keep them all. A detection
step of a few seconds keeps the features its look-alikes had in the steps before: an image of a photo with
a hundred copies is verified against many of them, step after step.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import TypeVar

import numpy as np
from PIL import Image as PILImage

from duplicates import geometry, scene_match
from duplicates.evidence import ImageFacts, dhash, hamming, phash, upright
from gallery.models import Image
from gallery.originals import original_open

logger = logging.getLogger(__name__)

_Item = TypeVar("_Item")
_Result = TypeVar("_Result")

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


# ORB features of an image with its mirror image (and their 64-pixel thumbnails) take about 86 KB: 512 images are
# about 44 MB per worker.
_FEATURE_CACHE_SIZE = 512
_features: OrderedDict[str, geometry.LocalFeatures] = OrderedDict()
_features_lock = threading.Lock()


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
    """ORB features of the stored original, cached per process by content (sha256); None (logged, not
    cached: the next step tries again) when the file cannot be read."""
    with _features_lock:
        if image.sha256 in _features:
            _features.move_to_end(image.sha256)
            return _features[image.sha256]
    try:
        with original_open(image) as handle:
            features = geometry.local_features(geometry.load_for_matching(handle))
    except (OSError, ValueError, PILImage.DecompressionBombError) as error:
        logger.warning("no local features for image %s: %s", image.pk, error)
        return None
    with _features_lock:
        _features[image.sha256] = features
        while len(_features) > _FEATURE_CACHE_SIZE:
            _features.popitem(last=False)
    return features


class Verifier:
    """Geometric verification for one detection run (features from the per-process cache), on `threads`
    threads: OpenCV and faiss release the GIL, so the pairs of a step are verified side by side."""

    def __init__(self, *, enabled: bool, threads: int = 1) -> None:
        self.enabled = enabled
        self.threads = max(1, threads)
        self.checked = 0

    def _features(self, image: Image) -> geometry.LocalFeatures | None:
        return local_features(image)

    def inliers(self, first: Image, second: Image) -> int | None:
        """Consistent ORB matches between the two (RANSAC), or None when disabled or a file is unreadable."""
        if not self.enabled:
            return None
        a, b = self._features(first), self._features(second)
        if a is None or b is None:
            return None
        self.checked += 1
        return geometry.count_inliers(a, b)

    def inliers_of(self, pairs: list[tuple[Image, Image]], *, progress: Callable[[], None]) -> list[int | None]:
        """inliers() of each pair: every image's features first (once each), then the matches; `progress`
        is called in this thread as each piece of work completes (a detection step renews its lease there)."""
        if not self.enabled or not pairs:
            return [None] * len(pairs)
        images = {image.pk: image for pair in pairs for image in pair}
        features = dict(zip(images, self._each(self._features, list(images.values()), progress), strict=True))

        def match(pair: tuple[Image, Image]) -> int | None:
            a, b = features[pair[0].pk], features[pair[1].pk]
            return None if a is None or b is None else geometry.count_inliers(a, b)

        counted = self._each(match, pairs, progress)
        self.checked += sum(1 for count in counted if count is not None)
        return counted

    def _each(
        self, work: Callable[[_Item], _Result], items: list[_Item], progress: Callable[[], None]
    ) -> list[_Result]:
        if self.threads == 1 or len(items) == 1:
            results = []
            for item in items:
                results.append(work(item))
                progress()
            return results
        with ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="verify") as pool:
            futures = [pool.submit(work, item) for item in items]
            try:
                for _ in as_completed(futures):
                    progress()
            except BaseException:
                for future in futures:
                    future.cancel()  # the step stops (its claim was lost): no more work for it
                raise
            return [future.result() for future in futures]
