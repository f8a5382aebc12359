"""Opening untrusted upload bytes safely: allow-listed formats, size and pixel caps, full decode.

Everything here raises UploadRejected with a stable code, an HTTP status and a sentence a user understands,
so that no input ever turns into a 500 and nothing is stored for a bad file.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image as PILImage
from PIL import UnidentifiedImageError

from core.errors import ServiceError
from core.pixels import DecodeTooLarge, exif_orientation, swaps_axes, upright_rgb
from gallery.exif import ExifData, read_exif

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
    """What validation learnt from an upload: its format, upright size, EXIF, and a small upright RGB copy.

    The full-size decode is not kept: the preview (longer side at most preview_size) is what thumbnails,
    quality checks and query embeddings are made from, so each upload is decoded exactly once.
    """

    format: str
    width: int
    height: int
    preview: PILImage.Image
    exif: ExifData


def _looks_like_markup(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return text.startswith(_MARKUP_PREFIXES) or b"<svg" in text[:512]


def decode_upload(data: bytes, *, max_pixels: int, preview_size: int = 1024) -> DecodedUpload:
    """Decode upload bytes completely (so truncation is caught) within one memory budget.

    The pixel cap (IMGSIM_MAX_PIXELS) and the memory the decode needs (core.pixels.decode_cost: the
    decoded buffer plus the decoder's own, at most 4 bytes x max_pixels and one strip) are checked from
    the header before any pixel is decoded (413). JPEGs are decoded scaled down to the preview size;
    other formats are decoded once at full size and reduced strip by strip. Every failure, including
    mode conversion of 16-bit, 32-bit and float pictures, is an UploadRejected.
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
        # Our own cap below is exact; Pillow's warning threshold (MAX_IMAGE_PIXELS) is set from the same
        # setting at start-up, and its hard error (twice that) stays as a backstop.
        warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
        try:
            image = PILImage.open(io.BytesIO(data))
        except UnidentifiedImageError:
            raise UploadRejected(
                "not_an_image",
                f"The file is not an image we can read. Supported formats: {ALLOWED_FORMAT_LABEL}.",
                status=415,
            ) from None
        except PILImage.DecompressionBombError:
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
        if width <= 0 or height <= 0:
            raise UploadRejected("corrupt_image", "The image file is damaged: it has no pixels.")
        if width * height > max_pixels:
            raise _too_many_pixels((width, height), max_pixels)
        try:
            preview = upright_rgb(image, max_side=preview_size, max_pixels=max_pixels)
            orientation = exif_orientation(image)
            exif = read_exif(image)
        except DecodeTooLarge as error:
            raise UploadRejected("too_large_to_decode", str(error), status=413) from None
        except PILImage.DecompressionBombError:
            raise _too_many_pixels((width, height), max_pixels) from None
        except MemoryError:
            raise _too_many_pixels((width, height), max_pixels) from None
        except Exception as error:
            raise UploadRejected(
                "corrupt_image", f"The image file is damaged or truncated ({error}). Nothing was stored."
            ) from None
        finally:
            image.close()

    swapped = swaps_axes(orientation)
    return DecodedUpload(
        format=fmt,
        width=height if swapped else width,
        height=width if swapped else height,
        preview=preview,
        exif=exif,
    )


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
