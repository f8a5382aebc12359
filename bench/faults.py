"""Fault campaign against a fresh local instance: what is lost when workers die, connections drop and index
files break while people upload and search. Loopback only, bounded in count and time; anyone can rerun it.

Usage (from the repository root):
    .venv/bin/python bench/faults.py [--uploads 120] [--kills 5] [--cluster-kills 1] [--postgres]

It starts `scripts/run.sh` (the `make run` path: web server plus the background worker, restarted when it
exits) on 127.0.0.1 with its own var dir, media, index and port. SQLite with django-q2's ORM broker by
default; --postgres uses a fresh PostgreSQL database at 127.0.0.1:5432 and a fresh Redis queue at
127.0.0.1:6379 instead. Then, at the same time:
  * --uploads real photos from ../shared/data (near-duplicate groups and distinct photos) go through
    POST /api/images/ from 4 clients (a 503 is sent again after its Retry-After, as a client should);
  * --kills kill -9 of task workers spread over the uploads, alternating a worker waiting for a task
    (the one that used to wedge the cluster) and a busy one, plus --cluster-kills of the whole qcluster;
  * PostgreSQL only: every backend of the instance's database is terminated (pg_terminate_backend) every
    --drop-every seconds while the uploads run, at most --drops times;
  * once an index is served, similar-image searches run from 2 clients while the served index file is
    truncated and deleted (--index-faults times).
After the last fault it waits for the embedding queue to empty and prints: images lost (acknowledged but
without row or file), images failed without being tried, duplicate pairs missing against an all-pairs
check over the stored vectors (the same thresholds), 5xx answers, and the time to an empty queue.
The lease is shortened (--lease, default 60 s) so that a run takes minutes; the goal is an empty queue
within lease + 2 minutes after the last fault.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"
DATA_DIR = SHARED_DIR / "data"
OFFLINE_WEIGHTS = SHARED_DIR / "models" / "mobilenet_v2_imagenet_features.pth"
PG_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"


def require(path: Path) -> Path:
    if not path.exists():
        sys.exit(f"Missing {path}: the fault script reads ../shared (beside the repository). Copy it there.")
    return path


def photos(count: int, seed: int) -> list[Path]:
    """Two thirds from the near-duplicate groups (so that there are pairs to find), a third distinct photos."""
    near = sorted(require(DATA_DIR / "neardup-dev" / "images").glob("*.jpg"))
    distinct = sorted(require(DATA_DIR / "distractors-dev").rglob("*.jpg"))
    rng = random.Random(seed)
    chosen = rng.sample(near, min(len(near), count * 2 // 3))
    chosen += rng.sample(distinct, min(len(distinct), count - len(chosen)))
    rng.shuffle(chosen)
    return chosen[:count]


# --- HTTP (stdlib only) -----------------------------------------------------------------------------------


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: Counter = field(default_factory=Counter)  # (what, status) -> count

    def add(self, what: str, status: int) -> None:
        with self.lock:
            self.statuses[(what, status)] += 1

    def server_errors(self) -> dict[str, int]:
        return {f"{what} {status}": n for (what, status), n in sorted(self.statuses.items()) if status >= 500}


def request(
    base: str, method: str, path: str, *, token: str, body: bytes | None = None, content_type: str = ""
) -> tuple[int, dict, dict]:
    headers = {"Authorization": f"Token {token}", "Accept": "application/json"}
    if content_type:
        headers["Content-Type"] = content_type
    req = urllib.request.Request(base + path, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=120) as response:
            return response.status, json.loads(response.read() or b"{}"), dict(response.headers)
    except urllib.error.HTTPError as error:
        raw = error.read()
        try:
            payload = json.loads(raw or b"{}")
        except ValueError:
            payload = {"raw": raw[:200].decode(errors="replace")}
        return error.code, payload, dict(error.headers)
    except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
        return 599, {"error": str(error)}, {}  # no answer at all: counted as a server error


def multipart(field_name: str, file_name: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field_name}"; filename="{file_name}"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


# --- the instance -----------------------------------------------------------------------------------------


@dataclass
class Instance:
    root: Path
    port: int
    env: dict[str, str]
    postgres_db: str = ""
    redis_queue: str = ""
    process: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def var_dir(self) -> Path:
        return self.root / "var"


def instance_prepare(args: argparse.Namespace) -> Instance:
    root = Path(tempfile.mkdtemp(prefix="imgsim-faults-"))
    env = {key: value for key, value in os.environ.items() if not key.startswith(("IMGSIM_", "DATABASE_URL"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "imgsim_site.settings",
            "IMGSIM_HOST": "127.0.0.1",
            "IMGSIM_PORT": str(args.port),
            "IMGSIM_VAR_DIR": str(root / "var"),
            "IMGSIM_ADMIN_USER": "admin",
            "IMGSIM_ADMIN_PASSWORD": secrets.token_urlsafe(12),
            "IMGSIM_MODEL": "mobilenet_v2",
            "IMGSIM_WEIGHTS": str(require(OFFLINE_WEIGHTS)),
            "IMGSIM_WEB_WORKERS": "2",
            "IMGSIM_WORKERS": "2",
            "IMGSIM_EMBED_LEASE_SECONDS": str(args.lease),
            "IMGSIM_WORKER_HEARTBEAT_SECONDS": "2",
            "IMGSIM_UPLOAD_RATE": "100000/hour",
            "IMGSIM_SEARCH_RATE": "100000/hour",
            "IMGSIM_LOG_LEVEL": "INFO",
        }
    )
    instance = Instance(root=root, port=args.port, env=env)
    if args.postgres:
        import psycopg

        instance.postgres_db = f"imgsim_faults_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{instance.postgres_db}"')
        instance.redis_queue = f"imgsim-faults-{uuid.uuid4().hex[:8]}"
        env["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{instance.postgres_db}"
        env["IMGSIM_REDIS_URL"] = REDIS_URL
        env["IMGSIM_QUEUE_NAME"] = instance.redis_queue
    return instance


def instance_start(instance: Instance, *, timeout: float) -> None:
    log = (instance.root / "run.log").open("w")
    instance.process = subprocess.Popen(
        ["bash", "scripts/run.sh"],
        cwd=REPO_ROOT,
        env=instance.env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if instance.process.poll() is not None:
            sys.exit(f"scripts/run.sh exited with {instance.process.returncode}; see {instance.root / 'run.log'}")
        try:
            with urllib.request.urlopen(instance.base + "/accounts/login/", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(1)
    sys.exit(f"the instance did not answer within {timeout:.0f} s; see {instance.root / 'run.log'}")


def instance_stop(instance: Instance, *, keep: bool) -> None:
    if instance.process is not None and instance.process.poll() is None:
        os.killpg(instance.process.pid, signal.SIGINT)
        try:
            instance.process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(instance.process.pid, signal.SIGKILL)
            instance.process.wait()
    for pid, _ppid in qcluster_processes(instance):  # nothing of this instance may outlive the run
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    from django.apps import apps

    if apps.ready:
        from django.db import connections

        connections.close_all()
    if instance.postgres_db:
        import psycopg
        import redis

        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{instance.postgres_db}" WITH (FORCE)')
        client = redis.Redis.from_url(REDIS_URL)
        client.delete(instance.redis_queue, *client.keys(f"django_q:{instance.redis_queue}:*"))
    if keep:
        print(f"kept {instance.root} (run.log, var/)")
    else:
        shutil.rmtree(instance.root, ignore_errors=True)


def qcluster_processes(instance: Instance) -> list[tuple[int, int]]:
    """(pid, parent pid) of every `manage.py qcluster` process of this instance (found by its IMGSIM_VAR_DIR)."""
    marker = f"IMGSIM_VAR_DIR={instance.var_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if b"qcluster" not in (entry / "cmdline").read_bytes() or marker not in (entry / "environ").read_bytes():
                continue
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        found.append((int(entry.name), ppid))
    return found


def django_setup(instance: Instance) -> None:
    """This process reads the instance's database directly for the checks (its own connection name on
    PostgreSQL, so that the connection drops spare it)."""
    os.environ.update({k: v for k, v in instance.env.items() if k.startswith(("IMGSIM_", "DJANGO_"))})
    if instance.postgres_db:
        os.environ["DATABASE_URL"] = instance.env["DATABASE_URL"] + "?application_name=imgsim-faults-checker"
    sys.path.insert(0, str(REPO_ROOT))
    import django

    django.setup()


# --- the faults -------------------------------------------------------------------------------------------


@dataclass
class Campaign:
    instance: Instance
    token: str
    staff_token: str
    files: list[Path]
    args: argparse.Namespace
    tally: Tally = field(default_factory=Tally)
    uploaded: dict[str, int] = field(default_factory=dict)  # file name -> image id (acknowledged)
    upload_done: int = 0
    kills: Counter = field(default_factory=Counter)
    drops: int = 0
    index_faults: Counter = field(default_factory=Counter)
    searches: int = 0
    last_fault: float = 0.0
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    notes: list[str] = field(default_factory=list)

    def fault_done(self) -> None:
        with self.lock:
            self.last_fault = time.monotonic()

    # uploads
    def upload_worker(self, queue: list[Path]) -> None:
        while True:
            with self.lock:
                if not queue:
                    return
                path = queue.pop()
            body, content_type = multipart("file", path.name, path.read_bytes())
            for _attempt in range(4):
                status, payload, headers = request(
                    self.instance.base, "POST", "/api/images/", token=self.token, body=body, content_type=content_type
                )
                self.tally.add("upload", status)
                if status in (200, 201):
                    with self.lock:
                        self.uploaded[path.name] = payload["image"]["id"]
                    break
                if status < 500:
                    self.notes.append(f"upload {path.name}: {status} {payload}")
                    break
                time.sleep(float(headers.get("Retry-After", 2)))
            with self.lock:
                self.upload_done += 1

    # kills
    def cluster_tree(self) -> tuple[list[int], list[int], list[int]]:
        """(watchdogs, sentinels, sentinel children) of the live qcluster processes of this instance."""
        processes = qcluster_processes(self.instance)
        pids = {pid for pid, _ in processes}
        watchdogs = [pid for pid, ppid in processes if ppid not in pids]
        sentinels = [pid for pid, ppid in processes if ppid in watchdogs]
        return watchdogs, sentinels, [pid for pid, ppid in processes if ppid in sentinels]

    def worker_pids(self) -> list[int]:
        """Workers of the running cluster: its heartbeat names them; only live children of a live sentinel."""
        from worker.models import WorkerHeartbeat

        _watchdogs, _sentinels, members = self.cluster_tree()
        latest = WorkerHeartbeat.objects.filter(stopped_at__isnull=True).order_by("-seen_at").first()
        return [pid for pid in (latest.worker_pids if latest else []) if pid in members]

    def kill_one(self, kind: str) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not self.stop.is_set():
            if kind == "cluster":
                watchdogs, _sentinels, _members = self.cluster_tree()
                if watchdogs:
                    os.kill(watchdogs[0], signal.SIGKILL)
                    self.kills[kind] += 1
                    return
            else:
                pids = self.worker_pids()
                waiting = [pid for pid in pids if waits_for_task(pid)]
                busy = [pid for pid in pids if pid not in waiting]
                targets = waiting if kind == "idle worker" else busy
                if targets:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(random.choice(targets), signal.SIGKILL)
                        self.kills[kind] += 1
                        return
            time.sleep(0.5)
        self.notes.append(f"no {kind} to kill within 60 s")

    def progress(self) -> float:
        """0..1: half for the uploads, half for their embedding, so that kills hit both phases."""
        from gallery.models import Image

        with self.lock:
            ids = set(self.uploaded.values())
        done = Image.objects.exclude(status=Image.Status.QUEUED).filter(pk__in=ids).count()
        return (self.upload_done / len(self.files) + (done / len(ids) if ids else 0.0)) / 2

    def killer(self) -> None:
        plan = ["idle worker" if i % 2 == 0 else "busy worker" for i in range(self.args.kills)]
        for i in range(self.args.cluster_kills):
            plan.insert(min(len(plan), (i + 1) * len(plan) // (self.args.cluster_kills + 1)), "cluster")
        for step, kind in enumerate(plan):
            while self.progress() < (step + 1) / (len(plan) + 1) and not self.stop.is_set():
                time.sleep(0.5)
            self.kill_one(kind)
            self.fault_done()

    # database connection drops (PostgreSQL)
    def dropper(self) -> None:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            while self.drops < self.args.drops and not self.stop.is_set():
                if self.upload_done >= len(self.files):
                    break
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                    "AND pid <> pg_backend_pid() AND application_name <> 'imgsim-faults-checker'",
                    [self.instance.postgres_db],
                )
                self.drops += 1
                self.fault_done()
                self.stop.wait(self.args.drop_every)

    # index files under search load
    def searcher(self, ready: threading.Event) -> None:
        ready.wait()
        while not self.stop.is_set():
            with self.lock:
                ids = list(self.uploaded.values())
            if not ids:
                time.sleep(0.5)
                continue
            status, _payload, _ = request(
                self.instance.base, "GET", f"/api/images/{random.choice(ids)}/similar/?k=10", token=self.token
            )
            if status != 409:  # 409: that image is not embedded yet
                self.tally.add("search", status)
                with self.lock:
                    self.searches += 1

    def index_breaker(self, ready: threading.Event) -> None:
        from gallery.models import Image
        from search.models import IndexBuild

        deadline = time.monotonic() + 600
        enough = min(60, len(self.files) // 2)
        while Image.objects.searchable().count() < enough and time.monotonic() < deadline and not self.stop.is_set():
            time.sleep(1)
        asked = 0.0
        while not self.stop.is_set() and time.monotonic() < deadline:
            build = IndexBuild.objects.ready().exclude(file_name="").order_by("-id").first()
            if build is not None:
                break
            if time.monotonic() - asked > 20:  # a request fetched by a cluster that is then killed is lost (Redis)
                request(self.instance.base, "POST", "/api/index/rebuild/", token=self.staff_token)
                asked = time.monotonic()
            time.sleep(1)
        else:
            self.notes.append("no index was built; index faults skipped")
            ready.set()
            return
        ready.set()
        time.sleep(3)
        index_dir = Path(self.instance.var_dir) / "index"
        for i in range(self.args.index_faults):
            path = None
            until = time.monotonic() + 60  # the served index of the moment (rebuilt after the previous fault)
            while time.monotonic() < until and not self.stop.is_set():
                build = IndexBuild.objects.ready().exclude(file_name="").order_by("-id").first()
                path = index_dir / build.file_name if build is not None else None
                if path is not None and path.exists():
                    break
                time.sleep(1)
            if path is not None and path.exists():
                if i % 2 == 0:
                    data = path.read_bytes()
                    path.write_bytes(data[: len(data) // 2])
                    self.index_faults["truncated"] += 1
                else:
                    path.unlink()
                    self.index_faults["deleted"] += 1
                self.fault_done()
                # A new process (a web worker restarting, the rebuild) meets the broken file: rebuild one now.
                request(self.instance.base, "POST", "/api/index/rebuild/", token=self.staff_token)
            time.sleep(4)


def waits_for_task(pid: int) -> bool:
    """A worker blocked on the task queue: reading its pipe, or waiting for its lock."""
    try:
        wchan = Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return False
    return "pipe" in wchan or "futex" in wchan


# --- the checks -------------------------------------------------------------------------------------------


def wait_for_empty_queue(campaign: Campaign, *, timeout: float) -> float | None:
    """Seconds from the last fault to no image queued and no pair being added (None: not within timeout)."""
    from duplicates.models import DuplicatePair
    from gallery.models import Image

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Image.objects.filter(status=Image.Status.QUEUED).exists():
            emptied = time.monotonic()
            pairs = DuplicatePair.objects.count()
            time.sleep(15)  # detection of the last batch finishes after its images are marked indexed
            if not Image.objects.filter(status=Image.Status.QUEUED).exists() and DuplicatePair.objects.count() == pairs:
                return emptied - campaign.last_fault
            continue
        time.sleep(1)
    return None


def check_images(campaign: Campaign) -> dict[str, object]:
    from django.core.files.storage import default_storage

    from gallery.models import Image

    rows = {image.pk: image for image in Image.objects.filter(pk__in=campaign.uploaded.values())}
    lost = [
        name
        for name, pk in campaign.uploaded.items()
        if pk not in rows or not default_storage.exists(rows[pk].file.name)
    ]
    failed = Counter(image.reason_code for image in rows.values() if image.status == Image.Status.FAILED)
    return {
        "acknowledged": len(campaign.uploaded),
        "lost": len(lost),
        "lost_names": lost[:10],
        "statuses": dict(Counter(image.status for image in rows.values())),
        "failed_by_reason": dict(failed),
        # An embedding error is a real try; anything else (interrupted, model unavailable) was not tried.
        "failed_untried": sum(n for reason, n in failed.items() if reason != "embedding_error"),
    }


def check_pairs() -> dict[str, object]:
    from django.conf import settings

    from duplicates.models import DuplicatePair
    from duplicates.selectors import duplicate_bands
    from gallery.models import Image

    model = settings.IMGSIM_MODEL
    bands = duplicate_bands(model_name=model)
    rows = list(Image.objects.searchable(model_name=model).order_by("id").values_list("id", "embedding"))
    if len(rows) < 2:
        return {"expected": 0, "stored": 0, "missing": 0}
    ids = np.array([pk for pk, _ in rows])
    vectors = np.vstack([np.frombuffer(bytes(blob), dtype=np.float32) for _, blob in rows])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    scores = vectors @ vectors.T
    first, second = np.nonzero(np.triu(scores >= bands.similar, k=1))
    expected = {(int(ids[a]), int(ids[b])) for a, b in zip(first, second, strict=True)}
    stored = {
        (min(a, b), max(a, b))
        for a, b in DuplicatePair.objects.filter(embedding_model=model).values_list("image_a_id", "image_b_id")
    }
    near = int(np.count_nonzero(np.triu(scores >= bands.near_duplicate, k=1)))
    return {
        "similar_threshold": bands.similar,
        "near_duplicate_threshold": bands.near_duplicate,
        "expected": len(expected),
        "expected_near_duplicate": near,
        "stored": len(stored & expected),
        "missing": len(expected - stored),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uploads", type=int, default=120)
    parser.add_argument("--kills", type=int, default=5, help="kill -9 of task workers during the uploads")
    parser.add_argument("--cluster-kills", type=int, default=1, help="kill -9 of the whole qcluster process")
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL + Redis instead of SQLite + ORM broker")
    parser.add_argument("--drops", type=int, default=20, help="PostgreSQL: connection drop rounds, at most")
    parser.add_argument("--drop-every", type=float, default=3.0)
    parser.add_argument("--index-faults", type=int, default=4)
    parser.add_argument("--lease", type=int, default=60, help="IMGSIM_EMBED_LEASE_SECONDS of the instance")
    parser.add_argument("--port", type=int, default=8125)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=900, help="upper bound of the whole run, seconds")
    parser.add_argument("--keep", action="store_true", help="keep the instance's folder (logs, database)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()
    if not (1 <= args.uploads <= 2000 and 0 <= args.kills <= 100 and 0 <= args.drops <= 200):
        sys.exit("bounded runs only: 1..2000 uploads, 0..100 kills, 0..200 drop rounds")
    started = time.monotonic()
    random.seed(args.seed)
    files = photos(args.uploads, args.seed)
    instance = instance_prepare(args)
    kind = "PostgreSQL + Redis" if args.postgres else "SQLite + ORM broker"
    print(f"instance: {instance.base} ({kind}), {instance.root}")
    try:
        instance_start(instance, timeout=300)
        django_setup(instance)
        from django.contrib.auth import get_user_model
        from rest_framework.authtoken.models import Token

        users = get_user_model().objects
        staff_token = Token.objects.get_or_create(user=users.get(username="admin"))[0].key
        uploader = users.create_user(username=f"uploader-{uuid.uuid4().hex[:6]}", password=secrets.token_urlsafe(12))
        token = Token.objects.create(user=uploader).key
        campaign = Campaign(instance=instance, token=token, staff_token=staff_token, files=files, args=args)
        print(
            f"uploading {len(files)} photos; {args.kills} worker kills, {args.cluster_kills} cluster kills, "
            f"{args.drops if args.postgres else 0} connection drop rounds, {args.index_faults} index file faults"
        )

        queue = list(files)
        index_ready = threading.Event()
        threads = [threading.Thread(target=campaign.upload_worker, args=(queue,)) for _ in range(4)]
        threads.append(threading.Thread(target=campaign.killer))
        if args.postgres:
            threads.append(threading.Thread(target=campaign.dropper))
        faults = threading.Thread(target=campaign.index_breaker, args=(index_ready,))
        searchers = [threading.Thread(target=campaign.searcher, args=(index_ready,), daemon=True) for _ in range(2)]
        for thread in [*threads, faults, *searchers]:
            thread.start()
        for thread in threads:
            thread.join(timeout=max(1.0, args.timeout - (time.monotonic() - started)))
        faults.join(timeout=max(1.0, min(240.0, args.timeout - (time.monotonic() - started))))
        if faults.is_alive():
            campaign.notes.append("index faults did not finish within 240 s after the uploads; stopped")
        campaign.stop.set()
        faults.join(timeout=30)
        campaign.last_fault = campaign.last_fault or time.monotonic()
        remaining = args.timeout - (time.monotonic() - started)
        to_empty = wait_for_empty_queue(campaign, timeout=max(30.0, remaining))
        images = check_images(campaign)
        pairs = check_pairs()
        figures = {
            "database": "postgresql+redis" if args.postgres else "sqlite+orm",
            "uploads": len(files),
            "kills": dict(campaign.kills),
            "connection_drop_rounds": campaign.drops,
            "index_faults": dict(campaign.index_faults),
            "searches": campaign.searches,
            "images": images,
            "pairs": pairs,
            "server_errors": campaign.tally.server_errors(),
            "seconds_to_empty_queue_after_last_fault": None if to_empty is None else round(to_empty, 1),
            "lease_seconds": args.lease,
            "notes": campaign.notes[:20],
        }
        print()
        errors = campaign.tally.server_errors()
        print(
            f"images lost                    {images['lost']} of {images['acknowledged']} acknowledged uploads "
            f"({sum(images['statuses'].values())} distinct images)"
        )
        print(f"images failed without a try    {images['failed_untried']}  (failed: {images['failed_by_reason']})")
        print(
            f"duplicate pairs missing        {pairs['missing']} of {pairs['expected']} "
            f"(all pairs at cosine >= {pairs.get('similar_threshold')})"
        )
        print(f"5xx answers                    {sum(errors.values())}  {errors or ''}")
        empty = (
            "not empty within the time bound"
            if to_empty is None
            else f"{to_empty:.0f} s (goal: lease {args.lease} s + 120 s)"
        )
        print(f"queue empty after last fault   {empty}")
        print(
            f"faults: kills {dict(campaign.kills)}, drop rounds {campaign.drops}, index {dict(campaign.index_faults)}, "
            f"searches {campaign.searches}; image statuses {images['statuses']}"
        )
        for note in campaign.notes[:20]:
            print(f"note: {note}")
        if args.json:
            print(json.dumps(figures, indent=2, default=str))
    finally:
        instance_stop(instance, keep=args.keep)
    print(f"total {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
