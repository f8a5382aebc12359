"""REST API for search: by upload, by library image, index status and rebuild."""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.errors import error_response
from core.api.throttles import SearchRateThrottle, upload_refusal
from gallery.api.views import outcome_payload
from gallery.models import Image
from pipeline.services import image_ingest_upload
from search import selectors
from search.api.serializers import (
    IndexStatusSerializer,
    SearchByUploadSerializer,
    SearchResultSerializer,
    SimilarQuerySerializer,
    WorkerHealthSerializer,
)
from search.services.index_lifecycle import index_rebuild_schedule
from worker.health import worker_health


def result_payload(result: selectors.SearchResult, request: Request) -> dict[str, Any]:
    return SearchResultSerializer(
        {
            "matched": result.matched,
            "fallback": result.fallback,
            "threshold": result.threshold,
            "query_rating": result.query_rating,
            "k": result.k,
            "index_version": result.index_version,
            "searched": result.searched,
            "results": [
                {
                    "similarity": item.similarity,
                    "score": item.score,
                    "match": item.similarity >= result.threshold and not result.fallback,
                    "image": item.image,
                }
                for item in result.results
            ],
        },
        context={"request": request},
    ).data


class SearchByUploadView(APIView):
    parser_classes = [MultiPartParser, FormParser]
    throttle_classes = [SearchRateThrottle]

    @extend_schema(
        request={"multipart/form-data": SearchByUploadSerializer},
        responses={200: SearchResultSerializer},
        description=(
            "The k most similar library images to an uploaded photo (not stored unless add_to_library, which "
            "spends one of the user's uploads: with none left, the whole request is refused with 429). "
            "When no result reaches the match threshold, `matched` is false and, if the query has a rating "
            "(its EXIF or the `rating` field), the results are the rating fallback (`fallback: true`)."
        ),
    )
    def post(self, request: Request) -> Response:
        form = SearchByUploadSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        refusal = upload_refusal(request, files=1) if form.validated_data["add_to_library"] else None
        if refusal is not None:  # the query would be stored: over the upload rate, the whole request is refused
            raise refusal
        upload = form.validated_data["file"]
        result = selectors.similar_to_upload(
            upload=upload, k=form.validated_data["k"], rating=form.validated_data.get("rating")
        )
        payload = result_payload(result, request)
        if form.validated_data["add_to_library"]:
            outcome = image_ingest_upload(upload=upload, name=upload.name, uploaded_by=request.user)
            payload["added"] = outcome_payload(outcome, request)
        return Response(payload)


class SimilarToImageView(APIView):
    throttle_classes = [SearchRateThrottle]

    @extend_schema(parameters=[SimilarQuerySerializer], responses={200: SearchResultSerializer})
    def get(self, request: Request, pk: int) -> Response:
        """The k library images most similar to image `pk` (itself excluded)."""
        query = SimilarQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        image = get_object_or_404(Image.objects.visible_to(request.user), pk=pk)
        if image.vector is None or image.status == Image.Status.REJECTED:  # vector only for its copy check
            return error_response(
                "not_embedded",
                f"Image {pk} has no embedding yet (status: {image.status}).",
                http_status=status.HTTP_409_CONFLICT,
            )
        result = selectors.similar_to_image(
            image=image, k=query.validated_data["k"], rating=query.validated_data.get("rating")
        )
        return Response(result_payload(result, request))


class IndexStatusView(APIView):
    @extend_schema(responses={200: IndexStatusSerializer})
    def get(self, request: Request) -> Response:
        """Model, version, size and pending vectors of the served index, and the last build."""
        return Response(IndexStatusSerializer(selectors.index_status()).data)


class IndexRebuildView(APIView):
    permission_classes = [permissions.IsAdminUser]

    @extend_schema(request=None, responses={202: IndexStatusSerializer})
    def post(self, request: Request) -> Response:
        """Queue an index rebuild (staff). 409 while one is running."""
        if not Image.objects.searchable().exists():
            return error_response("nothing_to_index", "There are no embedded images to index yet.", http_status=400)
        if not index_rebuild_schedule(requested_by=request.user.get_username()):
            return error_response("rebuild_running", "An index rebuild is already running.", http_status=409)
        return Response(IndexStatusSerializer(selectors.index_status()).data, status=status.HTTP_202_ACCEPTED)


class WorkerHealthView(APIView):
    @extend_schema(responses={200: WorkerHealthSerializer})
    def get(self, request: Request) -> Response:
        """Is a background worker running and taking work? `problem` is true when uploads are not being
        embedded (no worker seen, or queued images not picked up), with what to do; staff also see each
        running cluster and the watchdog's recent restarts."""
        health = worker_health()
        payload = {
            "status": health.status,
            "problem": health.problem,
            "summary": health.summary,
            "action": health.action if request.user.is_staff else health.user_action,
            "checked_at": health.checked_at,
            "last_seen_at": health.last_seen_at,
            "queued_images": health.queued_images,
            "oldest_waiting_at": health.oldest_waiting_at,
            "last_embedded_at": health.last_embedded_at,
        }
        if request.user.is_staff:
            payload["workers"] = health.workers
            payload["recent_restarts"] = health.recent_restarts
        return Response(WorkerHealthSerializer(payload).data)
