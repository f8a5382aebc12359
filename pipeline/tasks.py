"""django-q2 entry points: parse nothing, call a service, return a small summary for the task log."""

from __future__ import annotations

from dataclasses import asdict

from core.task_queue import task_queue_run_started
from pipeline import services


def embed_pending() -> dict[str, object]:
    """Embed every queued image (batches, leases) and queue detection after each batch; also run every two
    minutes by a schedule, so images of a killed worker are picked up once their lease expires."""
    task_queue_run_started(services.EMBED_TASK)
    return asdict(services.embedding_run())
