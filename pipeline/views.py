"""Web pages that start the pipeline (upload, accept anyway / retry, delete to the trash, search by upload,
which may add the query to the library), and the image page, which shows what duplicates found about it."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from core.access import staff_required
from core.api.throttles import SearchRateThrottle, throttled_message, upload_refusal, web_form_throttle_wait
from core.middleware import retry_after_lost_connection
from core.request_limits import shows_request_limit_errors
from gallery import labels, renditions, services
from gallery.forms import UploadForm
from gallery.image_file import UploadRejected
from gallery.models import Image
from gallery.originals import original_location
from pipeline import services as pipeline_services
from search import selectors
from search.forms import SearchByUploadForm


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
    """The image page: gallery's template, with what duplicates found about the image (its pairs, its stack's
    group) filled into its blocks by pipeline/image_detail.html, a layer allowed to know duplicates."""
    images = Image.objects.visible_to(request.user).select_related("uploaded_by", "stack_cover", "copy_of")
    image = get_object_or_404(images, pk=pk)
    stacked = image.stacked.filter(trashed_at__isnull=True).defer("embedding").order_by("id")
    # The zoomed view shows the original itself where every browser can; other formats get a large WebP.
    return render(
        request,
        "pipeline/image_detail.html",
        {
            "image": image,
            "stacked": stacked,
            "browser_formats": ("JPEG", "PNG", "WEBP"),
            "original": original_location(image),
            "source_grace_days": settings.IMGSIM_SOURCE_MISSING_GRACE_DAYS,
        },
    )


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


@shows_request_limit_errors
@login_required
@require_http_methods(["GET", "POST"])
def search_by_upload(request: HttpRequest) -> HttpResponse:
    limit_error = getattr(request, "request_limit_error", None)
    if limit_error is not None:  # the body was refused while streaming: show it as the form's error
        return render(
            request,
            "search/search.html",
            {"form": SearchByUploadForm.refused(limit_error.message), "status": selectors.index_status()},
            status=limit_error.status,
        )
    form = SearchByUploadForm(request.POST or None, request.FILES or None)
    context: dict[str, object] = {"form": form, "status": selectors.index_status()}
    status = 200
    wait = web_form_throttle_wait(request, SearchRateThrottle()) if request.method == "POST" else None
    if wait is not None:
        context["form"] = SearchByUploadForm.refused(throttled_message("searches", wait))
        response = render(request, "search/search.html", context, status=429)
        response["Retry-After"] = str(wait)
        return response
    if request.method == "POST":
        if form.is_valid():
            refusal = upload_refusal(request, files=1) if form.cleaned_data["add_to_library"] else None
            if refusal is not None:  # the query would be stored: over the upload rate, the whole request is refused
                context["form"] = SearchByUploadForm.refused(str(refusal.detail))
                response = render(request, "search/search.html", context, status=429)
                response["Retry-After"] = str(refusal.wait)
                return response
            upload = form.cleaned_data["file"]
            k = form.cleaned_data["k"] or 10
            rating = form.cleaned_data["rating"]
            try:
                context["result"] = selectors.similar_to_upload(upload=upload, k=k, rating=rating)
                upload.seek(0)  # similar_to_upload read it within the size cap: show it beside its results
                context["query_thumbnail"] = renditions.query_thumbnail_data_url(data=upload.read())
                context["query_name"] = upload.name
                context["query_rating_source"] = "chosen" if rating is not None else "exif"
                if form.cleaned_data["add_to_library"]:
                    context["added"] = pipeline_services.image_ingest_upload(
                        upload=upload, name=upload.name, uploaded_by=request.user
                    )
            except UploadRejected as error:
                form.add_error("file", error.message)
                status = error.status
        else:
            status = 400
    return render(request, "search/search.html", context, status=status)
