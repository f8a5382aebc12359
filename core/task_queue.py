"""Queueing a background task once the current transaction has committed, the one way every app does it.

After the commit, so that a worker never picks up a task whose rows it cannot see yet, and a rolled-back write
queues nothing. django_q's task module is imported on first use: it loads its models and broker client, which
a process that never queues a task (or a management command that only reads) should not pay for at start-up.

Runs that work from durable records (embedding, detection) are queued at most once at a time: a wake-up key
in the shared cache (an atomic add, on the database or Redis) is set when the run is queued and cleared by the
run as it starts, so a request arriving during a run queues the next one and nothing waits unseen.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

logger = logging.getLogger(__name__)


def task_queue_after_commit(function: str, *args: Any, task_name: str, **kwargs: Any) -> None:
    """Queue the django-q2 task `function` (a dotted path) with these arguments when the transaction commits
    (at once outside a transaction)."""

    def queue() -> None:
        from django_q.tasks import async_task

        async_task(function, *args, task_name=task_name, **kwargs)

    transaction.on_commit(queue)


def _wake_up_key(function: str) -> str:
    return f"task-queue:pending:{function}"


def task_queue_once_after_commit(function: str, *, task_name: str) -> None:
    """Queue the run `function` after the commit unless one is already waiting in the queue.

    The wake-up key expires after the broker's retry window, so a run lost with its worker is queued again by
    the next request (and the schedule runs it meanwhile); a cache that cannot be read queues the run anyway.
    """

    def queue() -> None:
        from django_q.tasks import async_task

        key = _wake_up_key(function)
        try:
            first = cache.add(key, True, timeout=int(str(settings.Q_CLUSTER.get("retry", 1200))))
        except Exception:
            logger.warning("could not read the wake-up of %s; queueing it anyway", function, exc_info=True)
            first = True
        if not first:
            return
        try:
            async_task(function, task_name=task_name)
        except BaseException:
            cache.delete(key)
            raise

    transaction.on_commit(queue)


def task_queue_run_started(function: str) -> None:
    """The queued run has started: a request from now on queues the next run (it may find new work)."""
    try:
        cache.delete(_wake_up_key(function))
    except Exception:
        logger.warning("could not clear the wake-up of %s; it expires on its own", function, exc_info=True)
