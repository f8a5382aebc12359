"""REST API entry points that start the pipeline: upload (one file or several), delete (to the trash), retry,
and search by upload, which may add the query to the library."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, status
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.throttles import SearchRateThrottle, upload_refusal
from core.middleware import retry_after_lost_connection
from gallery import services
from gallery.api import views as gallery_api_views
from gallery.api.serializers import (
    ImageSerializer,
    ImageUploadSerializer,
    LibraryImageSerializer,
    UploadOutcomeSerializer,
)
from gallery.models import Image
from pipeline.services import image_ingest_upload, image_retry, image_trash
from search import selectors
from search.api.serializers import SearchByUploadSerializer, SearchResultSerializer
from search.api.views import result_payload


def outcome_payload(outcome: services.UploadOutcome, request: Request) -> dict[str, Any]:
    image = outcome.result.image if outcome.result is not None else None
    in_trash = outcome.outcome == "exact_duplicate_in_trash"
    return {
        "name": outcome.name,
        "outcome": outcome.outcome,
        "http_status": outcome.http_status,
        "image": ImageSerializer(image, context={"request": request}).data if image is not None else None,
        "in_trash": in_trash,
        # Restoring is staff work (the Trash page and API): others are told a staff member can restore it.
        "restore_url": (
            request.build_absolute_uri(reverse("trash-restore", args=[image.pk]))
            if in_trash and image is not None and request.user.is_staff
            else None
        ),
        "error": {"code": outcome.error.code, "message": outcome.error.message} if outcome.error else None,
    }


# An upload interrupted by a dropped database connection is run again: identical bytes find the stored image.
@retry_after_lost_connection("POST")
class ImageViewSet(mixins.DestroyModelMixin, gallery_api_views.ImageViewSet):
    parser_classes = [MultiPartParser, FormParser]

    def get_permissions(self) -> list[permissions.BasePermission]:
        if self.action in ("destroy", "retry"):
            return [permissions.IsAdminUser()]
        return super().get_permissions()

    @extend_schema(
        request={"multipart/form-data": ImageUploadSerializer},
        responses={200: UploadOutcomeSerializer, 201: UploadOutcomeSerializer, 207: UploadOutcomeSerializer(many=True)},
        description=(
            "Upload one image as `file` (201 new image, queued or rejected for quality with a reason code and "
            "score; 200 when the same bytes are already stored, naming that image: `exact_duplicate`, or "
            "`exact_duplicate_in_trash` with `in_trash: true` when that image is in the trash (not in the library "
            "until restored; staff get its `restore_url`, POST to restore it); 4xx for a file that is not a "
            "usable image, nothing stored) or several as `files` (207 with one outcome each). Each file "
            "counts against the user's upload rate; a request with more files than are left is refused whole "
            "(429 with Retry-After, `left` and `retry_after_seconds`; nothing stored)."
        ),
    )
    def create(self, request: Request) -> Response:
        form = ImageUploadSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        files = form.validated_data.get("files")
        refusal = upload_refusal(request, files=len(files) if files else 1)
        if refusal is not None:
            raise refusal
        if files:
            outcomes = [
                image_ingest_upload(upload=upload, name=upload.name, uploaded_by=request.user) for upload in files
            ]
            return Response(
                {"results": [outcome_payload(outcome, request) for outcome in outcomes]},
                status=status.HTTP_207_MULTI_STATUS,
            )
        upload = form.validated_data["file"]
        outcome = image_ingest_upload(upload=upload, name=upload.name, uploaded_by=request.user)
        payload = outcome_payload(outcome, request)
        if outcome.error is not None:
            return Response({"error": payload["error"], "name": outcome.name}, status=outcome.http_status)
        return Response(payload, status=outcome.http_status)

    @extend_schema(
        description=(
            "Move an image to the trash (staff): out of the library, search and duplicate review, its file kept. "
            "Restore it with `POST /api/trash/{id}/restore/`; it is deleted for good only from the trash "
            "(`POST /api/trash/{id}/purge/`, emptying the trash, or after IMGSIM_TRASH_DAYS)."
        )
    )
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().destroy(request, *args, **kwargs)

    def perform_destroy(self, instance: Image) -> None:
        image_trash(image=instance, user=self.request.user)

    @extend_schema(request=None, responses={200: LibraryImageSerializer})
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk: str | None = None) -> Response:
        """Queue a rejected or failed image for embedding again (staff)."""
        image = image_retry(image=self.get_object())
        return Response(LibraryImageSerializer(image, context={"request": request}).data)


class SearchByUploadView(APIView):
    parser_classes = [MultiPartParser, FormParser]
    throttle_classes = [SearchRateThrottle]

    @extend_schema(
        request={"multipart/form-data": SearchByUploadSerializer},
        responses={200: SearchResultSerializer},
        description=(
            "The k most similar library images to an uploaded photo (not stored unless add_to_library, which "
            "spends one of the user's uploads: with none left, the whole request is refused with 429). "
            "Each result has a `label` (same_photo, same_scene, looks_alike, weak; `labels` gives the lines in "
            "force) and `summary` says what the results mean. When no result is the same photo or scene, `matched` "
            "is false and, if the query has a rating (its EXIF or the `rating` field), the results are the rating "
            "fallback (`fallback: true`)."
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
