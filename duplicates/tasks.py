"""django-q2 entry points: parse nothing, call a service, return a small summary for the task log."""

from __future__ import annotations

from dataclasses import asdict

from duplicates.models import CalibrationRun
from duplicates.services import calibration, detection


def detect_pending() -> dict[str, object]:
    """Check every embedded image not yet checked under the settings in force (queued after each embedding
    batch, and every two minutes by a schedule, so a killed worker leaves nothing unchecked)."""
    summary = detection.duplicate_detection_run()
    return {**asdict(summary.detection), "more_left": summary.more_left, "failed": summary.failed[:100]}


def scan_library(requested_by: str = "") -> dict[str, object]:
    """Re-detect the pairs of the whole library (index rebuilt first when it is behind)."""
    summary = detection.duplicates_scan()
    return {"images": summary.images, "pruned": summary.pruned, **asdict(summary.detection)}


def calibrate(run_id: int) -> dict[str, object]:
    """Run a queued calibration and store its result and plot on the run."""
    run = CalibrationRun.objects.get(pk=run_id)
    run = calibration.calibration_run_execute(run=run)
    return {"run": run.pk, "status": run.status, "near_duplicate": run.suggested_near_duplicate}
