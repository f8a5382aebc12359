"""The Trash page (staff): images moved there by review or the image page's Delete, restored (one or a
selection) or purged for good (one, or the whole trash after a confirmation) from here."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_http_methods, require_POST

from core.access import staff_required
from core.query_params import query_int, whole_number
from duplicates.services.trash import images_purge, images_restore, trash_empty_schedule
from gallery import selectors as gallery_selectors

TRASH_PAGE_SIZE = 48


@staff_required
def trash(request: HttpRequest) -> HttpResponse:
    images = gallery_selectors.trash_list()
    page = Paginator(images, TRASH_PAGE_SIZE).get_page(query_int(request.GET, "page", default=1, minimum=1))
    return render(
        request,
        "duplicates/trash.html",
        {"page": page, "days": settings.IMGSIM_TRASH_DAYS, "query_string": "", "here": request.get_full_path()},
    )


@staff_required
@require_POST
def trash_restore(request: HttpRequest, pk: int) -> HttpResponse:
    image = get_object_or_404(gallery_selectors.trash_list(), pk=pk)
    images_restore(images=[image], reopen=True)
    messages.success(request, f"Restored {image}: back in the library, search and its duplicate groups.")
    return redirect("duplicates:trash")


@staff_required
@require_POST
def trash_restore_selected(request: HttpRequest) -> HttpResponse:
    """Restore the images ticked on the Trash page (ids no longer in the trash are left out)."""
    ids = [whole_number(value, name="images", minimum=1) for value in request.POST.getlist("images")]
    images = list(gallery_selectors.trash_list().filter(pk__in=ids)) if ids else []
    if not images:
        messages.error(request, "Tick the images to restore first.")
    else:
        images_restore(images=images, reopen=True)
        count = len(images)
        messages.success(
            request, f"Restored {count} image{'s' if count != 1 else ''}: back in the library, search and their groups."
        )
    page = query_int(request.POST, "page", minimum=1)
    back = reverse("duplicates:trash")
    return redirect(f"{back}?page={page}" if page else back)


@staff_required
@require_POST
def trash_purge(request: HttpRequest, pk: int) -> HttpResponse:
    image = get_object_or_404(gallery_selectors.trash_list(), pk=pk)
    name = str(image)
    images_purge(images=[image])
    messages.success(request, f"Deleted {name} for good.")
    return redirect("duplicates:trash")


@staff_required
@require_http_methods(["GET", "POST"])
def trash_empty_view(request: HttpRequest) -> HttpResponse:
    """GET: what emptying would delete, to confirm. POST (from that page): queue deleting them for good, rows and
    files; only the images trashed by the time the confirmation was shown (`until`), never one trashed since."""
    if request.method == "GET":
        contents = gallery_selectors.trash_contents()
        return render(
            request, "duplicates/trash_empty.html", {"contents": contents, "days": settings.IMGSIM_TRASH_DAYS}
        )
    try:
        until = parse_datetime(request.POST.get("until", ""))
    except ValueError:  # the shape of a date, but not a real one
        until = None
    if until is None or timezone.is_naive(until):
        messages.error(request, "Confirm emptying the trash on this page first.")
        return redirect("duplicates:trash-empty")
    queued = trash_empty_schedule(trashed_until=until)
    messages.success(
        request,
        f"Emptying the trash: {queued.count} image{'s' if queued.count != 1 else ''} "
        f"({filesizeformat(queued.bytes)}) are being deleted for good by the background worker.",
    )
    return redirect("duplicates:trash")
