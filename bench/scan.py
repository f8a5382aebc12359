"""scan_duplicates on SQLite against PostgreSQL: seconds per full scan of a library with 20,000+ pairs.

    .venv/bin/python bench/scan.py                               # 2,120 images in clusters of 20: 20,140 pairs
    .venv/bin/python bench/scan.py --clusters 60 --unbatched     # the old single-statement pair writes

Each database gets a fresh schema (SQLite in a temp folder; PostgreSQL database `imgsim_bench_scan` at
--postgres, dropped and created) and the same synthetic library: clusters of images whose vectors are all
near-duplicates of each other (cosine >= 0.95) and unrelated to every other cluster, so the pairs are known
exactly: clusters x size x (size - 1) / 2. Rows point at one small real thumbnail (evidence is computed as
in production); geometric verification is off (no grey-zone pairs). Two scans per database, timed: the
first creates every pair, the second updates every pair (the write that hung PostgreSQL's JIT when it was
one UPDATE). Printed: pairs counted by the scan, pairs stored, seconds, and PostgreSQL / SQLite.
Each database runs in its own process (Django is configured once per process).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PG_NAME = "imgsim_bench_scan"


def make_library(*, clusters: int, size: int, dim: int, seed: int) -> int:
    """Synthetic indexed images sharing one real thumbnail file; returns the number of true pairs."""
    import numpy as np
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage
    from django.utils import timezone
    from PIL import Image as PILImage

    from gallery.models import Image

    buffer = io.BytesIO()
    PILImage.new("RGB", (64, 48), (120, 90, 60)).save(buffer, "WEBP")
    thumb = default_storage.save("thumbnails/bench.webp", ContentFile(buffer.getvalue()))
    rng = np.random.default_rng(seed)
    now = timezone.now()
    rows = []
    for cluster in range(clusters):
        centre = rng.standard_normal(dim).astype(np.float32)
        centre /= np.linalg.norm(centre)
        for member in range(size):
            noise = rng.standard_normal(dim).astype(np.float32)
            vector = centre + 0.12 * noise / np.linalg.norm(noise)
            vector /= np.linalg.norm(vector)
            rows.append(
                Image(
                    file=thumb,
                    thumbnail=thumb,
                    original_name=f"c{cluster}-m{member}.jpg",
                    sha256=f"{cluster:032x}{member:032x}",
                    width=4000,
                    height=3000,
                    format="JPEG",
                    file_size=1_000_000 + member,
                    status=Image.Status.INDEXED,
                    embedding=vector.astype(np.float32).tobytes(),
                    embedding_model="mobilenet_v2",
                    embedded_at=now,
                    quality_scores={"sharpness": 0.5},
                )
            )
    Image.objects.bulk_create(rows, batch_size=500)
    return clusters * size * (size - 1) // 2


def worker(args: argparse.Namespace) -> None:
    """One database: migrate, build the library, scan twice; prints one JSON line."""
    import django

    django.setup()
    from django.core.management import call_command

    from duplicates.models import DuplicatePair
    from duplicates.services import detection

    if args.unbatched:
        detection.PAIR_WRITE_BATCH = None  # one statement per chunk, as before the fix
    call_command("migrate", verbosity=0)
    expected = make_library(clusters=args.clusters, size=args.size, dim=args.dim, seed=args.seed)
    result: dict[str, object] = {"expected_pairs": expected}
    for name in ("create", "update"):
        started = time.perf_counter()
        summary = detection.duplicates_scan(rebuild_index=True, verify=False)
        result[f"{name}_seconds"] = time.perf_counter() - started
        result[f"{name}_counted"] = summary.detection.pairs
    result["stored"] = DuplicatePair.objects.count()
    print(json.dumps(result))


def run_database(label: str, database_url: str, args: argparse.Namespace, var_dir: Path) -> dict[str, object]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "imgsim_site.settings",
        "DATABASE_URL": database_url,
        "IMGSIM_VAR_DIR": str(var_dir / label),
        "IMGSIM_MODEL": "mobilenet_v2",
        "IMGSIM_DUPLICATE_GEOMETRY": "0",
        "IMGSIM_TASKS_SYNC": "1",
    }
    env.pop("IMGSIM_REDIS_URL", None)
    command = [sys.executable, __file__, "--worker", *sys.argv[1:]]
    output = subprocess.run(command, env=env, cwd=REPO, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def recreate_postgres(url: str) -> str:
    import dj_database_url
    import psycopg

    config = dj_database_url.parse(url)
    with psycopg.connect(
        host=config["HOST"] or "127.0.0.1",
        port=config["PORT"] or 5432,
        user=config["USER"],
        password=config["PASSWORD"] or None,
        dbname=config["NAME"] or "postgres",
        autocommit=True,
    ) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {PG_NAME}")
        connection.execute(f"CREATE DATABASE {PG_NAME}")
    return url.rsplit("/", 1)[0] + "/" + PG_NAME


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clusters", type=int, default=106)
    parser.add_argument("--size", type=int, default=20, help="images per cluster")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--unbatched", action="store_true", help="write each chunk's pairs in one statement")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    with tempfile.TemporaryDirectory(prefix="imgsim-bench-scan-") as folder:
        var_dir = Path(folder)
        results = {
            "sqlite": run_database("sqlite", f"sqlite:///{var_dir / 'bench.sqlite3'}", args, var_dir),
            "postgres": run_database("postgres", recreate_postgres(args.postgres), args, var_dir),
        }
    expected = results["sqlite"]["expected_pairs"]
    writes = "one statement per chunk (before)" if args.unbatched else "batches of 250 rows"
    print(f"{args.clusters * args.size:,} images, {expected:,} true pairs; pair writes: {writes}")
    print(f"{'database':<10} {'scan':<7} {'seconds':>8} {'pairs counted':>14} {'pairs stored':>13}")
    for label, result in results.items():
        for name in ("create", "update"):
            print(
                f"{label:<10} {name:<7} {result[f'{name}_seconds']:>8.2f} {result[f'{name}_counted']:>14,} "
                f"{result['stored']:>13,}"
            )
    for name in ("create", "update"):
        ratio = results["postgres"][f"{name}_seconds"] / results["sqlite"][f"{name}_seconds"]
        print(f"PostgreSQL / SQLite, {name} scan: {ratio:.2f}x")


if __name__ == "__main__":
    if __package__ in (None, ""):
        sys.path[0] = str(REPO)  # run as a script: the repository root, not bench/, is on the path
    main()
