"""Reads of group review: the groups to review, each member's evidence and the facts that set it apart."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Self

from django.db.models import Case, Count, F, Prefetch, Q, QuerySet, Value, When

from core.query_params import InvalidQueryParameter, whole_number
from duplicates.models import DuplicateGroup, DuplicateGroupDecision, DuplicateGroupMember, DuplicatePair
from gallery.models import Image

GROUP_STATUS_FILTERS = {*DuplicateGroup.Status.values, "all"}
EVIDENCE_KEYS = ("cosine", "phash_distance", "geometric_inliers", "time_gap_seconds", "same_camera", "scene_reason")
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
    similarity: float | None  # cosine with the suggested copy (None: no pair with it)
    evidence: dict[str, object]
    highlights: list[str] = field(default_factory=list)
    verified: bool = True  # its own near-duplicate pair with the suggested copy (near-duplicate groups)
    check: str = ""  # why it is not verified: "weaker match 0.78", "not checked against the kept copy"...
    key: int | None = None  # the number key that ticks it on the card (1-9)

    @property
    def megapixels(self) -> float:
        return self.image.width * self.image.height / 1_000_000


@dataclass(frozen=True)
class GroupReview:
    """A group as a reviewer decides it: a decision covers every member, shown or not (`members_digest` names
    them); the suggestion trashes only the members verified against the kept copy and leaves the rest aside."""

    group: DuplicateGroup
    members: list[MemberReview]  # shown: the suggested copy first, then verified members (up to the limit)
    suggested_trash: list[int]  # every member the suggestion moves to the trash, shown or not
    last_decision: DuplicateGroupDecision | None
    hidden: int = 0  # members not shown; a decision sent with the digest covers them too
    aside: list[MemberReview] = field(default_factory=list)  # shown apart: not verified against the kept copy
    aside_ids: list[int] = field(default_factory=list)  # every member the suggestion leaves aside
    member_count: int = 0
    bytes_total: int = 0
    bytes_suggested_trash: int = 0
    members_digest: str = ""


def members_digest(image_ids: Iterable[int]) -> str:
    """Names a group's exact members: a decision sent with it covers all of them, shown or not, and is refused
    when the members changed since the page loaded (so an image that joined later is never decided blindly)."""
    text = ",".join(str(pk) for pk in sorted({int(pk) for pk in image_ids}))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _usable(pairs: QuerySet[DuplicatePair]) -> QuerySet[DuplicatePair]:
    return pairs.exclude(review_status=DuplicatePair.ReviewStatus.NOT_DUPLICATE)


def verified_members(*, kept: Iterable[int], others: Iterable[int]) -> set[int]:
    """Which of `others` are verified copies of a kept image: their own near-duplicate pair with it (cosine at
    or above the threshold, or a geometric match) stands, not only a link through other members."""
    kept_ids = {int(pk) for pk in kept}
    other_ids = {int(pk) for pk in others} - kept_ids
    if not kept_ids or not other_ids:
        return set()
    rows = _usable(DuplicatePair.objects.near_duplicates()).filter(
        Q(image_a_id__in=kept_ids, image_b_id__in=other_ids) | Q(image_b_id__in=kept_ids, image_a_id__in=other_ids)
    )
    return {b if a in kept_ids else a for a, b in rows.values_list("image_a_id", "image_b_id").order_by()}


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


def _check(pair: dict[str, object] | None, link: tuple[int, float] | None) -> str:
    """Why a member is not verified against the kept copy, as the card says it."""
    if pair is not None and pair["review_status"] == DuplicatePair.ReviewStatus.NOT_DUPLICATE:
        return "marked not a duplicate of the kept copy"
    if pair is not None:
        return f"weaker match {pair['similarity']:.2f} with the kept copy: below the threshold, no geometric match"
    through = f": linked through #{link[0]} ({link[1]:.2f})" if link is not None else ""
    return f"not checked against the kept copy{through}"


def group_reviews(groups: list[DuplicateGroup], *, member_limit: int | None = None) -> list[GroupReview]:
    """Members with evidence and highlights for a page of groups: each member's pair with the suggested copy
    (one query for the page), whether that pair verifies it, what sets it apart, the latest decision. With
    member_limit, a card shows the suggested copy and the first verified members up to the limit, and the
    members that are not verified apart (up to the limit too); a decision covers the others as well.
    The groups come from duplicate_group_list (their `review_members`, the suggested copy first); the rest of
    a large group is read as ids and file sizes only, and the images of the members shown apart that were
    not among the first ones in one more query."""
    everyone: dict[int, list[int]] = {group.pk: [] for group in groups}
    sizes: dict[int, int] = {}
    rows = DuplicateGroupMember.objects.filter(group_id__in=everyone).values_list(
        "group_id", "image_id", "image__file_size"
    )
    for group_id, image_id, file_size in rows.order_by("image_id"):
        everyone[group_id].append(image_id)
        sizes[image_id] = file_size
    keeps = {group.suggested_keep_id for group in groups if group.suggested_keep_id is not None}
    others = set(sizes) - keeps
    pairs: dict[tuple[int, int], dict[str, object]] = {}
    if keeps and others:
        # Only the evidence's few keys, read in the database: decoding whole evidence blobs (with both images'
        # facts) for every member would be a large part of a page of big groups.
        rows = DuplicatePair.objects.filter(
            Q(image_a_id__in=keeps, image_b_id__in=others) | Q(image_b_id__in=keeps, image_a_id__in=others)
        ).values_list(
            "id",
            "image_a_id",
            "image_b_id",
            "similarity",
            "kind",
            "review_status",
            *(f"evidence__{name}" for name in EVIDENCE_KEYS),
        )
        for pk, a, b, similarity, kind, status, *values in rows.order_by():
            pairs[(a, b)] = {
                "pair": pk,
                "similarity": similarity,
                "kind": kind,
                "review_status": status,
                **dict(zip(EVIDENCE_KEYS, values, strict=True)),
            }

    def pair_with_keep(group: DuplicateGroup, image_id: int) -> dict[str, object] | None:
        keep = group.suggested_keep_id
        if keep is None or image_id == keep:
            return None
        return pairs.get((min(keep, image_id), max(keep, image_id)))

    def verified(group: DuplicateGroup, image_id: int) -> bool:
        if (
            group.kind != DuplicatePair.Kind.NEAR_DUPLICATE
            or group.status != DuplicateGroup.Status.PENDING
            or group.suggested_keep_id in (None, image_id)
        ):
            return True
        pair = pair_with_keep(group, image_id)
        return (
            pair is not None
            and pair["kind"] == DuplicatePair.Kind.NEAR_DUPLICATE
            and pair["review_status"] != DuplicatePair.ReviewStatus.NOT_DUPLICATE
        )

    apart = {group.pk: [x for x in everyone[group.pk] if not verified(group, x)] for group in groups}
    apart_set = {pk: set(ids) for pk, ids in apart.items()}
    links: dict[int, tuple[int, float]] = {}  # a member not verified -> its strongest pair in its group
    unverified = {x for ids in apart.values() for x in ids}
    if unverified:
        near = _usable(DuplicatePair.objects.near_duplicates()).filter(
            Q(image_a_id__in=unverified, image_b_id__in=sizes) | Q(image_b_id__in=unverified, image_a_id__in=sizes)
        )
        home = {x: group_id for group_id, ids in everyone.items() for x in ids}
        for a, b, similarity in near.values_list("image_a_id", "image_b_id", "similarity").order_by():
            for node, other in ((a, b), (b, a)):
                if node in unverified and home.get(other) == home[node] and similarity > links.get(node, (0, -1.0))[1]:
                    links[node] = (other, similarity)

    limit = member_limit if member_limit is not None else len(sizes) + 1
    loaded = {
        (member.group_id, member.image_id): member
        for group in groups
        for member in group.review_members  # type: ignore[attr-defined]
    }
    shown_ids: dict[int, tuple[list[int], list[int]]] = {}
    for group in groups:
        first = [x for x in everyone[group.pk] if x == group.suggested_keep_id]
        rest = [x for x in everyone[group.pk] if x != group.suggested_keep_id and x not in apart_set[group.pk]]
        shown_ids[group.pk] = ((first + rest)[:limit], apart[group.pk][:limit])
    missing = {x for pk, (main, aside) in shown_ids.items() for x in [*main, *aside] if (pk, x) not in loaded}
    if missing:
        for member in _members(None).filter(group_id__in=shown_ids, image_id__in=missing):
            loaded[(member.group_id, member.image_id)] = member
    latest: dict[int, DuplicateGroupDecision] = {}
    decisions = DuplicateGroupDecision.objects.filter(group__in=groups, undone_at__isnull=True).order_by("-at", "-id")
    for decision in decisions.select_related("user"):
        latest.setdefault(decision.group_id, decision)
    reviews = []
    for group in groups:
        main_ids, aside_ids = shown_ids[group.pk]
        memberships = [loaded[(group.pk, x)] for x in [*main_ids, *aside_ids] if (group.pk, x) in loaded]
        marks = _highlights([member.image for member in memberships])
        keep = group.suggested_keep_id
        members: list[MemberReview] = []
        aside: list[MemberReview] = []
        for key, member in enumerate(memberships, start=1):
            pair = pair_with_keep(group, member.image_id)
            evidence: dict[str, object] = {}
            if pair is not None:
                evidence = {"other": keep, **{name: pair[name] for name in ("pair", *EVIDENCE_KEYS)}}
            is_verified = verified(group, member.image_id)
            review = MemberReview(
                membership=member,
                image=member.image,
                suggested=member.image_id == keep,
                similarity=pair["similarity"] if pair is not None else None,  # type: ignore[arg-type]
                evidence=evidence,
                highlights=marks[member.image_id],
                verified=is_verified,
                check="" if is_verified else _check(pair, links.get(member.image_id)),
                key=key if key <= 9 else None,
            )
            (members if is_verified else aside).append(review)
        trash = (
            [x for x in everyone[group.pk] if x != keep and x not in apart_set[group.pk]]
            if group.kind == DuplicatePair.Kind.NEAR_DUPLICATE and keep is not None
            else []
        )  # the suggestion of a similar group keeps all
        reviews.append(
            GroupReview(
                group=group,
                members=members,
                suggested_trash=trash,
                last_decision=latest.get(group.pk),
                hidden=len(everyone[group.pk]) - len(memberships),
                aside=aside,
                aside_ids=apart[group.pk],
                member_count=len(everyone[group.pk]),
                bytes_total=sum(sizes[x] for x in everyone[group.pk]),
                bytes_suggested_trash=sum(sizes[x] for x in trash),
                members_digest=members_digest(everyone[group.pk]),
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
