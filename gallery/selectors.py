"""Reads of the image library, shared by the web views, the API and the admin."""

from __future__ import annotations

from django.db.models import Count, Q

from gallery.models import Image, ImageQuerySet

RATING_FILTERS = {"unrated", "0", "1", "2", "3", "4", "5", "1+", "2+", "3+", "4+"}


def image_list(*, status: str = "", rating: str = "", query: str = "") -> ImageQuerySet:
    """Images newest first, filtered by status, rating ("3", "3+" or "unrated") and a name search."""
    images = Image.objects.select_related("uploaded_by").defer("embedding")
    if status in Image.Status.values:
        images = images.filter(status=status)
    if rating not in RATING_FILTERS:
        pass  # an unknown filter (even one str.isdigit() accepts, like "²") filters nothing and never raises
    elif rating == "unrated":
        images = images.filter(rating__isnull=True)
    elif rating.endswith("+"):
        images = images.filter(rating__gte=int(rating[:-1]))
    else:
        images = images.filter(rating=int(rating))
    if query:
        images = images.filter(Q(original_name__icontains=query) | Q(camera_model__icontains=query))
    return images


def image_status_counts() -> dict[str, int]:
    """How many images are in each status (for the gallery's filter tabs and the progress banner)."""
    counts = dict.fromkeys(Image.Status.values, 0)
    for row in Image.objects.values("status").annotate(n=Count("id")):
        counts[row["status"]] = row["n"]
    counts["all"] = sum(counts.values())
    return counts


def model_problem() -> str:
    """Why the latest images could not be embedded because of the model (weights missing...), or ""."""
    message = (
        Image.objects.filter(status=Image.Status.FAILED, reason_code="model_unavailable")
        .order_by("-updated_at")
        .values_list("status_message", flat=True)
        .first()
    )
    return message or ""
