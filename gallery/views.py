"""Web pages of the image library: the gallery grid and the image files (originals, thumbnails, previews)."""

from __future__ import annotations

from collections.abc import Callable
from typing import IO

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils.http import content_disposition_header
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.decorators import api_view

from core.query_params import query_int
from gallery import renditions, selectors
from gallery.forms import GalleryFilterForm
from gallery.models import Image
from gallery.originals import OriginalUnavailable, original_open

GALLERY_PAGE_SIZE = 48


@login_required
def image_list(request: HttpRequest) -> HttpResponse:
    filters = GalleryFilterForm(request.GET or None)
    cleaned = filters.cleaned_data if filters.is_valid() else {}
    rating, name = cleaned.get("rating", ""), cleaned.get("q", "")
    images = selectors.images_with_folder(
        selectors.image_list(
            status=cleaned.get("status", ""), rating=rating, query=name, order=cleaned.get("sort") or "added"
        )
    )
    page = Paginator(images, GALLERY_PAGE_SIZE).get_page(query_int(request.GET, "page", default=1, minimum=1))
    query = request.GET.copy()
    query.pop("page", None)
    # The status tabs keep the other filters (and count within them); "All" tab links drop only the status.
    others = query.copy()
    others.pop("status", None)
    library = selectors.image_status_counts()
    narrowed = bool(rating or name)
    return render(
        request,
        "gallery/image_list.html",
        {
            "page": page,
            "filters": filters,
            "counts": selectors.image_status_counts(rating=rating, query=name) if narrowed else library,
            "library": library,
            "narrowed": narrowed,
            "model_problem": selectors.model_problem(),
            "query_string": query.urlencode(),
            "tab_query": others.urlencode(),
            "active_status": cleaned.get("status", ""),
            "eager_thumbnails": 12,
        },
    )


# Stored files are served as inert data: the declared type is the only one a browser may use, and a
# document that somehow got in (an HTML or SVG payload) gets no script, no plugin and no same-origin access.
SERVED_FILE_CSP = "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'"


def _stream(open_file: Callable[[], IO[bytes]], content_type: str) -> FileResponse:
    """A stored file (media or a library source, the same headers for both) as inert data."""
    try:
        handle = open_file()
    except OriginalUnavailable as error:
        raise Http404(error.message) from None
    except (OSError, ValueError):
        raise Http404("The stored file is missing.") from None
    response = FileResponse(handle, content_type=content_type)
    response["Cache-Control"] = "private, max-age=86400"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = SERVED_FILE_CSP
    return response


@extend_schema(responses={(200, "image/webp"): OpenApiTypes.BINARY}, tags=["images"])
@api_view(["GET"])
def image_thumbnail(request: HttpRequest, pk: int) -> FileResponse:
    """Thumbnails for signed-in users and API clients (session or token); always WebP we made ourselves."""
    image = get_object_or_404(Image.objects.visible_to(request.user).only("thumbnail"), pk=pk)
    if not image.thumbnail:
        raise Http404("No thumbnail.")
    return _stream(lambda: image.thumbnail.open("rb"), "image/webp")


@login_required
def image_preview(request: HttpRequest, pk: int, size: str) -> HttpResponse:
    """The image page's large preview ("large") and its zoomed view ("full"): WebP, any stored format."""
    if size not in renditions.PREVIEW_SIZES:
        raise Http404("Unknown preview size.")
    image = get_object_or_404(Image.objects.visible_to(request.user).only("file", "thumbnail"), pk=pk)
    try:
        with original_open(image) as handle:
            data = renditions.image_preview_webp(handle=handle, size=renditions.PREVIEW_SIZES[size])
    except OriginalUnavailable as error:
        # A folder that is offline (or a file gone from it) still shows its rendition: the thumbnail.
        if not image.thumbnail:
            raise Http404(error.message) from None
        response = _stream(lambda: image.thumbnail.open("rb"), "image/webp")
        response["X-Imgsim-Original"] = error.reason
        response["Cache-Control"] = "private, no-cache"  # the real preview once the folder is back
        return response
    except (OSError, ValueError):
        raise Http404("The stored file is missing or unreadable.") from None
    response = HttpResponse(data, content_type="image/webp")
    response["Cache-Control"] = "private, max-age=86400"
    return response


@extend_schema(responses={(200, "image/*"): OpenApiTypes.BINARY}, tags=["images"])
@api_view(["GET"])
def image_file(request: HttpRequest, pk: int) -> FileResponse:
    """The original as an attachment, typed from the format it decoded as (a stored name with a
    hostile extension is served safely too: neither name nor bytes decide the type)."""
    images = Image.objects.visible_to(request.user).only("file", "format", "original_name")
    image = get_object_or_404(images, pk=pk)
    response = _stream(lambda: original_open(image), image.content_type)
    # Django quotes and encodes the user's file name (quotes, newlines, non-ASCII) for the header.
    response["Content-Disposition"] = content_disposition_header(as_attachment=True, filename=image.download_name)
    return response
