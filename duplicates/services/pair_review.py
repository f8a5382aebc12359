"""Review of pairs: decisions (keep both, confirm, move one to the trash), their log, and undoing them.

A decision names both files by content (sha256), so it outlives the pair: a re-uploaded file gets the last
decision about its earlier copy back (see detection.py).
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from core.errors import ServiceError
from core.users import Actor, recorded_user
from duplicates.evidence import suggest_keep
from duplicates.models import DuplicateDecision, DuplicatePair
from duplicates.selectors.pairs import image_facts
from duplicates.services.groups import duplicate_groups_refresh, groups_lock
from duplicates.services.trash import images_restore, images_trash
from gallery.models import Image


class ReviewError(ServiceError):
    """A review request that can't be carried out (409 unless said otherwise)."""

    default_status = 409


class ResolveAction:
    NOT_DUPLICATE = "not_duplicate"
    CONFIRM = "confirm"
    DELETE_A = "delete_a"
    DELETE_B = "delete_b"
    KEEP_SUGGESTED = "keep_suggested"

    ALL = (NOT_DUPLICATE, CONFIRM, DELETE_A, DELETE_B, KEEP_SUGGESTED)
    DELETES = (DELETE_A, DELETE_B, KEEP_SUGGESTED)
    LABELS = {
        NOT_DUPLICATE: "Not a duplicate (keep both)",
        CONFIRM: "Confirm duplicate (keep both for now)",
        DELETE_A: "Delete image A",
        DELETE_B: "Delete image B",
        KEEP_SUGGESTED: "Keep the suggested image, delete the other",
    }


def duplicate_decision_log(
    *,
    pair: DuplicatePair,
    action: str,
    previous: str,
    user: Actor,
    source: str,
    suggested: bool = False,
    deleted_name: str = "",
) -> DuplicateDecision:
    """Log one decision with both files' content hashes, so it outlives the pair and its images."""
    decision = DuplicateDecision.for_pair(
        pair=pair,
        action=action,
        previous=previous,
        new_status=pair.review_status,
        user=recorded_user(user),
        source=source,
        suggested=suggested,
        deleted_name=deleted_name,
    )
    decision.save()
    return decision


def duplicate_pair_resolve(*, pair: DuplicatePair, action: str, user: Actor, source: str = "") -> DuplicateDecision:
    """Record a review decision; delete actions move the chosen image to the trash (undoable until it is
    purged). keep_suggested trashes the image that suggest_keep ranks lower, and only from a near-duplicate
    pair: a similar pair holds two different photos, so trashing one is the reviewer's explicit choice.
    The groups follow."""
    if action not in ResolveAction.ALL:
        raise ReviewError(
            "invalid_action", f"Unknown action {action!r}; use one of {', '.join(ResolveAction.ALL)}.", status=400
        )
    with transaction.atomic():
        groups_lock()  # first: this decision refreshes the groups
        try:
            locked = DuplicatePair.objects.select_for_update().select_related("image_a", "image_b").get(pk=pair.pk)
        except DuplicatePair.DoesNotExist:
            raise ReviewError(
                "pair_gone", "This pair no longer exists: one of its images was deleted.", status=404
            ) from None
        if locked.image_a.trashed_at is not None or locked.image_b.trashed_at is not None:
            raise ReviewError(
                "image_in_trash",
                "An image of this pair is in the trash: restore it (Trash page) or undo that decision first.",
            )
        previous = locked.review_status
        suggested = action == ResolveAction.KEEP_SUGGESTED
        if suggested and locked.kind != DuplicatePair.Kind.NEAR_DUPLICATE:
            raise ReviewError(
                "not_same_photo",
                "These two look alike but are not verified as the same photo, so there is no copy to suggest "
                "for the trash: choose which one to trash (delete_a or delete_b), or keep both.",
            )
        if suggested:
            advice = suggest_keep(image_facts(locked.image_a), image_facts(locked.image_b))
            action = ResolveAction.DELETE_A if advice.remove.id == locked.image_a_id else ResolveAction.DELETE_B
        if action in (ResolveAction.NOT_DUPLICATE, ResolveAction.CONFIRM):
            status = (
                DuplicatePair.ReviewStatus.NOT_DUPLICATE
                if action == ResolveAction.NOT_DUPLICATE
                else DuplicatePair.ReviewStatus.CONFIRMED
            )
            locked.review_status = status
            locked.reviewed_by = recorded_user(user)
            locked.reviewed_at = timezone.now()
            locked.save(update_fields=["review_status", "reviewed_by", "reviewed_at", "updated_at"])
            decision = duplicate_decision_log(pair=locked, action=action, previous=previous, user=user, source=source)
            duplicate_groups_refresh(image_ids=[locked.image_a_id, locked.image_b_id])
            return decision
        victim = locked.image_a if action == ResolveAction.DELETE_A else locked.image_b
        locked.review_status = DuplicatePair.ReviewStatus.CONFIRMED
        decision = duplicate_decision_log(
            pair=locked,
            action=action,
            previous=previous,
            user=user,
            source=source,
            suggested=suggested,
            deleted_name=victim.original_name or victim.file.name,
        )
        locked.reviewed_by = recorded_user(user)
        locked.reviewed_at = timezone.now()
        locked.save(update_fields=["review_status", "reviewed_by", "reviewed_at", "updated_at"])
        images_trash(images=[victim], user=user)  # out of the library and its groups; the file is kept
        return decision


def duplicate_decision_undo(*, decision: DuplicateDecision, user: Actor) -> DuplicateDecision:
    """Put the pair back to the status it had before this decision (the pair's latest standing decision)."""
    with transaction.atomic():
        groups_lock()  # first: this undo refreshes the groups
        decision = DuplicateDecision.objects.select_for_update().get(pk=decision.pk)
        if decision.undone_at is not None:
            raise ReviewError("already_undone", f"Decision #{decision.pk} was already undone.")
        trashed = None
        if decision.is_delete:
            trashed = Image.objects.defer("embedding").filter(pk=decision.deleted_image_id).first()
            if trashed is None or trashed.trashed_at is None:
                raise ReviewError(
                    "cannot_undo_delete",
                    f"Decision #{decision.pk} removed image #{decision.deleted_image_id} ({decision.deleted_name}) "
                    "and it has been purged from the trash since (or deleted before the trash existed): this "
                    "cannot be undone. Upload the file again; the decisions about it are remembered by content.",
                )
        if decision.pair_id is None:
            raise ReviewError("pair_gone", "The pair no longer exists: one of its images was deleted.")
        pair = DuplicatePair.objects.select_for_update().get(pk=decision.pair_id)
        latest = pair.decisions.active().order_by("-at", "-id").first()
        if latest is not None and latest.pk != decision.pk:
            raise ReviewError(
                "not_latest", f"A later decision on this pair (#{latest.pk}) stands: undo that one first."
            )
        earlier = pair.decisions.active().exclude(pk=decision.pk).order_by("-at", "-id").first()
        pair.review_status = decision.previous_status
        if pair.review_status == DuplicatePair.ReviewStatus.PENDING or earlier is None:
            pair.reviewed_by, pair.reviewed_at = None, None
        else:
            pair.reviewed_by_id, pair.reviewed_at = earlier.user_id, earlier.at
        pair.save(update_fields=["review_status", "reviewed_by", "reviewed_at", "updated_at"])
        decision.undone_at = timezone.now()
        decision.undone_by = recorded_user(user)
        decision.save(update_fields=["undone_at", "undone_by"])
        if trashed is not None:
            images_restore(images=[trashed])  # back in search and, through its pairs, its groups
        else:
            duplicate_groups_refresh(image_ids=[pair.image_a_id, pair.image_b_id])
        return decision


def duplicate_pair_undo_latest(*, pair: DuplicatePair, user: Actor) -> DuplicateDecision:
    """Undo the pair's latest standing decision."""
    latest = pair.decisions.active().order_by("-at", "-id").first()
    if latest is None:
        raise ReviewError("nothing_to_undo", "This pair has no decision to undo.")
    return duplicate_decision_undo(decision=latest, user=user)
