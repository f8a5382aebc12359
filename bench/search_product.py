"""The product's search path at scale, timed beside the bare index in the same run.

Run from the repository root (PostgreSQL: a database of its own, created if missing; SQLite: a temp file):

    .venv/bin/python bench/search_product.py --size 100000 --database postgres://postgres@127.0.0.1:5432/bench_scale
    .venv/bin/python bench/search_product.py --size 100000 --database sqlite

It fills the real database with N images carrying 512-d synthetic embeddings (bench/search.py's generator;
COPY on PostgreSQL, executemany in big transactions on SQLite), builds the index with the product's
rebuild service, then times, query by query and interleaved with the bare index (faiss search of the
candidates alone, one thread), the product's searches:

- similar_to_image (a library image as the query), similar_images (a vector as the query), the API request
  GET /api/images/{id}/similar/ through DRF's test client, and duplicate-detection candidates per image
  (neighbours_above over the library k-NN, batches of 256 as the embedding task runs it);

in these states: 0 vectors added since the build; 5,000 and 20,000 added since (the tail); a bulk import
of 5,000 vectors just before a rebuild; and while a rebuild runs in another process (a `rebuild_index`
command, as the task worker would), until this process has switched to the new build.

Goal (issue 11): product p50 <= 3 x bare p50 + 5 ms, p99 < 50 ms whatever the tail. Ratios are printed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

if __name__ == "__main__":
    # Run as a script, bench/ is sys.path[0] and this file would shadow the `search` package.
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MODEL = "resnet18"
K = 10
DIM = 512


def configure(database: str, workdir: Path) -> str:
    """Environment for Django before it is set up: the bench's own database, files and index dir."""
    if database == "sqlite":
        url = f"sqlite:///{workdir / 'bench.sqlite3'}"
    else:
        url = database
        create_postgres_database(url)
    os.environ.update(
        DJANGO_SETTINGS_MODULE="imgsim_site.settings",
        DATABASE_URL=url,
        IMGSIM_VAR_DIR=str(workdir),
        IMGSIM_INDEX_DIR=str(workdir / "index"),
        IMGSIM_MODEL=MODEL,
        IMGSIM_SEARCH_RATE="100000000/hour",
        IMGSIM_TASKS_SYNC="1",
        IMGSIM_WARM_MODEL="0",
        IMGSIM_REBUILD_FRACTION="10",  # the bench decides when to rebuild
        IMGSIM_REBUILD_MAX_PENDING="10000000",
    )
    return url


def create_postgres_database(url: str) -> None:
    """Drop and create the bench's database (never the default one: it must be named in the URL)."""
    import psycopg

    name = url.rsplit("/", 1)[1].split("?")[0]
    if name in ("", "postgres", "test"):
        raise SystemExit(f"use a database of the bench's own, e.g. .../bench_scale (got {name!r})")
    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
        connection.execute(f'CREATE DATABASE "{name}"')


def insert_images(
    vectors: np.ndarray, *, embedded_at: datetime.datetime, start: int, log_changes: bool, spacing: float = 0.0
) -> list[int]:
    """N indexed images with these vectors, fast (COPY / executemany), as the embedding task leaves them;
    image n embedded `spacing` seconds after image n-1, the last one at `embedded_at`."""
    from django.db import connection, transaction
    from django.utils import timezone

    from gallery.models import Image

    now = timezone.now()
    fixed = {
        "thumbnail": "",
        "original_name": "",
        "width": 640,
        "height": 480,
        "format": "JPEG",
        "file_size": 100_000,
        "camera_make": "",
        "camera_model": "",
        "status": Image.Status.INDEXED,
        "reason_code": "",
        "status_message": "",
        "quality_scores": "{}",
        "embedding_model": MODEL,
        "embed_attempts": 1,
        "claim_token": "",
        "created_at": now,
        "updated_at": now,
    }
    if connection.vendor != "postgresql":
        fixed = {
            name: connection.ops.adapt_datetimefield_value(value) if isinstance(value, datetime.datetime) else value
            for name, value in fixed.items()
        }
    columns = ["file", "sha256", "embedding", *fixed, "embedded_at"]
    count = vectors.shape[0]
    times = [embedded_at - datetime.timedelta(seconds=spacing * (count - 1 - n)) for n in range(count)]
    if connection.vendor != "postgresql":
        times = [connection.ops.adapt_datetimefield_value(moment) for moment in times]
    rng = np.random.default_rng(start)
    ratings = rng.integers(0, 6, vectors.shape[0])
    rated = rng.random(vectors.shape[0]) < 0.6
    columns.append("rating")
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                raw = cursor.cursor
                with raw.copy(f"COPY gallery_image ({', '.join(columns)}) FROM STDIN") as copy:
                    for n in range(vectors.shape[0]):
                        copy.write_row(
                            [
                                f"originals/bench/{start + n}.jpg",
                                f"{start + n:064x}",
                                vectors[n].tobytes(),
                                *fixed.values(),
                                times[n],
                                int(ratings[n]) if rated[n] else None,
                            ]
                        )
        else:
            sql = f"INSERT INTO gallery_image ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"
            rows = [
                (
                    f"originals/bench/{start + n}.jpg",
                    f"{start + n:064x}",
                    vectors[n].tobytes(),
                    *fixed.values(),
                    times[n],
                    int(ratings[n]) if rated[n] else None,
                )
                for n in range(vectors.shape[0])
            ]
            with connection.cursor() as cursor:
                for chunk in range(0, len(rows), 20_000):
                    cursor.executemany(sql, rows[chunk : chunk + 20_000])
        ids = list(
            Image.objects.filter(sha256__gte=f"{start:064x}", sha256__lte=f"{start + vectors.shape[0] - 1:064x}")
            .order_by("id")
            .values_list("id", flat=True)
        )
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE gallery_image")  # as autovacuum would soon: plans like production's
        if log_changes and library_changed is not None:
            library_changed(image_ids=ids)  # what the embedding task writes with the vectors
    return ids


# search.services.library_changed once Django is set up; None on code from before the change log (the
# bench also runs there, for the "before" figures).
library_changed: Callable[..., None] | None = None


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


class Timer:
    """Latencies per path, measured interleaved with the bare index so that load hits both alike."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = {}

    def time(self, name: str, action: Callable[[], object]) -> None:
        started = time.perf_counter()
        action()
        self.samples.setdefault(name, []).append((time.perf_counter() - started) * 1000)

    def report(self, title: str, rows: list[dict[str, object]]) -> None:
        bare = self.samples.get("bare index", [])
        bare_p50 = percentile(bare, 50)
        print(f"\n  {title}")
        print(f"    {'path':<28} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'p50/bare':>9} {'goal p50':>9} {'goal met':>8}")
        for name, values in self.samples.items():
            p50, p99 = percentile(values, 50), percentile(values, 99)
            ratio = p50 / bare_p50 if bare_p50 else float("nan")
            goal = 3 * bare_p50 + 5
            met = "-" if name in ("bare index", "dup per image") else ("yes" if p50 <= goal and p99 < 50 else "NO")
            print(f"    {name:<28} {len(values):>5} {p50:>8.2f} {p99:>8.2f} {ratio:>8.1f}x {goal:>9.2f} {met:>8}")
            rows.append({"state": title, "path": name, "n": len(values), "p50_ms": p50, "p99_ms": p99})


def measure(title: str, *, queries: int, sample_ids: list[int], rows: list[dict[str, object]], api: bool) -> None:
    """Each query: bare index, similar_to_image, similar_images, the API request, in turn."""
    import faiss
    from django.conf import settings
    from rest_framework.test import APIClient

    from gallery.models import Image
    from search import selectors

    faiss.omp_set_num_threads(1)
    client = APIClient()
    client.force_authenticate(bench_user())
    build, index = selectors.served_index(model_name=settings.IMGSIM_MODEL)
    rng = np.random.default_rng(len(title))
    chosen = [int(pk) for pk in rng.choice(sample_ids, size=queries, replace=True)]
    images = Image.objects.in_bulk(chosen)
    timer = Timer()
    for pk in chosen:
        image = images[pk]
        vector = image.vector
        if index is not None:
            timer.time("bare index", lambda v=vector: index.search(v.reshape(1, -1), k=index.candidate_count(K)))
        timer.time("similar_to_image", lambda i=image: selectors.similar_to_image(image=i, k=K))
        timer.time("similar_images (vector)", lambda v=vector: selectors.similar_images(vector=v, k=K))
        if api:
            timer.time("API GET /similar/", lambda p=pk: check(client.get(f"/api/images/{p}/similar/?k={K}")))
    dup_ms = duplicate_detection_ms(sample_ids)
    timer.samples["dup per image"] = [dup_ms]
    timer.report(f"{title} (index v{build.pk if build else '-'}, {searched_count()} searched)", rows)


def check(response: object) -> None:
    if response.status_code != 200:  # type: ignore[attr-defined]
        raise SystemExit(f"API answered {response.status_code}: {response.content[:300]!r}")  # type: ignore[attr-defined]


def searched_count() -> int:
    from django.conf import settings

    from search.selectors import LibrarySearch

    return LibrarySearch(model_name=settings.IMGSIM_MODEL).size


def duplicate_detection_ms(sample_ids: list[int]) -> float:
    """Candidate search per image, as the embedding task runs it: stored vectors, adaptive k-NN, 256 a batch."""
    from django.conf import settings

    from duplicates.detection import neighbours_above
    from duplicates.services import library_neighbour_search
    from search.selectors import stored_vectors

    ids = sample_ids[:256]
    started = time.perf_counter()
    query_ids, query_vectors, _ = stored_vectors(model_name=settings.IMGSIM_MODEL, ids=ids)
    search = library_neighbour_search(model_name=settings.IMGSIM_MODEL)
    neighbours_above(query_ids=query_ids, query_vectors=query_vectors, search=search, floor=0.90)
    return (time.perf_counter() - started) * 1000 / len(ids)


_user = None


def bench_user() -> object:
    global _user
    if _user is None:
        from django.contrib.auth import get_user_model

        _user, _ = get_user_model().objects.get_or_create(username=f"bench-{uuid.uuid4().hex[:6]}")
    return _user


def rebuild() -> float:
    """A rebuild in this process; then wait until this process serves it (it switches in the background)."""
    from django.conf import settings

    from search import selectors, services

    started = time.perf_counter()
    services.index_rebuild(requested_by="bench")
    seconds = time.perf_counter() - started
    selectors.served_index(model_name=settings.IMGSIM_MODEL)
    view = getattr(selectors, "library_view", None)
    if view is not None:
        view(model_name=settings.IMGSIM_MODEL).wait_for_switch(600)
    return seconds


def during_rebuild(*, rows: list[dict[str, object]], sample_ids: list[int], url: str, workdir: Path) -> None:
    """Searches while another process rebuilds (as the task worker does), until this one has switched."""
    from django.conf import settings

    from gallery.models import Image
    from search import selectors

    env = {**os.environ, "DATABASE_URL": url}
    child = subprocess.Popen(
        [sys.executable, "manage.py", "rebuild_index"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    before = selectors.served_index(model_name=settings.IMGSIM_MODEL)[0]
    images = list(Image.objects.in_bulk(sample_ids[:200]).values())
    timer = Timer()
    started = time.perf_counter()
    switched_at = None
    n = 0
    while time.perf_counter() - started < 1800:
        image = images[n % len(images)]
        timer.time("similar_to_image", lambda i=image: selectors.similar_to_image(image=i, k=K))
        n += 1
        build = selectors.served_index(model_name=settings.IMGSIM_MODEL)[0]
        if build is not None and before is not None and build.pk != before.pk:
            switched_at = time.perf_counter() - started
            break
    child.wait()
    output = child.stdout.read().decode() if child.stdout else ""
    print(f"\n  rebuild in another process: {n} searches; switched after {switched_at or float('nan'):.1f}s")
    if child.returncode:
        print(output[-2000:])
    timer.report("during a rebuild (until switched)", rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument(
        "--database", default="sqlite", help="'sqlite' or a postgres:// URL naming the bench's database"
    )
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--tails", type=int, nargs="*", default=[5_000, 20_000])
    parser.add_argument("--bulk", type=int, default=5_000, help="vectors imported just before a rebuild")
    parser.add_argument("--no-api", action="store_true")
    parser.add_argument("--no-rebuild-run", action="store_true")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, help="for the database file, media and index (default: a temp dir)")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="imgsim-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "bench.sqlite3").unlink(missing_ok=True)
    url = configure(args.database, workdir)
    import django

    django.setup()
    global library_changed
    try:
        from search.services import library_changed as found

        library_changed = found
    except ImportError:
        library_changed = None
    from django.core.management import call_command
    from django.utils import timezone

    from bench.search import SyntheticEmbeddings

    call_command("migrate", verbosity=0)
    print(f"== product search path, {args.size:,} images, {url.split('://')[0]}, k={K}, {os.cpu_count()} cores")
    print(f"   code: {'change log + library view' if library_changed else 'before (tail read per search)'}")
    model = SyntheticEmbeddings.create(dim=DIM, seed=args.seed)
    rng = np.random.default_rng(args.seed)
    rows: list[dict[str, object]] = []

    started = time.perf_counter()
    ids: list[int] = []
    # The library grew over the last weeks: one image every 30 s until an hour ago.
    last = timezone.now() - datetime.timedelta(hours=1)
    for start in range(0, args.size, 100_000):
        count = min(100_000, args.size - start)
        until = last - datetime.timedelta(seconds=30 * (args.size - start - count))
        ids += insert_images(
            model.sample(count, rng=rng), embedded_at=until, start=start, log_changes=False, spacing=30.0
        )
    print(f"   inserted {len(ids):,} images in {time.perf_counter() - started:.1f}s")
    print(f"   index build {rebuild():.1f}s")
    measure("0 since the build", queries=args.queries, sample_ids=ids, rows=rows, api=not args.no_api)

    next_start = args.size
    added = 0
    for tail in args.tails:
        more = tail - added
        new = insert_images(
            model.sample(more, rng=rng), embedded_at=timezone.now(), start=next_start, log_changes=True, spacing=0.03
        )
        next_start += more
        added = tail
        started = time.perf_counter()
        searched_count()  # the first search after the import applies it (once per process)
        print(f"\n   +{more:,} vectors; first search after them {1000 * (time.perf_counter() - started):.0f} ms")
        measure(f"{tail:,} since the build", queries=args.queries, sample_ids=ids + new, rows=rows, api=not args.no_api)

    if args.bulk:
        # A bulk import at 30 images/s ending just before the rebuild.
        insert_images(
            model.sample(args.bulk, rng=rng),
            embedded_at=timezone.now(),
            start=next_start,
            log_changes=True,
            spacing=1 / 30,
        )
        next_start += args.bulk
        print(f"\n   bulk import of {args.bulk:,} just before a rebuild; index build {rebuild():.1f}s")
        measure(
            f"bulk import of {args.bulk:,} just before the build",
            queries=args.queries,
            sample_ids=ids,
            rows=rows,
            api=not args.no_api,
        )

    if not args.no_rebuild_run:
        during_rebuild(rows=rows, sample_ids=ids, url=url, workdir=workdir)

    if args.json:
        args.json.write_text(json.dumps({"size": args.size, "database": url.split("://")[0], "rows": rows}, indent=1))
    print("\n   goal: p50 <= 3 x bare p50 + 5 ms and p99 < 50 ms; dup per image goal <= 2.62 ms (2 x 1.31)")


if __name__ == "__main__":
    main()
