"""Turning any decoded picture into upright 8-bit RGB within one memory budget.

Every place that needs pixels (upload validation, thumbnails, previews, quality checks, embedding,
duplicate evidence and calibration) goes through `upright_rgb`, so they all see the same picture and no
mode Pillow can open (16-bit big/little-endian grey, 16-bit RGB, 32-bit integer, float, palette with
transparency, CMYK, LAB, bilevel...) can crash or balloon a caller.

Memory: one decode may use `DECODE_BYTES_PER_PIXEL` bytes per pixel of the pixel cap (IMGSIM_MAX_PIXELS,
which Pillow's MAX_IMAGE_PIXELS follows in every process) plus one strip: `decode_budget`. Before any pixel
is decoded, `decode_cost` reads from the header what the decode needs: the full-size buffer Pillow fills
(width x height x 1, 2 or 4 bytes for its mode; JPEGs decoded already scaled down with DCT scaling) plus
the decoder's own working memory (a TIFF's strip or tile, WebP's canvases, a progressive JPEG's
coefficients, an RLE BMP's rows). A file over the budget is refused with DecodeTooLarge. Everything after
the decode (reduction, bit-depth and colour conversion, orientation, alpha on white) works on horizontal
strips of at most `STRIP_BYTES` written into one reduced result, reduced further when a full-size result
would not fit beside the decoded buffer.

API:
    upright_rgb(image, *, max_side=None, ...)  ->  upright RGB whose longer side is at most max_side
    decode_cost(image) / decode_budget()       ->  the bytes a decode needs / may use
    exif_orientation(image)                    ->  the EXIF orientation tag (1-8) or None
    swaps_axes(orientation)                    ->  whether that orientation turns width into height
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

# Upper bound of the temporary strip copies made while reducing a decoded image.
STRIP_BYTES = 8 * 1024 * 1024

# What one decode may use per pixel of the pixel cap: the buffer of an RGB, RGBA, CMYK or float picture.
DECODE_BYTES_PER_PIXEL = 4

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
_TIFF_YCBCR = 6


class DecodeTooLarge(ValueError):
    """Decoding this file would need more memory than one decode may use (a 413 for an upload)."""

    def __init__(self, message: str, *, cost: int, budget: int) -> None:
        super().__init__(message)
        self.cost = cost
        self.budget = budget


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


def decode_budget(max_pixels: int | None = None) -> int | None:
    """The bytes one decode may use: DECODE_BYTES_PER_PIXEL x the pixel cap, plus one strip for the decoder's
    own buffers. The cap defaults to Pillow's MAX_IMAGE_PIXELS (set from IMGSIM_MAX_PIXELS at start-up);
    None when that check is switched off."""
    cap = Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    return None if cap is None else DECODE_BYTES_PER_PIXEL * int(cap) + STRIP_BYTES


def decode_cost(image: Image.Image) -> int:
    """The bytes decoding this opened image needs at its current (drafted) size, read from its header.

    Pillow's buffer for the decoded mode plus the decoder's working memory; 0 for an image already loaded.
    """
    buffer, working, _why = _decode_parts(image)
    return buffer + working


def check_decode_cost(image: Image.Image, *, max_pixels: int | None = None) -> None:
    """Raise DecodeTooLarge before decoding an image whose decode would need more than decode_budget."""
    budget = decode_budget(max_pixels)
    buffer, working, why = _decode_parts(image)
    if budget is None or buffer + working <= budget:
        return
    scale = _draft_scale(image)
    size = f"{image.width}x{image.height} pixels" + (f" at 1/{scale} scale" if scale > 1 else "")
    raise DecodeTooLarge(
        f"This {image.format or 'image'} ({_describe_depth(image)}; {size}) is too large to process: "
        f"decoding it would need about {_mb(buffer + working)} of memory ({_mb(buffer)} of pixels{why}); "
        f"the limit is {_mb(budget)}. {_advice(image, why)}",
        cost=buffer + working,
        budget=budget,
    )


def upright_rgb(
    image: Image.Image,
    *,
    max_side: int | None = None,
    max_pixels: int | None = None,
    resample: Image.Resampling = Image.Resampling.BILINEAR,
) -> Image.Image:
    """The picture as a viewer shows it: EXIF orientation applied, 8-bit RGB, transparency on white.

    With max_side the result's longer side is at most max_side (the aspect ratio kept, like
    Image.thumbnail with `resample`): the decode is box-reduced strip by strip first, then the small copy
    resized. Without it the result is full size when that fits in the decode budget beside the decoded
    buffer, else box-reduced by the smallest whole factor that fits. Call it on a freshly opened image:
    JPEGs then decode scaled down and a file whose decode would exceed decode_budget(max_pixels) raises
    DecodeTooLarge before any pixel is decoded; an image that is already loaded works too. Decoder
    errors propagate (callers map them to their own error type); the input is left untouched.
    """
    if max_side is not None and image.format in ("JPEG", "MPO") and image.tile:  # opened, not yet decoded
        image.draft("RGB", (max_side, max_side))
    if not _decoded(image):
        check_decode_cost(image, max_pixels=max_pixels)
    image.load()
    orientation = exif_orientation(image)  # after load: a PNG's eXIf chunk may follow its pixels
    factor = _budget_factor(image, decode_budget(max_pixels), resized=max_side is not None)
    if max_side is not None:
        # Like Image.thumbnail(reducing_gap=2.0): a box reduction to at least twice the target, then a
        # resize of the small copy, so the result matches what thumbnail() would give.
        factor = max(factor, min(image.width, image.height, max(image.size) // (2 * max_side)))
    rgb = _upright_reduced(image, factor, orientation)
    if max_side is not None and max(rgb.size) > max_side:
        rgb.thumbnail((max_side, max_side), resample, reducing_gap=2.0)
    return rgb


def _decoded(image: Image.Image) -> bool:
    """Whether the pixels are in memory already (a WebP's tile list is empty before and after decoding)."""
    return getattr(image, "_im", None) is not None


def _pixel_bytes(mode: str) -> int:
    """Bytes per pixel of Pillow's buffer for a mode (RGB is stored in 4)."""
    if mode in ("1", "L", "P"):
        return 1
    return 2 if mode.startswith("I;16") else 4


def _decode_parts(image: Image.Image) -> tuple[int, int, str]:
    """(Pillow's buffer, the decoder's working bytes, what the latter is) of an image not yet loaded."""
    if _decoded(image):
        return 0, 0, ""
    width, height = image.size
    buffer = width * height * _pixel_bytes(image.mode)
    codec = image.tile[0][0] if image.tile else ""
    if image.format == "WEBP":
        # libwebp's animation decoder (Pillow's only WebP path) keeps the frame and the previous frame as
        # RGBA canvases, and Pillow copies the frame into a bytes object before unpacking it.
        return buffer, 3 * 4 * width * height, ", WebP's decoder holds three more RGBA copies"
    if codec == "libtiff":
        working, block = _tiff_working_bytes(image)
        return buffer, working, f", {_mb(block)} for one {_tiff_block_name(image)}, which libtiff decodes whole"
    if codec == "bmp_rle":
        # Pillow's RLE decoder collects the whole picture in a bytearray, then copies it once.
        return buffer, 2 * width * height, ", twice more while Pillow's RLE decoder collects the rows"
    if image.format in ("JPEG", "MPO") and (image.info.get("progressive") or image.info.get("progression")):
        coefficients = _jpeg_coefficient_bytes(image)
        return buffer, coefficients, f", {_mb(coefficients)} of DCT coefficients a progressive JPEG keeps"
    return buffer, 0, ""


def _tiff_working_bytes(image: Image.Image) -> tuple[int, int]:
    """libtiff's decode: one strip (or tile) of samples as stored, and RGBA rows for YCbCr other than JPEG."""
    tags = image.tag_v2  # type: ignore[attr-defined]
    width, height = image.size
    bits = tags.get(258, (1,))
    bits = tuple(bits) if isinstance(bits, tuple | list) else (bits,)
    samples = max(1, int(tags.get(277, len(bits))))
    bits_per_pixel = sum(bits) if len(bits) == samples else int(bits[0]) * samples
    if tags.get(284, 1) == 2:  # planes stored apart: one plane's strip at a time
        bits_per_pixel //= samples
    if 322 in tags and 323 in tags:
        block_width, block_rows = int(tags[322]), int(tags[323])
    else:
        block_width, block_rows = width, min(height, int(tags.get(278, height)) or height)
    block = math.ceil(block_width * bits_per_pixel / 8) * block_rows
    working = block
    if tags.get(262) == _TIFF_YCBCR and not (image._compression == "jpeg" and tags.get(284, 1) == 1):  # type: ignore[attr-defined]
        working += 4 * width * block_rows
    return working, block


def _tiff_block_name(image: Image.Image) -> str:
    return "tile" if 322 in image.tag_v2 else "strip"  # type: ignore[attr-defined]


def _jpeg_coefficient_bytes(image: Image.Image) -> int:
    """libjpeg keeps every component's 16-bit DCT coefficients for a multi-scan file, at full size."""
    scale = _draft_scale(image)
    width, height = image.width * scale, image.height * scale
    layers = getattr(image, "layer", None) or [(0, 1, 1, 0)] * len(image.getbands())
    h_max = max(layer[1] for layer in layers) or 1
    v_max = max(layer[2] for layer in layers) or 1
    total = 0
    for _id, h, v, _table in layers:
        blocks_across = math.ceil(math.ceil(width * h / h_max) / 8)
        blocks_down = math.ceil(math.ceil(height * v / v_max) / 8)
        total += blocks_across * blocks_down * 64 * 2
    return total


def _draft_scale(image: Image.Image) -> int:
    """The DCT scaling a JPEG was drafted to (8 for 1/8), else 1."""
    config = getattr(image, "decoderconfig", None)
    return int(config[0]) if image.format in ("JPEG", "MPO") and config else 1


def _describe_depth(image: Image.Image) -> str:
    """What the file holds, as a user names it: '16-bit RGB', '32-bit float grey', '8-bit palette'."""
    if image.format == "TIFF":
        bits = image.tag_v2.get(258, (8,))  # type: ignore[attr-defined]
        depth = int(bits[0] if isinstance(bits, tuple | list) else bits)
    elif image.mode.startswith("I;16") or (image.tile and ";16" in str(image.tile[0][3])):
        depth = 16
    else:
        depth = {"I": 32, "F": 32, "1": 1}.get(image.mode, 8)
    names = {"1": "bilevel", "L": "grey", "LA": "grey and alpha", "P": "palette", "I": "integer grey"}
    names["F"] = "float grey"
    return f"{depth}-bit {'grey' if image.mode.startswith('I;16') else names.get(image.mode, image.mode)}"


def _advice(image: Image.Image, why: str) -> str:
    if image.format == "WEBP":
        return "Save it as PNG or JPEG, or with fewer pixels."
    if "strip" in why or "tile" in why:
        return f"Save it with smaller {_tiff_block_name(image)}s or fewer pixels, or as PNG or JPEG."
    if "progressive" in why:
        return "Save it as a baseline (non-progressive) JPEG, or with fewer pixels."
    return "Save it with fewer pixels."


def _mb(size: int) -> str:
    return f"{size / 1_000_000:,.0f} MB"


def _budget_factor(image: Image.Image, budget: int | None, *, resized: bool) -> int:
    """The smallest whole reduction for which an RGB result (and, when it is resized next, the resize's own
    copies, as large again at most) fits in the budget beside the decoded buffer. The room is never less
    than one strip: the budget holds one beyond the largest buffer the decode check lets through."""
    if budget is None:
        return 1
    width, height = image.size
    room = max(STRIP_BYTES, budget - width * height * _pixel_bytes(image.mode)) // (2 if resized else 1)
    factor = 1
    while factor < min(width, height) and 4 * math.ceil(width / factor) * math.ceil(height / factor) > room:
        factor += 1
    return factor


def _upright_reduced(image: Image.Image, factor: int, orientation: int | None) -> Image.Image:
    """Box-reduced by factor, upright, 8-bit RGB on white, made strip by strip into one result."""
    transpose = _TRANSPOSE_FOR_ORIENTATION.get(orientation or 1)
    plain = image.mode == "RGB" and "transparency" not in image.info
    if factor == 1 and transpose is None and plain:
        return image.copy()
    top = _high_depth_top(image) if image.mode in HIGH_DEPTH_MODES else None
    width, height = image.size
    reduced = (-(-width // factor), -(-height // factor))
    turned = swaps_axes(orientation)
    out = Image.new("RGB", (reduced[1], reduced[0]) if turned else reduced)
    bytes_per_row = max(1, width * 4)  # a strip's widest copy: float32 samples or RGBA
    rows = max(factor, (STRIP_BYTES // bytes_per_row) // factor * factor)
    for y in range(0, height, rows):
        strip = _eight_bit(image.crop((0, y, width, min(height, y + rows))), top, image.info)
        if factor > 1:
            strip = strip.reduce(factor)
        if transpose is not None:
            strip = strip.transpose(transpose)
        first, last = y // factor, y // factor + (strip.width if turned else strip.height)
        out.paste(_flatten(strip), _band_origin(orientation, first, last, reduced))
    return out


def _band_origin(orientation: int | None, first: int, last: int, reduced: tuple[int, int]) -> tuple[int, int]:
    """Where rows first..last of the stored (reduced) picture land once it is turned upright."""
    height = reduced[1]
    if orientation in (3, 4):  # upside down
        return 0, height - last
    if orientation in (5, 8):  # rows become columns, left to right
        return first, 0
    if orientation in (6, 7):  # rows become columns, right to left
        return height - last, 0
    return 0, first


def _eight_bit(strip: Image.Image, top: float | None, info: dict) -> Image.Image:
    """A strip in a mode Image.reduce accepts, with wide samples scaled (not clipped) to 0-255."""
    if top is not None:
        pixels = np.array(strip, dtype=np.float32)  # a writable copy, worked on in place from here
        np.nan_to_num(pixels, copy=False, nan=0.0, posinf=top, neginf=0.0)
        pixels *= np.float32(255.0 / top)
        np.clip(pixels, 0, 255, out=pixels)
        return Image.fromarray(np.round(pixels, out=pixels).astype(np.uint8), "L")
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


__all__ = [
    "DECODE_BYTES_PER_PIXEL",
    "HIGH_DEPTH_MODES",
    "STRIP_BYTES",
    "DecodeTooLarge",
    "check_decode_cost",
    "decode_budget",
    "decode_cost",
    "exif_orientation",
    "swaps_axes",
    "upright_rgb",
]
