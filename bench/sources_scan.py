"""Library source scans on a generated tree: the first scan against an unchanged rescan and the bare walk.

    .venv/bin/python bench/sources_scan.py                    # 10,000 tiny JPEGs in 100 folders, SQLite
    .venv/bin/python bench/sources_scan.py --files 100000     # the 100k figure (about ten times as long)

The tree (tiny photo-like JPEGs, 96x72, each different) is written once into a temp folder; a fresh SQLite
database (or --database URL) gets the schema. Timed in one process, one after the other:
- walk: `gallery.source_paths.walk_source` alone (the stat-only floor any rescan pays);
- first scan: every file read, hashed, validated, quality-checked, its thumbnail written and its rows
  stored, as the worker's task does (embedding is left out: it is bench/ingest.py's subject);
- unchanged rescan: the same tree again; it must open no file (counted: the script fails if one is read).
Printed: seconds and files per second of each, the rescan against the walk and against the first scan, and
a 1M-file figure extrapolated linearly from the rescan's per-file cost (an estimate, labelled as such).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def write_tree(root: Path, *, files: int, per_folder: int, seed: int) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(72, 96, 3), dtype=np.uint8)
    for index in range(files):
        folder = root / f"{index // per_folder:04d}"
        if index % per_folder == 0:
            folder.mkdir(parents=True, exist_ok=True)
        pixels = base.copy()
        y, x = divmod(index, 96 * 72)
        pixels[(index * 7) % 72, (index * 13) % 96] = (index % 256, (index // 256) % 256, x % 256)
        pixels[y % 72] ^= np.uint8(index % 251)
        buffer = io.BytesIO()
        Image.fromarray(pixels, "RGB").save(buffer, "JPEG", quality=85)
        (folder / f"img{index:07d}.jpg").write_bytes(buffer.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--per-folder", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--database", default="", help="DATABASE_URL (default: SQLite in the temp folder)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="imgsim-bench-sources-") as folder:
        work = Path(folder)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imgsim_site.settings")
        os.environ["DATABASE_URL"] = args.database or f"sqlite:///{work / 'bench.sqlite3'}"
        os.environ["IMGSIM_VAR_DIR"] = str(work / "var")
        os.environ["IMGSIM_MEDIA_ROOT"] = str(work / "media")
        os.environ.pop("IMGSIM_REDIS_URL", None)
        import django

        django.setup()
        from django.core.management import call_command

        from gallery.models import Image, LibrarySource, SourceScan
        from gallery.source_paths import walk_source
        from pipeline import source_scan

        call_command("migrate", verbosity=0)
        source_scan.embedding_schedule = lambda: None  # scan cost only; embedding is bench/ingest.py's
        root = work / "tree"
        started = time.perf_counter()
        write_tree(root, files=args.files, per_folder=args.per_folder, seed=args.seed)
        print(
            f"{args.files:,} files in {args.files // args.per_folder:,} folders written in "
            f"{time.perf_counter() - started:.1f} s"
        )

        started = time.perf_counter()
        walked = sum(1 for _ in walk_source(str(root)))
        walk_seconds = time.perf_counter() - started

        source = LibrarySource.objects.create(name="bench", root=str(root.resolve()))
        first = _timed_scan(source, SourceScan, source_scan)
        reads = 0
        real_read = source_scan._read_and_hash

        def counted(*a: object, **k: object) -> object:
            nonlocal reads
            reads += 1
            return real_read(*a, **k)  # type: ignore[arg-type]

        source_scan._read_and_hash = counted  # type: ignore[assignment]
        again = _timed_scan(source, SourceScan, source_scan)
        if reads:
            raise SystemExit(f"the unchanged rescan opened {reads} files")
        scan_first, first_seconds = first
        scan_again, again_seconds = again
        print(
            f"images stored: {Image.objects.count():,} ({scan_first.accepted:,} accepted, "
            f"{scan_first.rejected:,} rejected for quality); walk saw {walked:,} entries"
        )
        print(f"{'step':<18} {'seconds':>9} {'files/s':>10}")
        for label, seconds in (
            ("walk (stat only)", walk_seconds),
            ("first scan", first_seconds),
            ("unchanged rescan", again_seconds),
        ):
            print(f"{label:<18} {seconds:>9.2f} {args.files / seconds:>10,.0f}")
        print(
            f"unchanged rescan / walk: {again_seconds / walk_seconds:.2f}x; "
            f"first scan / unchanged rescan: {first_seconds / again_seconds:.1f}x; "
            f"files opened by the rescan: {reads} (unchanged {scan_again.unchanged:,})"
        )
        per_file = again_seconds / args.files
        print(
            f"1M files, extrapolated linearly from this rescan (an estimate, not measured): "
            f"{per_file * 1_000_000:.0f} s per unchanged rescan"
        )


def _timed_scan(source: object, scan_model: type, source_scan: object) -> tuple[object, float]:
    scan = scan_model.objects.create(source=source)  # type: ignore[attr-defined]
    started = time.perf_counter()
    finished = source_scan.source_scan_run(scan_id=scan.pk)  # type: ignore[attr-defined]
    seconds = time.perf_counter() - started
    if finished.status != "finished":
        raise SystemExit(f"scan {finished.status}: {finished.message}")
    return finished, seconds


if __name__ == "__main__":
    if __package__ in (None, ""):
        sys.path[0] = str(REPO)
    main()
