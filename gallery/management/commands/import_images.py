"""Bulk import of a folder of images: recursive, with a progress bar and a summary; safe to re-run."""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from gallery.image_file import UploadRejected
from gallery.services import image_create, read_upload_bytes
from pipeline.services import embed_and_detect_now, embedding_schedule, import_statistics_refresh

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".mpo"}


def progress_line(done: int, total: int, started: float, width: int = 30) -> str:
    filled = int(width * done / total) if total else width
    elapsed = time.monotonic() - started
    rate = done / elapsed if elapsed > 0 else 0.0
    eta = (total - done) / rate if rate > 0 else 0.0
    return f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}  {rate:.1f} files/s  ETA {eta:.0f}s "


class Command(BaseCommand):
    help = "Import every image below a folder into the library (already imported files are recognised)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("folder", type=Path)
        parser.add_argument("--user", help="User name recorded as the uploader.")
        parser.add_argument(
            "--embed-now",
            action="store_true",
            help="Embed the imported images in this process instead of leaving them to the worker.",
        )
        parser.add_argument("--no-progress", action="store_true", help="No progress bar (for logs).")

    def handle(
        self, *args: Any, folder: Path, user: str | None, embed_now: bool, no_progress: bool, **options: Any
    ) -> None:
        if not folder.is_dir():
            raise CommandError(f"{folder} is not a folder.")
        uploader = None
        if user:
            uploader = get_user_model().objects.filter(username=user).first()
            if uploader is None:
                raise CommandError(f"No user named {user!r}.")
        files = sorted(path for path in folder.rglob("*") if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES)
        skipped = sum(1 for path in folder.rglob("*") if path.is_file()) - len(files)
        outcomes: Counter[str] = Counter()
        reasons: Counter[str] = Counter()
        problems: list[str] = []
        show_progress = not no_progress and sys.stderr.isatty()
        started = time.monotonic()
        for done, path in enumerate(files, start=1):
            try:
                with path.open("rb") as handle:
                    data = read_upload_bytes(handle, max_bytes=settings.IMGSIM_MAX_UPLOAD_BYTES)
                result = image_create(data=data, original_name=path.name, uploaded_by=uploader)
            except UploadRejected as error:
                outcomes["refused"] += 1
                reasons[error.code] += 1
                problems.append(f"{path}: {error.code}: {error.message}")
            except OSError as error:
                outcomes["refused"] += 1
                reasons["unreadable"] += 1
                problems.append(f"{path}: unreadable: {error}")
            else:
                outcomes[result.outcome] += 1
                if result.outcome == "rejected":
                    reasons[result.image.reason_code] += 1
                    problems.append(f"{path}: rejected: {result.image.status_message}")
            if show_progress:
                sys.stderr.write(progress_line(done, len(files), started))
                sys.stderr.flush()
        if show_progress:
            sys.stderr.write("\n")

        for line in problems:
            self.stdout.write(line)
        self.stdout.write(
            self.style.SUCCESS(
                f"{len(files)} image files: {outcomes['accepted']} accepted, "
                f"{outcomes['exact_duplicate']} already in the library, "
                f"{outcomes['rejected']} rejected for quality, {outcomes['refused']} refused"
                + (f"; {skipped} other files ignored" if skipped else "")
            )
        )
        if reasons:
            self.stdout.write("Reasons: " + ", ".join(f"{code} {count}" for code, count in reasons.most_common()))
        if embed_now and outcomes["accepted"]:
            embedded, detected = embed_and_detect_now()
            self.stdout.write(
                f"Embedded {embedded.embedded} images ({embedded.failed} failed); "
                f"{detected.detection.pairs} duplicate or similar pairs found."
            )
        elif outcomes["accepted"]:
            embedding_schedule()
            self.stdout.write("The background worker embeds the accepted images (python manage.py qcluster).")
        if outcomes["accepted"] or outcomes["rejected"]:
            analysed = import_statistics_refresh(embedded=embed_now and bool(outcomes["accepted"]))
            if analysed:
                self.stdout.write(f"Planner statistics updated (ANALYZE): {', '.join(analysed)}.")
