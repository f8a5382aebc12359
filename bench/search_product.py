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


def configure(database: str, workdir: Path, *, reuse: bool, redis: str) -> str:
    """Environment for Django before it is set up: the bench's own database, files and index dir."""
    if database == "sqlite":
        url = f"sqlite:///{workdir / 'bench.sqlite3'}"
        if not reuse:
            (workdir / "bench.sqlite3").unlink(missing_ok=True)
    else:
        url = database
        create_postgres_database(url, keep=reuse)
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
    if redis:
        # The shared cache (the search rate limit's counters) in Redis, as a PostgreSQL deployment runs it.
        os.environ["IMGSIM_REDIS_URL"] = redis
    return url


def create_postgres_database(url: str, *, keep: bool) -> None:
    """Drop and create the bench's database (never the default one: it must be named in the URL);
    with keep, an existing one is kept (--reuse)."""
    import psycopg

    name = url.rsplit("/", 1)[1].split("?")[0]
    if name in ("", "postgres", "test"):
        raise SystemExit(f"use a database of the bench's own, e.g. .../bench_scale (got {name!r})")
    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and keep:
            return
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


# A second name for the file of the first build of the library, so that --reuse can serve it again after the
# run's rebuilds retired (and deleted) it.
BASE_COPY = ".bench-base"


def keep_base_build() -> None:
    """Link the served build's file under a second name (--reuse serves it again next time)."""
    from search.models import IndexBuild
    from search.services.index_lifecycle import index_path

    build = IndexBuild.objects.latest_ready(model_name=MODEL)
    assert build is not None
    path = index_path(build)
    copy = path.with_name(path.name + BASE_COPY)
    if not copy.exists():
        os.link(path, copy)


def reused_library(size: int) -> list[int] | None:
    """An earlier run's library of `size` images (--reuse): the images its later states added are deleted,
    the change log emptied and its first build served again. None (and an empty database) when there is none."""
    from django.core.management import call_command
    from django.db import connection, transaction

    from gallery.models import Image
    from search.models import IndexBuild, LibraryChange
    from search.services.index_lifecycle import index_path

    last = f"{size - 1:064x}"
    base = Image.objects.filter(sha256__lte=last)
    chosen = None
    if base.count() == size:
        for build in IndexBuild.objects.filter(model_name=MODEL, vector_count=size).order_by("-id"):
            path = index_path(build)
            copy = path.with_name(path.name + BASE_COPY)
            if build.file_name and copy.exists():
                if not path.exists():
                    os.link(copy, path)
                chosen = build
                break
    if chosen is None:
        call_command("flush", interactive=False, verbosity=0)
        return None
    with transaction.atomic():
        Image.objects.filter(sha256__gt=last).delete()
        # The newest change row stays (as index_rebuild's pruning leaves it), so the change counter goes on
        # from there; the build then counts as having seen every change so far.
        newest = LibraryChange.objects.order_by("-id").values_list("id", flat=True).first() or 0
        LibraryChange.objects.filter(id__lt=newest).delete()
        IndexBuild.objects.exclude(pk=chosen.pk).filter(status=IndexBuild.Status.READY).update(
            status=IndexBuild.Status.SUPERSEDED
        )
        chosen.params = {**chosen.params, "changes_open": []}
        IndexBuild.objects.filter(pk=chosen.pk).update(
            status=IndexBuild.Status.READY, changes_through=newest, params=chosen.params
        )
    for build in IndexBuild.objects.exclude(pk=chosen.pk).exclude(file_name=""):
        index_path(build).unlink(missing_ok=True)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE gallery_image")
    print(f"   reused {size:,} images and index v{chosen.pk} (built in {chosen.build_seconds:.0f}s)")
    return list(base.order_by("id").values_list("id", flat=True))


# What logs the inserted rows once Django is set up: search.services.library_changes.library_changed on code where
# services log image writes, nothing to do where the database logs them itself (triggers), None on code from before
# the change log (the bench also runs there, for the "before" figures).
library_changed: Callable[..., None] | None = None


def _logged_by_the_database(*, image_ids: list[int]) -> None:
    """The image table's triggers logged the rows as they were written."""


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


class Timer:
    """Latencies per path, measured interleaved with the bare index so that load hits both alike."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = {}
        self.cpu: dict[str, list[float]] = {}  # this process's CPU time per call (not the database's)

    def time(self, name: str, action: Callable[[], object]) -> None:
        started, cpu = time.perf_counter(), time.thread_time()
        action()
        self.cpu.setdefault(name, []).append((time.thread_time() - cpu) * 1000)
        self.samples.setdefault(name, []).append((time.perf_counter() - started) * 1000)

    def report(self, title: str, rows: list[dict[str, object]]) -> None:
        """p50/p99 per path; searches against the bare index (goal: p50 <= 3 x bare + 5 ms, p99 < 50 ms),
        detection per image against the bare candidate step (goal: <= 2 x)."""
        bare_p50 = percentile(self.samples.get("bare index", []), 50)
        bare_detection = percentile(self.samples.get("bare candidates per image", []), 50)
        print(f"\n  {title}")
        print(
            f"    {'path':<28} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'ratio':>7}  {'goal':<22} {'met':>4}"
            f" {'CPU p50 ms':>10}"
        )
        for name, values in self.samples.items():
            p50, p99 = percentile(values, 50), percentile(values, 99)
            cpu = percentile(self.cpu.get(name, []), 50)
            if name in ("bare index", "bare candidates per image"):
                ratio, goal, met = 1.0, "(baseline)", "-"
            elif name.endswith("per image"):
                ratio = p50 / bare_detection if bare_detection else float("nan")
                goal, met = "p50 <= 2 x bare cand.", "yes" if ratio <= 2 else "NO"
            else:
                ratio = p50 / bare_p50 if bare_p50 else float("nan")
                limit = 3 * bare_p50 + 5
                goal, met = f"p50 <= {limit:.2f}, p99 < 50", "yes" if p50 <= limit and p99 < 50 else "NO"
            print(
                f"    {name:<28} {len(values):>5} {p50:>8.2f} {p99:>8.2f} {ratio:>6.1f}x  {goal:<22} {met:>4}"
                f" {cpu:>10.2f}"
            )
            rows.append(
                {
                    "state": title,
                    "path": name,
                    "n": len(values),
                    "p50_ms": p50,
                    "p99_ms": p99,
                    "ratio": ratio,
                    "cpu_p50_ms": cpu,
                }
            )


def measure(title: str, *, queries: int, sample_ids: list[int], rows: list[dict[str, object]], api: bool) -> None:
    """Each query: bare index, similar_to_image, similar_images, the API request, in turn."""
    import faiss
    from django.conf import settings
    from django.core.cache import caches
    from django.core.cache.backends.db import DatabaseCache
    from rest_framework.test import APIClient

    from core.cache import SharedDatabaseCache
    from gallery.models import Image
    from search import selectors
    from search.library_view import served_index

    faiss.omp_set_num_threads(1)
    client = APIClient()
    client.force_authenticate(bench_user())
    build, index = served_index(model_name=settings.IMGSIM_MODEL)
    rng = np.random.default_rng(len(title))
    chosen = [int(pk) for pk in rng.choice(sample_ids, size=queries, replace=True)]
    warm = [int(pk) for pk in rng.choice(sample_ids, size=20, replace=True)]
    images = Image.objects.in_bulk(chosen + warm)
    for pk in warm:  # untimed, other images: the mapped index file's pages and the first queries warm up
        selectors.similar_to_image(image=images[pk], k=K)
    # On the database cache, the API is also timed with Django's own DatabaseCache, interleaved (issue 11).
    shared_cache = caches["default"]
    django_cache = None
    if isinstance(shared_cache, SharedDatabaseCache):
        django_cache = DatabaseCache(settings.CACHES["default"]["LOCATION"], settings.CACHES["default"])
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
            if django_cache is not None:  # the same request with Django's DatabaseCache (a COUNT(*) per set)
                caches["default"] = django_cache
                try:
                    timer.time(
                        "API, Django's DatabaseCache", lambda p=pk: check(client.get(f"/api/images/{p}/similar/?k={K}"))
                    )
                finally:
                    caches["default"] = shared_cache
    # Detection per image (batches of 256), 3 rounds interleaved, medians: the candidate step alone on
    # the index (bare), the product's candidate step (index + tail, stored vectors read), and the product's
    # whole detection (duplicate_pairs_detect: reads, k-NN, pairs and checks written, rolled back).
    for round_ in range(3):
        batch = sample_ids[round_ * 256 :] if len(sample_ids) > 1024 else sample_ids
        for name, per_image in (
            ("bare candidates per image", bare_detection_ms),
            ("dup per image", duplicate_detection_ms),
            ("detection per image", detection_ms),
        ):
            cpu = time.thread_time()
            timer.samples.setdefault(name, []).append(per_image(batch))
            timer.cpu.setdefault(name, []).append((time.thread_time() - cpu) * 1000 / 256)
    timer.report(f"{title} (index v{build.pk if build else '-'}, {searched_count()} searched)", rows)


def check(response: object) -> None:
    if response.status_code != 200:  # type: ignore[attr-defined]
        raise SystemExit(f"API answered {response.status_code}: {response.content[:300]!r}")  # type: ignore[attr-defined]


def searched_count() -> int:
    from django.conf import settings

    from search.library_view import LibrarySearch

    return LibrarySearch(model_name=settings.IMGSIM_MODEL).size


class Rollback(Exception):
    """Raised to undo what a timed write did, so every round measures the same work."""


def detection_ms(sample_ids: list[int]) -> float:
    """The product's detection per image (duplicate_pairs_detect: stored vectors, k-NN, existing pairs,
    pairs and checks written), 256 images a batch as the detection task runs it; rolled back afterwards."""
    from django.db import transaction

    from duplicates.services.detection import duplicate_pairs_detect

    ids = sample_ids[:256]
    started = time.perf_counter()
    try:
        with transaction.atomic():
            duplicate_pairs_detect(image_ids=ids, verify=False)
            elapsed = time.perf_counter() - started
            raise Rollback
    except Rollback:
        pass
    return elapsed * 1000 / len(ids)


def bare_detection_ms(sample_ids: list[int]) -> float:
    """The candidate step alone, as bench/duplicates.py times it: the served index's candidates re-ranked on
    vectors already in memory (no database, no tail), adaptive k, the same 256 images in one batch."""
    from django.conf import settings

    from duplicates.detection import neighbours_above
    from search.index.scoring import rerank
    from search.library_view import served_index

    _, index = served_index(model_name=settings.IMGSIM_MODEL)
    if index is None or not index.has_stored_vectors:
        return float("nan")
    query_ids, query_vectors, _ = index.stored(np.asarray(sample_ids[:256]))

    def search(batch: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        _, candidates = index.search(batch, k=index.candidate_count(k))
        ids, vectors, _ = index.stored(candidates[candidates >= 0])
        return rerank(
            query_vectors=batch,
            query_ratings=None,
            candidate_ids=candidates,
            ids=ids,
            vectors=vectors,
            ratings=None,
            k=k,
            weight=0.0,
        )

    started = time.perf_counter()
    neighbours_above(query_ids=query_ids, query_vectors=query_vectors, search=search, floor=0.90)
    return (time.perf_counter() - started) * 1000 / max(1, query_ids.shape[0])


def duplicate_detection_ms(sample_ids: list[int]) -> float:
    """Candidate search per image, as the embedding task runs it: stored vectors, adaptive k-NN, 256 a batch."""
    from django.conf import settings

    from duplicates.detection import neighbours_above
    from duplicates.selectors import library_neighbour_search
    from search.stored_vectors import stored_vectors

    ids = sample_ids[:256]
    started = time.perf_counter()
    query_ids, query_vectors, _ = stored_vectors(model_name=settings.IMGSIM_MODEL, ids=ids)
    search = library_neighbour_search(model_name=settings.IMGSIM_MODEL)
    neighbours_above(query_ids=query_ids, query_vectors=query_vectors, search=search, floor=0.90)
    return (time.perf_counter() - started) * 1000 / len(ids)


def profile(title: str, *, sample_ids: list[int], calls: int = 30) -> None:
    """Where one request's time goes, path by path: its SQL (with times) and cProfile's top functions."""
    import cProfile
    import io
    import pstats

    from django.conf import settings
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from rest_framework.test import APIClient

    from gallery.models import Image
    from search import selectors

    client = APIClient()
    client.force_authenticate(bench_user())
    images = list(Image.objects.in_bulk(sample_ids[:calls]).values())
    paths: dict[str, Callable[[int], object]] = {
        "similar_to_image": lambda n: selectors.similar_to_image(image=images[n], k=K),
        "similar_images (vector)": lambda n: selectors.similar_images(vector=images[n].vector, k=K),
        "API GET /similar/": lambda n: check(client.get(f"/api/images/{images[n].pk}/similar/?k={K}")),
        "detection (256 images)": lambda n: detection_ms(sample_ids[n * 256 :]),
    }
    print(f"\n  profile: {title} (model {settings.IMGSIM_MODEL})")
    for name, action in paths.items():
        rounds = 3 if name.startswith("detection") else calls
        action(0)
        with CaptureQueriesContext(connection) as queries:
            action(1 % len(images))
        print(f"\n    {name}: {len(queries.captured_queries)} queries")
        for entry in queries.captured_queries:
            print(f"      {float(entry['time']) * 1000:6.2f} ms  {entry['sql'][:150]}")
        profiler = cProfile.Profile()
        profiler.enable()
        for n in range(rounds):
            action(n % len(images))
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(14)
        lines = [line for line in out.getvalue().splitlines() if line.strip()]
        start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
        print(f"      cProfile over {rounds} calls (tottime, s):")
        for line in lines[start:]:
            print(f"      {line[:170]}")


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

    from search.library_view import library_view, served_index
    from search.services.index_lifecycle import index_rebuild

    started = time.perf_counter()
    index_rebuild(requested_by="bench")
    seconds = time.perf_counter() - started
    served_index(model_name=settings.IMGSIM_MODEL)
    library_view(model_name=settings.IMGSIM_MODEL).wait_for_switch(600)
    return seconds


def wait_for_tail_graph() -> None:
    """Measure the steady state: wait while this process makes the tail's graph in its background thread."""
    from django.conf import settings

    from search.library_view import library_view

    view = library_view(model_name=settings.IMGSIM_MODEL)
    if not hasattr(view, "wait_for_tail_graph"):  # code from before the tail graph
        return
    started = time.perf_counter()
    if hasattr(view, "graph_wanted"):  # this process searches singly, as a web worker does (the bench's searches)
        view.graph_wanted()
    view.wait_for_tail_graph()
    tail = view.current().tail
    graph = tail.graph if tail is not None else None
    covered = f"{graph.rows:,} of {len(tail.ids):,} tail rows" if graph is not None and tail is not None else "none"
    waited = time.perf_counter() - started
    print(f"   tail graph (from {settings.IMGSIM_TAIL_GRAPH_FROM:,} rows): {covered}, waited {waited:.1f}s")


def during_rebuild(*, rows: list[dict[str, object]], sample_ids: list[int], url: str, workdir: Path) -> None:
    """Searches while another process rebuilds (as the task worker does), until this one has switched."""
    from django.conf import settings

    from gallery.models import Image
    from search import selectors
    from search.library_view import served_index

    env = {**os.environ, "DATABASE_URL": url}
    child = subprocess.Popen(
        [sys.executable, "manage.py", "rebuild_index"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    before = served_index(model_name=settings.IMGSIM_MODEL)[0]
    images = list(Image.objects.in_bulk(sample_ids[:200]).values())
    timer = Timer()
    started = time.perf_counter()
    switched_at = None
    n = 0
    while time.perf_counter() - started < 1800:
        image = images[n % len(images)]
        timer.time("similar_to_image", lambda i=image: selectors.similar_to_image(image=i, k=K))
        n += 1
        build = served_index(model_name=settings.IMGSIM_MODEL)[0]
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
    parser.add_argument("--profile", action="store_true", help="print each path's SQL and cProfile top functions")
    parser.add_argument(
        "--redis",
        default="",
        help="IMGSIM_REDIS_URL for the shared cache (e.g. redis://127.0.0.1:6379/11); default: the database cache",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep the database and index of an earlier run with the same --size and --workdir (images added "
        "by its later states are deleted, its first build served again); builds it the first time",
    )
    parser.add_argument("--workdir", type=Path, help="for the database file, media and index (default: a temp dir)")
    args = parser.parse_args()

    if args.reuse and args.workdir is None:
        raise SystemExit("--reuse needs --workdir (where the index files and the SQLite database stay)")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="imgsim-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    url = configure(args.database, workdir, reuse=args.reuse, redis=args.redis)
    import django

    django.setup()
    global library_changed
    try:
        from search.services import library_changes

        library_changed = getattr(library_changes, "library_changed", _logged_by_the_database)
    except ImportError:
        library_changed = None
    from django.core.management import call_command
    from django.utils import timezone

    from bench.search import SyntheticEmbeddings

    call_command("migrate", verbosity=0)
    print(f"== product search path, {args.size:,} images, {url.split('://')[0]}, k={K}, {os.cpu_count()} cores")
    print(f"   code: {'change log + library view' if library_changed else 'before (tail read per search)'}")
    print(f"   cache (rate limits): {'Redis' if args.redis else 'the database'}; load: {os.getloadavg()}")
    model = SyntheticEmbeddings.create(dim=DIM, seed=args.seed)
    rng = np.random.default_rng(args.seed)
    rows: list[dict[str, object]] = []

    started = time.perf_counter()
    reused = reused_library(args.size) if args.reuse else None
    if reused is not None:
        ids = reused
        model.sample(args.size, rng=rng)  # the same vectors for the later states as in a fresh run
    else:
        ids = []
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
        if args.reuse:
            keep_base_build()
    measure("0 since the build", queries=args.queries, sample_ids=ids, rows=rows, api=not args.no_api)
    if args.profile:
        profile("0 since the build", sample_ids=ids)

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
        wait_for_tail_graph()
        measure(f"{tail:,} since the build", queries=args.queries, sample_ids=ids + new, rows=rows, api=not args.no_api)
        if args.profile:
            profile(f"{tail:,} since the build", sample_ids=ids + new)

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
