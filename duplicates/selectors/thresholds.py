"""Reads of the thresholds: the bands in force for detection, where each threshold comes from and its
history, the latest calibration, and the threshold that names a rejected image a copy."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from duplicates.candidate_pairs import Bands
from duplicates.models import CalibrationRun
from gallery.models import Image
from search.models import ThresholdSetting
from search.thresholds import ThresholdsInForce, measured_defaults, thresholds_in_force


def duplicate_bands(*, model_name: str | None = None, thresholds: ThresholdsInForce | None = None) -> Bands:
    """The near-duplicate and similar thresholds in force for the configured backbone (read fresh: a worker
    that ran no search since thresholds were applied must not detect with the old ones)."""
    thresholds = thresholds or thresholds_in_force(model_name=model_name or settings.IMGSIM_MODEL)
    return Bands(near_duplicate=thresholds.near_duplicate, similar=thresholds.similar)


@dataclass(frozen=True)
class ThresholdsOverview:
    """The thresholds in force, where each comes from, and whether auto-calibration is still to come."""

    thresholds: ThresholdsInForce
    setting: ThresholdSetting | None  # the applied row in force (None: defaults or environment only)
    has_measured_defaults: bool
    auto_calibration_at: int  # indexed images auto-calibration waits for (0: off, or not needed)
    indexed: int | None  # indexed images of the model, counted only while auto-calibration waits


def thresholds_overview(*, model_name: str | None = None) -> ThresholdsOverview:
    """What the review pages, the calibration page and the API show about the thresholds in force."""
    model = model_name or settings.IMGSIM_MODEL
    thresholds = thresholds_in_force(model_name=model)
    setting = (
        ThresholdSetting.objects.select_related("applied_by").filter(pk=thresholds.setting_id).first()
        if thresholds.setting_id is not None
        else None
    )
    has_defaults = measured_defaults(model) is not None
    waits = (
        not has_defaults
        and settings.IMGSIM_AUTO_CALIBRATE_MIN_IMAGES > 0
        and not ThresholdSetting.objects.filter(model_name=model).exists()
    )
    return ThresholdsOverview(
        thresholds=thresholds,
        setting=setting,
        has_measured_defaults=has_defaults,
        auto_calibration_at=settings.IMGSIM_AUTO_CALIBRATE_MIN_IMAGES if waits else 0,
        indexed=Image.objects.searchable(model_name=model).count() if waits else None,
    )


def threshold_history(*, model_name: str | None = None, limit: int = 20) -> list[ThresholdSetting]:
    """The model's applied thresholds, newest first, with who applied and undid them."""
    model = model_name or settings.IMGSIM_MODEL
    rows = ThresholdSetting.objects.filter(model_name=model).select_related("applied_by", "undone_by")
    return list(rows.order_by("-id")[:limit])


# How far above the near-duplicate threshold a rejected (blurred) image and its nearest library photos must
# score, once both are blurred alike (duplicates.blur_match), to name it a copy, per model. Blurring alike
# brings two different photos closer too, hence above; the offset leaves every wrong photo below and names
# far more copies than the plain cosine can without naming a wrong one (bench/blurred_copies.py, figures in
# bench/README.md). A model without a measured offset gets 0: its near-duplicate threshold.
REJECTED_COPY_OFFSETS: dict[str, float] = {"mobilenet_v2": 0.05}


def rejected_copy_threshold(*, model_name: str) -> float:
    """The cosine (both blurred alike) at or above which a rejected image is named a copy of a library image."""
    near_duplicate = thresholds_in_force(model_name=model_name).near_duplicate
    return min(0.99, near_duplicate + REJECTED_COPY_OFFSETS.get(model_name, 0.0))


def latest_calibration(*, model_name: str | None = None) -> CalibrationRun | None:
    """The newest finished calibration (of one model when given): the only one whose result may be applied."""
    runs = CalibrationRun.objects.filter(status=CalibrationRun.Status.DONE)
    if model_name is not None:
        runs = runs.filter(model_name=model_name)
    return runs.order_by("-id").first()
