"""API shapes of duplicate groups and their decisions."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from duplicates.api.pair_serializers import PairImageSerializer
from duplicates.models import DuplicateGroup, DuplicateGroupDecision, DuplicateGroupMember
from duplicates.selectors.groups import GroupReview, MemberReview
from duplicates.services.group_review import GroupAction


class MemberEvidenceSerializer(serializers.Serializer):
    other = serializers.IntegerField(help_text="The member this evidence compares it with.")
    pair = serializers.IntegerField(help_text="The pair (GET /api/duplicates/{id}/) holding the full evidence.")
    cosine = serializers.FloatField(allow_null=True)
    phash_distance = serializers.IntegerField(allow_null=True)
    geometric_inliers = serializers.IntegerField(allow_null=True)
    time_gap_seconds = serializers.FloatField(allow_null=True)
    same_camera = serializers.BooleanField(allow_null=True)
    scene_reason = serializers.CharField(
        allow_null=True,
        allow_blank=True,
        help_text="Similar pairs: why the two are one scene (geometry, exposure, burst); empty when nothing says so.",
    )


EVIDENCE_FIELDS = (
    "other",
    "pair",
    "cosine",
    "phash_distance",
    "geometric_inliers",
    "time_gap_seconds",
    "same_camera",
    "scene_reason",
)


class GroupMemberSerializer(serializers.Serializer):
    image = PairImageSerializer()
    suggested = serializers.BooleanField(help_text="The copy the suggestion keeps.")
    decision = serializers.ChoiceField(
        choices=DuplicateGroupMember.Decision.choices, source="membership.decision", allow_blank=True
    )
    added_at = serializers.DateTimeField(source="membership.added_at")
    similarity = serializers.FloatField(allow_null=True, help_text="Cosine with the suggested copy.")
    evidence = serializers.SerializerMethodField(help_text="Its pair with the suggested copy (null for that copy).")
    highlights = serializers.ListField(
        child=serializers.CharField(), help_text="Facts it has and not every member has (largest file, sharpest...)."
    )
    verified = serializers.BooleanField(
        help_text="Its own near-duplicate pair with the suggested copy stands (cosine at or above the threshold, or "
        "a geometric match): the suggestion trashes only these."
    )
    check = serializers.CharField(help_text="Why it is not verified (empty when it is): weaker match, not checked...")

    @extend_schema_field(MemberEvidenceSerializer(allow_null=True))
    def get_evidence(self, member: MemberReview) -> dict[str, object] | None:
        return {name: member.evidence.get(name) for name in EVIDENCE_FIELDS} if member.evidence else None

    def to_representation(self, member: MemberReview) -> dict[str, object]:
        """By hand (a page of large groups has hundreds of members); the image as the pair list shows it."""
        return {
            "image": self.fields["image"].to_representation(member.image),
            "suggested": member.suggested,
            "decision": member.membership.decision,
            "added_at": member.membership.added_at.isoformat().replace("+00:00", "Z"),
            "similarity": member.similarity,
            "evidence": self.get_evidence(member),
            "highlights": member.highlights,
            "verified": member.verified,
            "check": member.check,
        }


class GroupSuggestionSerializer(serializers.Serializer):
    action = serializers.CharField(
        help_text="keep (the suggested copy, trash the verified copies) or keep_all (similar band)."
    )
    keep = serializers.ListField(child=serializers.IntegerField())
    trash = serializers.ListField(
        child=serializers.IntegerField(), help_text="Every member verified against the kept copy, listed or not."
    )
    aside = serializers.ListField(
        child=serializers.IntegerField(),
        help_text="Members not verified against the kept copy: the suggestion leaves them out, for review.",
    )
    reason = serializers.CharField(help_text="Why the kept copy beats the runner-up (higher resolution...).")
    bytes_to_trash = serializers.IntegerField()


class DuplicateGroupDecisionSerializer(serializers.ModelSerializer):
    user = serializers.SlugRelatedField(slug_field="username", read_only=True)
    undone_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = DuplicateGroupDecision
        fields = [
            "id",
            "group",
            "group_number",
            "kind",
            "action",
            "member_ids",
            "kept_ids",
            "trashed_ids",
            "suggested",
            "previous_status",
            "bytes_trashed",
            "source",
            "user",
            "at",
            "undone_at",
            "undone_by",
        ]
        read_only_fields = fields


class DuplicateGroupSerializer(serializers.Serializer):
    """A group with its members (evidence, highlights) and the suggestion; `version` goes back with a decision."""

    id = serializers.IntegerField(source="group.pk")
    kind = serializers.CharField(source="group.kind")
    status = serializers.ChoiceField(choices=DuplicateGroup.Status.choices, source="group.status")
    version = serializers.IntegerField(source="group.version")
    size = serializers.IntegerField(source="group.size")
    max_similarity = serializers.FloatField(source="group.max_similarity")
    created_at = serializers.DateTimeField(source="group.created_at")
    updated_at = serializers.DateTimeField(source="group.updated_at")
    resolved_at = serializers.DateTimeField(source="group.resolved_at", allow_null=True)
    resolved_by = serializers.CharField(source="group.resolved_by.username", allow_null=True, default=None)
    suggestion = serializers.SerializerMethodField()
    members = serializers.SerializerMethodField(help_text="Listed members: the verified first, then those apart.")
    hidden_members = serializers.IntegerField(
        source="hidden",
        help_text=(
            "Members not listed (over member_limit). A decision sent with `members_digest` covers them too; "
            "without it, the ids you send (`suggestion`, `keep_all` and `stack` without `members`: every member)."
        ),
    )
    member_count = serializers.IntegerField(help_text="Every member, listed or not.")
    bytes_total = serializers.IntegerField(help_text="Their files' bytes.")
    members_digest = serializers.CharField(
        help_text="Names the members as they are now: send it with a decision to cover every member (409 when they "
        "changed since)."
    )
    last_decision = DuplicateGroupDecisionSerializer(allow_null=True)
    review_url = serializers.SerializerMethodField()

    @staticmethod
    def _suggestion(review: GroupReview) -> dict[str, object]:
        group = review.group
        keep = [group.suggested_keep_id] if review.suggested_trash else [m.image.pk for m in review.members]
        return {
            "action": GroupAction.KEEP if review.suggested_trash else GroupAction.KEEP_ALL,
            "keep": keep,
            "trash": review.suggested_trash,
            "aside": review.aside_ids if review.suggested_trash else [],
            "reason": group.suggestion_reason if review.suggested_trash else "similar, not the same photo: keep all",
            "bytes_to_trash": review.bytes_suggested_trash,
        }

    @extend_schema_field(GroupMemberSerializer(many=True))
    def get_members(self, review: GroupReview) -> list[dict[str, object]]:
        return GroupMemberSerializer([*review.members, *review.aside], many=True, context=self.context).data

    @extend_schema_field(GroupSuggestionSerializer)
    def get_suggestion(self, review: GroupReview) -> dict[str, object]:
        return self._suggestion(review)

    @extend_schema_field(serializers.URLField())
    def get_review_url(self, review: GroupReview) -> str:
        path = f"{reverse('duplicates:review')}?group={review.group.pk}"
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else path


class GroupResolveSerializer(serializers.Serializer):
    action = serializers.ChoiceField(
        choices=GroupAction.CHOICES,
        help_text=(
            "keep: keep the `keep` ids, move the `trash` ids to the trash; keep_all: not duplicates (the pairs are "
            "dismissed, remembered by content); stack: keep all as one stack; suggestion: the group's suggestion "
            "(near-duplicates: keep the suggested copy, trash the rest; similar: keep all)."
        ),
    )
    keep = serializers.ListField(child=serializers.IntegerField(min_value=1), required=False, max_length=10_000)
    trash = serializers.ListField(child=serializers.IntegerField(min_value=1), required=False, max_length=10_000)
    members = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        required=False,
        max_length=10_000,
        help_text="The members you saw (keep_all, stack, suggestion); default: all current members.",
    )
    version = serializers.IntegerField(
        required=False, min_value=1, help_text="The group's version you saw: 409 if it changed since."
    )
    members_digest = serializers.CharField(
        required=False,
        max_length=64,
        help_text=(
            "The group's `members_digest` you saw: the decision covers every member, listed or not (members you "
            "don't name go to the trash only when verified against a kept copy, else stay for review); 409 when "
            "the members changed since."
        ),
    )


class BulkResolveItemSerializer(GroupResolveSerializer):
    id = serializers.IntegerField(min_value=1)


class BulkResolveSerializer(serializers.Serializer):
    groups = BulkResolveItemSerializer(many=True, allow_empty=False, max_length=500)


class GroupResolveResultSerializer(serializers.Serializer):
    decision = DuplicateGroupDecisionSerializer()
    group = DuplicateGroupSerializer()


class BulkResolveOutcomeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.IntegerField(help_text="200, or the 4xx this group alone would have answered.")
    decision = DuplicateGroupDecisionSerializer(allow_null=True)
    error = serializers.DictField(allow_null=True)


class BulkResolveResultSerializer(serializers.Serializer):
    results = BulkResolveOutcomeSerializer(many=True)
    resolved = serializers.IntegerField()
    trashed_files = serializers.IntegerField()
    trashed_bytes = serializers.IntegerField()
