"""Web pages of the image library: gallery, upload, image detail, and the image files themselves."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_http_methods, require_POST
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.decorators import api_view

from core.access import staff_required
from core.api.throttles import upload_refusal
from core.middleware import retry_after_lost_connection
from core.query_params import query_int
from core.request_limits import shows_request_limit_errors
from gallery import labels, renditions, selectors, services
from gallery.forms import GalleryFilterForm, UploadForm
from gallery.models import Image
from pipeline import services as pipeline_services

GALLERY_PAGE_SIZE = 48


@login_required
def image_list(request: HttpRequest) -> HttpResponse:
    filters = GalleryFilterForm(request.GET or None)
    cleaned = filters.cleaned_data if filters.is_valid() else {}
    rating, name = cleaned.get("rating", ""), cleaned.get("q", "")
    images = selectors.image_list(
        status=cleaned.get("status", ""), rating=rating, query=name, order=cleaned.get("sort") or "added"
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


@retry_after_lost_connection("POST")  # identical bytes find the image a first, interrupted run stored
@shows_request_limit_errors
@login_required
@require_http_methods(["GET", "POST"])
def upload(request: HttpRequest) -> HttpResponse:
    """The upload page; the POST is the no-JavaScript fallback (the page's script uses the API per file)."""
    outcomes: list[services.UploadOutcome] = []
    form = UploadForm()
    limit_error = getattr(request, "request_limit_error", None)
    if limit_error is not None:  # the body was refused while streaming: nothing was read or stored
        return _upload_page(request, UploadForm.refused(limit_error.message), [], status=limit_error.status)
    if request.method == "POST":
        form = UploadForm(request.POST, request.FILES)
        if form.is_valid():
            refusal = upload_refusal(request, files=len(form.cleaned_data["files"]))
            if refusal is not None:
                response = _upload_page(request, UploadForm.refused(str(refusal.detail)), [], status=429)
                response["Retry-After"] = str(refusal.wait)
                return response
            outcomes = [
                pipeline_services.image_ingest_upload(upload=upload, name=upload.name, uploaded_by=request.user)
                for upload in form.cleaned_data["files"]
            ]
    status = 200
    if outcomes and all(outcome.error is not None for outcome in outcomes):
        status = max(outcome.http_status for outcome in outcomes)
    elif request.method == "POST" and not form.is_valid():
        status = 400
    return _upload_page(request, form, outcomes, status=status)


def _upload_page(
    request: HttpRequest, form: UploadForm, outcomes: list[services.UploadOutcome], *, status: int
) -> HttpResponse:
    return render(
        request,
        "gallery/upload.html",
        {
            "form": form,
            "outcomes": outcomes,
            "max_upload_mb": settings.IMGSIM_MAX_UPLOAD_BYTES // 1_048_576,
            "max_files": settings.IMGSIM_MAX_FILES_PER_REQUEST,
            "upload_error_messages": labels.UPLOAD_ERROR_MESSAGES,
            "reason_labels": labels.REASON_LABELS,
        },
        status=status,
    )


@login_required
def image_detail(request: HttpRequest, pk: int) -> HttpResponse:
    images = Image.objects.visible_to(request.user).select_related("uploaded_by", "stack_cover", "copy_of")
    image = get_object_or_404(images, pk=pk)
    stacked = image.stacked.filter(trashed_at__isnull=True).defer("embedding").order_by("id")
    # The zoomed view shows the original itself where every browser can; other formats get a large WebP.
    return render(
        request,
        "gallery/image_detail.html",
        {"image": image, "stacked": stacked, "browser_formats": ("JPEG", "PNG", "WEBP")},
    )


# Stored files are served as inert data: the declared type is the only one a browser may use, and a
# document that somehow got in (an HTML or SVG payload) gets no script, no plugin and no same-origin access.
SERVED_FILE_CSP = "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'"


def _stream(field_file: object, content_type: str) -> FileResponse:
    try:
        handle = field_file.open("rb")  # type: ignore[attr-defined]
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
    return _stream(image.thumbnail, "image/webp")


@login_required
def image_preview(request: HttpRequest, pk: int, size: str) -> HttpResponse:
    """The image page's large preview ("large") and its zoomed view ("full"): WebP, any stored format."""
    if size not in renditions.PREVIEW_SIZES:
        raise Http404("Unknown preview size.")
    image = get_object_or_404(Image.objects.visible_to(request.user).only("file"), pk=pk)
    try:
        with image.file.open("rb") as handle:
            data = renditions.image_preview_webp(handle=handle, size=renditions.PREVIEW_SIZES[size])
    except (OSError, ValueError):
        raise Http404("The stored file is missing or unreadable.") from None
    response = HttpResponse(data, content_type="image/webp")
    response["Cache-Control"] = "private, max-age=86400"
    return response


@extend_schema(responses={(200, "image/*"): OpenApiTypes.BINARY}, tags=["images"])
@api_view(["GET"])
def image_file(request: HttpRequest, pk: int) -> FileResponse:
    """The original as an attachment, typed from the format it decoded as (rows stored with a hostile
    extension before names were fixed are served safely too: neither name nor bytes decide the type)."""
    images = Image.objects.visible_to(request.user).only("file", "format", "original_name")
    image = get_object_or_404(images, pk=pk)
    response = _stream(image.file, image.content_type)
    # Django quotes and encodes the user's file name (quotes, newlines, non-ASCII) for the header.
    response["Content-Disposition"] = content_disposition_header(as_attachment=True, filename=image.download_name)
    return response


@staff_required
@require_POST
def image_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """The image page's Delete: to the trash like every delete in the web UI (purged only from the trash)."""
    image = get_object_or_404(Image, pk=pk)
    pipeline_services.image_trash(image=image, user=request.user)
    days = settings.IMGSIM_TRASH_DAYS
    within = f"{days} day{'s' if days != 1 else ''}"
    messages.success(request, f"Moved {image} to the trash: restore it from the Trash page within {within}.")
    return redirect("gallery:image-list")


@staff_required
@require_POST
def image_retry(request: HttpRequest, pk: int) -> HttpResponse:
    image = pipeline_services.image_retry(image=get_object_or_404(Image, pk=pk))
    messages.success(request, f"{image} is queued for embedding.")
    return redirect("gallery:image-detail", pk=image.pk)
