"""`qcluster`: django-q2's task cluster under imgsim's watchdog (worker/watchdog.py).

It replaces django-q2's command of the same name (the worker app comes before django_q in INSTALLED_APPS), so
`make run`, the README and a process supervisor all get the watchdog with the command people know.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import CommandError
from django_q.management.commands.qcluster import Command as DjangoQClusterCommand

from gallery.models import SourceReach
from gallery.source_reach import process_role_set
from worker.watchdog import EXIT_GAVE_UP, ClusterWatchdog


class Command(DjangoQClusterCommand):
    help = (
        "Starts the task cluster (django-q2) under a watchdog that restarts it when it wedges or stops reporting, "
        "and records its heartbeat for the web pages and the API. Exits with code 3 when the cluster keeps "
        "wedging, for the process supervisor to restart it."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        process_role_set(SourceReach.Role.WORKER)  # the forked workers inherit it (gallery.source_reach)
        if options.get("run_once"):
            super().handle(*args, **options)
            return
        if options.get("cluster_name"):
            # django-q2 reads the queue's name when it is imported, before any option is parsed.
            raise CommandError("set the queue's name with Q_CLUSTER_NAME=... in the environment, not --name")
        watchdog = ClusterWatchdog(
            stall_seconds=settings.IMGSIM_WORKER_STALL_SECONDS,
            heartbeat_seconds=settings.IMGSIM_WORKER_HEARTBEAT_SECONDS,
        )
        if watchdog.run() != 0:
            raise CommandError("the task cluster kept wedging; see the log above", returncode=EXIT_GAVE_UP)
