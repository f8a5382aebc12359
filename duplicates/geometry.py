"""Geometric verification of a look-alike pair: ORB local features, ratio-test matches, RANSAC similarity.

Two copies of one photo (crops, rescales, quarter turns, small rotations, recompressions) share many local
features that one rotation + scale + shift maps onto each other; two different photos of a similar scene do
not. ORB keypoints carry their own orientation, so any rotation (quarter turns included) is matched by the
similarity model. A mirror image is not a rotation: its descriptors differ and no similarity maps it onto
the original, so each picture's features also hold those of its mirrored copy, tried when the direct match
fails. The embedding squashes every image to 224x224, so heavy crops (panorama strips) of a photo score low
against it; this check recovers those pairs in the grey zone between the `similar` and `near_duplicate`
bands. bench/duplicates.py measures what it adds (recall at the same precision) and what it costs. The
transform a match found is kept (`best_match`): the compare view registers one copy onto the other with it
(duplicates/alignment.py).

OpenCV is imported inside functions: the web process imports this module and shouldn't pay for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO

import numpy as np
from PIL import Image, ImageOps

from core.pixels import upright_rgb

# Longest side the pictures are matched at: enough detail for ~1000 ORB keypoints, and quick to extract.
MATCH_SIZE = 640
ORB_FEATURES = 1000
RATIO_TEST = 0.8  # Lowe's ratio: a match must be clearly better than the second best
RANSAC_REPROJECTION_PX = 4.0
# RANSAC inliers that make two images "the same photo": well above what unrelated grey-zone pairs reach,
# low enough for nearly every same-photo pair, mirror images included (bench/duplicates.py, figures in
# bench/README.md). Pictures are only ever scaled down: upscaled small pictures let far more unrelated pairs
# through (interpolated texture matches) than copies.
MIN_INLIERS = 20
# Largest scale between the two pictures (either way) a copy can have once both are at most MATCH_SIZE.
MAX_SCALE = 8.0
# Names the verification a stored inlier count came from: a count stored under another name was made by a
# check that differs from this one, so it is verified again, and a change re-detects the library
# (detection_settings_key).
CHECK = "orb-ransac-mirror"


@dataclass(frozen=True)
class LocalFeatures:
    """Keypoint positions (n, 2) and their binary ORB descriptors (n, 32) of one picture, the same of its
    left-right mirror image (None when not computed), and the picture's width (to undo the mirroring)."""

    points: np.ndarray
    descriptors: np.ndarray | None
    mirrored: LocalFeatures | None = None
    width: int = 0

    def __len__(self) -> int:
        return int(self.points.shape[0])


@dataclass(frozen=True)
class Match:
    """What verifying a pair found: its RANSAC inliers and the 3x3 transform mapping keypoint positions of the
    first picture (pixel centres at whole numbers) onto the second's; None when nothing matched. `mirrored`:
    the first picture matched as its mirror image (the transform includes the reflection)."""

    inliers: int
    transform: np.ndarray | None = None
    mirrored: bool = False


NO_MATCH = Match(inliers=0)


def load_for_matching(source: str | IO[bytes], *, size: int = MATCH_SIZE) -> Image.Image:
    """Upright greyscale copy at most `size` on its longest side; JPEGs decode at reduced scale (draft), other
    formats are reduced strip by strip (core.pixels), never copied at full size."""
    image = Image.open(source)
    image.draft("L", (size, size))
    return upright_rgb(image, max_side=size).convert("L")


def local_features(image: Image.Image, *, mirrored: bool = True, features: int = ORB_FEATURES) -> LocalFeatures:
    """At most `features` ORB keypoints and descriptors of a greyscale picture, and of its mirror image unless
    `mirrored` is False (single-threaded: workers share the cores)."""
    grey = image.convert("L") if image.mode != "L" else image
    points, descriptors = _orb(grey, features)
    mirror = LocalFeatures(*_orb(ImageOps.mirror(grey), features), width=grey.width) if mirrored else None
    return LocalFeatures(points=points, descriptors=descriptors, mirrored=mirror, width=grey.width)


def _orb(grey: Image.Image, features: int) -> tuple[np.ndarray, np.ndarray | None]:
    import cv2

    cv2.setNumThreads(1)
    keypoints, descriptors = cv2.ORB_create(nfeatures=features).detectAndCompute(np.asarray(grey), None)
    return np.array([keypoint.pt for keypoint in keypoints], dtype=np.float32).reshape(-1, 2), descriptors


def count_inliers(first: LocalFeatures, second: LocalFeatures) -> int:
    """RANSAC inliers of the pair, or of the first's mirror image with the second when the direct match
    falls short of MIN_INLIERS (a mirrored copy); 0 when nothing matches."""
    return best_match(first, second).inliers


def best_match(first: LocalFeatures, second: LocalFeatures, *, both: bool = False) -> Match:
    """The direct match of the pair, or the match of a mirror image (the first's, else the second's) with the
    other picture when the direct one falls short of MIN_INLIERS and the mirror image does better (a mirrored
    copy); the transform maps the first picture onto the second either way, the reflection included.

    `both` tries the mirror image even when the direct match passes: a picture with mirror-symmetric parts
    gives its mirror image a passing direct match with a wrong transform (bench/README.md), and whoever needs
    the transform, not only the verdict, keeps the match with more inliers."""
    direct = similarity_match(first, second)
    if direct.inliers >= MIN_INLIERS and not both:
        return direct
    if first.mirrored is not None:
        reflected = similarity_match(first.mirrored, second)
        if reflected.inliers <= direct.inliers or reflected.transform is None:
            return direct
        return Match(inliers=reflected.inliers, transform=reflected.transform @ mirror_flip(first.width), mirrored=True)
    if second.mirrored is not None:
        reflected = similarity_match(second.mirrored, first)
        if reflected.inliers <= direct.inliers or reflected.transform is None:
            return direct
        transform = mirror_flip(second.width) @ np.linalg.inv(reflected.transform)
        return Match(inliers=reflected.inliers, transform=transform, mirrored=True)
    return direct


def mirror_flip(width: int) -> np.ndarray:
    """A keypoint at x in a picture `width` wide is at (width - 1 - x) in its mirror image, and back."""
    return np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


def ratio_matches(first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(query rows, train rows) of the first's descriptors whose nearest of the second's passes the ratio test.

    Exact Hamming nearest neighbours from faiss's binary flat index, on one thread: the same matches as
    OpenCV's brute-force matcher (tests/duplicates/test_geometry.py) in a quarter of the time, without a
    Python object per match (bench/detection_pace.py; figures in bench/README.md).
    """
    import faiss

    from search.index.scoring import faiss_threads

    index = faiss.IndexBinaryFlat(first.shape[1] * 8)
    index.add(np.ascontiguousarray(second))
    with faiss_threads(1):
        distances, rows = index.search(np.ascontiguousarray(first), 2)
    passed = (rows[:, 1] >= 0) & (distances[:, 0] < RATIO_TEST * distances[:, 1])
    queries = np.flatnonzero(passed)
    return queries, rows[queries, 0]


def similarity_inliers(first: LocalFeatures, second: LocalFeatures) -> int:
    """Keypoints of the second picture that one rotation + uniform scale + shift (RANSAC) maps matches of the
    first onto, each counted once; 0 when nothing matches or the scale is implausible for a copy."""
    return similarity_match(first, second).inliers


def similarity_match(first: LocalFeatures, second: LocalFeatures) -> Match:
    """`similarity_inliers` with the rotation + scale + shift that maps the first's keypoints onto the
    second's (RANSAC, refined on its inliers)."""
    import cv2

    if first.descriptors is None or second.descriptors is None or len(first) < 2 or len(second) < 2:
        return NO_MATCH
    queries, trains = ratio_matches(first.descriptors, second.descriptors)
    if queries.shape[0] < 4:
        return NO_MATCH
    transform, mask = cv2.estimateAffinePartial2D(
        first.points[queries], second.points[trains], method=cv2.RANSAC, ransacReprojThreshold=RANSAC_REPROJECTION_PX
    )
    if transform is None or mask is None:
        return NO_MATCH
    # A near-zero scale maps every point onto one spot, where many-to-one matches all "fit": a blurred copy
    # with few keypoints can "match" an unrelated photo that way (bench/README.md). Copies are never scaled
    # that much.
    scale = float(np.hypot(transform[0, 0], transform[1, 0]))
    if not 1 / MAX_SCALE <= scale <= MAX_SCALE:
        return NO_MATCH
    inliers = int(np.unique(trains[mask.ravel().astype(bool)]).shape[0])
    return Match(inliers=inliers, transform=np.vstack([transform, [0.0, 0.0, 1.0]]))
