"""Thresholds applied to a model: measured values put in force, or undone, logged with who and when."""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from core.errors import ServiceError
from search.models import ThresholdSetting
from search.services.library_changes import thresholds_change_record
from search.thresholds import ThresholdsInForce, thresholds_forget, thresholds_in_force


def thresholds_validate(*, match: float, near_duplicate: float, similar: float) -> None:
    """Cosines lie in [-1, 1], and the similar band lies below the near-duplicate one (400 otherwise)."""
    for name, value in (("match", match), ("near_duplicate", near_duplicate), ("similar", similar)):
        if not -1.0 <= value <= 1.0:
            raise ServiceError("threshold_out_of_range", f"The {name} threshold must be between -1 and 1, got {value}.")
    if similar > near_duplicate:
        raise ServiceError(
            "similar_above_near_duplicate",
            f"The similar threshold ({similar}) must not exceed the near-duplicate threshold ({near_duplicate}).",
        )


def threshold_setting_apply(
    *,
    model_name: str,
    match: float,
    near_duplicate: float,
    similar: float,
    origin: str,
    applied_by: AbstractBaseUser | None = None,
    calibration_run_id: int | None = None,
    measured_at: datetime | None = None,
    sample: dict | None = None,
) -> ThresholdSetting:
    """Put measured thresholds in force for a model, logged with who and when; every process learns of it
    through the library change log, committed with the row."""
    thresholds_validate(match=match, near_duplicate=near_duplicate, similar=similar)
    with transaction.atomic():
        before = thresholds_in_force(model_name=model_name)
        setting = ThresholdSetting.objects.create(
            model_name=model_name,
            match=match,
            near_duplicate=near_duplicate,
            similar=similar,
            origin=origin,
            applied_by=applied_by,
            calibration_run_id=calibration_run_id,
            measured_at=measured_at,
            sample=sample or {},
            previous=_thresholds_snapshot(before),
        )
        _thresholds_changed()
    return setting


def threshold_setting_undo(*, setting: ThresholdSetting, user: AbstractBaseUser | None = None) -> ThresholdSetting:
    """Undo the thresholds in force for a model: the ones applied before them (or the defaults) are back."""
    with transaction.atomic():
        current = (
            ThresholdSetting.objects.select_for_update()
            .in_force()
            .filter(model_name=setting.model_name)
            .order_by("-id")
            .first()
        )
        if current is None or current.pk != setting.pk:
            raise ServiceError(
                "thresholds_changed",
                f"Thresholds #{setting.pk} are not the ones in force for {setting.model_name} any more "
                "(undone, or others applied since): reload to see the current ones.",
                status=409,
            )
        current.undone_at = timezone.now()
        current.undone_by = user
        current.save(update_fields=["undone_at", "undone_by"])
        _thresholds_changed()
    return current


def _thresholds_changed() -> None:
    """Log the change for every process (in the write's transaction) and drop this process's cache."""
    thresholds_change_record()
    thresholds_forget()
    transaction.on_commit(thresholds_forget)


def _thresholds_snapshot(thresholds: ThresholdsInForce) -> dict[str, object]:
    return {
        "match": thresholds.match,
        "near_duplicate": thresholds.near_duplicate,
        "similar": thresholds.similar,
        "sources": {name: source.description for name, source in thresholds.sources.items()},
        "setting_id": thresholds.setting_id,
    }
