"""API representations of images and upload outcomes."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from gallery.models import Image
from gallery.selectors import RATING_FILTERS

# An id no image has, for reversing an image URL once per response and filling in each image's id: reverse()
# per image and URL is a large share of the CPU time of a search answer (bench/search_product.py; figures in
# bench/README.md).
_STAND_IN_ID = 9_876_543_210_123


class ImageListQuerySerializer(serializers.Serializer):
    """The list's query string: unknown values are a 400 that says what is allowed, never a 500."""

    status = serializers.ChoiceField(choices=Image.Status.values, required=False, allow_blank=True)
    rating = serializers.ChoiceField(
        choices=sorted(RATING_FILTERS), required=False, allow_blank=True, help_text="0-5, '3+' or 'unrated'"
    )
    q = serializers.CharField(required=False, allow_blank=True, max_length=100, trim_whitespace=False)
    hide_stacked = serializers.BooleanField(
        required=False, default=False, help_text="true: list a stack as its cover only (as the library grid does)"
    )


class CopyOfSerializer(serializers.Serializer):
    """The library image a rejected (blurred) upload looks like a copy of."""

    id = serializers.IntegerField()
    similarity = serializers.FloatField(
        help_text="Cosine of the two images' embeddings once both are blurred alike (what the check decides on)."
    )
    page_url = serializers.CharField()
    thumbnail_url = serializers.CharField()


class ImageSerializer(serializers.ModelSerializer):
    thumbnail_url = serializers.SerializerMethodField()
    file_url = serializers.SerializerMethodField()
    page_url = serializers.SerializerMethodField()
    copy_of = serializers.SerializerMethodField(
        help_text="For an image rejected as blurry: the library image it looks like a copy of, or null."
    )
    copy_check = serializers.ChoiceField(
        choices=["pending", "checked"],
        allow_null=True,
        read_only=True,
        help_text="For an image rejected as blurry: 'pending' until compared with the library, then 'checked' "
        "(copy_of is then final); null for every other image.",
    )

    class Meta:
        model = Image
        fields = [
            "id",
            "original_name",
            "sha256",
            "width",
            "height",
            "format",
            "file_size",
            "camera_make",
            "camera_model",
            "taken_at",
            "orientation",
            "rating",
            "status",
            "reason_code",
            "status_message",
            "quality_score",
            "quality_threshold",
            "quality_scores",
            "embedding_model",
            "embedded_at",
            "embed_attempts",
            "created_at",
            "copy_of",
            "copy_check",
            "thumbnail_url",
            "file_url",
            "page_url",
        ]
        read_only_fields = fields

    def _absolute(self, path: str) -> str:
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else path

    def _image_url(self, name: str, image: Image) -> str:
        """The absolute URL of one image's view: reversed once per response, then the id filled in."""
        templates = self.context.setdefault("image_url_templates", {})
        template = templates.get(name)
        if template is None:
            template = templates[name] = self._absolute(reverse(name, args=[_STAND_IN_ID]))
        return template.replace(str(_STAND_IN_ID), str(image.pk), 1)

    @extend_schema_field(CopyOfSerializer(allow_null=True))
    def get_copy_of(self, image: Image) -> dict | None:
        if image.copy_of_id is None or image.copy_similarity is None:
            return None
        return {
            "id": image.copy_of_id,
            "similarity": image.copy_similarity,
            "page_url": self._absolute(reverse("gallery:image-detail", args=[image.copy_of_id])),
            "thumbnail_url": self._absolute(reverse("gallery:image-thumbnail", args=[image.copy_of_id])),
        }

    def get_thumbnail_url(self, image: Image) -> str:
        return self._image_url("gallery:image-thumbnail", image)

    def get_file_url(self, image: Image) -> str:
        return self._image_url("gallery:image-file", image)

    def get_page_url(self, image: Image) -> str:
        return self._image_url("gallery:image-detail", image)


class LibraryImageSerializer(ImageSerializer):
    """An image of /api/images/, with its place in a stack (the list annotates stack_count)."""

    stack_of = serializers.PrimaryKeyRelatedField(
        source="stack_cover",
        read_only=True,
        allow_null=True,
        help_text="The image this one is stacked under (the stack's cover); null for a cover or an unstacked image.",
    )
    stack_size = serializers.SerializerMethodField(
        help_text="Images in the stack this image heads: itself and the copies stacked under it (1: no stack)."
    )

    class Meta(ImageSerializer.Meta):
        fields = [*ImageSerializer.Meta.fields[:-3], "stack_of", "stack_size", *ImageSerializer.Meta.fields[-3:]]
        read_only_fields = fields

    def get_stack_size(self, image: Image) -> int:
        return 1 + getattr(image, "stack_count", 0)


class ImageUploadSerializer(serializers.Serializer):
    """One file in `file`, or several in `files` (each gets its own outcome)."""

    file = serializers.FileField(required=False, allow_empty_file=True, use_url=False)
    files = serializers.ListField(
        child=serializers.FileField(allow_empty_file=True, use_url=False), required=False, allow_empty=False
    )

    def validate(self, attrs: dict) -> dict:
        if not attrs.get("file") and not attrs.get("files"):
            raise serializers.ValidationError(
                "Send the image as a multipart field named 'file' (or several as 'files')."
            )
        return attrs


class UploadOutcomeSerializer(serializers.Serializer):
    """What happened to one uploaded file."""

    name = serializers.CharField()
    outcome = serializers.ChoiceField(
        choices=["accepted", "rejected", "exact_duplicate", "exact_duplicate_in_trash", "error"],
        help_text="exact_duplicate_in_trash: the same bytes are stored as an image in the trash (`image`), which "
        "is out of the library until restored.",
    )
    http_status = serializers.IntegerField()
    image = ImageSerializer(required=False, allow_null=True)
    in_trash = serializers.BooleanField(help_text="The stored image these bytes match is in the trash.")
    restore_url = serializers.CharField(
        allow_null=True,
        help_text="For staff, when in_trash: POST here to restore that image (back in the library and search).",
    )
    error = serializers.DictField(required=False, allow_null=True)
