"""Small display helpers for the library's templates."""

from __future__ import annotations

from django import template

register = template.Library()


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
