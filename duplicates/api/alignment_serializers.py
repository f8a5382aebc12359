"""API shapes of the compare view's alignment: which two images, and how the second registers onto the first."""

from __future__ import annotations

from rest_framework import serializers

from core.query_params import WholeNumberField


class AlignmentQuerySerializer(serializers.Serializer):
    a = WholeNumberField(min_value=1, help_text="The image whose frame the other is registered into")
    b = WholeNumberField(min_value=1, help_text="The image registered onto `a`")

    def validate(self, values: dict[str, int]) -> dict[str, int]:
        if values["a"] == values["b"]:
            raise serializers.ValidationError("a and b must be two different images.")
        return values


class AlignedImageSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    width = serializers.IntegerField(help_text="Upright (EXIF orientation applied), in pixels")
    height = serializers.IntegerField()


class AlignmentSerializer(serializers.Serializer):
    a = AlignedImageSerializer()
    b = AlignedImageSerializer()
    aligned = serializers.BooleanField(help_text="The two are a geometric match: `homography` registers b onto a")
    reason = serializers.ChoiceField(
        choices=["matched", "no_match", "unreadable"],
        help_text="matched; no_match (fewer than min_inliers consistent features); unreadable (a file)",
    )
    inliers = serializers.IntegerField(allow_null=True, help_text="Local features the two share (RANSAC inliers)")
    min_inliers = serializers.IntegerField(help_text="Inliers that make a geometric match")
    mirrored = serializers.BooleanField(help_text="b is a mirror image of a")
    homography = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField(), min_length=3, max_length=3),
        allow_null=True,
        help_text="3x3, row-major: maps b's pixel coordinates (upright, (0, 0) the top-left corner) into a's",
    )
