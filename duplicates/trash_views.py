"""The Trash page (staff): images moved there by review, restored or purged for good from here."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from core.access import staff_required
from core.query_params import query_int
from duplicates.trash import images_purge, images_restore
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
def trash_purge(request: HttpRequest, pk: int) -> HttpResponse:
    image = get_object_or_404(gallery_selectors.trash_list(), pk=pk)
    name = str(image)
    images_purge(images=[image])
    messages.success(request, f"Deleted {name} for good.")
    return redirect("duplicates:trash")
