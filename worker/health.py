"""Reads: is background work getting done? From the watchdog's heartbeat rows and the embedding queue.

Shown on the web pages (templates/worker/_health_banner.html) and by GET /api/health/, so that an upload
that waits for a worker that is not running, or that is running but not taking work, says so and what to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Max, Min, Q
from django.utils import timezone
from django_q.conf import Conf

from gallery.models import Image
from worker.models import WorkerHeartbeat

START_COMMAND = "python manage.py qcluster"
# A restart by the watchdog is mentioned (to staff) for this long after it happened.
RECENT_RESTART = timedelta(hours=1)


class HealthStatus:
    OK = "ok"
    INLINE = "inline"  # IMGSIM_TASKS_SYNC: tasks run inside the web process, no worker needed
    NO_WORKER = "no_worker"
    STUCK = "stuck"


@dataclass(frozen=True)
class WorkerHealth:
    status: str
    summary: str  # one or two sentences for everybody
    action: str  # what to do about it ("" when nothing)
    checked_at: datetime
    last_seen_at: datetime | None  # the newest heartbeat of any worker
    workers: list[WorkerHeartbeat]  # clusters seen recently (busy / waiting numbers from their last beat)
    queued_images: int
    oldest_waiting_at: datetime | None  # the oldest queued image no worker holds a lease on
    last_embedded_at: datetime | None
    recent_restarts: list[WorkerHeartbeat]  # clusters the watchdog restarted within RECENT_RESTART

    @property
    def problem(self) -> bool:
        return self.status in {HealthStatus.NO_WORKER, HealthStatus.STUCK}

    @property
    def user_action(self) -> str:
        """What somebody without access to the servers can do about it."""
        return "Your uploads are kept; ask an administrator to start or restart the worker." if self.problem else ""


def worker_seen_within() -> timedelta:
    """A worker not heard from for this long is not running (three missed beats, and never under the stall bound)."""
    return timedelta(seconds=max(settings.IMGSIM_WORKER_STALL_SECONDS, 3 * settings.IMGSIM_WORKER_HEARTBEAT_SECONDS))


def _ago(moment: datetime, now: datetime) -> str:
    seconds = max(0, int((now - moment).total_seconds()))
    if seconds < 120:
        return f"{seconds} seconds"
    if seconds < 7200:
        return f"{seconds // 60} minutes"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} hours"
    return f"{seconds // 86400} days"


def _images(count: int) -> str:
    return "1 image" if count == 1 else f"{count} images"


def worker_health(*, now: datetime | None = None) -> WorkerHealth:
    """Whether a task worker is running and taking work, with the facts behind the answer."""
    now = now or timezone.now()
    queued = Image.objects.filter(status=Image.Status.QUEUED)
    queued_images = queued.count()
    oldest_waiting_at = (
        queued.filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)).aggregate(oldest=Min("created_at"))[
            "oldest"
        ]
        if queued_images
        else None
    )
    last_embedded_at = Image.objects.aggregate(last=Max("embedded_at"))["last"]
    last_seen_at = WorkerHeartbeat.objects.aggregate(last=Max("seen_at"))["last"]
    workers = list(
        WorkerHeartbeat.objects.filter(seen_at__gte=now - worker_seen_within(), stopped_at__isnull=True).order_by(
            "host", "pid"
        )
    )
    recent_restarts = list(WorkerHeartbeat.objects.filter(last_restart_at__gte=now - RECENT_RESTART))
    base = {
        "checked_at": now,
        "last_seen_at": last_seen_at,
        "workers": workers,
        "queued_images": queued_images,
        "oldest_waiting_at": oldest_waiting_at,
        "last_embedded_at": last_embedded_at,
        "recent_restarts": recent_restarts,
    }
    waiting = f" {_images(queued_images)} wait for it." if queued_images else ""
    if Conf.SYNC:
        return WorkerHealth(
            status=HealthStatus.INLINE,
            summary="Tasks run inside the web server (IMGSIM_TASKS_SYNC).",
            action="",
            **base,
        )
    if not workers:
        seen = f"since {_ago(last_seen_at, now)} ago" if last_seen_at else "yet"
        return WorkerHealth(
            status=HealthStatus.NO_WORKER,
            summary=f"No background worker has been seen {seen}: new uploads are kept but not embedded.{waiting}",
            action=(
                f"Start the worker with `{START_COMMAND}` (`make run` starts one); in production keep it running "
                "under a process supervisor (see the README). Queued images are embedded as soon as it runs."
            ),
            **base,
        )
    stuck_after = timedelta(seconds=settings.IMGSIM_QUEUE_STUCK_SECONDS)
    no_progress = last_embedded_at is None or now - last_embedded_at > stuck_after
    if oldest_waiting_at is not None and now - oldest_waiting_at > stuck_after and no_progress:
        busy = sum(worker.busy for worker in workers)
        activity = (
            f"{busy} of {sum(worker.workers for worker in workers)} worker processes are busy with a long task"
            if busy
            else "the worker is running but not taking work"
        )
        return WorkerHealth(
            status=HealthStatus.STUCK,
            summary=(
                f"{_images(queued_images)} have waited {_ago(oldest_waiting_at, now)} for embedding and none was "
                f"embedded in that time: {activity}."
            ),
            action=(
                f"Look at the worker's log; restart it (stop and start `{START_COMMAND}`, or "
                "`systemctl restart imgsim-worker`). Queued images stay queued and are embedded once it runs."
            ),
            **base,
        )
    return WorkerHealth(status=HealthStatus.OK, summary="The background worker is running.", action="", **base)
