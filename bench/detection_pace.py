"""Detection against embedding on dense families: images/s of each in one run, and where detection's time goes.

    .venv/bin/python bench/detection_pace.py [--per-family 50] [--families 8] [--copies 0]
        [--code CHECKOUT] [--database-url postgres://...]

The library: the first `--per-family` files of each of `--families` photos of ../shared/data/neardup-dev
(8 Copydays photos with ~100 variants each: crops, rescales, rotations, recompressions), plus, with
`--copies N`, the first 30 photos of bench/edited_families.py with N edited copies each. Every file is
uploaded (gallery.services.image_create), embedded with the offline MobileNet-V2 (search.embedding_queue
.embed_pending, the worker's loop) and detected (duplicates.services.detection.duplicate_detection_run, the
worker's loop), each phase timed alone in one process on a throw-away SQLite database (or an empty
PostgreSQL one), geometric verification on as in production.

Printed: images/s of embedding and of detection, the detection steps (images, seconds), and the share of
detection's CPU time per stage: claims, stored vectors, k-NN (index + exact re-score), ORB features, matching +
RANSAC, perceptual hashes, evidence, pair writes, group refresh, checks; "other" is what no stage holds
(reading the images and their pairs, commits, the Python of the loop). CPU time, because the 2-core machines
these figures come from are shared: wall times stretch with the load, CPU times much less.

`--code DIR` runs the product code of another checkout (e.g. main: `git archive main | tar -x -C
/tmp/imgsim-main`) with this script, for a before/after on the same data.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
NEARDUP = SHARED / "data" / "neardup-dev"
WEIGHTS = SHARED / "models" / "mobilenet_v2_imagenet_features.pth"


def require(path: Path) -> Path:
    if not path.exists():
        sys.exit(f"Missing {path}: the benchmark reads ../shared (beside the repository). Clone or copy it there.")
    return path


def library_files(*, families: int, per_family: int, copies: int) -> list[Path]:
    """The first `per_family` files of each of the first `families` neardup-dev photos, family by family
    interleaved (as uploads of several albums arrive), plus edited copies when asked."""
    with require(NEARDUP / "labels.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    by_group: dict[str, list[Path]] = defaultdict(list)
    for row in rows:
        by_group[row["group_id"]].append(NEARDUP / row["file"])
    chosen = [files[:per_family] for _, files in sorted(by_group.items())[:families]]
    files = [path for column in zip(*chosen, strict=False) for path in column]
    if copies:
        sys.path.insert(0, str(REPO / "bench"))
        from edited_families import ensure_families, read_labels

        folder = ensure_families(cache=REPO / "bench" / "out", copies=copies, seed=20261130, limit=30, brackets=0)
        files += [folder / member.file for member in read_labels(folder)]
    return files


class StageClock:
    """Wall and CPU time per stage, by wrapping the functions detection calls (module attributes, so a
    checkout that lacks one is timed without it). CPU time is this thread's: on a loaded machine wall times
    stretch, CPU times much less."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.steps: list[tuple[int, float]] = []

    def wrap(self, owner: Any, name: str, stage: str) -> None:
        original = getattr(owner, name, None)
        if original is None:
            return

        def timed(*args: Any, **kwargs: Any) -> Any:
            started, cpu = time.perf_counter(), time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[stage] += time.perf_counter() - started
                self.cpu[stage] += time.thread_time() - cpu
                self.calls[stage] += 1

        setattr(owner, name, timed)

    def wrap_steps(self, owner: Any, name: str) -> None:
        original: Callable[..., Any] = getattr(owner, name)

        def step(ids: list[int], *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(ids, *args, **kwargs)
            finally:
                self.steps.append((len(ids), time.perf_counter() - started))

        setattr(owner, name, step)


def instrument() -> StageClock:
    from duplicates import features, geometry
    from duplicates.models import DuplicatePair
    from duplicates.services import detection

    clock = StageClock()
    clock.wrap_steps(detection, "_detect_chunk")
    for name in ("_claim_chunk", "_claim_step", "_release_chunk", "_release_step", "_lease_renew"):
        clock.wrap(detection, name, "claims")
    clock.wrap(detection, "stored_vectors", "stored vectors")
    clock.wrap(detection, "neighbours_above", "k-NN + exact re-score")
    clock.wrap(features.Verifier, "_features", "ORB features")
    clock.wrap(geometry, "count_inliers", "matching + RANSAC")
    clock.wrap(detection, "image_fingerprint", "perceptual hashes")
    clock.wrap(detection, "pair_evidence", "evidence")
    clock.wrap(detection, "image_facts", "evidence")
    clock.wrap(detection, "_remembered_decisions", "pair writes")
    clock.wrap(DuplicatePair.objects, "bulk_create", "pair writes")
    clock.wrap(DuplicatePair.objects, "bulk_update", "pair writes")
    clock.wrap(detection, "duplicate_groups_refresh", "group refresh")
    clock.wrap(detection, "_mark_checked", "checks")
    return clock


def worker(args: argparse.Namespace) -> None:
    """One process: upload, embed, detect; prints one JSON line."""
    import django

    django.setup()
    from django.core.management import call_command

    from core.planner_statistics import planner_statistics_refresh
    from duplicates.models import DuplicateGroup, DuplicatePair
    from duplicates.services import detection
    from gallery.models import Image
    from gallery.services import image_create
    from search.services.embedding_queue import embed_pending, embedder_get
    from search.services.index_lifecycle import index_rebuild

    call_command("migrate", verbosity=0)
    files = library_files(families=args.families, per_family=args.per_family, copies=args.copies)
    started = time.perf_counter()
    for path in files:
        image_create(data=path.read_bytes(), original_name=path.name)
    upload_seconds = time.perf_counter() - started
    queued = Image.objects.filter(status=Image.Status.QUEUED).count()
    embedder_get()  # the model loads once per worker process: not part of the pace

    started, cpu = time.perf_counter(), time.process_time()
    embedded = embed_pending(time_budget_seconds=float("inf")).embedded
    embed_seconds, embed_cpu = time.perf_counter() - started, time.process_time() - cpu
    index_rebuild(requested_by="bench")
    # PostgreSQL: the statistics a library that has been around has (autovacuum gathers them only some time
    # after a load; until then the group refresh's queries are planned for an empty image table, ~2.5 s each).
    if not args.stale_statistics:
        planner_statistics_refresh(models=[Image])

    clock = instrument()
    started, cpu = time.perf_counter(), time.process_time()
    result = detection.duplicate_detection_run(time_budget_seconds=float("inf"))
    detect_seconds, detect_cpu = time.perf_counter() - started, time.process_time() - cpu
    print(
        json.dumps(
            {
                "files": len(files),
                "queued": queued,
                "upload_seconds": upload_seconds,
                "embedded": embedded,
                "embed_seconds": embed_seconds,
                "embed_cpu": embed_cpu,
                "detected": result.detection.queried,
                "detect_seconds": detect_seconds,
                "detect_cpu": detect_cpu,
                "verified": result.detection.verified,
                "pairs": DuplicatePair.objects.count(),
                "groups": DuplicateGroup.objects.count(),
                "stages": clock.seconds,
                "stage_cpu": clock.cpu,
                "calls": clock.calls,
                "steps": clock.steps,
            }
        )
    )


def run_worker(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    code = Path(args.code).resolve() if args.code else REPO
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "imgsim_site.settings",
        "DATABASE_URL": args.database_url or f"sqlite:///{work / 'bench.sqlite3'}",
        "IMGSIM_VAR_DIR": str(work),
        "IMGSIM_MODEL": "mobilenet_v2",
        "IMGSIM_WEIGHTS": str(require(WEIGHTS)),
        "IMGSIM_LOG_LEVEL": "WARNING",
    }
    env.pop("IMGSIM_REDIS_URL", None)
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", *sys.argv[1:]]
    done = subprocess.run(command, env=env, cwd=code, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(result: dict[str, Any], *, code: str) -> None:
    detect, embed = result["detect_seconds"], result["embed_seconds"]
    detected, embedded = result["detected"], result["embedded"]
    print(f"product code: {code}")
    print(
        f"{result['files']} files uploaded in {result['upload_seconds']:.1f} s, {result['queued']} queued; "
        f"{result['pairs']:,} pairs, {result['groups']} groups, {result['verified']:,} pairs verified geometrically"
    )
    print(
        f"embedding: {embedded} images in {embed:.1f} s = {embedded / embed:.1f} images/s "
        f"({embedded / result['embed_cpu']:.1f} per CPU second, all threads)"
    )
    print(
        f"detection: {detected} images in {detect:.1f} s = {detected / detect:.1f} images/s "
        f"({detected / result['detect_cpu']:.1f} per CPU second)"
    )
    print(
        f"detection / embedding, images/s: {detected / detect / (embedded / embed):.2f}; "
        f"per CPU second: {detected / result['detect_cpu'] / (embedded / result['embed_cpu']):.2f}"
    )
    steps = result["steps"]
    if steps:
        times = sorted(seconds for _, seconds in steps)
        sizes = sorted({size for size, _ in steps})
        print(
            f"steps: {len(steps)}, {sizes[0]}..{sizes[-1]} images, median {times[len(times) // 2]:.1f} s, "
            f"longest {times[-1]:.1f} s"
        )
    stages: dict[str, float] = result["stages"]
    cpu: dict[str, float] = result["stage_cpu"]
    total = result["detect_cpu"]
    print("detection's CPU time by stage (wall seconds summed over the verification threads):")
    print(f"{'stage':<24} {'CPU s':>7} {'share':>6} {'wall s':>7} {'calls':>7}")
    for stage, seconds in sorted(cpu.items(), key=lambda item: -item[1]):
        print(f"{stage:<24} {seconds:>7.2f} {seconds / total:>6.1%} {stages[stage]:>7.2f} {result['calls'][stage]:>7}")
    other = total - sum(cpu.values())
    print(f"{'other':<24} {other:>7.2f} {other / total:>6.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", type=int, default=8, help="neardup-dev photos (8 at most)")
    parser.add_argument("--per-family", type=int, default=50, help="files of each photo (about 100 at most)")
    parser.add_argument("--copies", type=int, default=0, help="also 30 edited-families photos with N copies each")
    parser.add_argument("--code", default="", help="the checkout whose product code runs (default: this one)")
    parser.add_argument("--database-url", default="", help="an empty PostgreSQL database (default: SQLite)")
    parser.add_argument(
        "--stale-statistics", action="store_true", help="PostgreSQL: detect before ANALYZE (right after a load)"
    )
    parser.add_argument("--json", action="store_true", help="print the raw figures too")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    with tempfile.TemporaryDirectory(prefix="imgsim-bench-pace-") as folder:
        result = run_worker(args, Path(folder))
    report(result, code=args.code or "this checkout")
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    if __package__ in (None, ""):
        # The worker runs in the checkout whose code it times (its working directory); the parent anywhere.
        sys.path[0] = os.getcwd() if "--worker" in sys.argv else str(REPO)
    main()
