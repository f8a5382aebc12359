"""Topology bench: does duplicate detection keep pace with uploads and embedding on the production layout?

Usage (from the repository root):
    .venv/bin/python bench/topology.py [--database sqlite|postgres] [--broker orm|redis] [--clusters 1|2]
        [--uploads 800] [--clients 8] [--timeout 2700]

It starts its own instance on 127.0.0.1 (own var dir, media, index, database and port): `migrate`, a user with
an API token, gunicorn with --web-workers (3) and --clusters `manage.py qcluster` processes of --workers (1)
workers each, all with the offline MobileNet-V2 weights (../shared/models). PostgreSQL (127.0.0.1:5432, user
postgres) gets a database of its own, dropped at the end; Redis (127.0.0.1:6379) uses db --redis-db (7),
flushed before and after, nothing else. Then --clients threads send --uploads photos through POST /api/images/:
dense families, ~100 distinct copies of each photo (../shared/data/neardup-dev's Copydays variants, topped up
with edited copies made by bench/edited_families.py), plus 5 % distinct photos (distractors-dev).

A poller reads the instance's database and queue every --poll seconds and the bench prints, timed from the
last upload's answer: when the embedding queue drained (no image queued, for good), when detection caught up
(nothing queued and no image awaiting detection, duplicates.selectors.detection.images_awaiting_detection),
the gap between the two (the goal: <= 60 s), when the first index build was queued and ready, images/s of
embedding and detection, how many image checks detection ran per image checked (more than 1: clusters
repeated each other's work), the tasks run and the runs left waiting in the queue, and a timeline.

Bounded: --timeout caps the whole run (the figures not reached by then are printed as such); every process it
started is killed on the way out, Ctrl-C included. Exit status 0 whether or not the goal is met; non-zero only
when the bench itself fails. Figures are also written as JSON to bench/out/topology-*.json.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import hashlib
import json
import os
import random
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

if __name__ == "__main__":
    # Run as a script, bench/ is sys.path[0] and bench/duplicates.py would shadow the `duplicates` package.
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from bench.edited_families import edited_copies
from bench.faults import multipart, request

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"
NEARDUP_DIR = SHARED_DIR / "data" / "neardup-dev"
DISTRACTORS_DIR = SHARED_DIR / "data" / "distractors-dev"
OFFLINE_WEIGHTS = SHARED_DIR / "models" / "mobilenet_v2_imagenet_features.pth"
OUT_DIR = REPO_ROOT / "bench" / "out"
PG_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"
REDIS_BASE_URL = "redis://127.0.0.1:6379"
GOAL_SECONDS = 60.0  # detection caught up at most this long after the embedding queue drained (issue 22)
FAMILY_SIZE = 100  # distinct copies per photo, as in neardup-dev
DISTRACTOR_SHARE = 0.05
EMBED_TASK = "pipeline.tasks.embed_pending"
DETECT_TASK = "duplicates.tasks.detect_pending"
REBUILD_TASK = "search.tasks.index_rebuild"
# What a run's result says it did, per task: a run with none of it found nothing to do.
WORK_KEYS = {EMBED_TASK: ("embedded", "failed"), DETECT_TASK: ("queried",)}
TASK_LABELS = {EMBED_TASK: "embed", DETECT_TASK: "detect", REBUILD_TASK: "index rebuild"}


def require(path: Path) -> Path:
    if not path.exists():
        sys.exit(f"Missing {path}: the topology bench reads ../shared (beside the repository).")
    return path


# --- the photos -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """How many uploads of which kind: `families` photos with `family_size` distinct copies each, plus
    `distractors` unrelated photos."""

    families: int
    family_size: int
    distractors: int

    @property
    def total(self) -> int:
        return self.families * self.family_size + self.distractors


def upload_plan(uploads: int, *, family_size: int = FAMILY_SIZE, distractor_share: float = DISTRACTOR_SHARE) -> Plan:
    """Families stay ~family_size dense whatever the count (fewer families for fewer uploads), at most the 8
    photos of neardup-dev; what does not fit in whole families is distractors."""
    in_families = round(uploads * (1 - distractor_share))
    families = max(1, min(8, round(in_families / family_size)))
    size = in_families // families
    return Plan(families=families, family_size=size, distractors=uploads - families * size)


def photo_set(plan: Plan, *, seed: int) -> list[Path]:
    """The upload files for a plan, distinct bytes, in upload order (shuffled with the seed). Generated copies
    are cached under bench/out/ (gitignored)."""
    import csv

    rows = list(csv.DictReader((require(NEARDUP_DIR) / "labels.csv").open()))
    by_group: dict[str, list[Path]] = {}
    seen: set[str] = set()
    for row in rows:
        path = NEARDUP_DIR / row["file"]
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest in seen:
            continue  # neardup-dev holds byte-identical copies: an upload of one is not new work
        seen.add(digest)
        by_group.setdefault(row["group_id"], []).append(path)
    chosen: list[Path] = []
    cache = OUT_DIR / f"topology-copies-s{seed}"
    for group in sorted(by_group)[: plan.families]:
        members = by_group[group][: plan.family_size]
        missing = plan.family_size - len(members)
        if missing > 0:
            members += _family_copies(group, by_group[group][0], missing, seed=seed, cache=cache, seen=seen)
        chosen += members
    distractors = sorted(require(DISTRACTORS_DIR).rglob("*.jpg"))
    chosen += random.Random(seed).sample(distractors, min(plan.distractors, len(distractors)))
    random.Random(seed + 1).shuffle(chosen)
    return chosen


def _family_copies(group: str, source: Path, count: int, *, seed: int, cache: Path, seen: set[str]) -> list[Path]:
    """`count` edited copies of a family's photo (two edits each, bench/edited_families.py), made once."""
    from PIL import Image, ImageOps

    folder = cache / group
    paths = [folder / f"{group}-{number}.jpg" for number in range(count)]
    if not all(path.exists() for path in paths):
        folder.mkdir(parents=True, exist_ok=True)
        with Image.open(source) as opened:
            photo = ImageOps.exif_transpose(opened).convert("RGB")
        for path, (_member, data) in zip(
            paths, edited_copies(photo, name=f"{group}.jpg", copies=count, seed=seed), strict=True
        ):
            path.write_bytes(data)
    fresh = []
    for path in paths:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest not in seen:
            seen.add(digest)
            fresh.append(path)
    return fresh


# --- what the poller sees, and the figures made from it (pure: tests/bench/test_topology.py) --------------


@dataclass
class Sample:
    """The instance at one moment, `t` seconds after the first upload was sent."""

    t: float
    uploaded: int  # uploads answered
    queued: int  # images waiting for embedding (status queued)
    searchable: int  # embedded images in the library
    awaiting: int  # searchable images without a detection check under the settings in force
    checked: int  # DetectionCheck rows
    pending_tasks: dict[str, int] = field(default_factory=dict)  # task function -> runs waiting in the broker
    fetched: int = 0  # tasks the clusters took from the broker and have not begun (their last heartbeats)
    load: float = 0.0  # 1-minute load average


@dataclass
class TaskRun:
    """One finished django-q2 task, from its stored result; times in seconds after the first upload."""

    func: str
    queued: float  # when it was put in the queue (django-q2's Task.started)
    stopped: float
    success: bool
    work: int | None  # images embedded/checked by the run (None: its result does not say)


@dataclass(frozen=True)
class LogRun:
    """One task run as a cluster's log shows it: its worker's "processing" line to its monitor's "Processed"
    (or "Failed") line; `ended` None while it was still running when the log was read."""

    func: str
    began: float  # seconds after the first upload
    ended: float | None


_PROCESSING = re.compile(r"^(\S+ \S+) \w+ django-q: (\S+) processing (.*) '([^']+)'(?: \[.*\])?$")
_FINISHED = re.compile(r"^(\S+ \S+) \w+ django-q: (?:Processed|Failed) '([^']+)' \((.*?)\)(?: - .*)?$")


_DETECTED = re.compile(r"duplicate detection: DetectSummary\(queried=(\d+)")


def checks_from_log(lines: Iterable[str]) -> int | None:
    """Images checked by the detection runs of a cluster's log, repeats included (None: no such line)."""
    found = [int(match.group(1)) for line in lines if (match := _DETECTED.search(line)) is not None]
    return sum(found) if found else None


def runs_from_log(lines: Iterable[str], *, origin: float) -> list[LogRun]:
    """The task runs of one cluster's log (LOGGING's "%(asctime)s LEVEL name: message", local time), in
    seconds after `origin` (a time.time()). A run ends at the first finish line of its function and task name
    after it began (the same name can run twice at once only with several workers in one cluster)."""

    def stamp(text: str) -> float:
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").timestamp() - origin

    open_runs: dict[tuple[str, str], list[float]] = {}
    runs: list[LogRun] = []
    for line in lines:
        line = line.rstrip()
        if (match := _PROCESSING.match(line)) is not None:
            moment, _process, name, func = match.groups()
            open_runs.setdefault((func, name), []).append(stamp(moment))
        elif (match := _FINISHED.match(line)) is not None:
            moment, func, name = match.groups()
            began = open_runs.get((func, name))
            if began:
                runs.append(LogRun(func=func, began=began.pop(0), ended=stamp(moment)))
    runs += [LogRun(func=func, began=t, ended=None) for (func, _name), times in open_runs.items() for t in times]
    return sorted(runs, key=lambda run: run.began)


def settled_at(samples: Sequence[Sample], after: float, done: Callable[[Sample], bool]) -> float | None:
    """The first moment at or after `after` from which `done` holds in every later sample (None: it does not
    hold at the last one). A sample before `after` that already holds counts as `after`."""
    if not samples or not done(samples[-1]):
        return None
    moment = samples[-1].t
    for sample in reversed(samples):
        if not done(sample):
            break
        moment = sample.t
    return max(moment, after)


def embedding_drained(sample: Sample) -> bool:
    return sample.queued == 0


def detection_caught_up(sample: Sample) -> bool:
    return sample.queued == 0 and sample.awaiting == 0


@dataclass
class TaskTally:
    runs: int = 0
    with_work: int = 0
    work: int = 0
    unknown: int = 0  # runs whose result does not say what they did
    failed: int = 0
    queued_to_done_longest: float = 0.0
    ran_longest: float | None = None  # from the cluster logs (None: no run found there)
    ran_median: float | None = None
    ran_total: float | None = None
    running_at_end: int = 0  # begun and not finished when the logs were read


def task_tallies(runs: Iterable[TaskRun], log_runs: Iterable[LogRun] = ()) -> dict[str, TaskTally]:
    """Per task function: finished runs and their work (stored results), run times (cluster logs)."""
    by_func: dict[str, list[TaskRun]] = {}
    for run in runs:
        by_func.setdefault(run.func, []).append(run)
    spans: dict[str, list[LogRun]] = {}
    for span in log_runs:
        spans.setdefault(span.func, []).append(span)
    tallies = {}
    for func, group in sorted(by_func.items()):
        ran = [span.ended - span.began for span in spans.get(func, []) if span.ended is not None]
        tallies[func] = TaskTally(
            runs=len(group),
            with_work=sum(1 for run in group if run.work),
            work=sum(run.work or 0 for run in group),
            unknown=sum(1 for run in group if run.work is None),
            failed=sum(1 for run in group if not run.success),
            queued_to_done_longest=max(run.stopped - run.queued for run in group),
            ran_longest=max(ran) if ran else None,
            ran_median=statistics.median(ran) if ran else None,
            ran_total=sum(ran) if ran else None,
            running_at_end=sum(1 for span in spans.get(func, []) if span.ended is None),
        )
    return tallies


def work_done(func: str, result: object) -> int | None:
    """Images a finished run embedded or checked, from its result (None: not a run that says)."""
    keys = WORK_KEYS.get(func)
    if keys is None or not isinstance(result, dict) or not any(key in result for key in keys):
        return None
    return sum(int(result.get(key) or 0) for key in keys)


@dataclass
class Figures:
    upload_seconds: float | None
    last_upload: float | None
    drained: float | None  # seconds after the first upload
    caught_up: float | None
    drained_after_last_upload: float | None
    caught_up_after_last_upload: float | None
    caught_up_after_drained: float | None
    goal_met: bool | None
    embed_rate: float | None  # images/s from the first upload to the drain
    detect_rate: float | None  # images/s from the first image embedded to catching up
    index_requested: float | None  # the first index rebuild seen waiting in the queue
    checks_run: int | None  # image checks the detection runs report (repeats included)
    images_checked: int
    checks_per_image: float | None
    pending_at_caught_up: dict[str, int]
    max_pending: dict[str, int]
    max_fetched: int


def figures_from(
    samples: Sequence[Sample], runs: Sequence[TaskRun], *, last_upload: float | None, logged_checks: int | None = None
) -> Figures:
    """Every timing of the result table, from the poller's samples and the finished tasks; the image checks
    from the detection runs' results, else from their log lines (`logged_checks`)."""
    after = last_upload if last_upload is not None else float("inf")
    drained = settled_at(samples, after, embedding_drained) if last_upload is not None else None
    caught_up = settled_at(samples, after, detection_caught_up) if last_upload is not None else None
    final = samples[-1] if samples else None
    first_embedded = next((s.t for s in samples if s.searchable > 0), None)
    index_requested = min(
        [s.t for s in samples if s.pending_tasks.get(REBUILD_TASK)][:1]
        + [run.queued for run in runs if run.func == REBUILD_TASK],
        default=None,
    )
    detect = task_tallies(runs).get(DETECT_TASK)
    checks_run = detect.work if detect is not None and detect.unknown == 0 else logged_checks
    images_checked = final.checked if final else 0
    at_caught_up = next((s for s in samples if caught_up is not None and s.t >= caught_up), None)
    max_pending: Counter[str] = Counter()
    for sample in samples:
        for func, count in sample.pending_tasks.items():
            max_pending[func] = max(max_pending[func], count)

    def since(moment: float | None, origin: float | None) -> float | None:
        return None if moment is None or origin is None else moment - origin

    return Figures(
        upload_seconds=last_upload,
        last_upload=last_upload,
        drained=drained,
        caught_up=caught_up,
        drained_after_last_upload=since(drained, last_upload),
        caught_up_after_last_upload=since(caught_up, last_upload),
        caught_up_after_drained=since(caught_up, drained),
        goal_met=None if caught_up is None or drained is None else caught_up - drained <= GOAL_SECONDS,
        embed_rate=final.searchable / drained if final and drained else None,
        detect_rate=(
            images_checked / (caught_up - first_embedded)
            if caught_up is not None and first_embedded is not None and caught_up > first_embedded
            else None
        ),
        index_requested=index_requested,
        checks_run=checks_run,
        images_checked=images_checked,
        checks_per_image=checks_run / images_checked if checks_run is not None and images_checked else None,
        pending_at_caught_up=dict(at_caught_up.pending_tasks) if at_caught_up else {},
        max_pending=dict(max_pending),
        max_fetched=max((s.fetched for s in samples), default=0),
    )


def seconds(value: float | None, *, missing: str = "not reached") -> str:
    return missing if value is None else f"{value:.1f} s"


def task_label(func: str) -> str:
    return TASK_LABELS.get(func, func.rsplit(".", 1)[-1])


def result_table(figures: Figures, tallies: dict[str, TaskTally], extra: Sequence[tuple[str, str]] = ()) -> str:
    """The figures as aligned `what | value` lines, the measured goal first."""
    goal = {True: "met", False: "MISSED", None: "not measured"}[figures.goal_met]
    rows = [
        ("upload time (first request sent to last answer)", seconds(figures.upload_seconds)),
        ("embedding queue drained, after the last upload", seconds(figures.drained_after_last_upload)),
        ("detection caught up, after the last upload", seconds(figures.caught_up_after_last_upload)),
        (
            f"detection caught up, after the drain (goal <= {GOAL_SECONDS:.0f} s)",
            f"{seconds(figures.caught_up_after_drained)}: {goal}",
        ),
        (
            "embedding, images/s (first upload to drain)",
            "-" if figures.embed_rate is None else f"{figures.embed_rate:.2f}",
        ),
        (
            "detection, images/s (first image embedded to caught up)",
            "-" if figures.detect_rate is None else f"{figures.detect_rate:.2f}",
        ),
        (
            "image checks run / images checked",
            f"{'?' if figures.checks_run is None else figures.checks_run} / {figures.images_checked}"
            + ("" if figures.checks_per_image is None else f" = {figures.checks_per_image:.2f} per image"),
        ),
        ("first index rebuild queued, after the first upload", seconds(figures.index_requested, missing="not seen")),
    ]
    rows += list(extra)
    for func, tally in tallies.items():
        work = "" if func not in WORK_KEYS else f", {tally.with_work} with work ({tally.work} images)"
        unknown = f", {tally.unknown} without a work count" if tally.unknown and func in WORK_KEYS else ""
        failed = f", {tally.failed} failed" if tally.failed else ""
        if tally.ran_longest is None:
            ran = "run times not found in the logs"
        else:
            ran = f"ran longest {tally.ran_longest:.1f} s, median {tally.ran_median:.1f} s"
            if func in WORK_KEYS and tally.ran_total:
                ran += f", {tally.work / tally.ran_total:.2f} images/s of run time"
        if tally.running_at_end:
            ran += f", {tally.running_at_end} still running at the end"
        rows.append(
            (
                f"task runs: {task_label(func)}",
                f"{tally.runs}{work}{unknown}{failed}; {ran}; longest queued to done "
                f"{tally.queued_to_done_longest:.1f} s",
            )
        )
    pending = ", ".join(f"{task_label(f)} {n}" for f, n in sorted(figures.pending_at_caught_up.items())) or "none"
    rows.append(("tasks in the broker when caught up", pending))
    most = ", ".join(f"{task_label(f)} {n}" for f, n in sorted(figures.max_pending.items())) or "none"
    rows.append(("most tasks in the broker at once", most))
    rows.append(("most tasks fetched by clusters, not begun", str(figures.max_fetched)))
    width = max(len(what) for what, _ in rows)
    return "\n".join(f"{what.ljust(width)}  {value}" for what, value in rows)


def timeline_rows(samples: Sequence[Sample], *, every: float) -> list[Sample]:
    """One sample per `every` seconds (the first at or after each step) and the last one."""
    rows: list[Sample] = []
    next_t = 0.0
    for sample in samples:
        if sample.t >= next_t:
            rows.append(sample)
            next_t = sample.t + every
    if samples and (not rows or rows[-1] is not samples[-1]):
        rows.append(samples[-1])
    return rows


def timeline_table(samples: Sequence[Sample], *, every: float) -> str:
    lines = [
        f"{'t (s)':>7} {'uploaded':>8} {'queued':>6} {'embedded':>8} {'awaiting':>8} {'checked':>7} {'fetched':>7}"
        "  in the broker"
    ]
    for s in timeline_rows(samples, every=every):
        waiting = ", ".join(f"{task_label(f)} {n}" for f, n in sorted(s.pending_tasks.items()) if n) or "-"
        lines.append(
            f"{s.t:7.0f} {s.uploaded:8d} {s.queued:6d} {s.searchable:8d} {s.awaiting:8d} {s.checked:7d} {s.fetched:7d}"
            f"  {waiting}"
        )
    return "\n".join(lines)


# --- the instance -----------------------------------------------------------------------------------------


@dataclass
class Instance:
    root: Path
    port: int
    env: dict[str, str]
    args: argparse.Namespace
    postgres_db: str = ""
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    restarts: Counter = field(default_factory=Counter)
    stopped: bool = False

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def var_dir(self) -> Path:
        return self.root / "var"

    @property
    def redis_url(self) -> str:
        return f"{REDIS_BASE_URL}/{self.args.redis_db}"


def instance_prepare(args: argparse.Namespace) -> Instance:
    root = Path(tempfile.mkdtemp(prefix="imgsim-topology-"))
    var = root / "var"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("IMGSIM_", "DATABASE_URL", "Q_"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "imgsim_site.settings",
            "IMGSIM_VAR_DIR": str(var),
            "IMGSIM_MEDIA_ROOT": str(var / "media"),
            "IMGSIM_INDEX_DIR": str(var / "index"),
            "IMGSIM_STATIC_ROOT": str(var / "static"),
            "IMGSIM_MANIFEST_STATIC": "0",
            "DATABASE_URL": f"sqlite:///{var / 'imgsim.sqlite3'}",
            "IMGSIM_MODEL": "mobilenet_v2",
            "IMGSIM_WEIGHTS": str(require(OFFLINE_WEIGHTS)),
            "IMGSIM_WORKERS": str(args.workers),
            "IMGSIM_UPLOAD_RATE": "1000000/hour",
            "IMGSIM_SEARCH_RATE": "1000000/hour",
            "IMGSIM_LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
    )
    instance = Instance(root=root, port=args.port, env=env, args=args)
    if args.database == "postgres":
        import psycopg

        instance.postgres_db = f"imgsim_topology_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{instance.postgres_db}"')
        env["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{instance.postgres_db}"
    if args.broker == "redis":
        import redis

        redis.Redis.from_url(instance.redis_url).flushdb()
        env["IMGSIM_REDIS_URL"] = instance.redis_url
    return instance


def _spawn(instance: Instance, name: str, command: list[str]) -> None:
    log = (instance.root / f"{name}.log").open("a")
    instance.processes[name] = subprocess.Popen(
        command, cwd=REPO_ROOT, env=instance.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def cluster_names(instance: Instance) -> list[str]:
    return [f"qcluster-{number}" for number in range(1, instance.args.clusters + 1)]


def instance_start(instance: Instance, *, deadline: float) -> None:
    migrate = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=REPO_ROOT,
        env=instance.env,
        capture_output=True,
        text=True,
        timeout=max(10.0, deadline - time.monotonic()),
    )
    if migrate.returncode != 0:
        raise RuntimeError(f"migrate failed:\n{migrate.stdout[-2000:]}{migrate.stderr[-3000:]}")
    _spawn(
        instance,
        "web",
        [
            sys.executable, "-m", "gunicorn", "imgsim_site.wsgi",
            "--bind", f"127.0.0.1:{instance.port}",
            "--workers", str(instance.args.web_workers), "--threads", "4", "--timeout", "120",
        ],
    )  # fmt: skip
    for name in cluster_names(instance):
        _spawn(instance, name, [sys.executable, "manage.py", "qcluster"])


def clusters_supervise(instance: Instance, notes: list[str]) -> None:
    """Restart a cluster that exited, as scripts/run.sh and a process supervisor do (and say so)."""
    for name in cluster_names(instance):
        process = instance.processes.get(name)
        if process is not None and process.poll() is not None and not instance.stopped:
            notes.append(f"{name} exited with code {process.returncode}; restarted (see {instance.root / name}.log)")
            instance.restarts[name] += 1
            _spawn(instance, name, [sys.executable, "manage.py", "qcluster"])


def wait_until_ready(instance: Instance, token: str, *, deadline: float) -> float:
    """Seconds until the API answers and every cluster has sent its first heartbeat."""
    from worker.models import WorkerHeartbeat

    started = time.monotonic()
    web = False
    while time.monotonic() < deadline:
        web = processes_alive(instance) and (
            web or request(instance.base, "GET", "/api/images/?page_size=1", token=token)[0] == 200
        )
        beats = WorkerHeartbeat.objects.filter(stopped_at__isnull=True).count()
        if web and beats >= instance.args.clusters:
            return time.monotonic() - started
        time.sleep(1)
    raise RuntimeError(f"the instance was not ready in time (web answering: {web}); logs in {instance.root}")


def processes_alive(instance: Instance) -> bool:
    web = instance.processes["web"]
    if web.poll() is not None:
        raise RuntimeError(f"gunicorn exited with {web.returncode}; see {instance.root / 'web.log'}")
    return True


def instance_processes(instance: Instance) -> list[int]:
    """Every live process started for this instance, found by its IMGSIM_VAR_DIR (unique to this run)."""
    marker = f"IMGSIM_VAR_DIR={instance.var_dir}\0".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if marker in (entry / "environ").read_bytes():
                found.append(int(entry.name))
    return found


def instance_stop(instance: Instance) -> None:
    """Stop everything this run started and drop what it created; safe to call twice."""
    if instance.stopped:
        return
    instance.stopped = True
    for process in instance.processes.values():
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
    until = time.monotonic() + 15
    for process in instance.processes.values():
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.1, until - time.monotonic()))
    for process in instance.processes.values():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)
    for pid in instance_processes(instance):  # nothing of this instance may outlive the run
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    from django.apps import apps

    if apps.ready:
        from django.db import connections

        connections.close_all()
    if instance.postgres_db:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{instance.postgres_db}" WITH (FORCE)')
    if instance.args.broker == "redis":
        import redis

        redis.Redis.from_url(instance.redis_url).flushdb()
    if instance.args.keep:
        print(f"kept {instance.root} (logs, var/)")
    else:
        shutil.rmtree(instance.root, ignore_errors=True)


def django_setup(instance: Instance) -> None:
    """This process reads the instance's database directly, with the instance's settings."""
    for key in [key for key in os.environ if key.startswith(("IMGSIM_", "DATABASE_URL"))]:
        del os.environ[key]
    os.environ.update({k: v for k, v in instance.env.items() if k.startswith(("IMGSIM_", "DJANGO_", "DATABASE_URL"))})
    if instance.postgres_db:
        os.environ["DATABASE_URL"] += "?application_name=imgsim-topology-poller"
    import django

    django.setup()


# --- uploads and polling ----------------------------------------------------------------------------------


@dataclass
class Run:
    instance: Instance
    token: str
    files: list[Path]
    started: float = 0.0  # monotonic time the first upload was sent
    wall_started: float = 0.0  # the same moment as time.time(), for the cluster logs
    statuses: Counter = field(default_factory=Counter)
    answered: int = 0
    last_answer: float | None = None  # seconds after started
    samples: list[Sample] = field(default_factory=list)
    tasks: dict[str, TaskRun] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def clock(self) -> float:
        return time.monotonic() - self.started

    def upload_client(self, queue: list[Path]) -> None:
        while not self.stop.is_set():
            with self.lock:
                if not queue:
                    return
                path = queue.pop()
            body, content_type = multipart("file", path.name, path.read_bytes())
            status = 0
            for _attempt in range(5):
                status, payload, headers = request(
                    self.instance.base, "POST", "/api/images/", token=self.token, body=body, content_type=content_type
                )
                if status not in (429, 503, 599) or self.stop.is_set():
                    break
                time.sleep(float(headers.get("Retry-After", 2)))
            with self.lock:
                self.statuses[status] += 1
                self.answered += 1
                self.last_answer = self.clock()
                if status not in (200, 201) and len(self.notes) < 20:
                    self.notes.append(f"upload {path.name}: {status} {str(payload)[:200]}")

    def poller(self) -> None:
        from django.db import connection

        shown = -1e9
        try:
            while not self.stop.is_set():
                began = time.monotonic()
                try:
                    self.samples.append(self.sample())
                    if self.samples[-1].t - shown >= self.instance.args.progress:
                        shown = self.samples[-1].t
                        print(timeline_table(self.samples[-1:], every=1).splitlines()[-1], flush=True)
                    self.collect_tasks()
                    clusters_supervise(self.instance, self.notes)
                except Exception as error:  # a poll that fails (database busy) is skipped, not fatal
                    self.notes.append(f"poll at {self.clock():.0f} s failed: {error!r}"[:300])
                self.stop.wait(max(0.0, self.instance.args.poll - (time.monotonic() - began)))
        finally:
            connection.close()

    def sample(self) -> Sample:
        from duplicates.models import DetectionCheck
        from duplicates.selectors.detection import images_awaiting_detection
        from gallery.models import Image
        from worker.models import WorkerHeartbeat

        t = self.clock()
        return Sample(
            t=t,
            uploaded=self.answered,
            queued=Image.objects.filter(status=Image.Status.QUEUED).count(),
            searchable=Image.objects.searchable().count(),
            awaiting=images_awaiting_detection().count(),
            checked=DetectionCheck.objects.count(),
            pending_tasks=pending_tasks(),
            fetched=sum(
                WorkerHeartbeat.objects.filter(stopped_at__isnull=True).values_list("waiting_tasks", flat=True)
            ),
            load=os.getloadavg()[0],
        )

    def collect_tasks(self) -> None:
        """Finished tasks, read while they are still stored (django-q2 keeps only the last save_limit)."""
        from django.utils import timezone
        from django_q.models import Task

        origin = timezone.now() - timedelta(seconds=self.clock())
        newest = max((run.stopped for run in self.tasks.values()), default=-3600.0)
        recent = Task.objects.filter(stopped__gte=origin + timedelta(seconds=newest - 60))
        new = set(recent.values_list("id", flat=True)) - set(self.tasks)
        for task in Task.objects.filter(id__in=new) if new else []:
            self.tasks[task.id] = TaskRun(
                func=task.func,
                queued=(task.started - origin).total_seconds(),
                stopped=(task.stopped - origin).total_seconds(),
                success=task.success,
                work=work_done(task.func, task.result),
            )


def pending_tasks() -> dict[str, int]:
    """Runs waiting in the queue per task function (fetched-but-unfinished ones too on the ORM broker)."""
    from django.conf import settings
    from django_q.brokers import get_broker
    from django_q.signing import SignedPackage

    broker = get_broker()
    if "redis" in settings.Q_CLUSTER:
        payloads = broker.connection.lrange(broker.list_key, 0, -1)
    else:
        from django_q.models import OrmQ

        payloads = list(OrmQ.objects.filter(key=broker.list_key).values_list("payload", flat=True))
    counts: Counter[str] = Counter()
    for payload in payloads:
        try:
            counts[str(SignedPackage.loads(payload).get("func"))] += 1
        except Exception:
            counts["(unreadable)"] += 1
    return dict(counts)


def wait_for_outcome(run: Run, *, deadline: float) -> None:
    """Until detection has caught up for --settle seconds and the first index build is ready (or --index-wait
    more seconds went by without one), or the deadline."""
    from search.models import IndexBuild

    caught_since: float | None = None
    while time.monotonic() < deadline:
        time.sleep(1)
        if not run.samples or run.samples[-1].t < (run.last_answer or 0):
            continue
        if not detection_caught_up(run.samples[-1]):
            caught_since = None
            continue
        caught_since = caught_since if caught_since is not None else time.monotonic()
        settled = time.monotonic() - caught_since >= run.instance.args.settle
        indexed = IndexBuild.objects.ready().exists() or time.monotonic() - caught_since >= run.instance.args.index_wait
        if settled and indexed:
            return
    run.notes.append(f"stopped by --timeout {run.instance.args.timeout:.0f} s before everything was measured")


def library_facts(run: Run) -> list[tuple[str, str]]:
    from django.db.models import Count, Max
    from django.utils import timezone

    from duplicates.models import DuplicateGroup, DuplicatePair
    from gallery.models import Image
    from search.models import IndexBuild

    origin = timezone.now() - timedelta(seconds=run.clock())
    statuses = dict(Image.objects.values_list("status").annotate(n=Count("id")).order_by())
    attempts = Image.objects.aggregate(most=Max("embed_attempts"))["most"]
    over = Image.objects.filter(embed_attempts__gt=1).count()
    first = IndexBuild.objects.order_by("id").first()
    served = [IndexBuild.Status.READY, IndexBuild.Status.SUPERSEDED]  # superseded: served until a newer one
    first_ready = IndexBuild.objects.filter(status__in=served).order_by("id").first()
    builds = Counter(IndexBuild.objects.values_list("status", flat=True))

    def at(moment: datetime | None) -> str:
        return "-" if moment is None else f"{(moment - origin).total_seconds():.1f} s"

    index = (
        "none built"
        if first_ready is None
        else (
            f"began at {at(first_ready.created_at)}, ready at {at(first_ready.finished_at)} after the first upload "
            f"(build {first_ready.build_seconds or 0:.1f} s, {first_ready.vector_count} vectors, {first_ready.kind})"
        )
    )
    if first is not None and first_ready is not None and first.pk != first_ready.pk:
        index += f"; first attempt {first.status} at {at(first.created_at)}"
    return [
        ("first index build", index),
        ("index builds by status", ", ".join(f"{k} {v}" for k, v in sorted(builds.items())) or "none"),
        ("images by status", ", ".join(f"{k} {v}" for k, v in sorted(statuses.items()))),
        ("embedding attempts", f"most {attempts}, {over} images with more than one"),
        ("pairs / groups", f"{DuplicatePair.objects.count()} pairs, {DuplicateGroup.objects.count()} groups"),
    ]


# --- main -------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="postgres")
    parser.add_argument("--broker", choices=("orm", "redis"), default=None, help="default: redis with postgres")
    parser.add_argument("--clusters", type=int, default=2, help="manage.py qcluster processes")
    parser.add_argument("--workers", type=int, default=1, help="task workers per cluster (IMGSIM_WORKERS)")
    parser.add_argument("--web-workers", type=int, default=3, help="gunicorn workers")
    parser.add_argument("--uploads", type=int, default=800)
    parser.add_argument("--clients", type=int, default=8, help="upload threads")
    parser.add_argument("--timeout", type=float, default=2700, help="upper bound of the whole run, seconds")
    parser.add_argument("--settle", type=float, default=15, help="caught up this long before stopping, seconds")
    parser.add_argument("--index-wait", type=float, default=180, help="seconds to wait for a first index after")
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between samples")
    parser.add_argument("--progress", type=float, default=30, help="seconds between progress lines")
    parser.add_argument("--port", type=int, default=8131)
    parser.add_argument("--redis-db", type=int, default=7, help="Redis database number (flushed)")
    parser.add_argument("--seed", type=int, default=20261207)
    parser.add_argument("--keep", action="store_true", help="keep the instance's folder (logs, SQLite database)")
    args = parser.parse_args(argv)
    args.broker = args.broker or ("redis" if args.database == "postgres" else "orm")
    if not (1 <= args.clusters <= 4 and 1 <= args.workers <= 4 and 1 <= args.uploads <= 2000):
        parser.error("bounded runs only: 1..4 clusters, 1..4 workers, 1..2000 uploads")
    if not (1 <= args.clients <= 32 and 1 <= args.web_workers <= 8 and 60 <= args.timeout <= 7200):
        parser.error("bounded runs only: 1..32 clients, 1..8 web workers, 60..7200 s")
    return args


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    deadline = started + args.timeout
    signal.signal(signal.SIGINT, _interrupt)  # also when started in the background, where SIGINT is ignored
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGALRM, _interrupt)  # the hard bound, should a wait below overrun the deadline
    signal.alarm(int(args.timeout) + 120)
    plan = upload_plan(args.uploads)
    files = photo_set(plan, seed=args.seed)
    load_start = os.getloadavg()
    instance = instance_prepare(args)
    atexit.register(instance_stop, instance)
    label = f"{args.database} + {args.broker} broker, {args.clusters} cluster(s) x {args.workers} worker(s)"
    print(f"instance {instance.base}: {label}, gunicorn {args.web_workers} workers; {instance.root}", flush=True)
    print(
        f"{len(files)} uploads from {args.clients} clients: {plan.families} families x {plan.family_size} "
        f"distinct copies + {len(files) - plan.families * plan.family_size} distractors; "
        f"load {load_start[0]:.2f} (1 min), {load_start[1]:.2f} (5 min)",
        flush=True,
    )
    try:
        instance_start(instance, deadline=deadline)
        django_setup(instance)
        from django.contrib.auth import get_user_model
        from rest_framework.authtoken.models import Token

        user = get_user_model().objects.create_user(username="uploader", password=secrets.token_urlsafe(16))
        token = Token.objects.create(user=user).key
        ready = wait_until_ready(instance, token, deadline=deadline)
        print(f"ready after {ready:.0f} s (API answering, {args.clusters} cluster heartbeat(s)); uploading", flush=True)
        print(timeline_table([], every=1), flush=True)
        run = Run(instance=instance, token=token, files=files, started=time.monotonic(), wall_started=time.time())
        poller = threading.Thread(target=run.poller, name="poller", daemon=True)
        queue = list(reversed(files))
        clients = [threading.Thread(target=run.upload_client, args=(queue,), daemon=True) for _ in range(args.clients)]
        poller.start()
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join(timeout=max(0.1, deadline - time.monotonic()))
        print(f"uploads answered after {run.last_answer or 0:.1f} s: {dict(run.statuses)}", flush=True)
        if any(thread.is_alive() for thread in clients):
            run.notes.append("uploads did not finish within --timeout")
            run.last_answer = None
        else:
            wait_for_outcome(run, deadline=deadline)
        run.stop.set()
        poller.join(timeout=30)
        run.collect_tasks()
        logs = [
            (instance.root / f"{name}.log").read_text(errors="replace").splitlines() for name in cluster_names(instance)
        ]
        log_runs = [span for lines in logs for span in runs_from_log(lines, origin=run.wall_started)]
        logged = [checks for lines in logs if (checks := checks_from_log(lines)) is not None]
        figures = figures_from(
            run.samples,
            list(run.tasks.values()),
            last_upload=run.last_answer,
            logged_checks=sum(logged) if logged else None,
        )
        tallies = task_tallies(run.tasks.values(), log_runs)
        loads = [sample.load for sample in run.samples] or [0.0]
        load_end = os.getloadavg()
        extra = [
            *library_facts(run),
            ("upload answers", ", ".join(f"{k}: {v}" for k, v in sorted(run.statuses.items()))),
            ("cluster restarts", ", ".join(f"{k} {v}" for k, v in instance.restarts.items()) or "none"),
            (
                "load average (1 min)",
                f"start {load_start[0]:.2f}, during {statistics.mean(loads):.2f} mean / {max(loads):.2f} max, "
                f"end {load_end[0]:.2f} (2 cores shared)",
            ),
        ]
        print()
        print(f"== topology bench: {label}, {len(files)} uploads, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC ==")
        print(result_table(figures, tallies, extra))
        print()
        print(timeline_table(run.samples, every=max(10.0, (run.samples[-1].t if run.samples else 0) / 30)))
        for note in run.notes[:30]:
            print(f"note: {note}")
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        out = (
            OUT_DIR / f"topology-{datetime.now(UTC):%Y%m%d-%H%M%S}-{args.database}-{args.broker}-c{args.clusters}.json"
        )
        out.write_text(
            json.dumps(
                {
                    "args": vars(args),
                    "figures": asdict(figures),
                    "tasks": {func: asdict(tally) for func, tally in tallies.items()},
                    "facts": dict(extra),
                    "samples": [asdict(sample) for sample in run.samples],
                    "task_runs": [asdict(task) for task in run.tasks.values()],
                    "log_runs": [asdict(span) for span in log_runs],
                    "notes": run.notes,
                },
                indent=1,
                default=str,
            )
        )
        print(f"figures and samples: {out.relative_to(REPO_ROOT)}")
    finally:
        signal.alarm(0)
        instance_stop(instance)
    print(f"total {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as interrupt:
        sys.exit(f"interrupted ({interrupt or 'Ctrl-C'}): every process this run started was stopped")
