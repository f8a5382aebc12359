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

from duplicates import geometry

# Names how an alignment is computed, for the cache: a change here or in the check computes them again.
ALIGNMENT_VERSION = f"{geometry.CHECK}:{geometry.MATCH_SIZE}:{geometry.ORB_FEATURES}:1"


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
) -> Alignment:
    """Register the second picture onto the first (files or file objects; sizes are the upright originals'
    width and height): one decode of each at MATCH_SIZE, ORB features of both and of the second's mirror
    image, one verification."""
    first_picture = geometry.load_for_matching(first)
    second_picture = geometry.load_for_matching(second)
    match = geometry.best_match(
        geometry.local_features(second_picture, mirrored=True),
        geometry.local_features(first_picture, mirrored=False),
    )
    if match.inliers < geometry.MIN_INLIERS or match.transform is None:
        return Alignment(inliers=match.inliers, homography=None)
    to_first = _from_match_centres(first_picture.size, first_size)
    from_second = np.linalg.inv(_from_match_centres(second_picture.size, second_size))
    homography = to_first @ match.transform @ from_second
    return Alignment(inliers=match.inliers, homography=homography / homography[2, 2], mirrored=match.mirrored)


def _from_match_centres(match_size: tuple[int, int], original_size: tuple[int, int]) -> np.ndarray:
    """From keypoint positions in the scaled-down picture (pixel centres at whole numbers) to the original's
    pixel coordinates (pixel corners at whole numbers)."""
    scale_x, scale_y = original_size[0] / match_size[0], original_size[1] / match_size[1]
    return np.array([[scale_x, 0.0, 0.5 * scale_x], [0.0, scale_y, 0.5 * scale_y], [0.0, 0.0, 1.0]])
