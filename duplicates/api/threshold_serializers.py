"""API shapes of the thresholds in force, their log, and apply / undo requests."""

from __future__ import annotations

from rest_framework import serializers

from search.api.serializers import ThresholdsInForceSerializer
from search.models import ThresholdSetting


class ThresholdSettingSerializer(serializers.ModelSerializer):
    applied_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    undone_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = ThresholdSetting
        fields = [
            "id",
            "model_name",
            "match",
            "near_duplicate",
            "similar",
            "origin",
            "calibration_run_id",
            "measured_at",
            "sample",
            "previous",
            "applied_by",
            "applied_at",
            "undone_by",
            "undone_at",
        ]
        read_only_fields = fields


class AutoCalibrationSerializer(serializers.Serializer):
    has_measured_defaults = serializers.BooleanField()
    waits_for = serializers.IntegerField(
        help_text="Indexed images auto-calibration waits for (0: not needed, done, or off)."
    )
    indexed = serializers.IntegerField(allow_null=True, help_text="Indexed images now (while it waits).")


class ThresholdsSerializer(serializers.Serializer):
    in_force = ThresholdsInForceSerializer()
    auto_calibration = AutoCalibrationSerializer()
    history = ThresholdSettingSerializer(many=True, help_text="Applied thresholds of this model, newest first.")


class ThresholdsApplySerializer(serializers.Serializer):
    calibration_run = serializers.IntegerField(help_text="The newest finished calibration of the model in use.")
    near_duplicate = serializers.FloatField(required=False, help_text="Default: the run's suggestion.")
    similar = serializers.FloatField(required=False, help_text="Default: the run's suggestion.")
    match = serializers.FloatField(
        required=False,
        help_text="Search's \"same scene\" line. Default: the run's suggestion (the score only 0.01 % of different "
        "photos reach), or the similar threshold for runs that have none.",
    )


class ThresholdsUndoSerializer(serializers.Serializer):
    setting = serializers.IntegerField(
        required=False, help_text="Undo only if these applied thresholds are still in force (409 otherwise)."
    )


class ThresholdsChangeResultSerializer(serializers.Serializer):
    in_force = ThresholdsInForceSerializer()
    setting = ThresholdSettingSerializer(help_text="The thresholds just applied, or just undone.")
