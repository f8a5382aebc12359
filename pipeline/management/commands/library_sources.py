"""Library sources from the command line: add a folder, list the sources, scan one now, remove one."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.errors import ServiceError
from gallery.models import LibrarySource, SourceScan
from pipeline.selectors import library_sources_with_latest_scan
from pipeline.source_scan import source_scan_run
from pipeline.sources import library_source_create, library_source_delete, library_source_scan_request


def scan_summary(scan: SourceScan | None) -> str:
    if scan is None:
        return "The scan is gone (its source was removed)."
    reasons = ", ".join(f"{code} {count}" for code, count in sorted(scan.reasons.items()))
    return (
        f"{scan.status}: {scan.files_seen}/{scan.files_total or 0} files seen, {scan.accepted} new, "
        f"{scan.known_content} already in the library, {scan.rejected} rejected, {scan.unchanged} unchanged, "
        f"{scan.changed} changed, {scan.moved} moved, {scan.missing} missing, {scan.returned} back, "
        f"{scan.removed} removed, {scan.skipped} skipped"
        + (f" ({reasons})" if reasons else "")
        + (f". {scan.message}" if scan.message else "")
    )


class Command(BaseCommand):
    help = "Manage library sources: folders whose images imgsim reads in place (add, list, scan, remove)."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        add = actions.add_parser("add", help="Register a folder (its first scan runs in the worker, or --scan-now).")
        add.add_argument("name")
        add.add_argument("root", help="Absolute path of the folder.")
        add.add_argument("--user", help="User name recorded as who registered it.")
        add.add_argument("--scan-now", action="store_true", help="Scan it in this process.")
        add.add_argument(
            "--writable",
            action="store_true",
            help="Trash moves files into .imgsim-trash/ inside the folder (restore moves them back, purge deletes).",
        )
        actions.add_parser("list", help="The sources with their state and latest scan.")
        scan = actions.add_parser("scan", help="Scan a source now.")
        scan.add_argument("name")
        scan.add_argument("--in-worker", action="store_true", help="Queue it for the worker instead.")
        remove = actions.add_parser("remove", help="Forget a source (the folder is not touched).")
        remove.add_argument("name")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        try:
            getattr(self, f"_{action}")(**options)
        except ServiceError as error:
            raise CommandError(error.message) from None

    def _source(self, name: str) -> LibrarySource:
        source = LibrarySource.objects.filter(name=name).first()
        if source is None:
            raise CommandError(f"No source named {name!r}.")
        return source

    def _add(self, *, name: str, root: str, user: str | None, scan_now: bool, writable: bool, **options: Any) -> None:
        creator = None
        if user:
            creator = get_user_model().objects.filter(username=user).first()
            if creator is None:
                raise CommandError(f"No user named {user!r}.")
        source = library_source_create(name=name, root=root, writable=writable, created_by=creator)
        self.stdout.write(self.style.SUCCESS(f"Source {source.name}: {source.root}"))
        if scan_now:
            scan = library_source_scan_request(source=source)
            self.stdout.write(scan_summary(source_scan_run(scan_id=scan.pk)))

    def _list(self, **options: Any) -> None:
        for source in library_sources_with_latest_scan():
            self.stdout.write(f"{source.name}  {source.root}  {source.get_state_display()}  {source.file_count} files")  # type: ignore[attr-defined]
            if source.state_message:
                self.stdout.write(f"  {source.state_message}")
            if source.latest_scan is not None:  # type: ignore[attr-defined]
                self.stdout.write(f"  latest scan {scan_summary(source.latest_scan)}")  # type: ignore[attr-defined]
            for row in source.unreadable_on:  # type: ignore[attr-defined]
                stale = " (stale)" if row.stale else ""
                checked = f"{row.checked_at:%Y-%m-%d %H:%M}"
                self.stdout.write(f"  {row.reader} cannot read it ({row.error}), checked {checked}{stale}")

    def _scan(self, *, name: str, in_worker: bool, **options: Any) -> None:
        scan = library_source_scan_request(source=self._source(name))
        if in_worker:
            self.stdout.write(f"Scan {scan.pk} queued for the worker.")
            return
        self.stdout.write(scan_summary(source_scan_run(scan_id=scan.pk)))

    def _remove(self, *, name: str, **options: Any) -> None:
        removed = library_source_delete(source=self._source(name))
        self.stdout.write(self.style.SUCCESS(f"Source {name} removed; {removed} images only it held left the library."))
