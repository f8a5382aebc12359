"""manage.py scan_duplicates: re-detect the pairs of the whole library, with a progress bar."""

from __future__ import annotations

import time
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, OutputWrapper

from duplicates.selectors.thresholds import duplicate_bands
from duplicates.services.detection import duplicates_scan


class ProgressBar:
    """A one-line bar redrawn in place on a terminal; a line every 10 % otherwise (logs, CI)."""

    def __init__(self, stream: OutputWrapper, *, width: int = 40) -> None:
        self.stream = stream
        self.width = width
        self.started = time.monotonic()
        self.interactive = stream.isatty()
        self.last_tenth = -1

    def __call__(self, done: int, total: int) -> None:
        fraction = done / total if total else 1.0
        elapsed = time.monotonic() - self.started
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (total - done) / rate if rate > 0 else 0.0
        filled = int(self.width * fraction)
        line = (
            f"[{'#' * filled}{'.' * (self.width - filled)}] {done:,}/{total:,} images "
            f"{fraction:6.1%} {rate:6.1f}/s eta {eta:5.0f}s"
        )
        if self.interactive:
            self.stream.write("\r" + line, ending="\n" if done >= total else "")
            self.stream.flush()
        elif int(fraction * 10) != self.last_tenth or done >= total:
            self.last_tenth = int(fraction * 10)
            self.stream.write(line)


class Command(BaseCommand):
    help = (
        "Re-scan the whole library for near-duplicate and similar pairs (after a model or threshold change). "
        "Rebuilds the search index first when it is behind, then runs a k-NN query per image (~N log N). "
        "Reviewed pairs keep their decisions; pending pairs the scan no longer finds are removed."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--no-rebuild", action="store_true", help="Use the served index as it is.")
        parser.add_argument("--keep-stale", action="store_true", help="Keep pending pairs the scan doesn't find.")
        parser.add_argument(
            "--no-verify", action="store_true", help="Skip geometric verification of grey-zone pairs (faster)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        bands = duplicate_bands()
        self.stdout.write(f"Thresholds: near-duplicate >= {bands.near_duplicate:.3f}, similar >= {bands.similar:.3f}")
        started = time.monotonic()
        summary = duplicates_scan(
            progress=ProgressBar(self.stderr) if options["verbosity"] > 0 else None,
            rebuild_index=not options["no_rebuild"],
            prune=not options["keep_stale"],
            verify=False if options["no_verify"] else None,
        )
        detection = summary.detection
        self.stdout.write(
            self.style.SUCCESS(
                f"Scanned {summary.images:,} images in {time.monotonic() - started:.1f}s "
                f"(index v{summary.index_version}): {detection.pairs:,} pairs found, {detection.created:,} new "
                f"({detection.remembered} with a remembered decision), {detection.updated:,} updated, "
                f"{summary.pruned:,} stale pending pairs removed, {detection.verified:,} geometric checks."
            )
        )
