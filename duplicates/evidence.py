"""Evidence about a pair of look-alike images, and which one to keep: pure functions, no Django.

A reviewer decides from evidence, not from one score: the cosine of the embeddings, how far apart two
perceptual hashes are, both resolutions and file sizes, how far apart in time and with which cameras the
photos were taken, how sharp each is and how each is rated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from PIL import Image

from core.pixels import upright_rgb

# Sharpness (gallery/quality.py, 0..1) of one photo moves by about this much when it is saved at another size
# (bench/quality_blur.py; figures in bench/README.md), so smaller differences say nothing about which copy is
# sharper.
SHARPNESS_TOLERANCE = 0.02
HASH_BITS = 64


def _grey(image: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """Upright greyscale pixels at a small size, as float64 (box filter: every source pixel counts)."""
    grey = image.convert("L") if image.mode != "L" else image
    return np.asarray(grey.resize(size, Image.Resampling.BOX), dtype=np.float64)


def _bits_to_int(bits: np.ndarray) -> int:
    value = 0
    for bit in bits.reshape(-1):
        value = (value << 1) | int(bool(bit))
    return value


def _dct_matrix(size: int) -> np.ndarray:
    """Orthonormal DCT-II basis; a 32x32 matrix product beats pulling in scipy for one transform."""
    k = np.arange(size)[:, None]
    n = np.arange(size)[None, :]
    basis = np.cos(np.pi * (2 * n + 1) * k / (2 * size)) * math.sqrt(2 / size)
    basis[0] /= math.sqrt(2)
    return basis


_DCT32 = _dct_matrix(32)


def phash(image: Image.Image) -> int:
    """64-bit DCT perceptual hash: the signs of the 8x8 lowest frequencies of a 32x32 grey copy vs their median.

    Robust to rescaling, recompression and small brightness changes; not to crops, rotations or mirrors
    (that is what the embedding and the geometric check are for).
    """
    pixels = _grey(image, (32, 32))
    low = (_DCT32 @ pixels @ _DCT32.T)[:8, :8]
    return _bits_to_int(low > np.median(low))


def dhash(image: Image.Image) -> int:
    """64-bit difference hash: is each pixel of a 9x8 grey copy brighter than its right neighbour."""
    pixels = _grey(image, (9, 8))
    return _bits_to_int(pixels[:, 1:] > pixels[:, :-1])


def hamming(first: int, second: int) -> int:
    """Differing bits of two hashes (0 = same picture, ~32 = unrelated)."""
    return (first ^ second).bit_count()


def hash_hex(value: int) -> str:
    return f"{value:016x}"


def upright(image: Image.Image) -> Image.Image:
    """The image as a viewer shows it (core.pixels: orientation, 16-bit, alpha on white); broken EXIF
    leaves it as stored."""
    return upright_rgb(image)


@dataclass(frozen=True)
class ImageFacts:
    """What evidence and the keep suggestion need from one image (a gallery Image, or a bench file)."""

    id: int
    width: int
    height: int
    file_size: int
    sharpness: float | None = None
    rating: int | None = None
    taken_at: datetime | None = None
    camera: str = ""

    @property
    def pixels(self) -> int:
        return self.width * self.height

    def as_evidence(self) -> dict[str, object]:
        return {
            "id": self.id,
            "width": self.width,
            "height": self.height,
            "file_size": self.file_size,
            "sharpness": None if self.sharpness is None else round(self.sharpness, 4),
            "rating": self.rating,
            "taken_at": self.taken_at.isoformat() if self.taken_at else None,
            "camera": self.camera,
        }


def pair_evidence(
    *,
    cosine: float,
    a: ImageFacts,
    b: ImageFacts,
    phash_distance: int | None,
    dhash_distance: int | None,
    geometric_inliers: int | None,
) -> dict[str, object]:
    """The JSON evidence stored on a pair: everything a reviewer looks at besides the two pictures."""
    gap = None
    if a.taken_at is not None and b.taken_at is not None:
        gap = abs((a.taken_at - b.taken_at).total_seconds())
    same_camera = None
    if a.camera and b.camera:
        same_camera = a.camera.casefold() == b.camera.casefold()
    return {
        "cosine": round(float(cosine), 6),
        "phash_distance": phash_distance,
        "dhash_distance": dhash_distance,
        "geometric_inliers": geometric_inliers,
        "time_gap_seconds": gap,
        "same_camera": same_camera,
        "a": a.as_evidence(),
        "b": b.as_evidence(),
    }


@dataclass(frozen=True)
class KeepSuggestion:
    keep: ImageFacts
    remove: ImageFacts
    reason: str  # the first criterion that told them apart


def _sharpness_order(first: float | None, second: float | None) -> int:
    if first is None or second is None or abs(first - second) <= SHARPNESS_TOLERANCE:
        return 0
    return 1 if first > second else -1


def _order(first: int | None, second: int | None) -> int:
    if first is None and second is None:
        return 0
    if first is None or second is None:
        return 1 if second is None else -1  # a rated photo beats an unrated one
    return (first > second) - (first < second)


def suggest_keep(a: ImageFacts, b: ImageFacts) -> KeepSuggestion:
    """Keep the higher resolution, then the sharper, then the higher rated, then the larger file, then the older."""
    criteria = [
        ("higher resolution", _order(a.pixels, b.pixels)),
        ("sharper", _sharpness_order(a.sharpness, b.sharpness)),
        ("higher rating", _order(a.rating, b.rating)),
        ("larger file", _order(a.file_size, b.file_size)),
    ]
    for reason, order in criteria:
        if order > 0:
            return KeepSuggestion(keep=a, remove=b, reason=reason)
        if order < 0:
            return KeepSuggestion(keep=b, remove=a, reason=reason)
    first, second = (a, b) if a.id <= b.id else (b, a)
    return KeepSuggestion(keep=first, remove=second, reason="uploaded first")
