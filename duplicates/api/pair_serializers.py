"""API shapes of duplicate pairs, review decisions and the check-before-upload answer."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.query_params import WholeNumberField
from duplicates.models import DuplicateDecision, DuplicatePair
from duplicates.selectors.groups import MEMBER_IMAGE_FIELDS
from duplicates.selectors.pairs import STATUS_FILTERS, keep_suggestion
from duplicates.services.pair_review import ResolveAction
from gallery.api.serializers import ImageSerializer
from gallery.models import Image
from search.api.serializers import ResultCountField


class PairListQuerySerializer(serializers.Serializer):
    """The pair list's query string: a bad value is a 400 naming the field, never a 500."""

    status = serializers.ChoiceField(choices=sorted(STATUS_FILTERS), default="pending")
    kind = serializers.ChoiceField(choices=DuplicatePair.Kind.values, required=False, allow_blank=True)
    band = serializers.ChoiceField(choices=DuplicatePair.Kind.values, required=False, allow_blank=True)
    image = WholeNumberField(min_value=1, required=False)


class DecisionListQuerySerializer(serializers.Serializer):
    pair = WholeNumberField(min_value=1, required=False)


class PairImageSerializer(ImageSerializer):
    """The facts of one image a reviewer compares."""

    class Meta(ImageSerializer.Meta):
        fields = [*MEMBER_IMAGE_FIELDS, "thumbnail_url", "file_url", "page_url"]
        read_only_fields = fields

    def to_representation(self, image: Image) -> dict[str, object]:
        """By hand, the same as the declared fields: a page of large groups lists hundreds of images, and DRF's
        per-field machinery (and a reverse() per URL) would take most of the group list's time
        (bench/group_review.py). The URLs are reversed once per response (kept in the serializer's context)."""
        urls = self.context.get("_image_url_templates")
        if urls is None:
            urls = self.context["_image_url_templates"] = _url_templates(self.context.get("request"))
        facts = {name: getattr(image, name) for name in FACT_FIELDS}
        for name in ("taken_at", "created_at"):
            facts[name] = facts[name].isoformat().replace("+00:00", "Z") if facts[name] is not None else None
        for name, template in urls.items():
            facts[name] = template.replace(f"/{URL_MARKER}/", f"/{image.pk}/", 1)
        return facts


URL_MARKER = 987654321012
URL_FIELDS = {
    "thumbnail_url": "gallery:image-thumbnail",
    "file_url": "gallery:image-file",
    "page_url": "gallery:image-detail",
}
FACT_FIELDS = [name for name in PairImageSerializer.Meta.fields if name not in URL_FIELDS]


def _url_templates(request: object) -> dict[str, str]:
    """The image URLs with URL_MARKER for the id, made absolute once."""
    build = getattr(request, "build_absolute_uri", None)
    paths = {field: reverse(name, args=[URL_MARKER]) for field, name in URL_FIELDS.items()}
    return {field: build(path) if build else path for field, path in paths.items()}


class KeepSuggestionSerializer(serializers.Serializer):
    keep = serializers.IntegerField(help_text="Id of the image to keep.")
    delete = serializers.IntegerField(help_text="Id of the image to move to the trash.")
    reason = serializers.CharField(help_text="The first criterion that told them apart.")


class DuplicatePairSerializer(serializers.ModelSerializer):
    image_a = PairImageSerializer()
    image_b = PairImageSerializer()
    reviewed_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    suggestion = serializers.SerializerMethodField()
    review_url = serializers.SerializerMethodField()

    class Meta:
        model = DuplicatePair
        fields = [
            "id",
            "kind",
            "similarity",
            "review_status",
            "reviewed_by",
            "reviewed_at",
            "evidence",
            "embedding_model",
            "created_at",
            "detected_at",
            "image_a",
            "image_b",
            "suggestion",
            "review_url",
        ]
        read_only_fields = fields

    @extend_schema_field(KeepSuggestionSerializer)
    def get_suggestion(self, pair: DuplicatePair) -> dict[str, object]:
        advice = keep_suggestion(pair)
        return KeepSuggestionSerializer(
            {"keep": advice.keep.id, "delete": advice.remove.id, "reason": advice.reason}
        ).data

    def get_review_url(self, pair: DuplicatePair) -> str:
        path = reverse("duplicates:pair-detail", args=[pair.pk])
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else path


class DuplicateDecisionSerializer(serializers.ModelSerializer):
    user = serializers.SlugRelatedField(slug_field="username", read_only=True)
    undone_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    undoable = serializers.SerializerMethodField()

    class Meta:
        model = DuplicateDecision
        fields = [
            "id",
            "pair",
            "image_a_id",
            "image_b_id",
            "action",
            "suggested",
            "previous_status",
            "new_status",
            "kind",
            "similarity",
            "deleted_name",
            "source",
            "user",
            "at",
            "undone_at",
            "undone_by",
            "undoable",
        ]
        read_only_fields = fields

    def get_undoable(self, decision: DuplicateDecision) -> bool:
        """False for undone decisions and decisions on deleted pairs (a trashed image that was since purged
        is refused when the undo is tried)."""
        return decision.undone_at is None and decision.pair_id is not None


class ResolveSerializer(serializers.Serializer):
    action = serializers.ChoiceField(
        choices=[(value, label) for value, label in ResolveAction.LABELS.items()],
        help_text=(
            "not_duplicate and confirm record a decision; delete_a, delete_b and keep_suggested move an image to "
            "the trash (restorable, purged after IMGSIM_TRASH_DAYS); keep_suggested only on a near-duplicate pair "
            "(a similar pair is two different photos: 409 not_same_photo). Every decision can be undone."
        ),
    )


class ResolveResultSerializer(serializers.Serializer):
    decision = DuplicateDecisionSerializer()
    pair = DuplicatePairSerializer(
        allow_null=True, help_text="null once an image of the pair is in the trash or was deleted."
    )


class CheckUploadSerializer(serializers.Serializer):
    file = serializers.FileField(allow_empty_file=True, use_url=False)
    k = ResultCountField()


class UploadMatchSerializer(serializers.Serializer):
    similarity = serializers.FloatField(help_text="Exact cosine of the embeddings.")
    band = serializers.ChoiceField(choices=DuplicatePair.Kind.choices, allow_null=True)
    geometric_inliers = serializers.IntegerField(allow_null=True, source="inliers")
    image = PairImageSerializer()


class UploadCheckSerializer(serializers.Serializer):
    exact_duplicate = PairImageSerializer(allow_null=True, help_text="A library image with the very same bytes.")
    near_duplicate_threshold = serializers.FloatField(source="near_duplicate")
    similar_threshold = serializers.FloatField(source="similar")
    model = serializers.CharField()
    matches = UploadMatchSerializer(many=True)
