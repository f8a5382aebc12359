"""Reads of pair review: the pairs to review and their counts, each pair's keep suggestion and latest
decision, an image's pairs, and the decision log."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, QuerySet

from duplicates.evidence import ImageFacts, KeepSuggestion, suggest_keep
from duplicates.models import DuplicateDecision, DuplicatePair
from gallery.models import Image

STATUS_FILTERS = {"pending", "confirmed", "not_duplicate", "reviewed", "all"}


def image_facts(image: Image) -> ImageFacts:
    """The facts about one image that evidence and the keep suggestion compare."""
    return ImageFacts(
        id=image.pk,
        width=image.width,
        height=image.height,
        file_size=image.file_size,
        sharpness=(image.quality_scores or {}).get("sharpness"),
        rating=image.rating,
        taken_at=image.taken_at,
        camera=f"{image.camera_make} {image.camera_model}".strip(),
    )


def duplicate_pair_list(
    *, status: str = "pending", kind: str = "", image_id: int | None = None
) -> QuerySet[DuplicatePair]:
    """Pairs to review, most alike first; status "reviewed" is confirmed + not_duplicate, "all" everything."""
    pairs = (
        DuplicatePair.objects.select_related("image_a", "image_b", "reviewed_by")
        .defer("image_a__embedding", "image_b__embedding")
        .filter(image_a__trashed_at__isnull=True, image_b__trashed_at__isnull=True)
    )
    if status in DuplicatePair.ReviewStatus.values:
        pairs = pairs.filter(review_status=status)
    elif status == "reviewed":
        pairs = pairs.exclude(review_status=DuplicatePair.ReviewStatus.PENDING)
    if kind in DuplicatePair.Kind.values:
        pairs = pairs.filter(kind=kind)
    if image_id is not None:
        pairs = pairs.involving(image_id)
    return pairs.order_by("-similarity", "id")


def duplicate_pair_counts() -> dict[str, dict[str, int]]:
    """{kind: {status: n, "all": n}} for the review tabs."""
    counts = {kind: dict.fromkeys([*DuplicatePair.ReviewStatus.values, "all"], 0) for kind in DuplicatePair.Kind.values}
    visible = DuplicatePair.objects.filter(image_a__trashed_at__isnull=True, image_b__trashed_at__isnull=True)
    for row in visible.values("kind", "review_status").annotate(n=Count("id")):
        if row["kind"] in counts:
            counts[row["kind"]][row["review_status"]] = row["n"]
            counts[row["kind"]]["all"] += row["n"]
    return counts


def keep_suggestion(pair: DuplicatePair) -> KeepSuggestion:
    """Which of the two to keep: higher resolution, then sharper, then higher rated, then the larger file."""
    return suggest_keep(image_facts(pair.image_a), image_facts(pair.image_b))


@dataclass(frozen=True)
class PairReview:
    """A pair with what a reviewer needs next to it."""

    pair: DuplicatePair
    suggestion: KeepSuggestion
    last_decision: DuplicateDecision | None

    @property
    def keep_id(self) -> int:
        return self.suggestion.keep.id

    @property
    def keep_a(self) -> bool:
        return self.suggestion.keep.id == self.pair.image_a_id

    @property
    def keep_letter(self) -> str:
        return "A" if self.keep_a else "B"

    @property
    def delete_letter(self) -> str:
        return "B" if self.keep_a else "A"

    @property
    def delete_id(self) -> int:
        return self.suggestion.remove.id

    @property
    def delete_kept_action(self) -> str:
        """The action that deletes the image the suggestion would keep (the reviewer overrides it)."""
        return "delete_a" if self.keep_a else "delete_b"


def pair_reviews(pairs: list[DuplicatePair]) -> list[PairReview]:
    """Suggestions and each pair's latest standing decision, in two queries whatever the page size."""
    latest: dict[int, DuplicateDecision] = {}
    decisions = DuplicateDecision.objects.active().filter(pair__in=pairs).select_related("user").order_by("-at", "-id")
    for decision in decisions:
        latest.setdefault(decision.pair_id, decision)
    return [PairReview(pair, keep_suggestion(pair), latest.get(pair.pk)) for pair in pairs]


def image_pairs(*, image: Image) -> list[DuplicatePair]:
    """The pairs an image is part of (for its page), duplicates first."""
    return list(
        duplicate_pair_list(status="all", image_id=image.pk).order_by("kind", "-similarity")  # "near..." < "similar"
    )


def decision_list(*, pair_id: int | None = None, include_undone: bool = True) -> QuerySet[DuplicateDecision]:
    decisions = DuplicateDecision.objects.select_related("user", "undone_by")
    if pair_id is not None:
        decisions = decisions.filter(pair_id=pair_id)
    if not include_undone:
        decisions = decisions.active()
    return decisions
