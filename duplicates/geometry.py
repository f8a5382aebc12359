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

Matching texture is not the same photo: two different photos of a tiger share its stripes, and identical
captions on two different photos share their letters, so a transform with enough inliers can still be
anchored on one patch. A match that reaches MIN_INLIERS is therefore checked over the whole overlap the
transform registers: each picture keeps a small greyscale thumbnail, one is warped onto the other, and their
brightness gradients must agree (`structure_agreement`) in most of the overlap, not only where the inliers
are. Gradient correlation ignores exposure, colour and greyscale changes; the thumbnail's size makes blur,
noise and heavy JPEG irrelevant.

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
# Structure check of a match (`structure_agreement`): the thumbnail's longest side, the grid of cells over the
# registered overlap, and the median correlation of gradients over those cells a match needs. On the grey-zone
# pairs of bench/duplicates.py, copies that reach MIN_INLIERS score at least 0.80 and the different photos that
# reach it at most 0.28 (bench/README.md).
AGREEMENT_SIZE = 64
AGREEMENT_CELLS = 5
MIN_AGREEMENT = 0.5
# A cell whose gradients are this much weaker than the overlap's average in both pictures (sky, a wall) says
# nothing either way and is left out of the median.
FLAT_CELL = 0.1
# Names the verification a stored inlier count came from: a count stored under another name was made by a
# check that differs from this one, so it is verified again, and a change re-detects the library
# (detection_settings_key).
CHECK = f"orb-ransac-mirror-agree-{AGREEMENT_SIZE}-{AGREEMENT_CELLS}-{MIN_AGREEMENT:g}"


@dataclass(frozen=True)
class LocalFeatures:
    """Keypoint positions (n, 2) and their binary ORB descriptors (n, 32) of one picture, the same of its
    left-right mirror image (None when not computed), the picture's width (to undo the mirroring), and its
    greyscale thumbnail (uint8, at most AGREEMENT_SIZE; the mirror image's is mirrored) with the thumbnail's
    size over the picture's (x, y), for the structure check (None: the check is skipped)."""

    points: np.ndarray
    descriptors: np.ndarray | None
    mirrored: LocalFeatures | None = None
    width: int = 0
    thumbnail: np.ndarray | None = None
    thumbnail_scale: tuple[float, float] = (1.0, 1.0)

    def __len__(self) -> int:
        return int(self.points.shape[0])


@dataclass(frozen=True)
class Match:
    """What verifying a pair found: its RANSAC inliers and the 3x3 transform mapping keypoint positions of the
    first picture (pixel centres at whole numbers) onto the second's; None when nothing matched. `mirrored`:
    the first picture matched as its mirror image (the transform includes the reflection). `agreement`: the
    structure agreement of a match that reached MIN_INLIERS (at least MIN_AGREEMENT, or it is no match);
    None below MIN_INLIERS, where it is not computed."""

    inliers: int
    transform: np.ndarray | None = None
    mirrored: bool = False
    agreement: float | None = None


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
    thumbnail, scale = _thumbnail(grey)
    mirror = None
    if mirrored:
        mirror_points, mirror_descriptors = _orb(ImageOps.mirror(grey), features)
        mirror = LocalFeatures(
            mirror_points,
            mirror_descriptors,
            width=grey.width,
            thumbnail=np.ascontiguousarray(thumbnail[:, ::-1]),
            thumbnail_scale=scale,
        )
    return LocalFeatures(
        points=points,
        descriptors=descriptors,
        mirrored=mirror,
        width=grey.width,
        thumbnail=thumbnail,
        thumbnail_scale=scale,
    )


def _thumbnail(grey: Image.Image) -> tuple[np.ndarray, tuple[float, float]]:
    """The picture at most AGREEMENT_SIZE on its longest side (box filter) and its size over the picture's."""
    ratio = AGREEMENT_SIZE / max(grey.size)
    if ratio >= 1:
        return np.asarray(grey, dtype=np.uint8), (1.0, 1.0)
    width, height = max(1, round(grey.width * ratio)), max(1, round(grey.height * ratio))
    small = grey.resize((width, height), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.uint8), (width / grey.width, height / grey.height)


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
    other picture when the direct one falls short of MIN_INLIERS (or fails the structure check) and the mirror
    image does better (a mirrored copy); the transform maps the first picture onto the second either way, the
    reflection included.

    `both` tries the mirror image even when the direct match passes: a picture with mirror-symmetric parts
    gives its mirror image a passing direct match with a wrong transform (bench/README.md; the structure check
    cannot tell, the pictures do agree where it lays one part over the other), and whoever needs the
    transform, not only the verdict, keeps the match with more inliers."""
    direct = similarity_match(first, second)
    if direct.inliers >= MIN_INLIERS and not both:
        return direct
    if first.mirrored is not None:
        reflected = similarity_match(first.mirrored, second)
        if reflected.inliers <= direct.inliers or reflected.transform is None:
            return direct
        transform = reflected.transform @ mirror_flip(first.width)
        return Match(inliers=reflected.inliers, transform=transform, mirrored=True, agreement=reflected.agreement)
    if second.mirrored is not None:
        reflected = similarity_match(second.mirrored, first)
        if reflected.inliers <= direct.inliers or reflected.transform is None:
            return direct
        transform = mirror_flip(second.width) @ np.linalg.inv(reflected.transform)
        return Match(inliers=reflected.inliers, transform=transform, mirrored=True, agreement=reflected.agreement)
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
    first onto, each counted once; 0 when nothing matches, the scale is implausible for a copy, or the count
    reaches MIN_INLIERS but the pictures disagree over their overlap (`structure_agreement`)."""
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
    matrix = np.vstack([transform, [0.0, 0.0, 1.0]])
    if inliers < MIN_INLIERS:
        return Match(inliers=inliers, transform=matrix)
    # Enough inliers, but are the pictures the same over the overlap, or only in one textured patch?
    agreement = structure_agreement(first, second, matrix)
    if agreement < MIN_AGREEMENT:
        return NO_MATCH
    return Match(inliers=inliers, transform=matrix, agreement=agreement)


def structure_agreement(first: LocalFeatures, second: LocalFeatures, transform: np.ndarray) -> float:
    """How alike the two pictures are where `transform` (the first's pixels onto the second's) lays one over
    the other: their thumbnails registered, brightness gradients (lightly smoothed) correlated in each cell of
    an AGREEMENT_CELLS x AGREEMENT_CELLS grid over the overlap, the median over the cells that are not flat in
    both. 1 is the same structure (whatever the exposure, colour or blur), ~0 unrelated; a match anchored on
    one patch (stripes, a caption) agrees only in that patch's cells. Compared in the frame where the overlap
    covers more thumbnail pixels; 1.0 when either side has no thumbnail (the check is skipped)."""
    import cv2

    if first.thumbnail is None or second.thumbnail is None:
        return 1.0
    mapping = _thumbnail_frame(second) @ transform @ np.linalg.inv(_thumbnail_frame(first))
    moving, fixed = first.thumbnail, second.thumbnail
    if abs(np.linalg.det(mapping[:2, :2])) < 1.0:
        moving, fixed, mapping = fixed, moving, np.linalg.inv(mapping)
    height, width = fixed.shape
    warped = cv2.warpAffine(
        moving.astype(np.float32), mapping[:2], (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    covered = cv2.warpAffine(np.ones(moving.shape, np.float32), mapping[:2], (width, height), flags=cv2.INTER_LINEAR)
    # A pixel's gradient needs its neighbours inside the overlap too.
    inside = cv2.erode((covered > 0.999).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    ys, xs = np.nonzero(inside)
    if ys.shape[0] < AGREEMENT_CELLS * AGREEMENT_CELLS:
        return 0.0
    gx_a, gy_a = _gradients(warped)
    gx_b, gy_b = _gradients(fixed.astype(np.float32))
    top, left = ys.min(), xs.min()
    rows, columns = ys.max() + 1 - top, xs.max() + 1 - left
    cell = ((ys - top) * AGREEMENT_CELLS // rows) * AGREEMENT_CELLS + (xs - left) * AGREEMENT_CELLS // columns
    cells = AGREEMENT_CELLS * AGREEMENT_CELLS
    gx_a, gy_a, gx_b, gy_b = gx_a[ys, xs], gy_a[ys, xs], gx_b[ys, xs], gy_b[ys, xs]
    energy_a, energy_b = gx_a * gx_a + gy_a * gy_a, gx_b * gx_b + gy_b * gy_b
    dot = np.bincount(cell, weights=gx_a * gx_b + gy_a * gy_b, minlength=cells)
    sum_a = np.bincount(cell, weights=energy_a, minlength=cells)
    sum_b = np.bincount(cell, weights=energy_b, minlength=cells)
    count = np.bincount(cell, minlength=cells)
    # each cell's share of the overlap's bounding box: cells mostly outside the overlap are left out
    edges_y = top + np.arange(AGREEMENT_CELLS + 1) * rows // AGREEMENT_CELLS
    edges_x = left + np.arange(AGREEMENT_CELLS + 1) * columns // AGREEMENT_CELLS
    area = np.outer(np.diff(edges_y), np.diff(edges_x)).ravel()
    average = 0.5 * (energy_a.mean() + energy_b.mean())
    with np.errstate(divide="ignore", invalid="ignore"):
        textured = np.maximum(sum_a, sum_b) >= FLAT_CELL * average * count
        usable = (count >= 0.5 * area) & (count > 0) & textured
        correlation = dot / np.sqrt(sum_a * sum_b)
    values = correlation[usable & np.isfinite(correlation)]
    return float(np.median(values)) if values.shape[0] else 0.0


def _thumbnail_frame(features: LocalFeatures) -> np.ndarray:
    """Maps a picture's pixel positions (centres at whole numbers) onto its thumbnail's."""
    x, y = features.thumbnail_scale
    return np.array([[x, 0.0, 0.5 * x - 0.5], [0.0, y, 0.5 * y - 0.5], [0.0, 0.0, 1.0]])


def _gradients(picture: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    smooth = cv2.GaussianBlur(picture, (0, 0), 1.0)
    return cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3)
