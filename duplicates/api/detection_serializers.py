"""API shape of the detection status."""

from __future__ import annotations

from rest_framework import serializers


class DetectionStatusSerializer(serializers.Serializer):
    waiting = serializers.IntegerField(help_text="Searchable images not yet checked for duplicates.")
    done = serializers.BooleanField(help_text="No image awaits detection: the review lists are complete.")
    per_minute = serializers.FloatField(
        allow_null=True, help_text="Checks per minute over the last 5 minutes (null: none were made)."
    )
    seconds_left = serializers.IntegerField(
        allow_null=True, help_text="About how long the waiting images take at that pace (null: unknown)."
    )
    summary = serializers.CharField(help_text='What the review page says, e.g. "Still checking 1,180 photos…".')
