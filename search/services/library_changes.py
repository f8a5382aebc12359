"""The library change log (search.models.LibraryChange): every write that changes what a search may return is
logged in its own transaction, and every process's library view reads the rows it has not seen.

Image writes are logged by the database (triggers on the image table: no write path can skip them); the
served index and the thresholds are logged here."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from search.models import LibraryChange

# Change-log rows are kept this long; a process that has not searched for longer reloads its view.
CHANGE_LOG_RETENTION = timedelta(days=1)


def index_change_record() -> None:
    """Tell every process's library view that the served index changed (a build served or retired).

    Call it inside the transaction of that write, so that the change and the news of it commit together.
    Image writes need no call: the database logs them itself (search/migrations/0008_library_change_triggers).
    """
    _record(LibraryChange.Kind.INDEX)


def thresholds_change_record() -> None:
    """Tell every process's library view that the thresholds in force changed (applied or undone)."""
    _record(LibraryChange.Kind.THRESHOLDS)


def _record(kind: str) -> None:
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("a library change must be recorded inside the transaction of the write it reports")
    LibraryChange.objects.create(kind=kind, created_at=timezone.now())


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
