"""Quality checks that reject unusable uploads with a reason code and the measured score.

Every check works on one small sample of the image (long side at most SAMPLE_LONG_SIDE pixels), so a
24-megapixel photo costs about as much as a thumbnail and the scores do not depend on the resolution the
photo happened to be saved at. JPEGs that are not decoded yet are sampled with the decoder's DCT scaling
(``draft``) on a private handle, so the full-size pixels are never decoded here.

Sharpness is the "blur effect" of Crete et al. (2007), reported as ``1 - blur effect``: the share of the
pixel-to-pixel variation that survives an 11-pixel box blur. A blurry photo barely changes when it is
blurred again, so its sharpness is low; the measure divides out contrast, so a dim, low-contrast but
sharp photo is not taken for a blurry one. It separates sharp from blurred photos on ../shared/data/blur
better than the variance of the Laplacian (the prototype's measure, kept on the image as
``laplacian_variance``), which also rejects more sharp real photos; bench/quality_blur.py prints both
(figures in bench/README.md).
"""

from __future__ import annotations

import io
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, JpegImagePlugin

REASON_CODES: tuple[str, ...] = ("too_small", "solid_color", "mostly_black", "mostly_white", "blurry")
# How each check compares its score with its limit when it rejects, and how people read the two numbers:
# (comparison, percent, fewest decimals). The score a rejection was decided on, per reason.
REJECTION_FIGURES: dict[str, tuple[Callable[[float, float], bool], bool, int]] = {
    "too_small": (operator.lt, False, 0),
    "solid_color": (operator.le, False, 2),
    "mostly_black": (operator.gt, True, 1),
    "mostly_white": (operator.gt, True, 1),
    "blurry": (operator.lt, False, 2),
}
DECIDING_SCORES: dict[str, str] = {
    "solid_color": "color_std",
    "mostly_black": "dark_fraction",
    "mostly_white": "bright_fraction",
    "blurry": "sharpness",
}

# Small enough that the sharpness of one photo barely depends on the size it was saved at, large enough that
# the fewest sharp real photos score like blurred ones; the size that balances both on ../shared/data
# (bench/quality_blur.py; figures in bench/README.md). Photos smaller than this are measured at their own size
# (never upscaled).
SAMPLE_LONG_SIDE = 512
# Window of the re-blur in the sharpness measure, in sample pixels (Crete et al. use 9-11).
REBLUR_WINDOW = 11


@dataclass(frozen=True)
class QualityThresholds:
    """Limits for each check; the defaults were chosen on ../shared/data (bench/quality_blur.py; figures in
    bench/README.md).

    too_small: 64 px is well below any thumbnail or the 224 px network input; below it a picture is an
    icon and neither similarity nor sharpness means much.
    solid_color: a flat fill saved as JPEG measures a colour standard deviation under 1, the flattest real
    photos far more, so 4.0 leaves a wide margin on both sides.
    mostly_black / mostly_white: rejected only when more than 98% of the sample is at or below level 16
    (at or above 240). Night shots, snow and backlit photos keep lights, shadows or texture in more than
    2% of their area, so they pass; a lens-cap shot, a blank page or a white frame does not. The darkest
    and the brightest real photos stay well inside these fractions.
    blurry: sharpness below 0.50, between the sharp and most of the blurred photos of the blur set, and
    below nearly every sharp real photo (the exception: a subject against a defocused background). A slightly
    higher limit catches a few more blurred photos but leaves no margin for shallow-depth-of-field
    shots, while saving a photo at another size moves its sharpness a little: a wrongly rejected upload
    costs more than a blurry one kept. 1.0 / 0.0 make the fractions and the sharpness limit accept
    everything; the *_enabled flags are the clearer way to switch off.
    """

    min_width: int = 64
    min_height: int = 64
    solid_color_max_std: float = 4.0
    dark_level: int = 16
    dark_max_fraction: float = 0.98
    bright_level: int = 240
    bright_max_fraction: float = 0.98
    blur_min_score: float = 0.50
    too_small_enabled: bool = True
    solid_color_enabled: bool = True
    mostly_black_enabled: bool = True
    mostly_white_enabled: bool = True
    blur_enabled: bool = True

    def __post_init__(self) -> None:
        """Reject limits that would silently accept or reject everything."""
        if self.min_width < 0 or self.min_height < 0:
            raise ValueError("min_width and min_height must not be negative (0: any size).")
        if self.solid_color_max_std < 0:
            raise ValueError("solid_color_max_std must not be negative.")
        for name in ("dark_level", "bright_level"):
            if not 0 <= getattr(self, name) <= 255:
                raise ValueError(f"{name} must be a luminance level from 0 to 255.")
        for name in ("dark_max_fraction", "bright_max_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a fraction from 0 to 1.")
        if not 0.0 <= self.blur_min_score <= 1.0:
            raise ValueError("blur_min_score must be a sharpness from 0 to 1.")


@dataclass(frozen=True)
class QualityRejection:
    """Why an image was rejected, with the number that decided it, for the image row and the user."""

    reason: str
    score: float
    threshold: float
    message: str


@dataclass(frozen=True)
class QualityReport:
    """All measured values, kept on the image even when it passes, and the rejection if any."""

    scores: dict[str, float]
    rejection: QualityRejection | None

    @property
    def passed(self) -> bool:
        """True when no check rejected the image."""
        return self.rejection is None


def assess_quality(
    image: Image.Image, *, thresholds: QualityThresholds, size: tuple[int, int] | None = None
) -> QualityReport:
    """Measure an opened image and apply the checks in order: too small, solid, black/white, blurry.

    The image is not changed: its size and mode stay as opened (an undecoded JPEG stays undecoded).
    `size` is the real (upright) size when `image` is a downscaled preview, so "too small" judges the file.
    """
    width, height = size or image.size
    if width == 0 or height == 0:  # Pillow can make such images; there is nothing to measure
        empty = dict.fromkeys(("color_std", "dark_fraction", "bright_fraction", "sharpness"), 0.0)
        scores = {"width": float(width), "height": float(height), **empty, "laplacian_variance": 0.0}
        return QualityReport(scores=scores, rejection=_first_rejection(scores, thresholds))
    channels = _sample_channels(image)
    luminance = _luminance(channels)
    scores = {
        "width": float(width),
        "height": float(height),
        "color_std": _color_std(channels),
        "dark_fraction": _fraction(luminance <= thresholds.dark_level),
        "bright_fraction": _fraction(luminance >= thresholds.bright_level),
        "sharpness": sharpness(luminance),
        "laplacian_variance": float(cv2.Laplacian(luminance, cv2.CV_32F).var()),
    }
    return QualityReport(scores=scores, rejection=_first_rejection(scores, thresholds))


def sharpness(luminance: np.ndarray) -> float:
    """1 - blur effect (Crete et al. 2007) of a 2-D luminance array, 0 (flat or blurred) to 1 (sharp).

    Blur effect per axis: the share of the absolute neighbour differences that a box blur across that
    axis takes away from nothing; the blurrier axis counts, so motion blur in one direction is caught.
    """
    pixels = luminance.astype(np.float32, copy=False)
    if min(pixels.shape) < 2:
        return 0.0
    blur_effects = []
    for axis, kernel in ((0, (1, REBLUR_WINDOW)), (1, (REBLUR_WINDOW, 1))):
        reblurred = cv2.blur(pixels, kernel, borderType=cv2.BORDER_REFLECT)
        variation = np.abs(np.diff(pixels, axis=axis))
        kept = np.maximum(variation - np.abs(np.diff(reblurred, axis=axis)), 0.0)
        total = float(variation.sum(dtype=np.float64))
        blur_effects.append(1.0 if total <= 0.0 else (total - float(kept.sum(dtype=np.float64))) / total)
    return 1.0 - max(blur_effects)


def rejection_figures(reason: str, score: float, threshold: float) -> tuple[str, str]:
    """The score and the limit of a rejection as people read them, each with enough decimals that the written
    numbers compare as the check compared the measured ones: a sharpness of 0.4996 against a minimum of 0.50
    reads "0.4996 ... below the minimum 0.50", never "0.50 below 0.50"."""
    compare, percent, fewest = REJECTION_FIGURES[reason]
    scale, unit = (100.0, "%") if percent else (1.0, "")
    limit = threshold * scale
    limit_digits = next(
        (digits for digits in range(fewest, 17) if math.isclose(float(f"{limit:.{digits}f}"), limit, rel_tol=1e-12)),
        17,
    )
    limit_text = f"{limit:.{limit_digits}f}"
    value = score * scale
    score_text = next(
        (
            text
            for digits in range(limit_digits, 18)
            if compare(float(text := f"{value:.{digits}f}"), float(limit_text))
        ),
        repr(value),
    )
    return score_text + unit, limit_text + unit


def _first_rejection(scores: dict[str, float], thresholds: QualityThresholds) -> QualityRejection | None:
    """The first failed enabled check, cheapest and most specific first (a flat image is also blurry)."""
    width, height = int(scores["width"]), int(scores["height"])
    if thresholds.too_small_enabled and (width < thresholds.min_width or height < thresholds.min_height):
        if width < thresholds.min_width:
            side, score, limit = "wide", width, thresholds.min_width
        else:
            side, score, limit = "high", height, thresholds.min_height
        return QualityRejection(
            reason="too_small",
            score=float(score),
            threshold=float(limit),
            message=(
                f"Image is too small: {width}x{height} pixels; it must be at least {limit} pixels {side} "
                f"(minimum {thresholds.min_width}x{thresholds.min_height})."
            ),
        )
    std = scores["color_std"]
    if thresholds.solid_color_enabled and std <= thresholds.solid_color_max_std:
        shown, limit = rejection_figures("solid_color", std, thresholds.solid_color_max_std)
        return QualityRejection(
            reason="solid_color",
            score=std,
            threshold=thresholds.solid_color_max_std,
            message=(
                f"Image is a single solid colour: colour variation {shown} is at or below "
                f"the maximum {limit} for a solid image."
            ),
        )
    dark = scores["dark_fraction"]
    if thresholds.mostly_black_enabled and dark > thresholds.dark_max_fraction:
        shown, limit = rejection_figures("mostly_black", dark, thresholds.dark_max_fraction)
        return QualityRejection(
            reason="mostly_black",
            score=dark,
            threshold=thresholds.dark_max_fraction,
            message=(
                f"Image is almost entirely black: {shown} of pixels are at or below brightness "
                f"{thresholds.dark_level}, more than the maximum {limit}."
            ),
        )
    bright = scores["bright_fraction"]
    if thresholds.mostly_white_enabled and bright > thresholds.bright_max_fraction:
        shown, limit = rejection_figures("mostly_white", bright, thresholds.bright_max_fraction)
        return QualityRejection(
            reason="mostly_white",
            score=bright,
            threshold=thresholds.bright_max_fraction,
            message=(
                f"Image is almost entirely white: {shown} of pixels are at or above brightness "
                f"{thresholds.bright_level}, more than the maximum {limit}."
            ),
        )
    sharp = scores["sharpness"]
    if thresholds.blur_enabled and sharp < thresholds.blur_min_score:
        shown, limit = rejection_figures("blurry", sharp, thresholds.blur_min_score)
        return QualityRejection(
            reason="blurry",
            score=sharp,
            threshold=thresholds.blur_min_score,
            message=f"Image looks blurry: sharpness {shown} is below the minimum {limit}.",
        )
    return None


def _sample_size(size: tuple[int, int]) -> tuple[int, int]:
    """The size with the long side brought down to SAMPLE_LONG_SIDE; smaller images keep their size."""
    width, height = size
    long_side = max(width, height)
    if long_side <= SAMPLE_LONG_SIDE:
        return width, height
    scale = SAMPLE_LONG_SIDE / long_side
    return max(1, round(width * scale)), max(1, round(height * scale))


def _sample_channels(image: Image.Image) -> np.ndarray:
    """A small uint8 copy as H x W x C (C = 3 for colour, 1 for grey), alpha flattened onto white."""
    target = _sample_size(image.size)
    source = _undecoded_jpeg_draft(image, target) or image
    source = _with_plain_mode(source)
    if source.size != target:
        source = source.resize(target, Image.Resampling.BILINEAR, reducing_gap=2.0)
    if source.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return _high_depth_to_uint8(np.asarray(source), mode=source.mode)[..., None]
    if source.mode in ("LA", "RGBA"):
        white = Image.new("RGBA", source.size, (255, 255, 255, 255))
        source = Image.alpha_composite(white, source.convert("RGBA")).convert("RGB")
    if source.mode not in ("L", "RGB"):
        source = source.convert("RGB")
    pixels = np.asarray(source)
    return pixels[..., None] if pixels.ndim == 2 else pixels


def _undecoded_jpeg_draft(image: Image.Image, target: tuple[int, int]) -> Image.Image | None:
    """A private, DCT-downscaled decode of a JPEG the caller has opened but not decoded yet.

    Decoding a 6000x4000 JPEG at 1/8 scale costs a fraction of a full decode. ``draft`` changes the image
    it is called on, so it runs on a second handle over the same bytes; the caller's file position is put
    back. Returns None (use the caller's image) when that is not possible.
    """
    if not isinstance(image, JpegImagePlugin.JpegImageFile) or len(image.tile) != 1 or image.fp is None:
        return None
    if target == image.size:
        return None
    fp = image.fp
    try:
        position = fp.tell()
        fp.seek(0)
        data = fp.read()
        fp.seek(position)
        private = Image.open(io.BytesIO(data))
        private.draft(None, (2 * target[0], 2 * target[1]))
        private.load()
    except (OSError, ValueError, SyntaxError):
        return None
    return private


def _with_plain_mode(image: Image.Image) -> Image.Image:
    """Convert palette and bilevel images, which cannot be resized smoothly, before resizing."""
    if image.mode == "P":
        return image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode == "PA":
        return image.convert("RGBA")
    if image.mode == "1":
        return image.convert("L")
    return image


def _high_depth_to_uint8(pixels: np.ndarray, *, mode: str) -> np.ndarray:
    """16-bit, 32-bit and float grey as 0..255 uint8, so the 8-bit levels and limits apply to them too.

    16-bit modes scale by 1/257; "F" in 0..1 scales by 255; "I" and "F" beyond 255 are taken as 16-bit.
    """
    values = pixels.astype(np.float32)
    peak = float(values.max()) if values.size else 0.0
    if mode.startswith("I;16") or peak > 255.0:
        values = values / 257.0
    elif mode == "F" and peak <= 1.0:
        values = values * 255.0
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def _fraction(mask: np.ndarray) -> float:
    """Share of True in a mask."""
    return float(np.count_nonzero(mask)) / mask.size


def _luminance(channels: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma as uint8 (what Pillow's convert('L') gives), 2-D."""
    if channels.shape[2] == 1:
        return np.ascontiguousarray(channels[..., 0])
    return cv2.cvtColor(np.ascontiguousarray(channels), cv2.COLOR_RGB2GRAY)


def _color_std(channels: np.ndarray) -> float:
    """Largest per-channel standard deviation, so an isoluminant pattern (red on green) is not "solid"."""
    if channels.size == 0:
        return 0.0
    _, std = cv2.meanStdDev(np.ascontiguousarray(channels))
    value = float(std.max())
    return value if math.isfinite(value) else 0.0
