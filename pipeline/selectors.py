"""Reads for the pipeline's own pages: the library sources with their latest scan and file counts."""

from __future__ import annotations

from django.db.models import Count, OuterRef, Q, Subquery

from gallery.models import LibrarySource, SourceFile, SourceScan


def library_sources_with_latest_scan(*, pk: int | None = None) -> list[LibrarySource]:
    """Sources by name, each with `latest_scan` (or None), `file_count` and `missing_count` (two queries)."""
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
    for source in listed:
        source.latest_scan = scans.get(source.latest_scan_id)  # type: ignore[attr-defined]
    return listed
