"""Opening untrusted upload bytes safely: allow-listed formats, size and pixel caps, full decode.

Everything here raises UploadRejected with a stable code, an HTTP status and a sentence a user understands,
so that no input ever turns into a 500 and nothing is stored for a bad file.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

from core.errors import ServiceError

# Pillow format names we accept; MPO is how Pillow names the JPEGs many cameras and phones write.
ALLOWED_FORMATS: dict[str, str] = {
    "JPEG": "JPEG",
    "MPO": "JPEG",
    "PNG": "PNG",
    "WEBP": "WEBP",
    "GIF": "GIF",
    "BMP": "BMP",
    "TIFF": "TIFF",
}
ALLOWED_FORMAT_LABEL = "JPEG, PNG, WebP, GIF (first frame), BMP or TIFF"

_MARKUP_PREFIXES = (b"<svg", b"<?xml", b"<!doctype", b"<html", b"<head", b"<body", b"<script")


class UploadRejected(ServiceError):
    """A file we refuse to store (400 unless the check says otherwise)."""


@dataclass(frozen=True)
class DecodedUpload:
    """A fully decoded, upright RGB copy of an upload, downscaled for the cheap checks and thumbnail."""

    format: str
    width: int
    height: int
    preview: PILImage.Image
    source: PILImage.Image


def _looks_like_markup(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return text.startswith(_MARKUP_PREFIXES) or b"<svg" in text[:512]


def decode_upload(data: bytes, *, max_pixels: int, preview_size: int = 1024) -> DecodedUpload:
    """Decode upload bytes completely (so truncation is caught) and return an upright preview.

    The pixel cap is checked from the header, before any pixel is decoded, and Pillow's own
    decompression-bomb warning is an error here as well.
    """
    if not data:
        raise UploadRejected("empty_file", "The file is empty.")
    if _looks_like_markup(data[:1024]):
        raise UploadRejected(
            "unsupported_format",
            f"This is an SVG/HTML/XML document, not a photo. Supported formats: {ALLOWED_FORMAT_LABEL}.",
            status=415,
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error", PILImage.DecompressionBombWarning)
        try:
            image = PILImage.open(io.BytesIO(data))
        except UnidentifiedImageError:
            raise UploadRejected(
                "not_an_image",
                f"The file is not an image we can read. Supported formats: {ALLOWED_FORMAT_LABEL}.",
                status=415,
            ) from None
        except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning):
            raise _too_many_pixels(None, max_pixels) from None
        except Exception as error:  # Pillow raises many types for hostile headers
            raise UploadRejected("corrupt_image", f"The image file is damaged: {error}") from None

        fmt = ALLOWED_FORMATS.get(image.format or "")
        if fmt is None:
            raise UploadRejected(
                "unsupported_format",
                f"{image.format} images are not supported. Supported formats: {ALLOWED_FORMAT_LABEL}.",
                status=415,
            )
        width, height = image.size
        if width * height > max_pixels:
            raise _too_many_pixels((width, height), max_pixels)
        try:
            if fmt == "JPEG":
                # Decode at a reduced scale: the whole stream is still read, so truncation is caught.
                image.draft("RGB", (preview_size, preview_size))
            image.load()
            upright = ImageOps.exif_transpose(image)
        except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning):
            raise _too_many_pixels((width, height), max_pixels) from None
        except Exception as error:
            raise UploadRejected(
                "corrupt_image", f"The image file is damaged or truncated ({error}). Nothing was stored."
            ) from None

    preview = _flatten_to_rgb(upright)
    preview.thumbnail((preview_size, preview_size), PILImage.Resampling.BILINEAR, reducing_gap=2.0)
    swapped = _orientation_swaps_axes(image)
    return DecodedUpload(
        format=fmt,
        width=height if swapped else width,
        height=width if swapped else height,
        preview=preview,
        source=image,
    )


def _orientation_swaps_axes(image: PILImage.Image) -> bool:
    try:
        orientation = image.getexif().get(0x0112)
    except Exception:
        return False
    return orientation in (5, 6, 7, 8)


def _flatten_to_rgb(image: PILImage.Image) -> PILImage.Image:
    """RGB with transparency composited on white, so checks and thumbnails see what a viewer shows."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = PILImage.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        return image.point(lambda value: value / 256).convert("L").convert("RGB")
    return image.convert("RGB")


def _too_many_pixels(size: tuple[int, int] | None, max_pixels: int) -> UploadRejected:
    what = f"{size[0]}x{size[1]} = {size[0] * size[1]:,} pixels" if size else "too many pixels"
    return UploadRejected(
        "too_many_pixels",
        f"The image is too large to process ({what}); the limit is {max_pixels:,} pixels.",
        status=413,
    )


def thumbnail_webp(preview: PILImage.Image, *, size: int) -> bytes:
    """A small WebP for the gallery grid and search results."""
    thumb = preview.copy()
    thumb.thumbnail((size, size), PILImage.Resampling.LANCZOS)
    buffer = io.BytesIO()
    thumb.save(buffer, format="WEBP", quality=82, method=4)
    return buffer.getvalue()
