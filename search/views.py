"""Search pages: "find similar" for a library image (search by upload, which may add the query to the library, is
the pipeline's: pipeline.views)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from core.query_params import query_int
from gallery.models import Image
from search import selectors
from search.forms import SimilarForm


@login_required
def similar_to_image(request: HttpRequest, pk: int) -> HttpResponse:
    image = get_object_or_404(Image.objects.visible_to(request.user), pk=pk)
    k = query_int(request.GET, "k", default=10, minimum=1, maximum=settings.IMGSIM_SEARCH_MAX_K)
    context: dict[str, object] = {
        "image": image,
        "form": SimilarForm(initial={"k": k}),
        "k": k,
    }
    if image.vector is None or image.status == Image.Status.REJECTED:  # a rejected image's vector is for its copy check
        context["not_ready"] = True
        return render(request, "search/similar.html", context, status=409)
    context["result"] = selectors.similar_to_image(image=image, k=k)
    return render(request, "search/similar.html", context)
