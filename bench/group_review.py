"""Group review at library scale: how fast the group list API and the review page answer, and what
building the groups costs, on a library shaped like the one issue 9 was measured on.

Run from the repository root (its own throw-away SQLite database under /tmp, nothing else touched):

    .venv/bin/python bench/group_review.py [--images 1300] [--pairs 21000] [--similar 3100] [--requests 60]
        [--database-url postgres://postgres@127.0.0.1:5432/EMPTY_DB]

With --database-url the library is built in that database instead (it must be empty: the bench refuses one
holding images). The CPU column is the process time per request: unlike wall time, load from other
processes on the shared machine barely moves it.

The library: `--images` image rows (no files: the pages and the API only link to them), near-duplicate
families sized like the measured library (largest 88, most of 2-10 copies) until `--pairs` near-duplicate
pairs, and `--similar` similar pairs between families (bursts). Timed with the Django test client, in
interleaved rounds so load on the shared machine hits every endpoint alike: GET /api/duplicate-groups/
(first page: the 20 largest groups, up to 16 members each with their evidence, and the suggestion), the same
with member_limit=0 (every member: 708 of them), the review page /duplicates/ (10 group cards of up to 16
members), the card that comes in after a decision (/duplicates/cards/, the 11th group, the first ten on the
page), and, as the baseline, GET /api/duplicates/ (the pair list, 20 pairs). Also printed:
the time to rebuild every group (scan_duplicates does it) and to refresh one image's groups (what the
detection step does per new image).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if __name__ == "__main__":
    sys.path[0] = str(REPO)
    WORK = Path(tempfile.mkdtemp(prefix="imgsim-group-bench-"))
    DATABASE_URL = next((arg.split("=", 1)[1] for arg in sys.argv if arg.startswith("--database-url=")), "")
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "imgsim_site.settings",
            "DATABASE_URL": DATABASE_URL or f"sqlite:///{WORK / 'bench.sqlite3'}",
            "IMGSIM_VAR_DIR": str(WORK),
            "IMGSIM_MODEL": "mobilenet_v2",
            "DJANGO_DEBUG": "0",
            "DJANGO_ALLOWED_HOSTS": "testserver",
            "IMGSIM_LOG_LEVEL": "WARNING",
            "IMGSIM_MANIFEST_STATIC": "0",
        }
    )


def family_sizes(pairs: int, rng: np.random.Generator) -> list[int]:
    """Family sizes whose pairs add up to about `pairs`: ten large ones (88 down to 36) hold most pairs, as in
    the measured library, then families of 2-12 copies."""
    sizes = [88, 80, 72, 65, 60, 55, 50, 45, 40, 36]
    total = sum(n * (n - 1) // 2 for n in sizes)
    while total < pairs:
        n = int(rng.integers(2, 13))
        sizes.append(n)
        total += n * (n - 1) // 2
    return sizes


def build_library(args: argparse.Namespace) -> dict[str, int]:
    from django.contrib.auth import get_user_model

    from duplicates.models import DuplicatePair
    from gallery.models import Image

    rng = np.random.default_rng(args.seed)
    sizes = family_sizes(args.pairs, rng)
    if sum(sizes) > args.images:
        sys.exit(f"{sum(sizes)} images are needed for {args.pairs} pairs; raise --images")
    images = [
        Image(
            file=f"originals/bench/{i:06d}.jpg",
            thumbnail=f"thumbnails/bench/{i:06d}.webp",
            original_name=f"IMG_{i:05d}.JPG",
            sha256=f"{i:064x}",
            width=int(rng.choice([1920, 4032, 1280, 640])),
            height=int(rng.choice([1080, 3024, 960, 480])),
            format="JPEG",
            file_size=int(rng.integers(100_000, 8_000_000)),
            status=Image.Status.INDEXED,
            quality_scores={"sharpness": round(float(rng.random()), 4)},
            rating=int(rng.integers(0, 6)) if rng.random() < 0.3 else None,
            embedding_model="mobilenet_v2",
        )
        for i in range(args.images)
    ]
    Image.objects.bulk_create(images, batch_size=1000)
    ids = list(Image.objects.order_by("id").values_list("id", flat=True))
    pairs, start, families = [], 0, []
    for size in sizes:
        members = ids[start : start + size]
        families.append(members)
        start += size
        for x in range(size):
            for y in range(x + 1, size):
                pairs.append((members[x], members[y], "near_duplicate", float(rng.uniform(0.88, 0.999))))
    seen = {(a, b) for a, b, _, _ in pairs}
    near = len(pairs)
    while len(pairs) - near < args.similar:
        a, b = sorted(int(x) for x in rng.choice(ids, size=2, replace=False))
        if (a, b) not in seen:
            seen.add((a, b))
            pairs.append((a, b, "similar", float(rng.uniform(0.70, 0.88))))
    DuplicatePair.objects.bulk_create(
        [
            DuplicatePair(
                image_a_id=a,
                image_b_id=b,
                kind=kind,
                similarity=similarity,
                embedding_model="mobilenet_v2",
                evidence={
                    "cosine": similarity,
                    "phash_distance": int(rng.integers(0, 30)),
                    "dhash_distance": int(rng.integers(0, 30)),
                    "geometric_inliers": None,
                    "time_gap_seconds": 0.0,
                    "same_camera": True,
                    "a": {"id": a, "width": 4032, "height": 3024, "file_size": 3_000_000, "sharpness": 0.5},
                    "b": {"id": b, "width": 4032, "height": 3024, "file_size": 3_000_000, "sharpness": 0.5},
                },
            )
            for a, b, kind, similarity in pairs
        ],
        batch_size=2000,
    )
    get_user_model().objects.create_user(username="bench", password="bench-pass-123", is_staff=True)
    return {
        "images": len(ids),
        "families": len(sizes),
        "largest": max(sizes),
        "near": near,
        "similar": len(pairs) - near,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1300)
    parser.add_argument("--pairs", type=int, default=21_000)
    parser.add_argument("--similar", type=int, default=3_100)
    parser.add_argument("--requests", type=int, default=60, help="timed requests per endpoint")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--database-url", default="", help="an EMPTY database to build the library in (--database-url=...)"
    )
    args = parser.parse_args()

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from duplicates.models import DuplicateGroup
    from duplicates.services.groups import duplicate_groups_rebuild, duplicate_groups_refresh
    from gallery.models import Image

    call_command("migrate", verbosity=0)
    if Image.objects.exists():
        sys.exit(f"{connection.settings_dict['NAME']} holds images: give the bench an empty database")
    shape = build_library(args)
    if connection.vendor == "postgresql":  # the planner's statistics, as autovacuum would gather them in time
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    started = time.perf_counter()
    summary = duplicate_groups_rebuild()
    rebuild_s = time.perf_counter() - started
    groups = DuplicateGroup.objects.filter(kind="near_duplicate").count()
    largest = DuplicateGroup.objects.order_by("-size").values_list("size", flat=True).first()
    print(
        f"library: {shape['images']:,} images, {shape['near']:,} near-duplicate pairs in {shape['families']} "
        f"families (largest {shape['largest']}), {shape['similar']:,} similar pairs"
    )
    print(
        f"groups: {groups} near-duplicate (largest {largest}), "
        f"{DuplicateGroup.objects.filter(kind='similar').count()} similar; rebuild of all groups {rebuild_s:.2f} s "
        f"({summary.created} created)"
    )
    one = DuplicateGroup.objects.order_by("-size").first().members.values_list("image_id", flat=True).first()
    times = []
    for _ in range(5):
        started = time.perf_counter()
        duplicate_groups_refresh(image_ids=[one])
        times.append(time.perf_counter() - started)
    print(f"refresh of one image's groups (in the largest group): median {np.median(times) * 1000:.0f} ms")

    client = Client()
    client.login(username="bench", password="bench-pass-123")
    first_page = DuplicateGroup.objects.filter(kind="near_duplicate", status="pending").order_by(
        "-size", "-max_similarity", "id"
    )[:10]
    on_page = ",".join(str(pk) for pk in first_page.values_list("id", flat=True))
    endpoints = {
        "GET /api/duplicate-groups/ (20 groups)": "/api/duplicate-groups/?kind=near_duplicate&page_size=20",
        "same, member_limit=0 (every member)": "/api/duplicate-groups/?kind=near_duplicate&page_size=20&member_limit=0",
        "GET /duplicates/ (review page, 10 cards)": "/duplicates/",
        "GET /duplicates/cards/ (next card in place)": f"/duplicates/cards/?limit=1&exclude={on_page}",
        "GET /api/duplicates/ (baseline: 20 pairs)": "/api/duplicates/?kind=near_duplicate&page_size=20",
    }
    for url in endpoints.values():  # warm up (templates, first queries)
        assert client.get(url).status_code == 200, url
    samples: dict[str, list[float]] = {name: [] for name in endpoints}
    cpu: dict[str, list[float]] = {name: [] for name in endpoints}
    for _ in range(args.requests):
        for name, url in endpoints.items():
            started, started_cpu = time.perf_counter(), time.process_time()
            response = client.get(url)
            samples[name].append((time.perf_counter() - started) * 1000)
            cpu[name].append((time.process_time() - started_cpu) * 1000)
            assert response.status_code == 200
    baseline = np.median(samples[list(endpoints)[-1]])
    print(f"\n{'endpoint':>44} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'CPU p50':>8} {'p50 / pair list':>16}")
    for name, values in samples.items():
        p50, p95 = np.percentile(values, 50), np.percentile(values, 95)
        print(
            f"{name:>44} {p50:>8.1f} {p95:>8.1f} {max(values):>8.1f} {np.median(cpu[name]):>8.1f} "
            f"{p50 / baseline:>15.2f}x"
        )
    print(
        f"({args.requests} requests each, interleaved; Django test client, {connection.vendor}, one process; "
        f"load average {os.getloadavg()[0]:.1f})"
    )


if __name__ == "__main__":
    main()
