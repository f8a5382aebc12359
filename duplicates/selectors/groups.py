"""Reads of group review: the groups to review, each member's evidence and the facts that set it apart."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Self

from django.db.models import Case, Count, F, Prefetch, Q, QuerySet, Value, When

from core.query_params import InvalidQueryParameter, whole_number
from duplicates.models import DuplicateGroup, DuplicateGroupDecision, DuplicateGroupMember, DuplicatePair
from gallery.models import Image

GROUP_STATUS_FILTERS = {*DuplicateGroup.Status.values, "all"}
EVIDENCE_KEYS = ("cosine", "phash_distance", "geometric_inliers", "time_gap_seconds", "same_camera")
# What a review shows and compares of a member's image (the API's image block, the highlights, the card):
# loading only these keeps a page of large groups from building hundreds of full Image rows.
MEMBER_IMAGE_FIELDS = (
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
    "rating",
    "quality_scores",
    "created_at",
)


def _members(limit: int | None) -> QuerySet[DuplicateGroupMember]:
    """A group's members, the suggested copy first then by id; with a limit, only the first ones are read
    (the database cuts each group at the limit, so a large group costs no more than one of the limit's size)."""
    members = (
        DuplicateGroupMember.objects.select_related("image")
        .only("id", "group_id", "image_id", "decision", "added_at", *(f"image__{name}" for name in MEMBER_IMAGE_FIELDS))
        .alias(rank=Case(When(image_id=F("group__suggested_keep_id"), then=Value(0)), default=Value(1)))
        .order_by("rank", "image_id")
    )
    return members if limit is None else members[:limit]


def duplicate_group_list(
    *, kind: str = "", status: str = "pending", min_size: int = 2, member_limit: int | None = None
) -> QuerySet[DuplicateGroup]:
    """Groups, largest and most alike first, with their members (`review_members`, up to member_limit each)
    and images: two queries per page, whatever the groups' sizes."""
    groups = DuplicateGroup.objects.select_related("resolved_by").prefetch_related(
        Prefetch("members", _members(member_limit), to_attr="review_members")
    )
    if kind in DuplicatePair.Kind.values:
        groups = groups.filter(kind=kind)
    if status in DuplicateGroup.Status.values:
        groups = groups.filter(status=status)
    if min_size > 2:
        groups = groups.filter(size__gte=min_size)
    if status == DuplicateGroup.Status.PENDING:
        groups = groups.filter(size__gte=2)
    return groups.order_by("-size", "-max_similarity", "id")


@dataclass(frozen=True)
class GroupCursor:
    """A place in the review order (largest, then most alike, then oldest): paging by it never skips a group
    when groups before it are decided, as an offset does (the decided ones leave the pending list)."""

    size: int
    max_similarity: float
    id: int

    @classmethod
    def of(cls, group: DuplicateGroup) -> Self:
        return cls(size=group.size, max_similarity=group.max_similarity, id=group.pk)

    @classmethod
    def parse(cls, text: str) -> Self | None:
        """`size:max_similarity:id` as str() writes it; None for anything else."""
        parts = text.split(":")
        if len(parts) != 3:
            return None
        try:
            size = whole_number(parts[0], name="size")
            pk = whole_number(parts[2], name="id", minimum=1)
            similarity = float(parts[1])
        except (InvalidQueryParameter, ValueError):
            return None
        if not -1.0 <= similarity <= 1.0:  # also refuses nan and inf
            return None
        return cls(size=size, max_similarity=similarity, id=pk)

    def __str__(self) -> str:
        return f"{self.size}:{self.max_similarity!r}:{self.id}"


def groups_after(groups: QuerySet[DuplicateGroup], cursor: GroupCursor, *, inclusive: bool = False) -> QuerySet:
    """The groups that come after the cursor in the review order (and the cursor's own group if inclusive)."""
    size, similarity = cursor.size, cursor.max_similarity
    same = Q(size=size, max_similarity=similarity) & (Q(id__gte=cursor.id) if inclusive else Q(id__gt=cursor.id))
    return groups.filter(Q(size__lt=size) | Q(size=size, max_similarity__lt=similarity) | same)


def groups_before(groups: QuerySet[DuplicateGroup], cursor: GroupCursor) -> QuerySet:
    """The groups that come before the cursor in the review order."""
    size, similarity = cursor.size, cursor.max_similarity
    return groups.filter(
        Q(size__gt=size)
        | Q(size=size, max_similarity__gt=similarity)
        | Q(size=size, max_similarity=similarity, id__lt=cursor.id)
    )


def duplicate_group_counts() -> dict[str, dict[str, int]]:
    """{kind: {status: n, "all": n}} for the review tabs (pending groups of one image don't count)."""
    counts = {kind: dict.fromkeys([*DuplicateGroup.Status.values, "all"], 0) for kind in DuplicatePair.Kind.values}
    rows = DuplicateGroup.objects.exclude(status=DuplicateGroup.Status.PENDING, size__lt=2)
    for row in rows.values("kind", "status").annotate(n=Count("id")):
        counts[row["kind"]][row["status"]] = row["n"]
        counts[row["kind"]]["all"] += row["n"]
    return counts


@dataclass(frozen=True)
class MemberReview:
    """One member with what a reviewer compares: its pair with the suggested copy, and what sets it apart."""

    membership: DuplicateGroupMember
    image: Image
    suggested: bool
    similarity: float | None  # cosine with the suggested copy (its strongest pair in the group otherwise)
    evidence: dict[str, object]
    highlights: list[str] = field(default_factory=list)

    @property
    def megapixels(self) -> float:
        return self.image.width * self.image.height / 1_000_000


@dataclass(frozen=True)
class GroupReview:
    group: DuplicateGroup
    members: list[MemberReview]  # the ones shown (all, unless a limit was asked for)
    suggested_trash: list[int]  # among the members shown
    last_decision: DuplicateGroupDecision | None
    hidden: int = 0  # members not shown (a decision never touches them)

    @property
    def bytes_suggested_trash(self) -> int:
        return sum(member.image.file_size for member in self.members if member.image.pk in self.suggested_trash)


def _highlights(images: list[Image]) -> dict[int, list[str]]:
    """Per image, the facts it has and not every other member has (largest, sharper, rated, dated...)."""
    marks: dict[int, list[str]] = {image.pk: [] for image in images}

    def best(label: str, values: dict[int, float | int | None]) -> None:
        known = {pk: value for pk, value in values.items() if value is not None}
        if not known or (len(set(known.values())) == 1 and len(known) == len(values)):
            return
        top = max(known.values())
        for pk, value in known.items():
            if value == top:
                marks[pk].append(label)

    def only_some(label: str, present: dict[int, bool]) -> None:
        if any(present.values()) and not all(present.values()):
            for pk, here in present.items():
                if here:
                    marks[pk].append(label)

    best("largest resolution", {image.pk: image.width * image.height for image in images})
    best("largest file", {image.pk: image.file_size for image in images})
    best("sharpest", {image.pk: (image.quality_scores or {}).get("sharpness") for image in images})
    best("highest rating", {image.pk: image.rating for image in images})
    only_some("EXIF date", {image.pk: image.taken_at is not None for image in images})
    only_some("camera", {image.pk: bool(image.camera_make or image.camera_model) for image in images})
    return marks


def group_reviews(groups: list[DuplicateGroup], *, member_limit: int | None = None) -> list[GroupReview]:
    """Members with evidence and highlights for a page of groups: each member's pair with the suggested copy
    (one query for the page), what sets it apart, the latest decision. With member_limit, a card shows the
    suggested copy and the first others up to the limit; the rest stay out of any decision made on it.
    The groups come from duplicate_group_list (their `review_members`, the suggested copy first); with the
    same member_limit there, the others are not loaded and one more query counts them."""
    shown: dict[int, list[DuplicateGroupMember]] = {}
    for group in groups:
        memberships = group.review_members  # type: ignore[attr-defined]
        shown[group.pk] = memberships if member_limit is None else memberships[:member_limit]
    totals = {group.pk: len(group.review_members) for group in groups}  # type: ignore[attr-defined]
    if member_limit is not None:
        cut = [pk for pk, members in shown.items() if len(members) >= member_limit]
        if cut:
            rows = DuplicateGroupMember.objects.filter(group_id__in=cut).values("group_id").annotate(n=Count("id"))
            totals.update({row["group_id"]: row["n"] for row in rows.order_by()})
    keeps = {group.suggested_keep_id for group in groups if group.suggested_keep_id is not None}
    others = {member.image_id for members in shown.values() for member in members}
    pairs: dict[tuple[int, int], dict[str, object]] = {}
    if keeps:
        # Only the evidence's few keys, read in the database: decoding whole evidence blobs (with both images'
        # facts) for every member would be a large part of a page of big groups.
        rows = DuplicatePair.objects.filter(
            Q(image_a_id__in=keeps, image_b_id__in=others) | Q(image_b_id__in=keeps, image_a_id__in=others)
        ).values_list("id", "image_a_id", "image_b_id", "similarity", *(f"evidence__{name}" for name in EVIDENCE_KEYS))
        for pk, a, b, similarity, *values in rows.order_by():
            pairs[(a, b)] = {"pair": pk, "similarity": similarity, **dict(zip(EVIDENCE_KEYS, values, strict=True))}
    latest: dict[int, DuplicateGroupDecision] = {}
    decisions = DuplicateGroupDecision.objects.filter(group__in=groups, undone_at__isnull=True).order_by("-at", "-id")
    for decision in decisions.select_related("user"):
        latest.setdefault(decision.group_id, decision)
    reviews = []
    for group in groups:
        memberships = shown[group.pk]
        marks = _highlights([member.image for member in memberships])
        keep = group.suggested_keep_id
        members = []
        for member in memberships:
            pair = None
            if keep is not None and member.image_id != keep:
                pair = pairs.get((min(keep, member.image_id), max(keep, member.image_id)))
            evidence: dict[str, object] = {}
            if pair is not None:
                evidence = {"other": keep, **{name: value for name, value in pair.items() if name != "similarity"}}
            members.append(
                MemberReview(
                    membership=member,
                    image=member.image,
                    suggested=member.image_id == keep,
                    similarity=pair["similarity"] if pair is not None else None,  # type: ignore[arg-type]
                    evidence=evidence,
                    highlights=marks[member.image_id],
                )
            )
        trash = (
            [member.image_id for member in memberships if member.image_id != keep]
            if group.kind == DuplicatePair.Kind.NEAR_DUPLICATE and keep is not None
            else []
        )
        reviews.append(
            GroupReview(
                group=group,
                members=members,
                suggested_trash=trash,
                last_decision=latest.get(group.pk),
                hidden=totals[group.pk] - len(memberships),
            )
        )
    return reviews


def group_decision_list(*, group_id: int | None = None) -> QuerySet[DuplicateGroupDecision]:
    """The group decisions log, newest first (with who made and who undid each)."""
    decisions = DuplicateGroupDecision.objects.select_related("user", "undone_by").order_by("-at", "-id")
    return decisions.filter(group_id=group_id) if group_id is not None else decisions


def undoable_group_decisions(*, decisions: list[DuplicateGroupDecision]) -> set[int]:
    """Which of these decisions can be undone now: not undone, and the latest standing one of a group that
    still exists (one query for the page)."""
    groups = {decision.group_id for decision in decisions if decision.group_id is not None and not decision.undone_at}
    latest: dict[int, int] = {}
    standing = DuplicateGroupDecision.objects.filter(group_id__in=groups, undone_at__isnull=True)
    for group_id, pk in standing.order_by("-at", "-id").values_list("group_id", "id"):
        latest.setdefault(group_id, pk)
    return {decision.pk for decision in decisions if latest.get(decision.group_id) == decision.pk}


def image_stack_group(*, image: Image) -> DuplicateGroup | None:
    """The stacked group whose decision made the stack an image is in (as its cover or under it), or None."""
    cover_id = image.stack_cover_id or image.pk
    return (
        DuplicateGroup.objects.filter(
            status=DuplicateGroup.Status.STACKED, suggested_keep_id=cover_id, members__image_id=image.pk
        )
        .order_by("-resolved_at", "-id")
        .first()
    )
