"""REST API for the image library: list and inspect (the pipeline's subclass adds upload, delete and retry)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, permissions, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from gallery import selectors
from gallery.api.serializers import ImageListQuerySerializer, LibraryImageSerializer
from gallery.models import Image


# Read-only: the pipeline's ImageViewSet (pipeline.api.views), which the API routes, adds upload, delete and retry.
class ImageViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = LibraryImageSerializer
    lookup_value_regex = "[0-9]{1,18}"  # an id the database can hold; anything else is a 404, not an overflow
    permission_classes = [permissions.IsAuthenticated]

    def get_queryset(self) -> QuerySet[Image]:
        if self.action != "list":
            return selectors.image_list(hide_stacked=False)  # a stacked copy is still an image of the library
        filters = ImageListQuerySerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        params = filters.validated_data
        return selectors.image_list(
            status=params.get("status", ""),
            rating=params.get("rating", ""),
            query=params.get("q", ""),
            hide_stacked=params.get("hide_stacked", False),
        )

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=Image.Status.values),
            OpenApiParameter("rating", str, description="0-5, '3+' for at least 3 stars, or 'unrated'"),
            OpenApiParameter("q", str, description="Part of the file name or camera model"),
            OpenApiParameter(
                "hide_stacked", bool, description="true: a stack as its cover only, like the library grid"
            ),
        ]
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)
