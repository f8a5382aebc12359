"""Watchdog for the django-q2 task cluster (`manage.py qcluster`): restarts a wedged or silent cluster.

Why: django-q2 1.11's workers wait for tasks on one multiprocessing queue and hold its read lock while they
wait. A worker killed in that state (kill -9, the OOM killer) never releases the lock: its replacement and
every other worker block forever, fetched tasks wait in the cluster's local queue (with Redis they are
already gone from the broker), the scheduler keeps feeding the same dead queue, and even a clean stop hangs.
No django-q2 setting avoids it. So the watchdog runs the cluster's sentinel as its child in a process group
of its own, reads what the sentinel reports through shared memory once a second, and kills and restarts the
whole cluster when fetched tasks wait with every worker idle, or when the sentinel stops reporting. After a
start or a restart it queues the re-drive schedules (`imgsim: ...`) at once instead of waiting for them.
It also writes the heartbeat row that the web pages and the API read (worker.health), and once a minute records
whether this machine's workers can read each library source's root (gallery.source_reach), so the Sources page
can name a worker machine without the share mounted even when no scan ran there.
"""

from __future__ import annotations

import ast
import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from multiprocessing.sharedctypes import RawArray
from multiprocessing.synchronize import Event
from types import FrameType
from typing import Any

from django import db
from django.db.models import F
from django.utils import timezone
from django_q.cluster import Sentinel, get_mp_context
from django_q.conf import Conf
from django_q.models import Schedule
from django_q.tasks import async_task

from gallery.models import SourceReach
from gallery.source_reach import RECHECK_SECONDS, source_reach_check_due
from worker.models import WorkerHeartbeat

logger = logging.getLogger(__name__)

REDRIVE_SCHEDULE_PREFIX = "imgsim:"
HEARTBEAT_KEEP = timedelta(days=7)
# While stopping: stop messages waiting this long with every worker idle mean a wedged cluster.
STOP_WEDGED_SECONDS = 10
# Exit code when the cluster keeps wedging: the process supervisor takes over (with its own back-off).
EXIT_GAVE_UP = 3


@dataclass(frozen=True)
class ClusterSample:
    """What a sentinel reported last: when (time.time()), tasks fetched but not started, finished tasks not
    yet saved, worker processes, and workers running a task."""

    beat: float
    waiting: int = 0
    results: int = 0
    workers: int = 0
    busy: int = 0
    worker_pids: tuple[int, ...] = ()


_FIELDS = ("beat", "waiting", "results", "workers", "busy")
MAX_REPORTED_PIDS = 64


class SharedReport:
    """A few numbers the sentinel writes and the watchdog reads, in shared memory without a lock (a process
    killed while holding a lock would wedge the reader too)."""

    def __init__(self) -> None:
        self._values = RawArray("d", len(_FIELDS) + MAX_REPORTED_PIDS)

    def write(self, sample: ClusterSample) -> None:
        pids = list(sample.worker_pids[:MAX_REPORTED_PIDS])
        pids += [0] * (MAX_REPORTED_PIDS - len(pids))
        for position, pid in enumerate(pids):
            self._values[len(_FIELDS) + position] = float(pid)
        for position, name in reversed(list(enumerate(_FIELDS))):  # the beat last: fresh beat, fresh numbers
            self._values[position] = float(getattr(sample, name))

    def read(self) -> ClusterSample:
        values = list(self._values)
        beat, waiting, results, workers, busy = values[: len(_FIELDS)]
        return ClusterSample(
            beat=beat,
            waiting=int(waiting),
            results=int(results),
            workers=int(workers),
            busy=int(busy),
            worker_pids=tuple(int(pid) for pid in values[len(_FIELDS) :] if pid),
        )


class WatchedSentinel(Sentinel):
    """django-q2's sentinel in a process group of its own, reporting its queues and workers once a second."""

    def __init__(
        self, stop_event: Event, start_event: Event, cluster_id: uuid.UUID, report: SharedReport, watchdog_pid: int
    ) -> None:
        self.report = report
        self.watchdog_pid = watchdog_pid
        super().__init__(stop_event, start_event, cluster_id)

    def start(self) -> None:
        """One process group for the whole cluster, so that the watchdog can kill all of it, wedged or not."""
        os.setpgid(0, 0)
        threading.Thread(target=self.report_loop, name="imgsim-cluster-report", daemon=True).start()
        super().start()

    def report_loop(self) -> None:
        """Report once a second; a read that blocks on a lock a dead process holds stops the beat (and is seen)."""
        orphaned_at: float | None = None
        while True:
            pool = list(self.pool)
            try:
                self.report.write(
                    ClusterSample(
                        beat=time.time(),
                        waiting=self.task_queue.qsize(),
                        results=self.result_queue.qsize(),
                        workers=len(pool),
                        busy=sum(1 for process in pool if process.timer.value > 0),
                        worker_pids=tuple(process.pid for process in pool if process.pid),
                    )
                )
            except Exception:  # a process torn down under us (stop, reincarnation): the next second reports
                logger.debug("cluster report skipped", exc_info=True)
            if os.getppid() != self.watchdog_pid:  # the watchdog was killed: stop rather than run unwatched
                if orphaned_at is None:
                    logger.critical("the qcluster watchdog is gone; stopping its cluster")
                    orphaned_at = time.monotonic()
                    self.stop_event.set()
                elif time.monotonic() - orphaned_at > 30:
                    os.killpg(0, signal.SIGKILL)
            time.sleep(1)


@dataclass(frozen=True)
class StallClocks:
    """Since when (time.time()) fetched tasks wait with every worker idle, and finished tasks wait unsaved."""

    waiting_since: float | None = None
    results_since: float | None = None


def cluster_problem(
    *, sample: ClusterSample, now: float, clocks: StallClocks, stall_seconds: float
) -> tuple[str, StallClocks]:
    """Why the cluster must be restarted ("" while it is healthy), and the updated stall clocks."""
    if now - sample.beat > stall_seconds:
        return f"the cluster has not reported for {now - sample.beat:.0f} s (its sentinel is blocked)", clocks
    waiting_since = results_since = None
    if sample.waiting > 0 and sample.busy == 0:
        waiting_since = clocks.waiting_since if clocks.waiting_since is not None else now
    if sample.results > 0:
        results_since = clocks.results_since if clocks.results_since is not None else now
    clocks = StallClocks(waiting_since=waiting_since, results_since=results_since)
    if waiting_since is not None and now - waiting_since >= stall_seconds:
        return (
            f"{sample.waiting} fetched task(s) waited {now - waiting_since:.0f} s while all {sample.workers} "
            "worker(s) were idle (a worker that died waiting for a task keeps the task queue locked)",
            clocks,
        )
    if results_since is not None and now - results_since >= stall_seconds:
        return f"{sample.results} finished task(s) waited {now - results_since:.0f} s to be saved", clocks
    return "", clocks


# --- heartbeat rows (writes) ------------------------------------------------------------------------------


def worker_heartbeat_record(
    *, cluster_id: str, host: str, pid: int, queue: str, started_at: Any, sample: ClusterSample, stopped: bool = False
) -> None:
    """Record that this cluster is alive (or stopped cleanly) with its last sample; forget week-old rows."""
    now = timezone.now()
    WorkerHeartbeat.objects.update_or_create(
        cluster_id=cluster_id,
        defaults={
            "host": host[:255],
            "pid": pid,
            "queue": queue[:100],
            "started_at": started_at,
            "seen_at": now,
            "stopped_at": now if stopped else None,
            "workers": sample.workers,
            "busy": sample.busy,
            "waiting_tasks": sample.waiting,
            "worker_pids": list(sample.worker_pids),
        },
    )
    WorkerHeartbeat.objects.filter(seen_at__lt=now - HEARTBEAT_KEEP).delete()


def worker_restart_record(*, cluster_id: str, reason: str) -> None:
    """Count a watchdog restart and keep its reason, for the operator (pages, API, admin)."""
    WorkerHeartbeat.objects.filter(cluster_id=cluster_id).update(
        restarts=F("restarts") + 1, last_restart_at=timezone.now(), last_restart_reason=reason[:2000]
    )


def redrive_schedules_run_now() -> int:
    """Queue the task of every `imgsim:` re-drive schedule at once: work that a dead cluster held (its leases
    expired, its fetched tasks lost) does not wait for the schedule's next turn. Returns how many were queued."""
    queued = 0
    for schedule in Schedule.objects.filter(name__startswith=REDRIVE_SCHEDULE_PREFIX).exclude(repeats=0):
        args = ast.literal_eval(schedule.args) if schedule.args else ()
        kwargs = {}
        if schedule.kwargs:
            call = ast.parse(f"f({schedule.kwargs})").body[0].value  # django-q2's "a=1, b='x'" form
            kwargs = {keyword.arg: ast.literal_eval(keyword.value) for keyword in call.keywords}  # type: ignore[attr-defined]
        async_task(
            schedule.func, *(args if isinstance(args, tuple) else (args,)), task_name=schedule.name[:100], **kwargs
        )
        queued += 1
    return queued


# --- the watchdog -----------------------------------------------------------------------------------------


@dataclass
class ClusterWatchdog:
    """Runs one task cluster, restarts it when it wedges or falls silent, and writes its heartbeat."""

    stall_seconds: float
    heartbeat_seconds: float
    max_restarts: int = 5
    restart_window_seconds: float = 600.0
    cluster_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    report: SharedReport = field(default_factory=SharedReport)

    def __post_init__(self) -> None:
        self.host = socket.gethostname()
        self.started_at = timezone.now()
        self.sentinel: Any = None
        self.stop_event: Event | None = None
        self.stopping = False
        self.restart_times: list[float] = []
        self.reach_thread: threading.Thread | None = None
        self.reach_started = 0.0

    def run(self) -> int:
        """Until SIGTERM or SIGINT (0), or until the cluster keeps wedging (EXIT_GAVE_UP: the supervisor's turn)."""
        signal.signal(signal.SIGTERM, self._request_stop)
        signal.signal(signal.SIGINT, self._request_stop)
        logger.info("qcluster watchdog %s (pid %s) starting the task cluster", self.cluster_id[:8], os.getpid())
        self._start_cluster()
        clocks = StallClocks()
        next_beat = next_reach_check = 0.0
        while not self.stopping:
            time.sleep(1)
            if self.stopping:
                break
            now = time.time()
            if not self.sentinel.is_alive():
                problem = f"the cluster's sentinel process exited (code {self.sentinel.exitcode})"
            else:
                problem, clocks = cluster_problem(
                    sample=self.report.read(), now=now, clocks=clocks, stall_seconds=self.stall_seconds
                )
            if problem:
                if not self._restart(problem):
                    return EXIT_GAVE_UP
                clocks, next_beat = StallClocks(), 0.0
                continue
            if now >= next_beat:
                self._beat()
                next_beat = now + self.heartbeat_seconds
            if now >= next_reach_check:
                self.source_folders_check()
                next_reach_check = now + RECHECK_SECONDS
        self._stop_cluster()
        self._beat(stopped=True)
        return 0

    def source_folders_check(self) -> bool:
        """List each library source's root in a thread of its own: a share that hangs (a dead NFS server blocks
        a listing for minutes) must not stop this loop from watching the cluster. While the last check has not
        returned, none is started (one stuck thread at most) and the warning says which machine waits.
        True when a check was started."""
        running = self.reach_thread
        if running is not None and running.is_alive():
            logger.warning(
                "qcluster watchdog on %s: the library sources' folder check has not returned for %.0f s (a share "
                "hanging?); not starting another",
                self.host,
                time.monotonic() - self.reach_started,
            )
            return False

        def check() -> None:
            try:
                self._guarded(
                    lambda: source_reach_check_due(role=SourceReach.Role.WORKER), "check the library sources' folders"
                )
            finally:
                db.connections.close_all()  # this thread's own connection

        self.reach_started = time.monotonic()
        self.reach_thread = threading.Thread(target=check, name="source-folders-check", daemon=True)
        self.reach_thread.start()
        return True

    def _request_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def _start_cluster(self) -> None:
        db.connections.close_all()  # the forked sentinel must not share this process's database connections
        context = get_mp_context()
        self.stop_event, start_event = context.Event(), context.Event()
        self.report.write(ClusterSample(beat=time.time()))
        self.sentinel = context.Process(
            target=WatchedSentinel,
            args=(self.stop_event, start_event, uuid.uuid4(), self.report, os.getpid()),
            name=f"sentinel-{self.cluster_id[:8]}",
        )
        self.sentinel.start()
        while not start_event.is_set() and self.sentinel.is_alive() and not self.stopping:
            time.sleep(0.1)
        self._guarded(redrive_schedules_run_now, "queue the re-drive schedules")

    def _kill_cluster(self) -> None:
        """SIGKILL the sentinel's process group: workers, pusher, monitor and sentinel, wedged or not."""
        for target in (lambda: os.killpg(self.sentinel.pid, signal.SIGKILL), self.sentinel.kill):
            try:
                target()
            except (ProcessLookupError, PermissionError):
                continue
        self.sentinel.join(timeout=10)

    def _stop_cluster(self) -> None:
        """A clean stop lets running tasks finish for up to the stall bound. A wedged cluster never stops (its
        workers cannot take the stop messages), so once those wait STOP_WEDGED_SECONDS (or half the stall bound,
        if shorter) with every worker idle, it is killed at once."""
        if self.stop_event is not None:
            self.stop_event.set()
        deadline = time.monotonic() + self.stall_seconds
        clocks = StallClocks()
        while self.sentinel.is_alive() and time.monotonic() < deadline:
            self.sentinel.join(timeout=1)
            problem, clocks = cluster_problem(
                sample=self.report.read(),
                now=time.time(),
                clocks=clocks,
                stall_seconds=min(STOP_WEDGED_SECONDS, self.stall_seconds / 2),
            )
            if problem and clocks.waiting_since is not None:
                logger.error("the task cluster cannot stop (%s); killing it", problem)
                break
        if self.sentinel.is_alive():
            if time.monotonic() >= deadline:
                logger.error("the task cluster did not stop within %.0f s; killing it", self.stall_seconds)
            self._kill_cluster()
        logger.info("qcluster watchdog %s stopped", self.cluster_id[:8])

    def _restart(self, problem: str) -> bool:
        """Kill and start the cluster; False once it wedged more than max_restarts times in the window."""
        now = time.monotonic()
        self.restart_times = [moment for moment in self.restart_times if now - moment < self.restart_window_seconds]
        self.restart_times.append(now)
        logger.critical("task cluster unhealthy: %s; killing and restarting it", problem)
        self._kill_cluster()
        self._beat()
        self._guarded(lambda: worker_restart_record(cluster_id=self.cluster_id, reason=problem), "record the restart")
        if len(self.restart_times) > self.max_restarts:
            logger.critical(
                "the task cluster wedged %d times in %.0f s; exiting (code %d) so that the process supervisor "
                "restarts the worker",
                len(self.restart_times),
                self.restart_window_seconds,
                EXIT_GAVE_UP,
            )
            return False
        self._start_cluster()
        return True

    def _beat(self, *, stopped: bool = False) -> None:
        self._guarded(
            lambda: worker_heartbeat_record(
                cluster_id=self.cluster_id,
                host=self.host,
                pid=os.getpid(),
                queue=str(Conf.CLUSTER_NAME or ""),
                started_at=self.started_at,
                sample=self.report.read(),
                stopped=stopped,
            ),
            "record the heartbeat",
        )

    def _guarded(self, action: Callable[[], object], what: str) -> None:
        """The database or the broker may be down for a while: log, drop the connections, keep watching."""
        try:
            action()
        except Exception as error:
            logger.warning("qcluster watchdog could not %s: %s", what, error)
            db.connections.close_all()
