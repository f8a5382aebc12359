"""Search pages: by an uploaded query image, and "find similar" for a library image."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_http_methods

from core.api.throttles import SearchRateThrottle, throttled_message, upload_refusal, web_form_throttle_wait
from core.query_params import query_int
from core.request_limits import shows_request_limit_errors
from gallery import renditions
from gallery.image_file import UploadRejected
from gallery.models import Image
from pipeline.services import image_ingest_upload
from search import selectors
from search.forms import SearchByUploadForm, SimilarForm
from search.thresholds import thresholds_for


def _near_duplicate_threshold() -> float:
    """Results at or above it get the "near-duplicate" badge; the (lower) match threshold gets none."""
    return thresholds_for(settings.IMGSIM_MODEL).near_duplicate


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
    context: dict[str, object] = {
        "form": form,
        "status": selectors.index_status(),
        "near_duplicate_threshold": _near_duplicate_threshold(),
    }
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
                    context["added"] = image_ingest_upload(upload=upload, name=upload.name, uploaded_by=request.user)
            except UploadRejected as error:
                form.add_error("file", error.message)
                status = error.status
        else:
            status = 400
    return render(request, "search/search.html", context, status=status)


@login_required
def similar_to_image(request: HttpRequest, pk: int) -> HttpResponse:
    image = get_object_or_404(Image.objects.visible_to(request.user), pk=pk)
    k = query_int(request.GET, "k", default=10, minimum=1, maximum=settings.IMGSIM_SEARCH_MAX_K)
    context: dict[str, object] = {
        "image": image,
        "form": SimilarForm(initial={"k": k}),
        "near_duplicate_threshold": _near_duplicate_threshold(),
        "k": k,
    }
    if image.vector is None or image.status == Image.Status.REJECTED:  # a rejected image's vector is for its copy check
        context["not_ready"] = True
        return render(request, "search/similar.html", context, status=409)
    context["result"] = selectors.similar_to_image(image=image, k=k)
    return render(request, "search/similar.html", context)
