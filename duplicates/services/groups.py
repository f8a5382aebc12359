"""Keeping duplicate groups in step with the pairs: which images form a pending group, and its suggestion.

Pending groups are derived: the pairs of one band (not dismissed as "not a duplicate", both images out of the
trash) are grouped by duplicates/group_linking.py, and a group needs at least one pending pair inside it (pairs a
reviewer already confirmed make no new work). The similar band is grouped apart, from its pairs verified as
one scene (duplicates/scene_match.py: look-alike photos of the sea do not make a group) and without the pairs
that lie inside one near-duplicate group. A refresh recomputes only the connected part of the library around the
images it is given, and keeps each existing pending group's id for the new group that shares most of its
members, so a reviewer's page stays valid while detection adds images. Resolved and stacked groups are
records of a decision: a refresh never changes them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from duplicates.evidence import suggest_keep
from duplicates.group_linking import MIN_SHARED, SIMILAR_MIN_SHARED, group_pairs
from duplicates.models import DuplicateGroup, DuplicateGroupMember, DuplicatePair, GroupRefreshLock
from duplicates.selectors.pairs import image_facts
from gallery.models import Image

IDS_PER_QUERY = 2000
KINDS = (DuplicatePair.Kind.NEAR_DUPLICATE, DuplicatePair.Kind.SIMILAR)
# The grouping rule of each band (duplicates/group_linking.py): near-duplicates keep every copy whose pairs
# mostly go to one group; the similar band links loosely and is grouped strictly.
GROUPING: dict[str, dict[str, Any]] = {
    DuplicatePair.Kind.NEAR_DUPLICATE: {"rule": "attached", "min_shared": MIN_SHARED},
    DuplicatePair.Kind.SIMILAR: {"rule": "shared", "min_shared": SIMILAR_MIN_SHARED},
}


@dataclass
class RefreshSummary:
    created: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0


@dataclass(frozen=True)
class _Edge:
    pair_id: int
    similarity: float
    pending: bool


def best_of(images: list[Image]) -> tuple[Image, str]:
    """The member to keep (suggest_keep's order over the whole group) and why it beats the runner-up."""
    if not images:
        raise ValueError("an empty group has no best copy")

    def winner(candidates: list[Image]) -> Image:
        best = candidates[0]
        for other in candidates[1:]:
            if suggest_keep(image_facts(best), image_facts(other)).keep.id != best.pk:
                best = other
        return best

    best = winner(images)
    rest = [image for image in images if image.pk != best.pk]
    if not rest:
        return best, ""
    return best, suggest_keep(image_facts(best), image_facts(winner(rest))).reason


def groups_lock() -> None:
    """Hold the group lock until the current transaction ends, so that one writer at a time reads the pairs
    and rewrites the pending groups, across processes and machines (two refreshes reading the same pairs
    would each make a group of the same images). An UPDATE of one row: a row lock on PostgreSQL, the
    database's write lock on SQLite; services that lock pairs or groups take it first, so that no two
    writers wait on each other."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("groups_lock() holds until the transaction ends: call it inside transaction.atomic()")
    now = timezone.now()
    if not GroupRefreshLock.objects.filter(pk=1).update(taken_at=now):
        GroupRefreshLock.objects.bulk_create([GroupRefreshLock(pk=1, taken_at=now)], ignore_conflicts=True)
        GroupRefreshLock.objects.filter(pk=1).update(taken_at=now)


def _chunks(ids: Iterable[int]) -> Iterable[list[int]]:
    ordered = sorted(set(ids))
    for start in range(0, len(ordered), IDS_PER_QUERY):
        yield ordered[start : start + IDS_PER_QUERY]


def _edges_of(kind: str, ids: Iterable[int]) -> dict[tuple[int, int], _Edge]:
    """Grouping pairs of `kind` touching these images: not dismissed, both images out of the trash; similar
    pairs only when their evidence says one scene."""
    edges: dict[tuple[int, int], _Edge] = {}
    pairs = (
        DuplicatePair.objects.filter(kind=kind, image_a__trashed_at__isnull=True, image_b__trashed_at__isnull=True)
        .exclude(review_status=DuplicatePair.ReviewStatus.NOT_DUPLICATE)
        .order_by()
    )
    if kind == DuplicatePair.Kind.SIMILAR:  # look-alikes group only when verified one scene (scene_match)
        pairs = pairs.filter(evidence__same_scene=True)
    for chunk in _chunks(ids):
        rows = pairs.filter(Q(image_a_id__in=chunk) | Q(image_b_id__in=chunk)).values_list(
            "id", "image_a_id", "image_b_id", "similarity", "review_status"
        )
        for pk, a, b, similarity, status in rows:
            edges[(a, b)] = _Edge(pk, similarity, status == DuplicatePair.ReviewStatus.PENDING)
    return edges


def _pending_members(kind: str, ids: Iterable[int]) -> dict[int, set[int]]:
    """{pending group id: its member ids} of the pending groups of `kind` holding any of these images."""
    group_ids: set[int] = set()
    for chunk in _chunks(ids):
        group_ids.update(
            DuplicateGroupMember.objects.filter(
                image_id__in=chunk, group__kind=kind, group__status=DuplicateGroup.Status.PENDING
            ).values_list("group_id", flat=True)
        )
    members: dict[int, set[int]] = {pk: set() for pk in group_ids}
    for chunk in _chunks(group_ids):
        for group_id, image_id in DuplicateGroupMember.objects.filter(group_id__in=chunk).values_list(
            "group_id", "image_id"
        ):
            members[group_id].add(image_id)
    return members


def _near_homes(ids: Iterable[int]) -> dict[int, set[int]]:
    """image id -> the near-duplicate groups (any status) it is a kept or pending member of."""
    homes: dict[int, set[int]] = {}
    for chunk in _chunks(ids):
        rows = (
            DuplicateGroupMember.objects.filter(image_id__in=chunk, group__kind=DuplicatePair.Kind.NEAR_DUPLICATE)
            .exclude(decision=DuplicateGroupMember.Decision.TRASHED)
            .values_list("image_id", "group_id")
        )
        for image_id, group_id in rows:
            homes.setdefault(image_id, set()).add(group_id)
    return homes


def _component(kind: str, seeds: set[int]) -> tuple[set[int], dict[tuple[int, int], _Edge], dict[int, set[int]]]:
    """Every image reachable from the seeds through grouping pairs or pending groups, with those pairs."""
    nodes: set[int] = set(seeds)
    frontier: set[int] = set(seeds)
    edges: dict[tuple[int, int], _Edge] = {}
    groups: dict[int, set[int]] = {}
    while frontier:
        found = _edges_of(kind, frontier)
        edges.update(found)
        reached = {x for key in found for x in key}
        touched = _pending_members(kind, frontier)
        groups.update(touched)
        reached.update(x for members in touched.values() for x in members)
        frontier = reached - nodes
        nodes |= reached
    return nodes, edges, groups


def _refresh_kind(kind: str, seeds: set[int], summary: RefreshSummary) -> None:
    nodes, edges, existing = _component(kind, seeds)
    if kind == DuplicatePair.Kind.SIMILAR:
        homes = _near_homes(nodes)
        edges = {key: edge for key, edge in edges.items() if not homes.get(key[0], set()) & homes.get(key[1], set())}
    keys = list(edges)
    grouped = group_pairs(
        ids=sorted(nodes),
        first=[a for a, _ in keys],
        second=[b for _, b in keys],
        cosine=[edges[key].similarity for key in keys],
        **GROUPING[kind],
    )
    home = {member: number for number, members in enumerate(grouped) for member in members}
    pending = [False] * len(grouped)
    strongest = [0.0] * len(grouped)
    for (a, b), edge in edges.items():
        number = home.get(a)
        if number is not None and number == home.get(b):
            pending[number] |= edge.pending
            strongest[number] = max(strongest[number], edge.similarity)
    wanted = [(set(members), strongest[n]) for n, members in enumerate(grouped) if pending[n]]

    # Each existing pending group keeps its id for the new group sharing most of its members.
    overlaps = sorted(
        (
            (len(members & old), -old_id, number, old_id)
            for number, (members, _) in enumerate(wanted)
            for old_id, old in existing.items()
            if members & old
        ),
        reverse=True,
    )
    match: dict[int, int] = {}
    taken: set[int] = set()
    for _, _, number, old_id in overlaps:
        if number not in match and old_id not in taken:
            match[number] = old_id
            taken.add(old_id)
    images = Image.objects.defer("embedding").in_bulk({x for members, _ in wanted for x in members})
    with transaction.atomic():
        stale = [old_id for old_id in existing if old_id not in taken]
        if stale:
            DuplicateGroup.objects.filter(pk__in=stale, status=DuplicateGroup.Status.PENDING).delete()
            summary.removed += len(stale)
        for number, (members, similarity) in enumerate(wanted):
            best, reason = best_of(sorted((images[x] for x in members), key=lambda image: image.pk))
            fields = {
                "size": len(members),
                "max_similarity": similarity,
                "suggested_keep": best,
                "suggestion_reason": reason,
            }
            old_id = match.get(number)
            if old_id is None:
                group = DuplicateGroup.objects.create(kind=kind, **fields)
                DuplicateGroupMember.objects.bulk_create(
                    [DuplicateGroupMember(group=group, image_id=x) for x in sorted(members)]
                )
                summary.created += 1
                continue
            old = existing[old_id]
            if old == members:
                DuplicateGroup.objects.filter(pk=old_id).update(**fields)
                summary.unchanged += 1
                continue
            DuplicateGroupMember.objects.filter(group_id=old_id, image_id__in=list(old - members)).delete()
            DuplicateGroupMember.objects.bulk_create(
                [DuplicateGroupMember(group_id=old_id, image_id=x) for x in sorted(members - old)],
                ignore_conflicts=True,
            )
            group = DuplicateGroup.objects.get(pk=old_id)
            for name, value in fields.items():
                setattr(group, name, value)
            group.save(update_fields=[*fields, "updated_at"])
            summary.updated += 1


def duplicate_groups_refresh(*, image_ids: Iterable[int], kinds: Iterable[str] = KINDS) -> RefreshSummary:
    """Bring the pending groups around these images up to date with their pairs (after detection wrote
    pairs, a decision split a group, or images left or came back from the trash)."""
    seeds = {int(pk) for pk in image_ids}
    summary = RefreshSummary()
    if not seeds:
        return summary
    wanted = list(kinds)
    with transaction.atomic():
        groups_lock()  # the reads below see every refresh committed before this one
        for kind in KINDS:  # near-duplicates first: the similar band leaves out pairs inside their groups
            if kind in wanted:
                _refresh_kind(kind, seeds, summary)
    return summary


def duplicate_groups_rebuild() -> RefreshSummary:
    """Recompute every pending group from the pairs (scan_duplicates does this after a full re-scan)."""
    ids: set[int] = set()
    for a, b in DuplicatePair.objects.order_by().values_list("image_a_id", "image_b_id").iterator(chunk_size=5000):
        ids.add(a)
        ids.add(b)
    ids.update(
        DuplicateGroupMember.objects.filter(group__status=DuplicateGroup.Status.PENDING).values_list(
            "image_id", flat=True
        )
    )
    return duplicate_groups_refresh(image_ids=ids)
