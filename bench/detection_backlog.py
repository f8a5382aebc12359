"""The detection backlog on a large library: what counting the images that await duplicate detection costs
(GET /api/duplicates/detection/ and the review page's progress line), counted afresh and shared through the
cache, and the plan the database runs.

Run from the repository root against an EMPTY PostgreSQL database (rows are written with SQL, a million in
about two minutes), or without --database-url on a throw-away SQLite database under /tmp:

    .venv/bin/python bench/detection_backlog.py [--images 1000000] [--waiting 1180] [--recent 300]
        [--database-url=postgres://postgres@127.0.0.1:5432/EMPTY_DB]

The library: `--images` searchable image rows (no files; a 16-byte stand-in for the vector: a real 5 KB
vector is stored out of line by PostgreSQL, so the table's own pages are alike), all but `--waiting` of them
checked under the settings in force, `--recent` of those checks in the last five minutes (the pace).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if __name__ == "__main__":
    sys.path[0] = str(REPO)
    WORK = Path(tempfile.mkdtemp(prefix="imgsim-backlog-bench-"))
    DATABASE_URL = next((arg.split("=", 1)[1] for arg in sys.argv if arg.startswith("--database-url=")), "")
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "imgsim_site.settings",
            "DATABASE_URL": DATABASE_URL or f"sqlite:///{WORK / 'bench.sqlite3'}",
            "IMGSIM_VAR_DIR": str(WORK),
            "IMGSIM_MODEL": "mobilenet_v2",
            "DJANGO_DEBUG": "0",
            "IMGSIM_LOG_LEVEL": "WARNING",
        }
    )


def build(images: int, waiting: int, recent: int, key: str) -> None:
    """The rows, written by the database itself (a million Image objects would take the bench's time)."""
    from django.db import connection

    postgres = connection.vendor == "postgresql"
    now = "now()" if postgres else "datetime('now')"
    ago = (
        (lambda seconds: f"now() - ({seconds}) * interval '1 second'")
        if postgres
        else (lambda seconds: f"datetime('now', '-' || ({seconds}) || ' seconds')")
    )
    series = (
        "generate_series(1, %s) g"
        if postgres
        else "(WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < %s) SELECT g FROM s)"
    )
    vector = "decode(md5(g::text), 'hex')" if postgres else "randomblob(16)"
    sha = "lpad(to_hex(g), 64, '0')" if postgres else "printf('%064x', g)"
    checked = images - waiting
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO gallery_image (id, file, thumbnail, original_name, sha256, width, height, format, file_size,"
            " camera_make, camera_model, status, reason_code, status_message, quality_scores, embedding_model,"
            " embed_attempts, claim_token, created_at, updated_at, embedding, embedded_at)"
            f" SELECT g, 'originals/' || g || '.jpg', '', 'IMG.JPG', {sha}, 4032, 3024, 'JPEG', 3000000, '', '',"
            f" 'indexed', '', '', '{{}}', 'mobilenet_v2', 1, '', {now}, {now}, {vector}, {now} FROM {series % images}"
        )
        cursor.execute(
            "INSERT INTO duplicates_detectioncheck (image_id, settings_key, checked_at)"
            f" SELECT g, %s, {ago(f'86400 + {checked} - g')} FROM {series % checked}",
            [key],
        )
        cursor.execute(
            f"UPDATE duplicates_detectioncheck SET checked_at = {ago(f'{checked} - image_id')} WHERE image_id > %s",
            [checked - recent],
        )
        cursor.execute("ANALYZE")
        if postgres:
            cursor.execute("SELECT setval(pg_get_serial_sequence('gallery_image', 'id'), %s)", [images])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1_000_000)
    parser.add_argument("--waiting", type=int, default=1180)
    parser.add_argument("--recent", type=int, default=300, help="checks in the last five minutes")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--database-url", default="", help="an EMPTY database (--database-url=...)")
    args = parser.parse_args()

    import django

    django.setup()
    from django.core.cache import cache
    from django.core.management import call_command
    from django.db import connection

    from duplicates.selectors import detection
    from gallery.models import Image

    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)
    if Image.objects.exists():
        sys.exit(f"{connection.settings_dict['NAME']} holds images: give the bench an empty database")
    key = detection.detection_settings_key()
    started = time.perf_counter()
    build(args.images, args.waiting, args.recent, key)
    print(
        f"library: {args.images:,} searchable images, {args.waiting:,} awaiting detection, built in "
        f"{time.perf_counter() - started:.0f} s ({connection.vendor})"
    )

    fresh, shared = [], []
    for _ in range(args.rounds):
        cache.clear()
        started = time.perf_counter()
        backlog = detection.detection_backlog()
        fresh.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        detection.detection_backlog()
        shared.append((time.perf_counter() - started) * 1000)
    assert backlog.waiting == args.waiting, backlog
    print(f"backlog: {backlog.summary} ({backlog.per_minute} checks a minute)")
    print(f"counted afresh (cache miss): median {statistics.median(fresh):.0f} ms, max {max(fresh):.0f} ms")
    print(f"shared (cache hit):          median {statistics.median(shared):.1f} ms, max {max(shared):.1f} ms")
    if connection.vendor == "postgresql":
        sql, params = detection.images_awaiting_detection().order_by().query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (ANALYZE) SELECT COUNT(*) FROM ({sql}) awaiting", params)
            print("plan of the count:\n  " + "\n  ".join(row[0] for row in cursor.fetchall()))
    print(f"(one process, {args.rounds} rounds; load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
