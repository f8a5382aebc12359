"""django-q2 entry points: parse nothing, call a service, return a small summary for the task log."""

from __future__ import annotations

from dataclasses import asdict

from core.task_queue import task_queue_run_started
from pipeline import services, sources
from pipeline.source_scan import source_scan_run


def embed_pending() -> dict[str, object]:
    """Embed queued images (batches, leases) for up to IMGSIM_EMBED_RUN_SECONDS, queueing detection after each
    batch; also run every two minutes by a schedule, so images of a killed worker are picked up once their
    lease expires."""
    task_queue_run_started(services.EMBED_TASK)
    return asdict(services.embedding_run())


def source_scan(scan_id: int) -> dict[str, object]:
    """Run one queued scan of a library source (skipped if another worker is scanning that source)."""
    scan = source_scan_run(scan_id=scan_id)
    if scan is None:
        return {"scan": scan_id, "status": "gone"}
    return {"scan": scan.pk, "status": scan.status, "files_seen": scan.files_seen}


def source_scan_handed_on(source_id: int) -> dict[str, object]:
    """A scan passed on by a worker that cannot read the folder: requested again for whichever worker takes it."""
    scan = sources.library_source_scan_handed_on(source_id=source_id)
    return {"source": source_id, "scan": None if scan is None else scan.pk}


def sources_rescan() -> int:
    """The schedule: queue a scan of each library source whose last one is older than the rescan interval."""
    return sources.library_sources_rescan_due()
