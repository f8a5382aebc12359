"""REST API for group review (staff only): list groups, resolve one or many, undo."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, permissions, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from core.api.errors import error_response
from core.query_params import query_int
from duplicates.api.group_serializers import (
    BulkResolveResultSerializer,
    BulkResolveSerializer,
    DuplicateGroupDecisionSerializer,
    DuplicateGroupSerializer,
    GroupResolveResultSerializer,
    GroupResolveSerializer,
)
from duplicates.models import DuplicateGroup, DuplicateGroupDecision, DuplicatePair
from duplicates.selectors import groups as group_selectors
from duplicates.services.group_review import (
    GroupReviewError,
    duplicate_group_decision_undo,
    duplicate_group_resolve,
    duplicate_group_undo_latest,
)


def group_payload(group_id: int, request: Request) -> dict[str, Any] | None:
    """The group as a reviewer sees it now (members, evidence, suggestion, version)."""
    group = group_selectors.duplicate_group_list(status="all", min_size=0).filter(pk=group_id).first()
    if group is None:
        return None
    review = group_selectors.group_reviews([group])[0]
    return DuplicateGroupSerializer(review, context={"request": request}).data


def conflict(error: GroupReviewError, request: Request) -> Response:
    """The service's error with the group's current state, so the client can show what changed."""
    extra: dict[str, Any] = {}
    if error.group is not None:
        extra["group"] = group_payload(error.group.pk, request)
    return error_response(error.code, error.message, http_status=error.status, **extra)


# Members listed per group by default (the web card shows as many): a page of the largest groups listed
# whole would run to hundreds of members; GET /api/duplicate-groups/{id}/ lists them all.
MEMBER_LIMIT = 16
MAX_MEMBER_LIMIT = 1000


class DuplicateGroupViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Groups of look-alike images, one review decision each (staff only)."""

    serializer_class = DuplicateGroupSerializer
    permission_classes = [permissions.IsAdminUser]
    lookup_value_regex = "[0-9]+"
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    def get_queryset(self) -> QuerySet[DuplicateGroup]:
        params = self.request.query_params
        kind, status_filter = params.get("kind", ""), params.get("status", "pending")
        if kind and kind not in DuplicatePair.Kind.values:
            raise ValidationError({"kind": [f"kind must be one of {', '.join(DuplicatePair.Kind.values)}."]})
        if status_filter not in group_selectors.GROUP_STATUS_FILTERS:
            allowed = ", ".join(sorted(group_selectors.GROUP_STATUS_FILTERS))
            raise ValidationError({"status": [f"status must be one of {allowed}."]})
        return group_selectors.duplicate_group_list(
            kind=kind,
            status=status_filter,
            min_size=query_int(self.request.query_params, "min_size", default=2),
            member_limit=self._member_limit(),
        )

    def _member_limit(self) -> int | None:
        """?member_limit=N members per group (the suggested copy first), 0 for all; default MEMBER_LIMIT."""
        limit = query_int(self.request.query_params, "member_limit", default=MEMBER_LIMIT, maximum=MAX_MEMBER_LIMIT)
        return limit or None

    @extend_schema(
        parameters=[
            OpenApiParameter("kind", str, enum=DuplicatePair.Kind.values, description="The band; default both"),
            OpenApiParameter(
                "status", str, enum=sorted(group_selectors.GROUP_STATUS_FILTERS), description="Default: pending"
            ),
            OpenApiParameter("min_size", int, description="Only groups of at least this many images (default 2)"),
            OpenApiParameter(
                "member_limit",
                int,
                description=(
                    f"Members listed per group, the suggested copy first (default {MEMBER_LIMIT}, 0: all); "
                    "`hidden_members` counts the others, the suggestion covers every member, and "
                    "GET /api/duplicate-groups/{id}/ lists them all."
                ),
            ),
        ],
        responses={200: DuplicateGroupSerializer(many=True)},
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        reviews = group_selectors.group_reviews(list(page), member_limit=self._member_limit())
        return self.get_paginated_response(self.get_serializer(reviews, many=True).data)

    @extend_schema(responses={200: DuplicateGroupSerializer})
    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        payload = group_payload(int(pk or 0), request)
        if payload is None:
            return error_response("not_found", f"No group #{pk}.", http_status=404)
        return Response(payload)

    @extend_schema(request=GroupResolveSerializer, responses={200: GroupResolveResultSerializer})
    @action(detail=True, methods=["post"])
    def resolve(self, request: Request, pk: str | None = None) -> Response:
        """Decide on a group: 400 (nothing changed) for ids that are not members, 409 with the group's current
        state when it was decided or changed since `version`, or its members since `members_digest`. With the
        digest the decision covers every member; without it, members that joined after you loaded the group
        are left out of the decision and stay pending."""
        form = GroupResolveSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        group = get_object_or_404(DuplicateGroup, pk=pk)
        try:
            decision = duplicate_group_resolve(group=group, user=request.user, source="api", **form.validated_data)
        except GroupReviewError as error:
            return conflict(error, request)
        return Response({"decision": self._decision(decision), "group": group_payload(group.pk, request)})

    @extend_schema(request=None, responses={200: GroupResolveResultSerializer})
    @action(detail=True, methods=["post"])
    def undo(self, request: Request, pk: str | None = None) -> Response:
        """Undo the group's latest decision: trashed members come back, pairs return to their earlier status."""
        group = get_object_or_404(DuplicateGroup, pk=pk)
        try:
            decision = duplicate_group_undo_latest(group=group, user=request.user)
        except GroupReviewError as error:
            return conflict(error, request)
        return Response({"decision": self._decision(decision), "group": group_payload(group.pk, request)})

    @extend_schema(
        request=BulkResolveSerializer,
        responses={200: BulkResolveResultSerializer},
        operation_id="api_duplicate_groups_bulk_resolve",
    )
    @action(detail=False, methods=["post"], url_path="resolve")
    def bulk_resolve(self, request: Request) -> Response:
        """Several decisions at once (e.g. the suggestion for every group of a page); each group stands alone:
        one refused (400/404/409) leaves the others done."""
        form = BulkResolveSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        results, resolved, files, size = [], 0, 0, 0
        for item in form.validated_data["groups"]:
            fields = dict(item)
            group_id = fields.pop("id")
            group = DuplicateGroup.objects.filter(pk=group_id).first()
            if group is None:
                missing = {"code": "not_found", "message": f"No group #{group_id}."}
                results.append(self._outcome(group_id, 404, error=missing))
                continue
            try:
                decision = duplicate_group_resolve(group=group, user=request.user, source="api", **fields)
            except GroupReviewError as error:
                body = {"code": error.code, "message": error.message}
                if error.group is not None:
                    body["group"] = group_payload(error.group.pk, request)
                results.append(self._outcome(group_id, error.status, error=body))
                continue
            resolved += 1
            files += len(decision.trashed_ids)
            size += decision.bytes_trashed
            results.append(self._outcome(group_id, 200, decision=self._decision(decision)))
        return Response({"results": results, "resolved": resolved, "trashed_files": files, "trashed_bytes": size})

    @staticmethod
    def _decision(decision: DuplicateGroupDecision) -> dict[str, Any]:
        return DuplicateGroupDecisionSerializer(decision).data

    @staticmethod
    def _outcome(
        group_id: int, code: int, *, decision: dict[str, Any] | None = None, error: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return {"id": group_id, "status": code, "decision": decision, "error": error}


class DuplicateGroupDecisionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The log of group decisions, newest first; the latest standing one of a group can be undone (staff only)."""

    serializer_class = DuplicateGroupDecisionSerializer
    permission_classes = [permissions.IsAdminUser]
    lookup_value_regex = "[0-9]{1,18}"

    def get_queryset(self) -> QuerySet[DuplicateGroupDecision]:
        group = query_int(self.request.query_params, "group", default=0) if self.action == "list" else 0
        return group_selectors.group_decision_list(group_id=group or None)

    @extend_schema(parameters=[OpenApiParameter("group", int, description="Only this group's decisions")])
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(request=None, responses={200: GroupResolveResultSerializer})
    @action(detail=True, methods=["post"])
    def undo(self, request: Request, pk: str | None = None) -> Response:
        """Undo this decision: 409 unless it is its group's latest standing one (undo the later one first)."""
        decision = self.get_object()
        try:
            decision = duplicate_group_decision_undo(decision=decision, user=request.user)
        except GroupReviewError as error:
            return conflict(error, request)
        group = group_payload(decision.group_id, request) if decision.group_id is not None else None
        return Response({"decision": DuplicateGroupDecisionSerializer(decision).data, "group": group})
