"""API shapes of the trash: trashed images, restore and empty requests and their answers."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from rest_framework import serializers

from core.query_params import MAX_DB_INTEGER
from gallery.api.serializers import ImageSerializer
from gallery.models import Image


class TrashedImageSerializer(ImageSerializer):
    trashed_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    purge_after = serializers.SerializerMethodField()

    class Meta(ImageSerializer.Meta):
        fields = [*ImageSerializer.Meta.fields, "trashed_at", "trashed_by", "purge_after"]
        read_only_fields = fields

    def get_purge_after(self, image: Image) -> str | None:
        """When the scheduled task purges it (IMGSIM_TRASH_DAYS after it was trashed)."""
        if image.trashed_at is None:
            return None
        return (image.trashed_at + timedelta(days=settings.IMGSIM_TRASH_DAYS)).isoformat()


class TrashRestoreSerializer(serializers.Serializer):
    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_DB_INTEGER), allow_empty=False, max_length=10_000
    )


class TrashRestoreResultSerializer(serializers.Serializer):
    restored = serializers.ListField(child=serializers.IntegerField(), help_text="Back in the library and search.")
    not_in_trash = serializers.ListField(
        child=serializers.IntegerField(), help_text="Ids that are not in the trash (restored already, or no image)."
    )


class TrashEmptySerializer(serializers.Serializer):
    trashed_until = serializers.DateTimeField(
        required=False,
        help_text="Purge only the images trashed at or before this time (the `newest` a client showed); "
        "without it, everything in the trash.",
    )


class TrashContentsSerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text="Images the background worker purges for good.")
    bytes = serializers.IntegerField(help_text="Their files' size.")
    newest = serializers.DateTimeField(allow_null=True, help_text="When the latest of them was trashed.")
