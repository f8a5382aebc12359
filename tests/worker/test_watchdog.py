"""The qcluster watchdog: the stall rules, and the real wedge (kill -9 of an idle worker) recovered end to end."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from tests.images import OFFLINE_WEIGHTS, shared_path
from worker import watchdog
from worker.watchdog import ClusterSample, ClusterWatchdog, SharedReport, StallClocks, cluster_problem

REPO = Path(__file__).resolve().parents[2]
STALL = 60.0


def check(sample: ClusterSample, now: float, clocks: StallClocks | None = None) -> tuple[str, StallClocks]:
    return cluster_problem(sample=sample, now=now, clocks=clocks or StallClocks(), stall_seconds=STALL)


def test_idle_cluster_with_nothing_waiting_is_healthy():
    problem, clocks = check(ClusterSample(beat=1000, workers=2), 1001)
    assert problem == ""
    assert clocks == StallClocks()


def test_waiting_tasks_with_a_busy_worker_are_not_a_stall():
    clocks = StallClocks()
    for now in range(1000, 1400, 10):
        problem, clocks = check(ClusterSample(beat=now, waiting=3, workers=1, busy=1), now, clocks)
        assert problem == ""
    assert clocks.waiting_since is None


def test_waiting_tasks_with_every_worker_idle_stall_after_the_bound():
    sample = ClusterSample(beat=1000, waiting=2, workers=2)
    problem, clocks = check(sample, 1000)
    assert problem == ""
    assert clocks.waiting_since == 1000
    problem, clocks = check(ClusterSample(beat=1059, waiting=2, workers=2), 1059, clocks)
    assert problem == ""
    problem, _ = check(ClusterSample(beat=1060, waiting=2, workers=2), 1060, clocks)
    assert problem.startswith("2 fetched task(s) waited 60 s while all 2 worker(s) were idle")


def test_a_worker_starting_a_task_resets_the_stall_clock():
    _, clocks = check(ClusterSample(beat=1000, waiting=1, workers=1), 1000)
    _, clocks = check(ClusterSample(beat=1030, waiting=1, workers=1, busy=1), 1030, clocks)
    problem, clocks = check(ClusterSample(beat=1070, waiting=1, workers=1), 1070, clocks)
    assert problem == ""
    assert clocks.waiting_since == 1070


def test_a_sentinel_that_stops_reporting_is_silent():
    problem, _ = check(ClusterSample(beat=1000, workers=1), 1061)
    assert problem.startswith("the cluster has not reported for 61 s")


def test_finished_tasks_that_are_never_saved_stall():
    _, clocks = check(ClusterSample(beat=1000, results=1, workers=1), 1000)
    problem, _ = check(ClusterSample(beat=1061, results=1, workers=1), 1061, clocks)
    assert problem.startswith("1 finished task(s) waited 61 s to be saved")


def test_shared_report_round_trips():
    report = SharedReport()
    sample = ClusterSample(beat=12.5, waiting=3, results=1, workers=2, busy=1, worker_pids=(4001, 4002))
    report.write(sample)
    assert report.read() == sample
    report.write(ClusterSample(beat=13.0, workers=1, worker_pids=(4003,)))
    assert report.read().worker_pids == (4003,)


def test_a_hanging_source_folder_never_stops_the_watchdog_nor_piles_up_checks(monkeypatch: pytest.MonkeyPatch):
    """A dead NFS share blocks a directory listing for minutes: the check runs beside the watch loop, and while
    it hangs no second one starts; once it returns, the next minute's check runs again."""
    share_answers = threading.Event()
    listings: list[str] = []

    def listing_that_hangs(*, role: str) -> int:
        listings.append(role)
        share_answers.wait(timeout=30)
        return 1

    monkeypatch.setattr(watchdog, "source_reach_check_due", listing_that_hangs)
    dog = ClusterWatchdog(stall_seconds=STALL, heartbeat_seconds=10)
    assert dog.source_folders_check() is True  # returns at once although the listing hangs
    assert dog.source_folders_check() is False  # still hanging: not a second thread
    share_answers.set()
    assert dog.reach_thread is not None
    dog.reach_thread.join(timeout=10)
    assert dog.source_folders_check() is True
    dog.reach_thread.join(timeout=10)
    assert listings == ["worker", "worker"]


# --- the real thing: a qcluster process, kill -9 of its idle worker -----------------------------------------


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return sorted(found)


def live_group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                state, _ppid, group = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:3]
            except OSError:
                continue
            if int(group) == pgid and state != "Z":
                members.append(int(entry.name))
    return members


def wait_for(what: str, condition, *, timeout: float = 120.0, process: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if process is not None and process.poll() is not None:
            pytest.fail(f"qcluster exited (code {process.returncode}) while waiting for {what}")
        time.sleep(0.25)
    pytest.fail(f"gave up waiting for {what}")


def query(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db, timeout=30) as connection:
        return connection.execute(sql).fetchall()


def worker_pids(db: Path) -> list[int]:
    rows = query(db, "SELECT worker_pids FROM search_workerheartbeat")
    return json.loads(rows[0][0]) if rows else []


@pytest.fixture(params=["orm", "redis"])
def instance(request, tmp_path):
    """An own SQLite database and var dir, migrated; the broker is the database or a fresh Redis queue."""
    db = tmp_path / "imgsim.sqlite3"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "imgsim_site.settings",
        "DATABASE_URL": f"sqlite:///{db}",
        "IMGSIM_VAR_DIR": str(tmp_path / "var"),
        "IMGSIM_MODEL": "mobilenet_v2",
        "IMGSIM_WEIGHTS": str(OFFLINE_WEIGHTS),
        "IMGSIM_WORKERS": "1",
        "IMGSIM_TORCH_THREADS": "1",
        "IMGSIM_WORKER_STALL_SECONDS": "8",
        "IMGSIM_WORKER_HEARTBEAT_SECONDS": "1",
        "IMGSIM_QUEUE_NAME": f"imgsim-test-{uuid.uuid4().hex[:8]}",
        "IMGSIM_REDIS_URL": "redis://127.0.0.1:6379/0" if request.param == "redis" else "",
    }
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=REPO, env=env, check=True)
    # Push the 2-minute re-drive schedule a day away: recovery must not depend on it.
    query(db, "UPDATE django_q_schedule SET next_run = datetime('now', '+1 day') WHERE name LIKE 'imgsim:%'")
    return env, db, tmp_path


@pytest.mark.ml
def test_killing_an_idle_worker_no_longer_wedges_the_cluster(instance):
    env, db, tmp_path = instance
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("100075.jpg", "100080.jpg", "100098.jpg"):
        shutil.copy(shared_path("data", "distractors-dev", "train", name), photos / name)
    log = (tmp_path / "qcluster.log").open("w")
    cluster = subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_for("the first heartbeat", lambda: query(db, "SELECT 1 FROM search_workerheartbeat"), process=cluster)
        (sentinel,) = wait_for("the sentinel", lambda: children(cluster.pid), process=cluster)
        (worker,) = wait_for("the worker's pid", lambda: worker_pids(db), process=cluster)
        assert worker in children(sentinel)
        # Once idle, the worker waits for a task reading the queue's pipe, holding the queue's read lock.
        wait_for("an idle worker", lambda: "pipe" in Path(f"/proc/{worker}/wchan").read_text())
        os.kill(worker, signal.SIGKILL)

        subprocess.run(
            [sys.executable, "manage.py", "import_images", str(photos), "--no-progress"],
            cwd=REPO,
            env=env,
            check=True,
            capture_output=True,
        )
        assert query(db, "SELECT COUNT(*) FROM gallery_image WHERE status = 'queued'") == [(3,)]

        wait_for(
            "the three images to be embedded",
            lambda: query(db, "SELECT COUNT(*) FROM gallery_image WHERE status = 'indexed'") == [(3,)],
            process=cluster,
        )
        ((restarts, reason),) = query(db, "SELECT restarts, last_restart_reason FROM search_workerheartbeat")
        assert restarts == 1, Path(log.name).read_text()
        assert "fetched task(s) waited" in reason
        assert "while all 1 worker(s) were idle" in reason

        (restarted_sentinel,) = children(cluster.pid)
        assert restarted_sentinel != sentinel

        # The same kill with nothing to do wedges the new cluster silently; stopping it must not hang.
        (worker,) = wait_for(
            "the new worker", lambda: [pid for pid in worker_pids(db) if pid in children(restarted_sentinel)]
        )
        wait_for("an idle worker", lambda: "pipe" in Path(f"/proc/{worker}/wchan").read_text())
        os.kill(worker, signal.SIGKILL)
        wait_for(
            "its replacement",
            lambda: len(children(restarted_sentinel)) == 3 and worker not in children(restarted_sentinel),
        )
        cluster.send_signal(signal.SIGTERM)
        assert cluster.wait(timeout=90) == 0
        assert "the task cluster cannot stop" in Path(log.name).read_text()
        assert query(db, "SELECT stopped_at IS NOT NULL FROM search_workerheartbeat") == [(1,)]
        # The whole cluster (its process group) is gone; the init process reaps what was killed.
        wait_for("the cluster's processes to end", lambda: not live_group_members(restarted_sentinel), timeout=30)
    finally:
        if cluster.poll() is None:
            cluster.kill()
            cluster.wait()
        log.close()


@pytest.mark.django_db
def test_django_q_cluster_statistics_stay_out_of_the_database():
    """The sentinel saves them twice a second; the heartbeat rows are what the pages read."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django_q.brokers import get_broker

    broker = get_broker()
    with CaptureQueriesContext(connection) as queries:
        broker.set_stat("django_q:imgsim:cluster:test", "payload", 3)
        assert broker.get_stat("django_q:imgsim:cluster:test") == "payload"
    assert queries.captured_queries == []
