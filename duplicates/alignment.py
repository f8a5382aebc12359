"""Registering one copy of a photo onto another: the transform the geometric check finds, in the originals'
pixels, so the compare view can warp the second picture into the first's frame and the same detail lines up
at every zoom and pan.

Coordinates are the ones a browser draws an upright picture in: (0, 0) is the top-left corner of the top-left
pixel, x to the right, y down, one unit one pixel of the upright original (EXIF orientation applied: the
width and height stored on the image). The check matches pictures scaled down to MATCH_SIZE, whose keypoints
sit at pixel centres; the transform is carried from there to the originals' corners and pixels here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO

import numpy as np
from PIL import Image as PILImage
from PIL import ImageOps

from duplicates import geometry

# Longest side the pictures are decoded at to refine the check's match on large originals, and the keypoints
# found there: a keypoint placed to a pixel at MATCH_SIZE is 6 pixels of a 3840-pixel original.
REFINE_SIZE = 2048
REFINE_FEATURES = 3000
# How far (pixels at REFINE_SIZE) a keypoint may be from where the check's transform puts it to be refitted.
REFINE_RADIUS_PX = 16.0
REFINE_REPROJECTION_PX = 2.0
# Names how an alignment is computed, for the cache: a change here or in the check computes them again.
ALIGNMENT_VERSION = (
    f"{geometry.CHECK}:{geometry.MATCH_SIZE}:{geometry.ORB_FEATURES}:{REFINE_SIZE}:{REFINE_FEATURES}:"
    f"{REFINE_RADIUS_PX}:{REFINE_REPROJECTION_PX}:1"
)


@dataclass(frozen=True)
class Alignment:
    """How the second picture registers onto the first: the 3x3 homography mapping the second's coordinates
    into the first's (None unless the pair is a geometric match: at least MIN_INLIERS inliers), the inliers
    the check found, and whether the second is a mirror image of the first."""

    inliers: int
    homography: np.ndarray | None
    mirrored: bool = False

    @property
    def aligned(self) -> bool:
        return self.homography is not None

    def inverse(self) -> Alignment:
        """The same alignment seen from the other picture (the first registered onto the second)."""
        homography = None if self.homography is None else np.linalg.inv(self.homography)
        return Alignment(inliers=self.inliers, homography=homography, mirrored=self.mirrored)

    def as_dict(self) -> dict[str, object]:
        """Plain values, for the shared cache."""
        matrix = None if self.homography is None else [float(value) for value in self.homography.ravel()]
        return {"inliers": self.inliers, "homography": matrix, "mirrored": self.mirrored}

    @classmethod
    def from_dict(cls, values: dict[str, object]) -> Alignment:
        matrix = values["homography"]
        homography = None if matrix is None else np.array(matrix, dtype=np.float64).reshape(3, 3)
        return cls(inliers=int(values["inliers"]), homography=homography, mirrored=bool(values["mirrored"]))  # type: ignore[call-overload]


def picture_alignment(
    first: str | IO[bytes],
    second: str | IO[bytes],
    *,
    first_size: tuple[int, int],
    second_size: tuple[int, int],
    refine: bool = True,
) -> Alignment:
    """Register the second picture onto the first (files or file objects; sizes are the upright originals'
    width and height): each decoded once, at most REFINE_SIZE; the geometric check on copies of them at
    MATCH_SIZE (the second's mirror image tried too), then, when either is larger than that, the match
    refined on the larger pictures (unless `refine` is False: bench/compare_alignment.py)."""
    size = REFINE_SIZE if refine else geometry.MATCH_SIZE
    first_picture = geometry.load_for_matching(first, size=size)
    second_picture = geometry.load_for_matching(second, size=size)
    first_small, second_small = _at_match_size(first_picture), _at_match_size(second_picture)
    match = geometry.best_match(
        geometry.local_features(second_small, mirrored=True),
        geometry.local_features(first_small, mirrored=False),
        both=True,
    )
    if match.inliers < geometry.MIN_INLIERS or match.transform is None:
        return Alignment(inliers=match.inliers, homography=None)
    to_first = _from_match_centres(first_small.size, first_size)
    from_second = np.linalg.inv(_from_match_centres(second_small.size, second_size))
    homography = to_first @ match.transform @ from_second
    if first_small is not first_picture or second_small is not second_picture:
        homography = _refined(
            homography,
            first_picture,
            second_picture,
            first_size=first_size,
            second_size=second_size,
            mirrored=match.mirrored,
        )
    return Alignment(inliers=match.inliers, homography=homography / homography[2, 2], mirrored=match.mirrored)


def _at_match_size(picture: PILImage.Image) -> PILImage.Image:
    """The picture itself when it fits MATCH_SIZE, else a copy scaled down to it (what the check matches)."""
    if max(picture.size) <= geometry.MATCH_SIZE:
        return picture
    small = picture.copy()
    small.thumbnail((geometry.MATCH_SIZE, geometry.MATCH_SIZE), PILImage.Resampling.BILINEAR, reducing_gap=None)
    return small


def _refined(
    homography: np.ndarray,
    first_picture: PILImage.Image,
    second_picture: PILImage.Image,
    *,
    first_size: tuple[int, int],
    second_size: tuple[int, int],
    mirrored: bool,
) -> np.ndarray:
    """The homography fitted again on keypoints of the larger pictures that match where it puts them (within
    REFINE_RADIUS_PX); unchanged when too few do."""
    import cv2

    # The second's keypoints are found on its mirror image when it is one, so that its descriptors match the
    # first's; the fit is then a rotation + scale + shift, and the reflection is put back after it.
    flip = geometry.mirror_flip(second_picture.width) if mirrored else np.eye(3)
    seen = ImageOps.mirror(second_picture) if mirrored else second_picture
    ours = geometry.local_features(first_picture, mirrored=False, features=REFINE_FEATURES)
    theirs = geometry.local_features(seen, mirrored=False, features=REFINE_FEATURES)
    if ours.descriptors is None or theirs.descriptors is None or len(ours) < 2 or len(theirs) < 2:
        return homography
    to_first = _from_match_centres(first_picture.size, first_size)
    from_seen = _from_match_centres(second_picture.size, second_size) @ flip
    predicted = _mapped(np.linalg.inv(to_first) @ homography @ from_seen, theirs.points)
    pairs = [
        (match.queryIdx, match.trainIdx)
        for match, runner_up in (
            pair
            for pair in cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(theirs.descriptors, ours.descriptors, k=2)
            if len(pair) == 2
        )
        if match.distance < geometry.RATIO_TEST * runner_up.distance
        and np.hypot(*(ours.points[match.trainIdx] - predicted[match.queryIdx])) <= REFINE_RADIUS_PX
    ]
    if len(pairs) < geometry.MIN_INLIERS:
        return homography
    source = theirs.points[[query for query, _ in pairs]]
    target = ours.points[[train for _, train in pairs]]
    transform, mask = cv2.estimateAffinePartial2D(
        source, target, method=cv2.RANSAC, ransacReprojThreshold=REFINE_REPROJECTION_PX
    )
    if transform is None or mask is None or int(mask.sum()) < geometry.MIN_INLIERS:
        return homography
    return to_first @ np.vstack([transform, [0.0, 0.0, 1.0]]) @ np.linalg.inv(from_seen)


def _mapped(homography: np.ndarray, points: np.ndarray) -> np.ndarray:
    projected = np.hstack([points, np.ones((len(points), 1))]) @ homography.T
    return projected[:, :2] / projected[:, 2:3]


def _from_match_centres(match_size: tuple[int, int], original_size: tuple[int, int]) -> np.ndarray:
    """From keypoint positions in the scaled-down picture (pixel centres at whole numbers) to the original's
    pixel coordinates (pixel corners at whole numbers)."""
    scale_x, scale_y = original_size[0] / match_size[0], original_size[1] / match_size[1]
    return np.array([[scale_x, 0.0, 0.5 * scale_x], [0.0, scale_y, 0.5 * scale_y], [0.0, 0.0, 1.0]])
