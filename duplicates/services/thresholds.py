"""Thresholds from calibration: apply a run's result (staff), undo it, calibrate a model without measured
defaults by itself, and re-band the stored pairs after any change.

The thresholds themselves live in the search app (search.models.ThresholdSetting, resolved by
search/thresholds.py); this module connects them to calibration runs and to the pairs. Re-banding never
touches a review decision: a decided pair keeps its status (and, if it no longer qualifies, its band).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.errors import ServiceError
from core.task_queue import task_queue_after_commit
from core.users import Actor, recorded_user
from duplicates import geometry, scene_match, threshold_measurement
from duplicates.candidate_pairs import band_of, needs_verification
from duplicates.features import Verifier
from duplicates.models import CalibrationRun, DuplicatePair
from duplicates.selectors.detection import geometric_verification_enabled
from duplicates.selectors.pairs import image_facts
from duplicates.selectors.thresholds import duplicate_bands, latest_calibration
from duplicates.services.calibration import CALIBRATION_MIN_IMAGES, calibration_run_create, calibration_run_execute
from duplicates.services.detection import duplicate_detection_schedule
from duplicates.services.groups import duplicate_groups_refresh
from gallery.models import Image
from search.models import ThresholdSetting
from search.services.thresholds import threshold_setting_apply, threshold_setting_undo, thresholds_validate
from search.thresholds import measured_defaults, thresholds_in_force

logger = logging.getLogger(__name__)

REBAND_TASK = "duplicates.tasks.reband_pairs"
AUTO_CALIBRATE_TASK = "duplicates.tasks.auto_calibrate"
REBAND_CHUNK = 500
# A failed auto-calibration is tried again after this long (the detection schedule asks every two minutes).
AUTO_RETRY = timedelta(hours=1)
SAMPLE_FACTS = (
    "sampled",
    "library_size",
    "pool_size",
    "positives",
    "negatives",
    "target_precision",
    "recall_at_suggested",
    "precision_at_suggested",
)


@dataclass(frozen=True)
class ProposedThresholds:
    """What applying a calibration run would put in force (the confirmation shows old -> new)."""

    run: CalibrationRun
    match: float
    near_duplicate: float
    similar: float


def calibration_thresholds_propose(
    *,
    run: CalibrationRun,
    near_duplicate: float | None = None,
    similar: float | None = None,
    match: float | None = None,
) -> ProposedThresholds:
    """The run's suggestions (or the values given instead), refused with a clear message when the run is not
    the newest finished calibration of the model in use or the values are out of range or out of order."""
    model = settings.IMGSIM_MODEL
    if run.status != CalibrationRun.Status.DONE:
        raise ServiceError("calibration_not_done", f"Calibration #{run.pk} is {run.status}: it has no result to apply.")
    if run.model_name != model:
        raise ServiceError(
            "calibration_stale",
            f"Calibration #{run.pk} measured {run.model_name}, but the model in use is {model}: calibrate again.",
        )
    latest = latest_calibration(model_name=model)
    if latest is not None and latest.pk != run.pk:
        raise ServiceError(
            "calibration_stale",
            f"Calibration #{run.pk} is not the newest one for {model} (#{latest.pk} is): apply that one instead.",
        )
    near = run.suggested_near_duplicate if near_duplicate is None else near_duplicate
    if near is None:
        raise ServiceError(
            "no_suggestion",
            f"Calibration #{run.pk} reached no threshold with precision {run.target_precision}: "
            "give a near_duplicate value, or calibrate with a lower target precision.",
        )
    similar_value = run.suggested_similar if similar is None else similar
    if similar_value is None:
        raise ServiceError("no_suggestion", f"Calibration #{run.pk} has no similar threshold: give one.")
    # Search's "same scene" line: the run's suggestion (older runs have none: the similar threshold), kept
    # between the similar and near-duplicate thresholds when those were given instead of suggested.
    if match is None:
        suggested = (run.result or {}).get("suggested_match")
        match_value = similar_value if suggested is None else min(max(float(suggested), similar_value), near)
    else:
        match_value = match
    thresholds_validate(match=match_value, near_duplicate=near, similar=similar_value)
    return ProposedThresholds(run=run, match=match_value, near_duplicate=near, similar=similar_value)


def calibration_thresholds_apply(
    *,
    run: CalibrationRun,
    user: Actor,
    near_duplicate: float | None = None,
    similar: float | None = None,
    match: float | None = None,
) -> ThresholdSetting:
    """Put a calibration's thresholds in force for the model in use (logged with who and when); the stored
    pairs are re-banded and the library re-checked in the background."""
    proposed = calibration_thresholds_propose(run=run, near_duplicate=near_duplicate, similar=similar, match=match)
    person = recorded_user(user)
    with transaction.atomic():
        setting = threshold_setting_apply(
            model_name=run.model_name,
            match=proposed.match,
            near_duplicate=proposed.near_duplicate,
            similar=proposed.similar,
            # Applied by nobody: the automatic calibration of a model without measured defaults.
            origin=ThresholdSetting.Origin.CALIBRATED if person else ThresholdSetting.Origin.AUTO_CALIBRATED,
            applied_by=person,
            calibration_run_id=run.pk,
            measured_at=run.finished_at,
            sample=_sample_facts(run),
        )
        duplicate_pairs_reband_schedule()
    return setting


def thresholds_undo(*, user: Actor, setting_id: int | None = None) -> ThresholdSetting:
    """Undo the thresholds applied to the model in use (the ones before them are back); with setting_id,
    only if those are still the ones in force (409 otherwise)."""
    model = settings.IMGSIM_MODEL
    in_force = thresholds_in_force(model_name=model)
    if in_force.setting_id is None:
        raise ServiceError(
            "nothing_to_undo", f"No thresholds were applied to {model}: its defaults are in force, nothing to undo."
        )
    wanted = setting_id if setting_id is not None else in_force.setting_id
    setting = ThresholdSetting.objects.filter(pk=wanted, model_name=model).first()
    if setting is None:
        raise ServiceError("thresholds_not_found", f"There are no applied thresholds #{wanted} for {model}.")
    with transaction.atomic():
        undone = threshold_setting_undo(setting=setting, user=recorded_user(user))
        duplicate_pairs_reband_schedule()
    return undone


def _sample_facts(run: CalibrationRun) -> dict[str, object]:
    result = run.result or {}
    return {"calibration_run": run.pk, **{name: result.get(name) for name in SAMPLE_FACTS if name in result}}


# --- re-banding ------------------------------------------------------------------------------------------


@dataclass
class RebandSummary:
    pairs: int = 0
    to_near_duplicate: int = 0
    to_similar: int = 0
    dropped: int = 0  # pending pairs below the similar threshold now: removed
    decided_kept: int = 0  # decided pairs below it: kept as they are, with their decision
    verified: int = 0
    images: set[int] = field(default_factory=set)


def duplicate_pairs_reband(*, model_name: str | None = None) -> RebandSummary:
    """Put every stored pair of the model in the band the thresholds in force give it (grey-zone pairs verified
    geometrically when they never were); pending pairs below the similar band go, decided pairs keep their
    decision; the groups of every image touched are refreshed after the pairs."""
    model = model_name or settings.IMGSIM_MODEL
    bands = duplicate_bands(model_name=model)
    verifier = Verifier(enabled=geometric_verification_enabled())
    summary = RebandSummary()
    pairs = DuplicatePair.objects.filter(embedding_model__in=[model, ""]).order_by("id")
    after = 0
    while True:
        chunk = list(pairs.filter(id__gt=after).select_related("image_a", "image_b")[:REBAND_CHUNK])
        if not chunk:
            break
        after = chunk[-1].pk
        summary.pairs += len(chunk)
        changed: list[DuplicatePair] = []
        dropped: list[int] = []
        touched: set[int] = set()
        for pair in chunk:
            inliers = pair.evidence.get("geometric_inliers")
            if inliers is None and needs_verification(pair.similarity, bands=bands):
                inliers = verifier.inliers(pair.image_a, pair.image_b)
                if inliers is not None:
                    pair.evidence = {**pair.evidence, "geometric_inliers": inliers}
            kind = band_of(pair.similarity, bands=bands, inliers=inliers, min_inliers=geometry.MIN_INLIERS)
            kind = scene_match.band_of_shots(kind, image_facts(pair.image_a), image_facts(pair.image_b))
            if kind == pair.kind:
                continue
            if kind is None:
                if pair.review_status == DuplicatePair.ReviewStatus.PENDING:
                    dropped.append(pair.pk)
                    touched.update((pair.image_a_id, pair.image_b_id))
                else:
                    summary.decided_kept += 1
                continue
            pair.kind = kind
            changed.append(pair)
            touched.update((pair.image_a_id, pair.image_b_id))
            if kind == DuplicatePair.Kind.NEAR_DUPLICATE:
                summary.to_near_duplicate += 1
            else:
                summary.to_similar += 1
        with transaction.atomic():
            if changed:
                # Only the band (and a new verification's inliers): never the review status.
                DuplicatePair.objects.bulk_update(changed, ["kind", "evidence"], batch_size=250)
            if dropped:
                DuplicatePair.objects.filter(pk__in=dropped, review_status=DuplicatePair.ReviewStatus.PENDING).delete()
        summary.dropped += len(dropped)
        summary.images |= touched
    if summary.images:
        # Once for all chunks: a refresh recomputes the connected part around the images it is given, which in
        # a large library is shared by many chunks. (Killed before this, the detection run that follows every
        # threshold change refreshes the groups around each image it re-checks.)
        duplicate_groups_refresh(image_ids=summary.images)
    summary.verified = verifier.checked
    if summary.to_near_duplicate or summary.to_similar or summary.dropped:
        logger.info("re-banded pairs of %s: %s", model, summary)
    return summary


def duplicate_pairs_reband_schedule() -> None:
    """Queue a re-band of the stored pairs, then a detection run (the library is re-checked under the new
    thresholds: pairs that now reach the similar band are found), once the transaction commits."""
    task_queue_after_commit(REBAND_TASK, task_name="re-band duplicate pairs")
    duplicate_detection_schedule()


# --- auto-calibration ------------------------------------------------------------------------------------


def auto_calibration_due(*, model_name: str | None = None) -> bool:
    """A model without measured defaults, never calibrated, whose library has reached the size to calibrate."""
    model = model_name or settings.IMGSIM_MODEL
    minimum = settings.IMGSIM_AUTO_CALIBRATE_MIN_IMAGES
    if minimum <= 0 or measured_defaults(model) is not None:
        return False
    if ThresholdSetting.objects.filter(model_name=model).exists():
        return False  # calibrated already, by a person or by itself (even if since undone: once is enough)
    automatic = CalibrationRun.objects.filter(model_name=model, automatic=True)
    if automatic.filter(status=CalibrationRun.Status.DONE).exists():
        return False  # it ran and reached no threshold: the page says so, a person decides
    if automatic.filter(status=CalibrationRun.Status.FAILED, finished_at__gte=timezone.now() - AUTO_RETRY).exists():
        return False  # it failed a short while ago: not again at every detection run
    return Image.objects.searchable(model_name=model).count() >= max(minimum, CALIBRATION_MIN_IMAGES)


def auto_calibration_schedule() -> None:
    """Queue auto-calibration when it is due (after each detection run: after embedding batches and every two
    minutes); the task checks again and claims it, so a claim left by a killed worker is retried."""
    if not auto_calibration_due():
        return
    task_queue_after_commit(AUTO_CALIBRATE_TASK, task_name="auto-calibrate thresholds")


def auto_calibration_run() -> CalibrationRun | None:
    """Calibrate the model in use on the library and apply the result (origin auto-calibrated, applied by
    nobody), once: the first worker to claim the run does it, the others return None."""
    model = settings.IMGSIM_MODEL
    if not auto_calibration_due(model_name=model):
        return None
    _retire_interrupted(model)
    try:
        with transaction.atomic():
            run = calibration_run_create(
                sample_size=threshold_measurement.DEFAULT_SAMPLE_SIZE,
                target_precision=threshold_measurement.DEFAULT_TARGET_PRECISION,
                schedule=False,
                automatic=True,
            )
    except IntegrityError:
        return None  # another worker is calibrating this model
    run = calibration_run_execute(run=run)
    if run.status != CalibrationRun.Status.DONE or run.suggested_near_duplicate is None:
        logger.warning("auto-calibration #%s of %s applied nothing: %s", run.pk, model, run.error or "no threshold")
        return run
    try:
        calibration_thresholds_apply(run=run, user=None)
    except IntegrityError:
        logger.info("auto-calibration of %s was applied by another worker", model)
    except ServiceError as error:
        logger.warning("auto-calibration #%s of %s not applied: %s", run.pk, model, error.message)
    return run


def _retire_interrupted(model_name: str) -> None:
    """An automatic run left queued or running past the task timeout belongs to a killed worker: mark it
    failed, which frees the claim."""
    cutoff = timezone.now() - timedelta(seconds=settings.IMGSIM_TASK_TIMEOUT + 300)
    CalibrationRun.objects.filter(
        model_name=model_name,
        automatic=True,
        status__in=[CalibrationRun.Status.QUEUED, CalibrationRun.Status.RUNNING],
        created_at__lt=cutoff,
    ).update(status=CalibrationRun.Status.FAILED, error="interrupted (its worker stopped)", finished_at=timezone.now())
