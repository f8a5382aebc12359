"""REST API for search: by library image, index status and rebuild, worker health (search by upload, which may
add the query to the library, is the pipeline's: pipeline.api.views)."""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.errors import error_response
from core.api.throttles import SearchRateThrottle
from gallery.models import Image
from search import selectors
from search.api.serializers import (
    IndexStatusSerializer,
    SearchResultSerializer,
    SimilarQuerySerializer,
    WorkerHealthSerializer,
)
from search.result_labels import MATCHING
from search.services.index_lifecycle import index_rebuild_schedule
from worker.health import worker_health


def result_payload(result: selectors.SearchResult, request: Request) -> dict[str, Any]:
    return SearchResultSerializer(
        {
            "matched": result.matched,
            "fallback": result.fallback,
            "summary": result.summary,
            "threshold": result.threshold,
            "labels": result.lines.legend(),
            "query_rating": result.query_rating,
            "k": result.k,
            "index_version": result.index_version,
            "searched": result.searched,
            "results": [
                {
                    "similarity": item.similarity,
                    "score": item.score,
                    "label": item.label,
                    "match": item.label in MATCHING and not result.fallback,
                    "image": item.image,
                }
                for item in result.results
            ],
        },
        context={"request": request},
    ).data


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
