"""The library change log: every write that changes what a search may return records itself here, in its own
transaction, and every process's library view reads the rows it has not seen (search.models.LibraryChange)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from search.models import LibraryChange

# Change-log rows are kept this long; a process that has not searched for longer reloads its view.
CHANGE_LOG_RETENTION = timedelta(days=1)


def library_changed(*, image_ids: Collection[int] = (), index_changed: bool = False) -> None:
    """Tell every process's library view that these images (or the served index) changed.

    Call it inside the transaction of the write itself (an image embedded, re-embedded, deleted, trashed,
    restored, or its status or rating changed; an index build served or retired), so that the change and
    the news of it commit together: a search then sees both or neither.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("library_changed() must run inside the transaction of the write it reports")
    now = timezone.now()
    rows = [LibraryChange(kind=LibraryChange.Kind.IMAGE, image_id=int(pk), created_at=now) for pk in set(image_ids)]
    if index_changed:
        rows.append(LibraryChange(kind=LibraryChange.Kind.INDEX, created_at=now))
    LibraryChange.objects.bulk_create(rows, batch_size=500)


# Change ids this far below the newest are checked for transactions still open when a mark is taken.
CHANGE_LOOKBACK = 64


def library_change_mark() -> tuple[int, list[int]]:
    """(newest change id, ids below it not yet visible): everything a reader has seen once it read both.

    Ids come from a sequence in insert order but commit in any order, so an id missing just below the
    newest may still commit; readers ask for those again.
    """
    mark = LibraryChange.objects.order_by("-id").values_list("id", flat=True).first() or 0
    seen = set(LibraryChange.objects.filter(id__gt=mark - CHANGE_LOOKBACK).values_list("id", flat=True))
    return mark, [pk for pk in range(max(1, mark - CHANGE_LOOKBACK + 1), mark + 1) if pk not in seen]
