"""REST API for the state of duplicate detection: how many images still await their check, and how long that
should take (the review page polls it while detection runs)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from duplicates.api.detection_serializers import DetectionStatusSerializer
from duplicates.selectors.detection import detection_backlog


class DetectionStatusView(APIView):
    @extend_schema(responses={200: DetectionStatusSerializer})
    def get(self, request: Request) -> Response:
        """Images awaiting duplicate detection (`waiting`), the recent pace and the time left at that pace
        (null when unknown); `done` once every searchable image has been checked under the settings in force."""
        backlog = detection_backlog()
        return Response(
            DetectionStatusSerializer(
                {
                    "waiting": backlog.waiting,
                    "done": not backlog.waiting,
                    "per_minute": backlog.per_minute,
                    "seconds_left": backlog.seconds_left,
                    "summary": backlog.summary,
                }
            ).data
        )
