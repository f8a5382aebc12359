"""Template helpers for duplicate pairs: an image's pairs, and readable evidence."""

from __future__ import annotations

from functools import lru_cache

from django import template
from django.urls import get_script_prefix, get_urlconf, reverse

from duplicates.models import DuplicateGroup, DuplicatePair
from duplicates.selectors import groups as group_selectors
from duplicates.selectors.pairs import image_pairs
from duplicates.selectors.thresholds import ThresholdsOverview, thresholds_overview
from gallery.models import Image

register = template.Library()
URL_MARKER = 987654321012


@lru_cache(maxsize=64)
def _url_template(name: str, prefix: str, urlconf: str | None) -> str:
    return reverse(name, args=[URL_MARKER], urlconf=urlconf)


@register.filter
def image_url(pk: int, name: str) -> str:
    """{% url name pk %} for the many images of a review page: reversed once per process, then the id put in."""
    return _url_template(name, get_script_prefix(), get_urlconf()).replace(f"/{URL_MARKER}/", f"/{pk}/", 1)


@register.simple_tag
def image_duplicate_pairs(image: Image) -> list[tuple[DuplicatePair, Image]]:
    """(pair, the other image) for each pair the image is in: for the image page's Duplicates section."""
    return [(pair, pair.other(image.pk)) for pair in image_pairs(image=image)]


@register.simple_tag
def image_stack_group(image: Image) -> DuplicateGroup | None:
    """The stacked group behind the stack an image is in: the image page links to it on its own tab."""
    return group_selectors.image_stack_group(image=image)


@register.inclusion_tag("duplicates/_thresholds.html")
def thresholds_in_force(*, manage: bool = False, overview: ThresholdsOverview | None = None) -> dict[str, object]:
    """The thresholds in force and where each comes from (review pages; the calibration page manages them)."""
    return {"overview": overview or thresholds_overview(), "manage": manage}


@register.filter
def timegap(seconds: float | None) -> str:
    """3 s, 4 min, 2.5 h, 12 days: how far apart two photos were taken."""
    if seconds is None:
        return ""
    value = float(seconds)
    for limit, unit, size in ((60, "s", 1), (3600, "min", 60), (86400, "h", 3600)):
        if value < limit:
            amount = value / size
            return f"{amount:.0f} {unit}" if amount >= 10 or unit == "s" else f"{amount:.1f} {unit}"
    return f"{value / 86400:.0f} days"


@register.filter
def side(evidence: dict, key: str) -> dict:
    """evidence["a"] or evidence["b"] (templates can't index with a variable)."""
    return (evidence or {}).get(key) or {}


@register.filter
def scene_label(evidence: dict[str, object]) -> str:
    """Why a similar member is one scene with the copy it is compared with, in words; "" when nothing says so."""
    reason = evidence.get("scene_reason") if evidence else None
    if reason == "geometry":
        return f"same scene: {evidence.get('geometric_inliers')} matching points"
    if reason == "exposure":
        return "same scene, another exposure"
    if reason == "burst":
        gap = evidence.get("time_gap_seconds")
        return "burst: same camera" if gap is None else f"burst: same camera, {float(gap):.1f} s apart"  # type: ignore[arg-type]
    return ""
