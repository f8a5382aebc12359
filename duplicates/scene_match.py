"""Is a similar pair one scene (a burst, an exposure bracket) or two look-alike photos? Pure logic, no Django.

The embedding puts many photos of the sea, of rooms, of forests within the similar band of each other; on the
dev photos 99.7 % of the similar band's pairs are different photos, and grouping them made groups of unrelated
photos. So a similar pair is grouped only when something beyond the embedding says one scene: the camera
(same camera, seconds apart: a burst or a bracket), the pictures lining up once exposure is taken out (a
bracket without EXIF: one frame darker or brighter), or local features matching as a copy's do. And two shots of
one camera taken at different moments are never copies of each other, however alike: they belong to the
similar band, each a photo of its own. bench/similar_scenes.py measures each of these against the labels of the
dev photos and generated brackets; the thresholds below come from there.
"""

from __future__ import annotations

from datetime import datetime
from typing import IO

import numpy as np
from PIL import Image

from core.pixels import upright_rgb
from duplicates import geometry
from duplicates.candidate_pairs import SIMILAR
from duplicates.evidence import ImageFacts

# Side of the square grey thumbnail the exposure-normalised comparison is made on.
EXPOSURE_SIZE = 32
# Names the comparison (part of CHECK): changing it changes what a stored agreement means.
EXPOSURE_CHECK = "rank-32-v1"


def load_thumbnail(source: str | IO[bytes]) -> Image.Image:
    """A file's upright RGB picture, decoded at reduced scale (JPEG draft): the comparison needs only a few
    pixels (detection uses the stored thumbnail instead, duplicates/features.py)."""
    image = Image.open(source)
    image.draft("RGB", (4 * EXPOSURE_SIZE, 4 * EXPOSURE_SIZE))
    return upright_rgb(image, max_side=8 * EXPOSURE_SIZE)


def exposure_thumbnail(image: Image.Image) -> np.ndarray:
    """The picture squashed to EXPOSURE_SIZE x EXPOSURE_SIZE grey pixels, each replaced by its rank (0..1):
    an exposure change is monotonic, so the ranks of a bracket's shots are the same picture."""
    grey = np.asarray(image.convert("L").resize((EXPOSURE_SIZE, EXPOSURE_SIZE), Image.Resampling.BOX), np.float64)
    flat = grey.reshape(-1)
    order = np.argsort(flat, kind="stable")
    ranks = np.empty(flat.shape[0], dtype=np.float64)
    ranks[order] = np.arange(flat.shape[0], dtype=np.float64)
    # ties (clipped highlights, flat sky) share their mean rank
    _, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return (sums / counts)[inverse] / max(1, flat.shape[0] - 1)


def exposure_agreement(first: np.ndarray, second: np.ndarray) -> float:
    """Correlation of two exposure-normalised thumbnails (Spearman's rho of the pixels): ~1 for one frame at
    different exposures, low for two different frames however alike their content."""
    a, b = first - first.mean(), second - second.mean()
    norm = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / norm) if norm > 0 else 0.0


# Geometric inliers that make a similar pair one scene: the copies' threshold. Lower counts admit different
# photos first: on the dev photos the first pair of different scenes between 10 and 19 inliers is two tigers
# (stripes match, 14 inliers), while no pair of one scene of the similar band needs them (bench/similar_scenes.py).
SCENE_MIN_INLIERS = geometry.MIN_INLIERS
# Exposure agreement that makes a similar pair one scene: the 5th percentile of exposure brackets' pairs (-2 to
# +2 EV) is 0.93 with EXIF, 0.89 without; the 17,500 pairs of different photos in the similar band reach 0.66.
SCENE_MIN_EXPOSURE_AGREEMENT = 0.9
# Two shots of one camera this many seconds apart or less are a burst or a bracket of one scene.
BURST_SECONDS = 10.0
# Names this verification: stored under another name, a pair's scene evidence is made again (the detection
# settings key carries it, so a change re-detects the library once).
CHECK = f"scene-{SCENE_MIN_INLIERS}-{SCENE_MIN_EXPOSURE_AGREEMENT}-{BURST_SECONDS:g}-{EXPOSURE_CHECK}"


def is_same_scene_arrays(*, inliers: np.ndarray, exposure: np.ndarray) -> np.ndarray:
    """Per pair (bench/similar_scenes.py): one scene by geometry or by the exposure-normalised comparison."""
    geometric = np.asarray(inliers) >= SCENE_MIN_INLIERS
    return geometric | (np.nan_to_num(np.asarray(exposure, dtype=np.float64)) >= SCENE_MIN_EXPOSURE_AGREEMENT)


def _gap_seconds(taken: tuple[datetime | None, datetime | None], cameras: tuple[str, str]) -> float | None:
    """Seconds between two shots of one named camera; None when the camera or a time is unknown."""
    first, second = taken
    if first is None or second is None or not cameras[0] or cameras[0].casefold() != cameras[1].casefold():
        return None
    if (first.tzinfo is None) != (second.tzinfo is None):
        return None
    return abs((first - second).total_seconds())


def burst(*, taken: tuple[datetime | None, datetime | None], cameras: tuple[str, str]) -> bool:
    """Same camera (named), capture times at most BURST_SECONDS apart."""
    gap = _gap_seconds(taken, cameras)
    return gap is not None and gap <= BURST_SECONDS


def distinct_shots(a: ImageFacts, b: ImageFacts) -> bool:
    """Two shots of one camera taken at different moments, seconds apart: a burst or an exposure bracket, never
    a copy of one another (a copy keeps its photo's capture time, to the fraction of a second the camera wrote).
    However alike, they belong to the similar band: each shot is a photo of its own, kept unless chosen.

    Times are compared at the precision both files carry: a time without a fraction of a second (an editor
    that dropped SubSecTime, or a camera that never writes it) is compared to the whole second, so a copy that
    lost the fraction is not taken for another shot."""
    taken = (a.taken_at, b.taken_at)
    if a.taken_at is not None and b.taken_at is not None and not (a.taken_at.microsecond and b.taken_at.microsecond):
        taken = (a.taken_at.replace(microsecond=0), b.taken_at.replace(microsecond=0))
    gap = _gap_seconds(taken, (a.camera, b.camera))
    return gap is not None and 0 < gap <= BURST_SECONDS


def band_of_shots(kind: str | None, a: ImageFacts, b: ImageFacts) -> str | None:
    """The band a pair of these two images belongs to, given the band its pictures put it in: two distinct shots
    of one camera are similar, however alike."""
    return SIMILAR if kind is not None and distinct_shots(a, b) else kind


def same_scene_reason(
    *,
    inliers: int | None,
    exposure_agreement: float | None,
    taken: tuple[datetime | None, datetime | None] = (None, None),
    cameras: tuple[str, str] = ("", ""),
) -> str:
    """Why two look-alike pictures are one scene ("geometry", "exposure", "burst"), or "" when nothing beyond
    the embedding says so."""
    if inliers is not None and inliers >= SCENE_MIN_INLIERS:
        return "geometry"
    if exposure_agreement is not None and exposure_agreement >= SCENE_MIN_EXPOSURE_AGREEMENT:
        return "exposure"
    if burst(taken=taken, cameras=cameras):
        return "burst"
    return ""


def scene_evidence(
    *, a: ImageFacts, b: ImageFacts, inliers: int | None, exposure_agreement: float | None
) -> dict[str, object]:
    """The keys a similar pair's evidence gets: whether it is one scene, why, and the measured agreement."""
    reason = same_scene_reason(
        inliers=inliers,
        exposure_agreement=exposure_agreement,
        taken=(a.taken_at, b.taken_at),
        cameras=(a.camera, b.camera),
    )
    return {
        "same_scene": bool(reason),
        "scene_reason": reason,
        "exposure_agreement": None if exposure_agreement is None else round(exposure_agreement, 4),
        "scene_check": CHECK,
    }
