"""Queueing a background task once the current transaction has committed, the one way every app does it.

After the commit, so that a worker never picks up a task whose rows it cannot see yet, and a rolled-back write
queues nothing. django_q's task module is imported on first use: it loads its models and broker client, which
a process that never queues a task (or a management command that only reads) should not pay for at start-up.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction


def task_queue_after_commit(function: str, *args: Any, task_name: str, **kwargs: Any) -> None:
    """Queue the django-q2 task `function` (a dotted path) with these arguments when the transaction commits
    (at once outside a transaction)."""

    def queue() -> None:
        from django_q.tasks import async_task

        async_task(function, *args, task_name=task_name, **kwargs)

    transaction.on_commit(queue)
