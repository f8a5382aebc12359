"""Writes of group review: resolve a whole group (keep some and trash the rest, keep all, stack), undo it,
unstack an image's stack.

A decision sent with the group's `members_digest` (the card and the API list give it) covers every member,
shown or not: members it does not name go to the trash only when verified against a kept copy (their own
near-duplicate pair with it), and are otherwise left out for review. A digest that no longer matches (an
image joined or left after the page loaded) is refused with 409 and the group's current state, so nothing
is decided blindly. Without a digest a decision applies to the ids sent, and a member that joined later is
left out and stays pending in a new group with the kept copies. The suggestion keeps the suggested copy and
trashes only the members verified against it. A stack hides members under its cover, so it takes only the
members verified as the same photo or the same scene as the cover; the others are left out the same way.
The group's version counts decisions: sending an old version, or deciding on a group that is no longer
pending, is refused with 409 and the group's current state, so two reviewers never overwrite each other.
Every decision is logged (DuplicateGroupDecision) with what its undo needs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core.errors import ServiceError
from core.users import Actor, recorded_user
from duplicates.models import (
    DuplicateDecision,
    DuplicateGroup,
    DuplicateGroupDecision,
    DuplicateGroupMember,
    DuplicatePair,
)
from duplicates.selectors.groups import image_stack_group, members_digest, verified_members
from duplicates.services.groups import duplicate_groups_refresh, groups_lock
from gallery.models import Image
from gallery.services import image_restore, image_trash


class GroupReviewError(ServiceError):
    """A group decision that can't be carried out (409 unless said otherwise); `group` is its current state."""

    default_status = 409

    def __init__(
        self, code: str, message: str, *, status: int | None = None, group: DuplicateGroup | None = None
    ) -> None:
        super().__init__(code, message, status=status)
        self.group = group


class GroupAction:
    KEEP = "keep"  # keep the `keep` ids, move the `trash` ids to the trash
    KEEP_ALL = "keep_all"  # not duplicates: the pairs are dismissed, nothing is trashed
    STACK = "stack"  # keep all, shown as one stack under the suggested copy
    SUGGESTION = "suggestion"  # near-duplicates: keep the suggested copy, trash the verified; similar: keep all

    ALL = (KEEP, KEEP_ALL, STACK, SUGGESTION)
    LABELS = {
        KEEP: "Keep the selected, move the rest to the trash",
        KEEP_ALL: "Keep all (not duplicates)",
        STACK: "Stack (keep all, show the best copy)",
        SUGGESTION: "Apply the suggestion",
    }
    CHOICES = list(LABELS.items())


@dataclass(frozen=True)
class GroupPlan:
    """What a decision will do, before it is done (the web page's confirmation shows it)."""

    action: str
    members: list[int]
    keep: list[int]
    trash: list[int]
    bytes_trashed: int


def _ids(values: Iterable[int] | None) -> list[int] | None:
    return None if values is None else sorted({int(value) for value in values})


def group_plan(
    *,
    group: DuplicateGroup,
    action: str,
    keep: Iterable[int] | None = None,
    trash: Iterable[int] | None = None,
    members: Iterable[int] | None = None,
    digest: str | None = None,
) -> GroupPlan:
    """Check a decision against the group's current members (400 for ids that aren't members, 409 for a digest
    of other members) and spell it out."""
    if action not in GroupAction.ALL:
        raise GroupReviewError(
            "invalid_action", f"Unknown action {action!r}; use one of {', '.join(GroupAction.ALL)}.", status=400
        )
    current = dict(DuplicateGroupMember.objects.filter(group=group).values_list("image_id", "image__file_size"))
    whole = digest is not None
    if whole and digest != members_digest(current):
        raise GroupReviewError(
            "members_changed",
            f"Group #{group.pk} has other members than when you loaded it ({len(current)} now): reload it to "
            "decide on all of them. Nothing was changed.",
            group=group,
        )
    keep_ids, trash_ids, seen_ids = _ids(keep), _ids(trash), _ids(members)
    named = set(keep_ids or []) | set(trash_ids or []) | set(seen_ids or [])
    strangers = sorted(named - set(current))
    if strangers:
        raise GroupReviewError(
            "not_members",
            f"Not members of group #{group.pk}: {', '.join(map(str, strangers))}. Nothing was changed.",
            status=400,
            group=group,
        )
    covered = sorted(current) if whole else None
    if action == GroupAction.SUGGESTION:
        seen = covered or seen_ids or sorted(current)
        if group.kind == DuplicatePair.Kind.SIMILAR or group.suggested_keep_id not in seen:
            action, keep_ids, trash_ids = GroupAction.KEEP_ALL, seen, []
        else:
            action, keep_ids = GroupAction.KEEP, [group.suggested_keep_id]
            trash_ids = sorted(verified_members(kept=keep_ids, others=seen))
    if action == GroupAction.KEEP:
        if not keep_ids:
            raise GroupReviewError("keep_required", "Choose at least one image to keep.", status=400, group=group)
        if trash_ids is None and covered is None:
            raise GroupReviewError(
                "trash_required",
                "Say which images go to the trash (`trash`, possibly empty), or send the group's `members_digest`: "
                "the decision applies only to the members you saw.",
                status=400,
                group=group,
            )
        trash_ids = trash_ids or []
        if set(keep_ids) & set(trash_ids):
            raise GroupReviewError(
                "keep_and_trash", "An image cannot be both kept and trashed.", status=400, group=group
            )
        unnamed = set(covered or []) - set(keep_ids) - set(trash_ids)
        trash_ids = sorted(set(trash_ids) | verified_members(kept=keep_ids, others=unnamed))
        seen = sorted(set(keep_ids) | set(trash_ids))
    else:
        if trash_ids:
            raise GroupReviewError(
                "nothing_to_trash", f"{GroupAction.LABELS[action]} trashes nothing: leave `trash` out.", status=400
            )
        seen = covered or seen_ids or keep_ids or sorted(current)
        keep_ids, trash_ids = seen, []
    if len(seen) < 2:
        raise GroupReviewError("too_few", "A decision needs at least two of the group's members.", status=400)
    if action == GroupAction.STACK:
        seen = keep_ids = _stackable(group, seen)
    return GroupPlan(
        action=action,
        members=seen,
        keep=sorted(keep_ids),
        trash=sorted(trash_ids),
        bytes_trashed=sum(current[x] for x in trash_ids),
    )


def _stackable(group: DuplicateGroup, seen: list[int]) -> list[int]:
    """The members a stack may hide under its cover: those linked to the cover through pairs verified as one
    photo (near-duplicates) or one scene (similar pairs whose evidence says so, duplicates/scene_match.py).
    A look-alike linked only by the embedding is left out of the stack and stays in the review."""
    cover = group.suggested_keep_id if group.suggested_keep_id in seen else seen[0]
    verified = Q(kind=DuplicatePair.Kind.NEAR_DUPLICATE) | Q(kind=DuplicatePair.Kind.SIMILAR, evidence__same_scene=True)
    links: dict[int, set[int]] = {}
    for a, b in (
        DuplicatePair.objects.filter(verified, image_a_id__in=seen, image_b_id__in=seen)
        .exclude(review_status=DuplicatePair.ReviewStatus.NOT_DUPLICATE)
        .values_list("image_a_id", "image_b_id")
    ):
        links.setdefault(a, set()).add(b)
        links.setdefault(b, set()).add(a)
    reached, frontier = {cover}, [cover]
    while frontier:
        for other in links.get(frontier.pop(), set()) - reached:
            reached.add(other)
            frontier.append(other)
    if len(reached) < 2:
        raise GroupReviewError(
            "not_verified",
            f"No other member of group #{group.pk} is verified as the same photo or scene as #{cover}: nothing "
            "to stack (keep all instead).",
            group=group,
        )
    return sorted(reached)


def _refuse_if_stale(group: DuplicateGroup, version: int | None) -> None:
    if group.status != DuplicateGroup.Status.PENDING:
        raise GroupReviewError(
            "already_decided",
            f"Group #{group.pk} was already {group.get_status_display().lower()} (version {group.version}).",
            group=group,
        )
    if version is not None and version != group.version:
        raise GroupReviewError(
            "stale_version",
            f"Group #{group.pk} changed since you loaded it (version {version}, now {group.version}).",
            group=group,
        )


def duplicate_group_resolve(
    *,
    group: DuplicateGroup,
    action: str,
    user: Actor,
    keep: Iterable[int] | None = None,
    trash: Iterable[int] | None = None,
    members: Iterable[int] | None = None,
    version: int | None = None,
    members_digest: str | None = None,
    source: str = "",
) -> DuplicateGroupDecision:
    """Decide on the group (with its members_digest: every member) or on the members the reviewer saw: trash
    some and keep the rest, keep all, or stack them."""
    with transaction.atomic():
        groups_lock()
        try:
            locked = DuplicateGroup.objects.select_for_update().get(pk=group.pk)
        except DuplicateGroup.DoesNotExist:
            raise GroupReviewError(
                "group_gone", f"Group #{group.pk} no longer exists: its pairs changed. Reload.", status=404
            ) from None
        _refuse_if_stale(locked, version)
        plan = group_plan(group=locked, action=action, keep=keep, trash=trash, members=members, digest=members_digest)
        suggested = action == GroupAction.SUGGESTION
        seen = set(plan.members)
        new_status = (
            DuplicatePair.ReviewStatus.NOT_DUPLICATE
            if plan.action == GroupAction.KEEP_ALL
            else DuplicatePair.ReviewStatus.CONFIRMED
        )
        pairs = list(
            DuplicatePair.objects.select_for_update()
            .filter(kind=locked.kind, image_a_id__in=plan.members, image_b_id__in=plan.members)
            .exclude(review_status=new_status)
            .select_related("image_a", "image_b")
        )
        now = timezone.now()
        changes: list[list[object]] = []
        pair_decisions: list[DuplicateDecision] = []
        for pair in pairs:
            changes.append([pair.pk, pair.review_status])
            if plan.action == GroupAction.KEEP_ALL:  # remembered by content, like a pair dismissed by hand
                pair_decisions.append(
                    DuplicateDecision.for_pair(
                        pair=pair,
                        action=DuplicateDecision.Action.NOT_DUPLICATE,
                        previous=pair.review_status,
                        new_status=new_status,
                        user=recorded_user(user),
                        source="group",
                    )
                )
        DuplicatePair.objects.filter(pk__in=[pair.pk for pair in pairs]).update(
            review_status=new_status, reviewed_by=recorded_user(user), reviewed_at=now, updated_at=now
        )
        created = DuplicateDecision.objects.bulk_create(pair_decisions)
        by_pair = {decision.pair_id: decision.pk for decision in created}
        for change in changes:
            change.append(by_pair.get(change[0]))
        unseen = list(
            DuplicateGroupMember.objects.filter(group=locked)
            .exclude(image_id__in=plan.members)
            .values_list("image_id", flat=True)
        )
        DuplicateGroupMember.objects.filter(group=locked, image_id__in=unseen).delete()
        DuplicateGroupMember.objects.filter(group=locked, image_id__in=plan.keep).update(
            decision=DuplicateGroupMember.Decision.KEPT
        )
        DuplicateGroupMember.objects.filter(group=locked, image_id__in=plan.trash).update(
            decision=DuplicateGroupMember.Decision.TRASHED
        )
        previous = locked.status
        locked.status = (
            DuplicateGroup.Status.STACKED if plan.action == GroupAction.STACK else DuplicateGroup.Status.RESOLVED
        )
        locked.version += 1
        locked.size = len(seen)
        locked.resolved_by = recorded_user(user)
        locked.resolved_at = now
        if plan.action == GroupAction.KEEP and locked.suggested_keep_id not in plan.keep:
            locked.suggested_keep_id = plan.keep[0]
        if plan.action == GroupAction.STACK:  # the grid shows the best copy with a count, the rest under it
            cover = locked.suggested_keep_id if locked.suggested_keep_id in seen else plan.members[0]
            locked.suggested_keep_id = cover
            Image.objects.filter(pk__in=seen - {cover}).update(stack_cover=cover)
        locked.save()
        decision = DuplicateGroupDecision.objects.create(
            group=locked,
            group_number=locked.pk,
            kind=locked.kind,
            action=plan.action,
            member_ids=plan.members,
            kept_ids=plan.keep,
            trashed_ids=plan.trash,
            pair_changes=changes,
            suggested=suggested,
            previous_status=previous,
            bytes_trashed=plan.bytes_trashed,
            source=source[:10],
            user=recorded_user(user),
        )
        for image in Image.objects.defer("embedding").filter(pk__in=plan.trash):
            image_trash(image=image, user=user)
        duplicate_groups_refresh(image_ids=seen | set(unseen))
    return decision


def duplicate_group_decision_undo(*, decision: DuplicateGroupDecision, user: Actor) -> DuplicateGroupDecision:
    """Undo a group decision: trashed images come back, pairs return to their earlier status, the group is
    pending again (with whoever joined since)."""
    with transaction.atomic():
        groups_lock()
        decision = DuplicateGroupDecision.objects.select_for_update().get(pk=decision.pk)
        if decision.undone_at is not None:
            raise GroupReviewError("already_undone", f"Decision #{decision.pk} was already undone.")
        group = DuplicateGroup.objects.select_for_update().filter(pk=decision.group_id).first()
        if group is None:
            raise GroupReviewError("group_gone", "The group of this decision no longer exists.", status=404)
        latest = group.decisions.filter(undone_at__isnull=True).order_by("-at", "-id").first()
        if latest is not None and latest.pk != decision.pk:
            raise GroupReviewError(
                "not_latest", f"A later decision on this group (#{latest.pk}) stands: undo that one first.", group=group
            )
        trashed = list(Image.objects.defer("embedding").filter(pk__in=decision.trashed_ids))
        if len(trashed) != len(decision.trashed_ids):
            gone = sorted(set(decision.trashed_ids) - {image.pk for image in trashed})
            raise GroupReviewError(
                "purged",
                f"Images {', '.join(map(str, gone))} were purged from the trash since: this cannot be undone.",
                group=group,
            )
        for pair_id, previous, *_ in decision.pair_changes:
            DuplicatePair.objects.filter(pk=pair_id).update(
                review_status=previous,
                reviewed_by=None if previous == DuplicatePair.ReviewStatus.PENDING else decision.user,
                reviewed_at=None if previous == DuplicatePair.ReviewStatus.PENDING else decision.at,
                updated_at=timezone.now(),
            )
        pair_decision_ids = [rest[0] for _, _, *rest in decision.pair_changes if rest and rest[0]]
        now = timezone.now()
        DuplicateDecision.objects.filter(pk__in=pair_decision_ids).update(undone_at=now, undone_by=recorded_user(user))
        if decision.action == DuplicateGroupDecision.Action.STACK:  # unstack
            Image.objects.filter(pk__in=decision.member_ids, stack_cover_id__in=decision.member_ids).update(
                stack_cover=None
            )
        group.status = decision.previous_status
        group.version += 1
        group.resolved_by, group.resolved_at = None, None
        group.save()
        DuplicateGroupMember.objects.filter(group=group).update(decision=DuplicateGroupMember.Decision.PENDING)
        decision.undone_at = now
        decision.undone_by = recorded_user(user)
        decision.save(update_fields=["undone_at", "undone_by"])
        for image in trashed:
            image_restore(image=image)
        duplicate_groups_refresh(image_ids=decision.member_ids)
    return decision


def duplicate_group_undo_latest(*, group: DuplicateGroup, user: Actor) -> DuplicateGroupDecision:
    """Undo the group's latest standing decision."""
    latest = group.decisions.filter(undone_at__isnull=True).order_by("-at", "-id").first()
    if latest is None:
        raise GroupReviewError("nothing_to_undo", f"Group #{group.pk} has no decision to undo.", group=group)
    return duplicate_group_decision_undo(decision=latest, user=user)


def image_unstack(*, image: Image, user: Actor) -> DuplicateGroupDecision:
    """Take apart the stack an image is in (as its cover or under it), from the image page or the library grid:
    the decision that stacked its group is undone, so the group is pending review again."""
    group = image_stack_group(image=image)
    if group is None:
        raise GroupReviewError("not_stacked", f"Image #{image.pk} is not in a stack.")
    return duplicate_group_undo_latest(group=group, user=user)
