"""REST API for the thresholds in force (staff): read them with their log, apply a calibration, undo."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import permissions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import ServiceError
from duplicates.api.threshold_serializers import (
    ThresholdsApplySerializer,
    ThresholdsChangeResultSerializer,
    ThresholdsSerializer,
    ThresholdsUndoSerializer,
)
from duplicates.models import CalibrationRun
from duplicates.selectors import thresholds as threshold_selectors
from duplicates.services.thresholds import calibration_thresholds_apply, thresholds_undo
from search.models import ThresholdSetting
from search.thresholds import thresholds_in_force


def thresholds_payload() -> dict[str, Any]:
    overview = threshold_selectors.thresholds_overview()
    return ThresholdsSerializer(
        {
            "in_force": overview.thresholds.as_dict(),
            "auto_calibration": {
                "has_measured_defaults": overview.has_measured_defaults,
                "waits_for": overview.auto_calibration_at,
                "indexed": overview.indexed,
            },
            "history": threshold_selectors.threshold_history(),
        }
    ).data


def change_payload(setting: ThresholdSetting) -> dict[str, Any]:
    in_force = thresholds_in_force(model_name=settings.IMGSIM_MODEL)
    return ThresholdsChangeResultSerializer({"in_force": in_force.as_dict(), "setting": setting}).data


class ThresholdsView(APIView):
    permission_classes = [permissions.IsAdminUser]

    @extend_schema(responses={200: ThresholdsSerializer})
    def get(self, request: Request) -> Response:
        """The thresholds in force for the model in use, where each comes from, and the log of applied ones."""
        return Response(thresholds_payload())


class ThresholdsApplyView(APIView):
    permission_classes = [permissions.IsAdminUser]

    @extend_schema(request=ThresholdsApplySerializer, responses={200: ThresholdsChangeResultSerializer})
    def post(self, request: Request) -> Response:
        """Put a calibration's thresholds in force (staff; logged). 400 for a run that is not the newest finished
        one of the model in use, values outside [-1, 1], or similar above near_duplicate: nothing changes.
        Stored pairs are re-banded in the background; review decisions are never touched."""
        form = ThresholdsApplySerializer(data=request.data)
        form.is_valid(raise_exception=True)
        values = form.validated_data
        run = CalibrationRun.objects.filter(pk=values["calibration_run"]).first()
        if run is None:
            raise ServiceError("calibration_not_found", f"There is no calibration #{values['calibration_run']}.")
        setting = calibration_thresholds_apply(
            run=run,
            user=request.user,
            near_duplicate=values.get("near_duplicate"),
            similar=values.get("similar"),
            match=values.get("match"),
        )
        return Response(change_payload(setting))


class ThresholdsUndoView(APIView):
    permission_classes = [permissions.IsAdminUser]

    @extend_schema(request=ThresholdsUndoSerializer, responses={200: ThresholdsChangeResultSerializer})
    def post(self, request: Request) -> Response:
        """Undo the applied thresholds in force (staff): the ones before them, or the defaults, are back.
        400 when none are applied; 409 when `setting` is no longer the one in force."""
        form = ThresholdsUndoSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        setting = thresholds_undo(user=request.user, setting_id=form.validated_data.get("setting"))
        return Response(change_payload(setting))
