"""The task cluster's heartbeat: what its watchdog records and the health pages and API read."""

from __future__ import annotations

from django.db import models


class WorkerHeartbeat(models.Model):
    """One row per running task cluster (`manage.py qcluster`), refreshed by its watchdog every few seconds.

    The web pages and the API read these rows to say whether a worker is running and healthy; django-q2's own
    cluster statistics live in a per-process cache with the ORM broker, out of the web process's sight.
    """

    cluster_id = models.CharField(max_length=32, unique=True)
    host = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    queue = models.CharField(max_length=100, blank=True)
    started_at = models.DateTimeField()
    seen_at = models.DateTimeField(db_index=True)
    stopped_at = models.DateTimeField(null=True, blank=True, help_text="Set when the cluster stopped cleanly.")
    workers = models.PositiveSmallIntegerField(default=0, help_text="Worker processes alive at the last beat.")
    busy = models.PositiveSmallIntegerField(default=0, help_text="Workers running a task at the last beat.")
    waiting_tasks = models.PositiveIntegerField(default=0, help_text="Tasks fetched by the cluster, not started.")
    worker_pids = models.JSONField(default=list, blank=True, help_text="Process ids of its workers (to inspect them).")
    restarts = models.PositiveIntegerField(default=0, help_text="Times the watchdog restarted a wedged cluster.")
    last_restart_at = models.DateTimeField(null=True, blank=True)
    last_restart_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-seen_at"]
        db_table = "search_workerheartbeat"  # made by search/migrations/0004; this app holds its model state only

    def __str__(self) -> str:
        return f"worker {self.host}:{self.pid} (seen {self.seen_at:%Y-%m-%d %H:%M:%S})"
