"""The trash as duplicate review uses it: moving images there and back keeps the groups in step.

gallery.services does the moving (an image in the trash is out of the library grid, search and detection,
its file kept); this module composes it with the library change log (so every process's search view
sees it in the same commit) and duplicate_groups_refresh, so a trashed image leaves its pending
groups and a restored one comes back into them.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models import Q

from core.task_queue import task_queue_after_commit
from core.users import Actor
from duplicates.models import DuplicatePair
from duplicates.services.groups import duplicate_groups_refresh, groups_lock
from gallery.models import Image
from gallery.selectors import TrashContents, trash_contents
from gallery.services import image_purge, image_restore, image_trash, images_delete

TRASH_EMPTY_TASK = "duplicates.tasks.empty_trash"
# Images purged per transaction when the trash is emptied: each commit deletes their rows, logs their change
# and then their files, so a large trash never holds one long transaction.
TRASH_EMPTY_CHUNK = 500


def _neighbours(image_ids: list[int]) -> set[int]:
    """The images paired with these ones: their groups are the ones a trash or restore changes."""
    pairs = DuplicatePair.objects.filter(Q(image_a_id__in=image_ids) | Q(image_b_id__in=image_ids))
    return {x for pair in pairs.values_list("image_a_id", "image_b_id") for x in pair} | set(image_ids)


def images_trash(*, images: list[Image], user: Actor) -> list[Image]:
    """Move images to the trash and take them out of their pending groups."""
    with transaction.atomic():
        groups_lock()
        for image in images:
            image_trash(image=image, user=user)
        duplicate_groups_refresh(image_ids=_neighbours([image.pk for image in images]))
    return images


def images_restore(*, images: list[Image], reopen: bool = False) -> list[Image]:
    """Take images out of the trash: back in search and, through their pairs, in their groups.

    With reopen (a restore from the Trash page, not an undo), the image's confirmed duplicate pairs go back
    to pending: the decision that trashed it no longer holds, so its group comes back for review.
    """
    with transaction.atomic():
        groups_lock()
        for image in images:
            image_restore(image=image)
        if reopen:
            ids = [image.pk for image in images]
            DuplicatePair.objects.filter(
                Q(image_a_id__in=ids) | Q(image_b_id__in=ids), review_status=DuplicatePair.ReviewStatus.CONFIRMED
            ).update(review_status=DuplicatePair.ReviewStatus.PENDING, reviewed_by=None, reviewed_at=None)
        duplicate_groups_refresh(image_ids=_neighbours([image.pk for image in images]))
    return images


def images_purge(*, images: list[Image]) -> int:
    """Delete trashed images for good (row, pairs, files); images not in the trash are left alone."""
    purged = 0
    with transaction.atomic():
        for image in images:
            if image.trashed_at is not None:
                image_purge(image=image)
                purged += 1
    return purged


def trash_empty_schedule(*, trashed_until: datetime) -> TrashContents:
    """Queue emptying the trash of the images trashed up to `trashed_until`, once the transaction commits (a
    large trash takes longer than a request may); what it will purge."""
    task_queue_after_commit(TRASH_EMPTY_TASK, trashed_until, task_name="empty the trash")
    return trash_contents(trashed_until=trashed_until)


def trash_empty(*, trashed_until: datetime) -> TrashContents:
    """Delete for good (rows, pairs, files) the images trashed up to `trashed_until` (what the confirmation
    showed), a chunk per transaction; what was purged. An image restored meanwhile is kept."""
    images = Image.objects.trashed().filter(trashed_at__lte=trashed_until).defer("embedding").order_by("id")
    count = size = 0
    newest: datetime | None = None
    while True:
        with transaction.atomic():
            chunk = list(images.select_for_update()[:TRASH_EMPTY_CHUNK])  # a restore that commits first wins
            if not chunk:
                break
            images_delete(images=chunk)
        count += len(chunk)
        size += sum(image.file_size for image in chunk)
        newest = max(filter(None, [newest, *(image.trashed_at for image in chunk)]))
    return TrashContents(count=count, bytes=size, newest=newest)
