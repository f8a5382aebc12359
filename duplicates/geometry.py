"""Geometric verification of a look-alike pair: ORB local features, ratio-test matches, RANSAC similarity.

Two copies of one photo (crops, rescales, quarter turns, recompressions) share many local features that
one rotation + scale + shift maps onto each other; two different photos of a similar scene do not. The
embedding squashes every image to 224x224, so heavy crops (panorama strips) of a photo score low against
it; this check recovers those pairs in the grey zone between the `similar` and `near_duplicate` bands.
bench/duplicates.py measures what it adds (recall at the same precision) and what it costs.

OpenCV is imported inside functions: the web process imports this module and shouldn't pay for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO

import numpy as np
from PIL import Image

from core.pixels import upright_rgb

# Longest side the pictures are matched at: enough detail for ~1000 ORB keypoints, ~5 ms per image.
MATCH_SIZE = 640
ORB_FEATURES = 1000
RATIO_TEST = 0.8  # Lowe's ratio: a match must be clearly better than the second best
RANSAC_REPROJECTION_PX = 4.0
# RANSAC inliers that make two images "the same photo". Measured with bench/duplicates.py on the 28,280
# grey-zone candidate pairs of neardup-dev + distractors-dev: unrelated pairs reach 9 at the 99.9th
# percentile (one pair of two different tiger photos reaches 45: stripes), 97.8 % of same-photo pairs
# reach 20. Upscaling small pictures to MATCH_SIZE was tried: more copies pass, but far more unrelated
# pairs too (interpolated texture matches), so pictures are only ever scaled down.
MIN_INLIERS = 20


@dataclass(frozen=True)
class LocalFeatures:
    """Keypoint positions (n, 2) and their binary ORB descriptors (n, 32) of one picture."""

    points: np.ndarray
    descriptors: np.ndarray | None

    def __len__(self) -> int:
        return int(self.points.shape[0])


def load_for_matching(source: str | IO[bytes], *, size: int = MATCH_SIZE) -> Image.Image:
    """Upright greyscale copy at most `size` on its longest side; JPEGs decode at reduced scale (draft)."""
    image = Image.open(source)
    image.draft("L", (size, size))
    grey = upright_rgb(image).convert("L")
    grey.thumbnail((size, size), Image.Resampling.BILINEAR)
    return grey


def local_features(image: Image.Image) -> LocalFeatures:
    """ORB keypoints and descriptors of a greyscale picture (single-threaded: workers share the cores)."""
    import cv2

    cv2.setNumThreads(1)
    pixels = np.asarray(image.convert("L") if image.mode != "L" else image, dtype=np.uint8)
    keypoints, descriptors = cv2.ORB_create(nfeatures=ORB_FEATURES).detectAndCompute(pixels, None)
    points = np.array([keypoint.pt for keypoint in keypoints], dtype=np.float32).reshape(-1, 2)
    return LocalFeatures(points=points, descriptors=descriptors)


def count_inliers(first: LocalFeatures, second: LocalFeatures) -> int:
    """Matches consistent with one rotation + uniform scale + shift (RANSAC); 0 when nothing matches."""
    import cv2

    if first.descriptors is None or second.descriptors is None or len(first) < 2 or len(second) < 2:
        return 0
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
    good = [
        pair[0]
        for pair in matcher.knnMatch(first.descriptors, second.descriptors, k=2)
        if len(pair) == 2 and pair[0].distance < RATIO_TEST * pair[1].distance
    ]
    if len(good) < 4:
        return 0
    source = first.points[[match.queryIdx for match in good]]
    target = second.points[[match.trainIdx for match in good]]
    _, mask = cv2.estimateAffinePartial2D(
        source, target, method=cv2.RANSAC, ransacReprojThreshold=RANSAC_REPROJECTION_PX
    )
    return int(mask.sum()) if mask is not None else 0
