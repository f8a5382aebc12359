"""REST API for pair review: list and inspect pairs, resolve, undo, the pair decision log, check an upload."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle

from core.api.throttles import SearchRateThrottle
from duplicates.api.pair_serializers import (
    CheckUploadSerializer,
    DecisionListQuerySerializer,
    DuplicateDecisionSerializer,
    DuplicatePairSerializer,
    PairListQuerySerializer,
    ResolveResultSerializer,
    ResolveSerializer,
    UploadCheckSerializer,
)
from duplicates.models import DuplicateDecision, DuplicatePair
from duplicates.selectors import detection as detection_selectors
from duplicates.selectors import pairs as pair_selectors
from duplicates.services import pair_review
from gallery import services as gallery_services


def resolve_payload(decision: DuplicateDecision, request: Request) -> dict[str, Any]:
    pair = (
        pair_selectors.duplicate_pair_list(status="all").filter(pk=decision.pair_id).first()
        if decision.pair_id
        else None
    )
    return ResolveResultSerializer({"decision": decision, "pair": pair}, context={"request": request}).data


class DuplicatePairViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Pairs of look-alike images: `near_duplicate` (the same photo) and `similar` (same scene, bursts)."""

    serializer_class = DuplicatePairSerializer
    lookup_value_regex = "[0-9]{1,18}"
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    def get_queryset(self) -> QuerySet[DuplicatePair]:
        if self.action != "list":
            return pair_selectors.duplicate_pair_list(status="all")
        filters = PairListQuerySerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        params = filters.validated_data
        return pair_selectors.duplicate_pair_list(
            status=params["status"], kind=params.get("kind") or params.get("band") or "", image_id=params.get("image")
        )

    def get_permissions(self) -> list[permissions.BasePermission]:
        """Review is staff work, as on the web pages (pairs and the log name reviewers and deleted files).

        Check-before-upload stays open to every signed-in user: it answers about their own file and shows
        only library images they may already list and search.
        """
        if self.action == "check":
            return [permissions.IsAuthenticated()]
        return [permissions.IsAdminUser()]

    def get_throttles(self) -> list[BaseThrottle]:
        return [SearchRateThrottle()] if self.action == "check" else []

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=sorted(pair_selectors.STATUS_FILTERS), description="Default: pending"),
            OpenApiParameter("kind", str, enum=DuplicatePair.Kind.values, description="The band (alias: band)"),
            OpenApiParameter("image", int, description="Only pairs of this image"),
        ]
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(request=ResolveSerializer, responses={200: ResolveResultSerializer})
    @action(detail=True, methods=["post"])
    def resolve(self, request: Request, pk: str | None = None) -> Response:
        """Record a review decision (staff). Deleting one image removes its file and pairs and can't be undone."""
        form = ResolveSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        pair = self.get_object()
        decision = pair_review.duplicate_pair_resolve(
            pair=pair, action=form.validated_data["action"], user=request.user, source="api"
        )
        return Response(resolve_payload(decision, request))

    @extend_schema(request=None, responses={200: ResolveResultSerializer})
    @action(detail=True, methods=["post"])
    def undo(self, request: Request, pk: str | None = None) -> Response:
        """Undo the pair's latest decision (staff): it goes back to the status it had before."""
        decision = pair_review.duplicate_pair_undo_latest(pair=self.get_object(), user=request.user)
        return Response(resolve_payload(decision, request))

    @extend_schema(
        request={"multipart/form-data": CheckUploadSerializer},
        responses={200: UploadCheckSerializer},
        description=(
            "Check a file before uploading it: the k nearest library images with the band detection would give "
            "each (near_duplicate, similar or null), and the library image with the very same bytes if there is "
            "one. Nothing is stored."
        ),
    )
    @action(detail=False, methods=["post"], parser_classes=[MultiPartParser, FormParser])
    def check(self, request: Request) -> Response:
        form = CheckUploadSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = gallery_services.read_upload_bytes(
            form.validated_data["file"], max_bytes=settings.IMGSIM_MAX_UPLOAD_BYTES
        )
        result = detection_selectors.check_upload(data=data, k=form.validated_data["k"])
        return Response(UploadCheckSerializer(result, context={"request": request}).data)


class DuplicateDecisionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The review log: who decided what about which pair, and when; newest first."""

    serializer_class = DuplicateDecisionSerializer
    lookup_value_regex = "[0-9]{1,18}"

    def get_queryset(self) -> QuerySet[DuplicateDecision]:
        if self.action != "list":
            return pair_selectors.decision_list()
        filters = DecisionListQuerySerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return pair_selectors.decision_list(pair_id=filters.validated_data.get("pair"))

    def get_permissions(self) -> list[permissions.BasePermission]:
        return [permissions.IsAdminUser()]  # the log names reviewers and deleted files: staff only

    @extend_schema(parameters=[OpenApiParameter("pair", int, description="Only this pair's decisions")])
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(request=None, responses={200: ResolveResultSerializer})
    @action(detail=True, methods=["post"])
    def undo(self, request: Request, pk: str | None = None) -> Response:
        """Undo this decision (staff); only a pair's latest decision, and never a deletion."""
        decision = pair_review.duplicate_decision_undo(decision=self.get_object(), user=request.user)
        return Response(resolve_payload(decision, request), status=status.HTTP_200_OK)
