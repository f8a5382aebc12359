"""Rebuild the search index from the stored vectors, here and now or in the background."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from search.services.index_lifecycle import RebuildAlreadyRunningError, index_rebuild, index_rebuild_schedule


class Command(BaseCommand):
    help = "Rebuild the PCA + HNSW index from every embedded image (one rebuild runs at a time)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--background", action="store_true", help="Queue it for the worker instead.")

    def handle(self, *args: Any, background: bool, **options: Any) -> None:
        if background:
            queued = index_rebuild_schedule(requested_by="manage.py")
            self.stdout.write("Rebuild queued." if queued else "A rebuild is already running.")
            return
        try:
            build = index_rebuild(requested_by="manage.py")
        except RebuildAlreadyRunningError as error:
            raise CommandError(str(error)) from None
        except ValueError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            self.style.SUCCESS(
                f"Index v{build.pk} ready: {build.vector_count} images, {build.kind}, "
                f"{build.full_dim}->{build.index_dim} dims, {build.build_seconds:.1f}s."
            )
        )
