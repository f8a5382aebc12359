"""REST API of the compare view's alignment: how one image registers onto another, for anyone who may open
both (trashed images: staff only, like their files)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import permissions
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.throttles import SearchRateThrottle
from duplicates import geometry
from duplicates.api.alignment_serializers import AlignmentQuerySerializer, AlignmentSerializer
from duplicates.selectors.alignment import image_alignment
from gallery.models import Image


class AlignmentView(APIView):
    permission_classes = [permissions.IsAuthenticated]
    throttle_classes = [SearchRateThrottle]  # an uncached answer decodes two pictures

    @extend_schema(
        parameters=[OpenApiParameter("a", int, required=True), OpenApiParameter("b", int, required=True)],
        responses={200: AlignmentSerializer},
    )
    def get(self, request: Request) -> Response:
        """How image b registers onto image a (the geometric check's transform, in the originals' pixels), so
        that a viewer can warp b into a's frame: crops, rescales, turns and mirror images line up. 404 for an
        image the user may not open; 503 when the server is busy aligning others."""
        query = AlignmentQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        a, b = query.validated_data["a"], query.validated_data["b"]
        images = Image.objects.visible_to(request.user).only("sha256", "file", "width", "height").in_bulk([a, b])
        if a not in images or b not in images:
            raise NotFound("No such image.")
        alignment = image_alignment(image=images[b], onto=images[a])
        homography = None
        if alignment is not None and alignment.homography is not None:
            homography = [[float(value) for value in row] for row in alignment.homography]
        reason = "unreadable" if alignment is None else "matched" if alignment.aligned else "no_match"
        payload = {
            "a": {"id": a, "width": images[a].width, "height": images[a].height},
            "b": {"id": b, "width": images[b].width, "height": images[b].height},
            "aligned": homography is not None,
            "reason": reason,
            "inliers": None if alignment is None else alignment.inliers,
            "min_inliers": geometry.MIN_INLIERS,
            "mirrored": alignment is not None and alignment.mirrored,
            "homography": homography,
        }
        return Response(AlignmentSerializer(payload).data)
