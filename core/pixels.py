"""Turning any decoded picture into upright 8-bit RGB within one memory budget.

Every place that needs pixels (upload validation, thumbnails, quality checks, and later embedding,
duplicate evidence and calibration) goes through `upright_rgb`, so they all see the same picture and no
mode Pillow can open (16-bit big/little-endian grey, 32-bit integer, float, palette with transparency,
CMYK, LAB, bilevel...) can crash or balloon a caller.

Memory: the only full-size buffer is the one the decoder fills (width x height x bytes per pixel of the
file's mode; JPEGs are decoded already scaled down with DCT scaling). Everything after that, reduction,
bit-depth and colour conversion, works on horizontal strips of at most `STRIP_BYTES` and on the reduced
copy, so the peak is that buffer plus a few megabytes, whatever the mode.

API:
    upright_rgb(image, *, max_side=None)  ->  upright RGB whose longer side is at most max_side
    exif_orientation(image)               ->  the EXIF orientation tag (1-8) or None
    swaps_axes(orientation)               ->  whether that orientation turns width into height
"""

from __future__ import annotations

import numpy as np
from PIL import Image

# Upper bound of the temporary strip copies made while reducing a decoded image.
STRIP_BYTES = 8 * 1024 * 1024

# Modes whose samples are wider than 8 bits: scaled to 8-bit grey, never clipped.
HIGH_DEPTH_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_REDUCIBLE_MODES = frozenset({"L", "LA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"})
_TRANSPOSE_FOR_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def exif_orientation(image: Image.Image) -> int | None:
    """The EXIF orientation (1-8) of an opened image, or None when absent or unreadable."""
    try:
        value = image.getexif().get(0x0112)
    except Exception:  # a broken EXIF block must not make a good picture unusable
        return None
    return value if isinstance(value, int) and 1 <= value <= 8 else None


def swaps_axes(orientation: int | None) -> bool:
    """True when showing the picture upright swaps its width and height (quarter turns)."""
    return orientation in (5, 6, 7, 8)


def upright_rgb(image: Image.Image, *, max_side: int | None = None) -> Image.Image:
    """The picture as a viewer shows it: EXIF orientation applied, 8-bit RGB, transparency on white.

    With max_side the result's longer side is at most max_side (the aspect ratio kept, like
    Image.thumbnail), and the full-size decode is reduced strip by strip before anything else, so no
    second full-size copy is ever made. Call it on a freshly opened image to let JPEGs decode scaled
    down; an image that is already loaded works too. Decoder errors propagate (callers map them to their
    own error type); the input is left untouched.
    """
    if max_side is not None and image.format in ("JPEG", "MPO") and image.tile:  # opened, not yet decoded
        image.draft("RGB", (max_side, max_side))
    image.load()
    orientation = exif_orientation(image)  # after load: a PNG's eXIf chunk may follow its pixels
    factor = 1
    if max_side is not None:
        # Like Image.thumbnail(reducing_gap=2.0): a box reduction to at least twice the target, then a
        # bilinear resize of the small copy, so the result matches what thumbnail() would give.
        factor = max(1, min(image.width, image.height, max(image.size) // (2 * max_side)))
    small = _reduced_eight_bit(image, factor)
    transpose = _TRANSPOSE_FOR_ORIENTATION.get(orientation or 1)
    upright = small.transpose(transpose) if transpose is not None else small
    rgb = _flatten(upright)
    if max_side is not None and max(rgb.size) > max_side:
        rgb.thumbnail((max_side, max_side), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return rgb if rgb is not image else rgb.copy()


def _reduced_eight_bit(image: Image.Image, factor: int) -> Image.Image:
    """Box-reduce by factor, strip by strip, converting each strip to an 8-bit mode Pillow can reduce."""
    top = _high_depth_top(image) if image.mode in HIGH_DEPTH_MODES else None
    if factor == 1 and top is None and image.mode in _REDUCIBLE_MODES:
        return image  # nothing to reduce or convert before the (then small or wanted) full-size result
    width, height = image.size
    bytes_per_row = max(1, width * 4)  # a strip's widest copy: float32 samples or RGBA
    rows = max(factor, (STRIP_BYTES // bytes_per_row) // factor * factor)
    out_size = (-(-width // factor), -(-height // factor))
    out: Image.Image | None = None
    for y in range(0, height, rows):
        strip = _eight_bit(image.crop((0, y, width, min(height, y + rows))), top, image.info)
        if factor > 1:
            strip = strip.reduce(factor)
        if out is None:
            out = Image.new(strip.mode, out_size)
        out.paste(strip, (0, y // factor))
    assert out is not None
    return out


def _eight_bit(strip: Image.Image, top: float | None, info: dict) -> Image.Image:
    """A strip in a mode Image.reduce accepts, with wide samples scaled (not clipped) to 0-255."""
    if top is not None:
        pixels = np.nan_to_num(np.asarray(strip, dtype=np.float32), nan=0.0, posinf=top, neginf=0.0)
        grey = np.clip(pixels * np.float32(255.0 / top), 0, 255).round().astype(np.uint8)
        return Image.fromarray(grey, "L")
    if strip.mode == "La":
        strip = strip.convert("LA")  # Pillow converts premultiplied grey only to LA
    if "transparency" in info or strip.mode in ("PA", "RGBa"):
        return strip.convert("RGBA")  # colour-key and palette transparency become real alpha before averaging
    if strip.mode in _REDUCIBLE_MODES:
        return strip
    return strip.convert("RGB")


def _high_depth_top(image: Image.Image) -> float:
    """The sample value shown as white.

    16-bit modes: 65535. 32-bit integer and float: 1.0 for float data in 0-1, 255 for 8-bit data kept
    wide, 65535 for 16-bit data kept wide (what PNG and TIFF decoders produce), else the maximum.
    """
    if image.mode in _SIXTEEN_BIT_MODES:
        return 65535.0
    _low, high = image.getextrema()
    if not np.isfinite(high) or high <= 0:
        return 255.0
    for top in ((1.0,) if image.mode == "F" else ()) + (255.0, 65535.0):
        if high <= top:
            return top
    return float(high)


def _flatten(image: Image.Image) -> Image.Image:
    """RGB with transparency composited on white, so checks and thumbnails see what a viewer shows."""
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("LA" if image.mode == "La" else image.mode).convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB") if image.mode != "RGB" else image


__all__ = ["HIGH_DEPTH_MODES", "STRIP_BYTES", "exif_orientation", "swaps_axes", "upright_rgb"]
