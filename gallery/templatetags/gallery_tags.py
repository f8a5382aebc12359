"""Small display helpers for the library's templates."""

from __future__ import annotations

from django import template
from django.conf import settings

from gallery.image_file import UploadRejected
from gallery.labels import reason_label, upload_error_message
from gallery.models import Image
from gallery.renditions import PREVIEW_SIZES

register = template.Library()


@register.filter(name="reason_label")
def reason_label_filter(code: str | None) -> str:
    """'Solid colour' for solid_color (see gallery.labels)."""
    return reason_label(code or "")


@register.filter(name="upload_error_message")
def upload_error_message_filter(error: UploadRejected) -> str:
    """A refused upload's message for people: no decoder internals (see gallery.labels)."""
    return upload_error_message(code=error.code, message=error.message)


@register.filter
def camera(image: Image) -> str:
    """'Canon EOS 500D', not 'Canon Canon EOS 500D': many cameras repeat the make in the model tag."""
    make, model = (image.camera_make or "").strip(), (image.camera_model or "").strip()
    if not make or not model:
        return make or model
    first_word = make.split()[0].lower()
    return model if model.lower().startswith(first_word) else f"{make} {model}"


def _fitted(image: Image, limit: int) -> tuple[int, int]:
    width, height = max(1, image.width or 1), max(1, image.height or 1)
    scale = min(1.0, limit / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


@register.simple_tag
def thumbnail_size(image: Image) -> tuple[int, int]:
    """The stored thumbnail's pixel size, for width/height attributes (the browser reserves the space)."""
    return _fitted(image, settings.IMGSIM_THUMBNAIL_SIZE)


@register.simple_tag
def preview_size(image: Image) -> tuple[int, int]:
    """The pixel size of the image page's large preview rendition."""
    return _fitted(image, PREVIEW_SIZES["large"])


@register.filter
def stars(rating: int | None) -> str:
    """★★★☆☆ for a rating of 3; empty for unrated images."""
    if rating is None:
        return ""
    return "★" * rating + "☆" * (5 - rating)


@register.filter
def filesize(num_bytes: int | None) -> str:
    if num_bytes is None:
        return ""
    size = float(num_bytes)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"
