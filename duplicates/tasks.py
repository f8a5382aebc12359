"""django-q2 entry points: parse nothing, call a service, return a small summary for the task log."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

from core.task_queue import task_queue_run_started
from duplicates.models import CalibrationRun
from duplicates.services import calibration, detection, thresholds, trash


def detect_pending() -> dict[str, object]:
    """Check the embedded images not yet checked under the settings in force, in short steps for at most
    IMGSIM_DETECT_RUN_SECONDS, then queue the next run if some are left (queued after each embedding batch,
    every two minutes by a schedule, and when another worker's lease ends, so a killed worker leaves nothing
    unchecked); then queue the auto-calibration of a model without measured thresholds once the library is
    large enough."""
    task_queue_run_started(detection.DETECT_TASK)
    summary = detection.duplicate_detection_run()
    thresholds.auto_calibration_schedule()
    return {
        **asdict(summary.detection),
        "more_left": summary.more_left,
        "steps": summary.steps,
        "failed": summary.failed[:100],
    }


def scan_library(requested_by: str = "") -> dict[str, object]:
    """Re-detect the pairs of the whole library (index rebuilt first when it is behind)."""
    summary = detection.duplicates_scan()
    return {"images": summary.images, "pruned": summary.pruned, **asdict(summary.detection)}


def calibrate(run_id: int) -> dict[str, object]:
    """Run a queued calibration and store its result and plot on the run."""
    run = CalibrationRun.objects.get(pk=run_id)
    run = calibration.calibration_run_execute(run=run)
    return {"run": run.pk, "status": run.status, "near_duplicate": run.suggested_near_duplicate}


def reband_pairs() -> dict[str, object]:
    """Put the stored pairs in the bands of the thresholds in force (queued when thresholds change)."""
    summary = thresholds.duplicate_pairs_reband()
    return {**asdict(summary), "images": len(summary.images)}


def auto_calibrate() -> dict[str, object]:
    """Calibrate and apply the thresholds of a model without measured defaults, once (queued by detect_pending)."""
    run = thresholds.auto_calibration_run()
    return {"run": run.pk if run else None, "status": run.status if run else "not due or claimed elsewhere"}


def empty_trash(trashed_until: datetime) -> dict[str, object]:
    """Purge for good the images trashed up to that time (queued by "Empty the trash", page or API)."""
    purged = trash.trash_empty(trashed_until=trashed_until)
    return {"purged": purged.count, "bytes": purged.bytes}
