"""Bulk import of a folder of images: recursive, with a progress bar and a summary; safe to re-run."""

from __future__ import annotations

import csv
import sys
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from gallery.image_file import UploadRejected
from gallery.services import image_create, read_upload_bytes
from gallery.source_paths import IMAGE_FILE_SUFFIXES
from pipeline.services import embed_and_detect_now, embedding_schedule, import_statistics_refresh

# Exact copies named in the summary; --verbosity 2 names them all, --summary-file writes every file's outcome.
COPIES_SHOWN = 20
SUMMARY_FIELDS = ["path", "outcome", "image_id", "image_name", "reason", "message"]


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
        parser.add_argument(
            "--summary-file",
            type=Path,
            help="Write every file's outcome to this CSV file: path, outcome, image id and name (for an exact "
            "copy, the library image it matched), reason, message.",
        )

    def handle(
        self,
        *args: Any,
        folder: Path,
        user: str | None,
        embed_now: bool,
        no_progress: bool,
        summary_file: Path | None,
        verbosity: int,
        **options: Any,
    ) -> None:
        if not folder.is_dir():
            raise CommandError(f"{folder} is not a folder.")
        uploader = None
        if user:
            uploader = get_user_model().objects.filter(username=user).first()
            if uploader is None:
                raise CommandError(f"No user named {user!r}.")
        files = sorted(
            path for path in folder.rglob("*") if path.is_file() and path.suffix.lower() in IMAGE_FILE_SUFFIXES
        )
        skipped = sum(1 for path in folder.rglob("*") if path.is_file()) - len(files)
        outcomes: Counter[str] = Counter()
        reasons: Counter[str] = Counter()
        problems: list[str] = []
        copies: list[str] = []  # the exact copies named in the summary (the first COPIES_SHOWN, or all)
        copies_shown = len(files) if verbosity >= 2 else COPIES_SHOWN
        show_progress = not no_progress and sys.stderr.isatty()
        started = time.monotonic()
        with ExitStack() as stack:
            summary = None
            if summary_file is not None:
                handle = stack.enter_context(summary_file.open("w", newline="", encoding="utf-8"))
                summary = csv.DictWriter(handle, fieldnames=SUMMARY_FIELDS)
                summary.writeheader()
            for done, path in enumerate(files, start=1):
                row: dict[str, object] = {"path": path.relative_to(folder)}
                try:
                    with path.open("rb") as image_file:
                        data = read_upload_bytes(image_file, max_bytes=settings.IMGSIM_MAX_UPLOAD_BYTES)
                    result = image_create(data=data, original_name=path.name, uploaded_by=uploader)
                except UploadRejected as error:
                    outcomes["refused"] += 1
                    reasons[error.code] += 1
                    problems.append(f"{path}: {error.code}: {error.message}")
                    row.update(outcome="refused", reason=error.code, message=error.message)
                except OSError as error:
                    outcomes["refused"] += 1
                    reasons["unreadable"] += 1
                    problems.append(f"{path}: unreadable: {error}")
                    row.update(outcome="refused", reason="unreadable", message=str(error))
                else:
                    image = result.image
                    outcomes[result.outcome] += 1
                    row.update(outcome=result.outcome, image_id=image.pk, image_name=image.original_name)
                    if result.outcome == "rejected":
                        reasons[image.reason_code] += 1
                        problems.append(f"{path}: rejected: {image.status_message}")
                        row.update(reason=image.reason_code, message=image.status_message)
                    elif not result.created and len(copies) < copies_shown:
                        trashed = " (in the trash)" if image.trashed_at is not None else ""
                        copies.append(f"{row['path']} -> #{image.pk} ({image.original_name}){trashed}")
                if summary is not None:
                    summary.writerow(row)
                if show_progress:
                    sys.stderr.write(progress_line(done, len(files), started))
                    sys.stderr.flush()
        if show_progress:
            sys.stderr.write("\n")

        for line in problems:
            self.stdout.write(line)
        copied = outcomes["exact_duplicate"] + outcomes["exact_duplicate_in_trash"]
        if copied:
            self.stdout.write(f"Exact copies of library images ({copied}), file -> image:")
            for line in copies:
                self.stdout.write(f"  {line}")
            if copied > len(copies):
                where = f"all in {summary_file}" if summary_file else "--summary-file FILE writes them all"
                self.stdout.write(f"  ... and {copied - len(copies)} more (--verbosity 2 lists them; {where}).")
        in_trash = outcomes["exact_duplicate_in_trash"]
        self.stdout.write(
            self.style.SUCCESS(
                f"{len(files)} image files: {outcomes['accepted']} accepted, "
                f"{outcomes['exact_duplicate']} already in the library, "
                + (f"{in_trash} already in the trash (restore them from the Trash page), " if in_trash else "")
                + f"{outcomes['rejected']} rejected for quality, {outcomes['refused']} refused"
                + (f"; {skipped} other files ignored" if skipped else "")
            )
        )
        if summary_file is not None:
            self.stdout.write(f"Every file's outcome: {summary_file}")
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
