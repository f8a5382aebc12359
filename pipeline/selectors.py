"""Reads for the pipeline's own pages: the library sources with their latest scan and file counts."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Count, OuterRef, Q, Subquery
from django.utils import timezone

from gallery.models import LibrarySource, SourceFile, SourceFileMove, SourceScan
from gallery.source_reach import source_reach_shown

FAILED_MOVES_SHOWN = 10


def library_sources_with_latest_scan(*, pk: int | None = None) -> list[LibrarySource]:
    """Sources by name, each with `latest_scan` (or None), `file_count`, `missing_count`, the file moves that
    failed in the last week, newest first (`failed_moves`), and which machines could read the root lately
    (`machines`, `unreadable_on`: gallery.source_reach; four queries)."""
    newest = SourceScan.objects.filter(source=OuterRef("pk")).order_by("-created_at", "-id").values("pk")[:1]
    sources = LibrarySource.objects.annotate(
        file_count=Count("files", filter=Q(files__state=SourceFile.State.PRESENT)),
        missing_count=Count("files", filter=Q(files__state=SourceFile.State.MISSING)),
        latest_scan_id=Subquery(newest),
    )
    if pk is not None:
        sources = sources.filter(pk=pk)
    listed = list(sources)
    scans = SourceScan.objects.in_bulk([s.latest_scan_id for s in listed if s.latest_scan_id])  # type: ignore[attr-defined]
    failed: dict[int, list[SourceFileMove]] = {}
    recent = timezone.now() - timedelta(days=7)
    moves = SourceFileMove.objects.filter(
        source__in=listed, status=SourceFileMove.Status.FAILED, created_at__gte=recent
    )
    for move in moves.order_by("-created_at", "-id")[:200]:
        shown = failed.setdefault(move.source_id, [])
        if len(shown) < FAILED_MOVES_SHOWN:
            shown.append(move)
    reach = source_reach_shown(source_ids=[source.pk for source in listed])
    for source in listed:
        source.latest_scan = scans.get(source.latest_scan_id)  # type: ignore[attr-defined]
        source.failed_moves = failed.get(source.pk, [])  # type: ignore[attr-defined]
        source.machines = reach.get(source.pk, [])  # type: ignore[attr-defined]
        failing = [row for row in source.machines if not row.readable]  # type: ignore[attr-defined]
        source.unreadable_on = sorted(failing, key=lambda row: row.stale)  # type: ignore[attr-defined]
    return listed
