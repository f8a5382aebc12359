"""Reads of the image library, shared by the web views, the API and the admin."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Exists, F, Max, OrderBy, OuterRef, Q, Subquery, Sum

from gallery.models import Image, ImageQuerySet, LibrarySource, SourceFile

RATING_FILTERS = {"unrated", "0", "1", "2", "3", "4", "5", "1+", "2+", "3+", "4+"}
# Gallery orderings: (label, ORDER BY). Images without a date taken or a rating go last either way, and the
# id breaks ties so that pages never overlap.
IMAGE_ORDERINGS: dict[str, tuple[str, list[OrderBy]]] = {
    "added": ("Newest added", [F("created_at").desc(), F("id").desc()]),
    "added_asc": ("Oldest added", [F("created_at").asc(), F("id").asc()]),
    "taken": ("Newest taken", [F("taken_at").desc(nulls_last=True), F("id").desc()]),
    "taken_asc": ("Oldest taken", [F("taken_at").asc(nulls_last=True), F("id").asc()]),
    "rating": ("Highest rated", [F("rating").desc(nulls_last=True), F("created_at").desc(), F("id").desc()]),
    "rating_asc": ("Lowest rated", [F("rating").asc(nulls_last=True), F("created_at").desc(), F("id").desc()]),
}


def image_list(
    *, status: str = "", rating: str = "", query: str = "", order: str = "added", hide_stacked: bool = True
) -> ImageQuerySet:
    """Images filtered by status, rating ("3", "3+" or "unrated") and a name search, in a gallery order (the
    trash left out), each counting the copies stacked under it; with hide_stacked (the grid), a stack shows
    as its cover alone."""
    images = Image.objects.in_library()
    if hide_stacked:
        images = images.filter(stack_cover__isnull=True)
    images = _filtered(
        images.select_related("uploaded_by")
        .defer("embedding")
        .annotate(stack_count=Count("stacked", filter=Q(stacked__trashed_at__isnull=True))),
        rating=rating,
        query=query,
    )
    if status in Image.Status.values:
        images = images.filter(status=status)
    _, ordering = IMAGE_ORDERINGS.get(order, IMAGE_ORDERINGS["added"])
    return images.order_by(*ordering)


def images_with_folder(images: ImageQuerySet) -> ImageQuerySet:
    """Each image's library source, for the grid's folder badge: `source_name`, the source of a file it is read
    from (None for an upload), and `source_offline`, whether that folder is offline now (the image is shown from
    its renditions). Two subqueries per row of a page, never a query per card."""
    files = SourceFile.objects.filter(
        image=OuterRef("pk"), state__in=[SourceFile.State.PRESENT, SourceFile.State.QUARANTINED]
    )
    return images.annotate(
        source_name=Subquery(files.order_by("id").values("source__name")[:1]),
        source_offline=Exists(files.filter(source__state=LibrarySource.State.OFFLINE)),
    )


def _filtered(images: ImageQuerySet, *, rating: str, query: str) -> ImageQuerySet:
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


def image_status_counts(*, rating: str = "", query: str = "") -> dict[str, int]:
    """How many images are in each status among those the rating and name filters keep (the gallery's tabs)."""
    counts = dict.fromkeys(Image.Status.values, 0)
    rows = _filtered(Image.objects.in_library(), rating=rating, query=query).order_by().values("status")
    for row in rows.annotate(n=Count("id")):
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


def trash_list() -> ImageQuerySet:
    """Images in the trash, most recently trashed first."""
    return Image.objects.trashed().select_related("trashed_by").defer("embedding").order_by("-trashed_at", "-id")


@dataclass(frozen=True)
class TrashContents:
    """Images in the trash (or purged from it): how many, their bytes, and when the latest one was trashed."""

    count: int
    bytes: int
    newest: datetime | None


def trash_contents(*, trashed_until: datetime | None = None) -> TrashContents:
    """What emptying the trash would purge now (of the images trashed up to `trashed_until`); its confirmation
    purges nothing trashed after `newest`."""
    images = Image.objects.trashed()
    if trashed_until is not None:
        images = images.filter(trashed_at__lte=trashed_until)
    totals = images.aggregate(count=Count("id"), bytes=Sum("file_size"), newest=Max("trashed_at"))
    return TrashContents(count=totals["count"], bytes=totals["bytes"] or 0, newest=totals["newest"])
