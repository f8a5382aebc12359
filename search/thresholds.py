"""Per-model similarity thresholds: cosine scales differ between backbones, so every value is per model.

Each value resolves on its own: an environment variable (IMGSIM_MATCH_THRESHOLD, IMGSIM_NEAR_DUPLICATE_THRESHOLD,
IMGSIM_SIMILAR_THRESHOLD) wins; then the thresholds applied to the model from a calibration on this library
(search.models.ThresholdSetting, its newest row not undone); then the model's defaults below (measured, or
provisional for an entry nobody measured); then a generic fallback. Every answer says where each value comes
from. A model without measured defaults calibrates itself on the library (duplicates.services.thresholds).

The applied row is cached per process, so a search costs no extra query: every process reads the library change
log before each search (search.library_view.LibraryView), and applying or undoing thresholds logs a change there, on
which the cache is dropped. Pages and the API read the row fresh (thresholds_in_force).
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from datetime import datetime

from django.conf import settings

from search.models import ThresholdSetting


@dataclass(frozen=True)
class ModelThresholds:
    match: float  # a search result at or above this is the same scene (or photo) as the query: a match
    near_duplicate: float  # the same photo: crops, rescales, recompressions, small edits
    similar: float  # same scene or burst, shown apart from duplicates
    source: str  # where the numbers come from
    # False: nobody measured these for the model (a starting point only): they are in force as provisional
    # values until the library calibrates itself, like a model without an entry.
    measured: bool = True


MODEL_THRESHOLDS: dict[str, ModelThresholds] = {
    # The prototype's duplicate threshold for ResNet-18. Its ImageNet weights cannot be downloaded on the
    # development machines, so these are unmeasured here: provisional until the library
    # calibrates itself (IMGSIM_AUTO_CALIBRATE_MIN_IMAGES) or a person applies a calibration. Measured with
    # the real weights (bench/duplicates.py), this entry becomes a measured default.
    "resnet18": ModelThresholds(
        match=0.80, near_duplicate=0.99, similar=0.90, source="prototype, not re-measured", measured=False
    ),
    # Measured with bench/duplicates.py on ../shared/data/neardup-dev + distractors-dev (figures in
    # bench/README.md). near_duplicate: close to what the label-free calibration (calibrate_duplicates)
    # suggests; with the grey zone from `similar` verified geometrically it keeps precision near 1 and finds
    # more same-photo pairs than the cosine alone can at that precision (look-alike animals of different
    # photos score just below it). similar: nearly every same-photo pair scores at or above it, and it sits at
    # the 99th percentile of unrelated photos' scores (search's "looks alike"). match (search's "same scene"):
    # exposure brackets of one scene mostly reach it, unrelated photos almost never (above their 99.99th
    # percentile; the lowest line where a "same scene" result is right 95 % of the time, bench/search_labels.py).
    "mobilenet_v2": ModelThresholds(
        match=0.80, near_duplicate=0.88, similar=0.70, source="bench/duplicates.py, bench/search_labels.py"
    ),
}
FALLBACK_THRESHOLDS = ModelThresholds(match=0.80, near_duplicate=0.95, similar=0.85, source="generic")

NAMES = ("match", "near_duplicate", "similar")
ENV_VARS = {
    "match": "IMGSIM_MATCH_THRESHOLD",
    "near_duplicate": "IMGSIM_NEAR_DUPLICATE_THRESHOLD",
    "similar": "IMGSIM_SIMILAR_THRESHOLD",
}


class Origin:
    ENVIRONMENT = "environment"
    CALIBRATED = ThresholdSetting.Origin.CALIBRATED.value
    AUTO_CALIBRATED = ThresholdSetting.Origin.AUTO_CALIBRATED.value
    MEASURED_DEFAULT = "measured_default"
    PROVISIONAL = "provisional"
    GENERIC = "generic"
    ALL = (ENVIRONMENT, CALIBRATED, AUTO_CALIBRATED, MEASURED_DEFAULT, PROVISIONAL, GENERIC)


@dataclass(frozen=True)
class ThresholdSource:
    origin: str  # one of Origin.ALL
    description: str  # "calibrated on this library on 2026-11-30 by sam", "environment variable ...", ...
    setting_id: int | None = None  # the applied ThresholdSetting, for calibrated values


@dataclass(frozen=True)
class ThresholdsInForce:
    model_name: str
    match: float
    near_duplicate: float
    similar: float
    source: str  # where the near-duplicate threshold comes from (one line for logs and for clients reading only it)
    sources: dict[str, ThresholdSource]
    setting_id: int | None  # the applied row of this model, even where environment variables override it

    def as_dict(self) -> dict[str, object]:
        """Values and their sources, for the API and the pages."""
        return {
            "model": self.model_name,
            "match": self.match,
            "near_duplicate": self.near_duplicate,
            "similar": self.similar,
            "source": self.source,
            "sources": {name: asdict(source) for name, source in self.sources.items()},
            "setting_id": self.setting_id,
        }


@dataclass(frozen=True)
class _Applied:
    """What the cache keeps of an applied row."""

    id: int
    match: float
    near_duplicate: float
    similar: float
    origin: str
    measured_at: datetime | None
    applied_by: str


_applied: dict[str, _Applied | None] = {}
_lock = threading.Lock()
_generation = 0  # counts forgets: a row read before one is not cached after it


def thresholds_for(model_name: str) -> ThresholdsInForce:
    """The thresholds in force for a model; the applied row is read once per process until thresholds change."""
    with _lock:
        if model_name in _applied:
            return _resolve(model_name, _applied[model_name])
    return _resolve(model_name, _read_and_cache(model_name))


def thresholds_in_force(*, model_name: str) -> ThresholdsInForce:
    """The thresholds in force read fresh from the database (pages, API, detection), refreshing the cache."""
    return _resolve(model_name, _read_and_cache(model_name))


def thresholds_forget() -> None:
    """Drop this process's cached applied rows (thresholds applied or undone, a new process, tests)."""
    global _generation
    with _lock:
        _applied.clear()
        _generation += 1


def _read_and_cache(model_name: str) -> _Applied | None:
    with _lock:
        generation = _generation
    applied = _read_applied(model_name)
    with _lock:
        if generation == _generation:  # else a change was announced while reading: read again next time
            _applied[model_name] = applied
    return applied


def configured_thresholds(model_name: str) -> ThresholdsInForce:
    """Environment variables over the model's defaults, without the database (system checks at start-up)."""
    return _resolve(model_name, None)


def measured_defaults(model_name: str) -> ModelThresholds | None:
    """The model's measured defaults, None for a model nobody measured (it calibrates itself), even one whose
    entry gives provisional values."""
    defaults = MODEL_THRESHOLDS.get(model_name)
    return defaults if defaults is not None and defaults.measured else None


def _read_applied(model_name: str) -> _Applied | None:
    row = (
        ThresholdSetting.objects.in_force()
        .filter(model_name=model_name)
        .select_related("applied_by")
        .order_by("-id")
        .first()
    )
    if row is None:
        return None
    return _Applied(
        id=row.pk,
        match=row.match,
        near_duplicate=row.near_duplicate,
        similar=row.similar,
        origin=row.origin,
        measured_at=row.measured_at or row.applied_at,
        applied_by=row.applied_by.get_username() if row.applied_by else "",
    )


def _resolve(model_name: str, applied: _Applied | None) -> ThresholdsInForce:
    defaults = MODEL_THRESHOLDS.get(model_name)
    values: dict[str, float] = {}
    sources: dict[str, ThresholdSource] = {}
    for name in NAMES:
        from_env = getattr(settings, ENV_VARS[name])
        if from_env is not None:
            values[name] = from_env
            sources[name] = ThresholdSource(Origin.ENVIRONMENT, f"environment variable {ENV_VARS[name]}")
        elif applied is not None:
            values[name] = getattr(applied, name)
            sources[name] = _applied_source(applied)
        elif defaults is not None and defaults.measured:
            values[name] = getattr(defaults, name)
            sources[name] = ThresholdSource(
                Origin.MEASURED_DEFAULT, f"measured default for {model_name} ({defaults.source})"
            )
        elif defaults is not None:
            values[name] = getattr(defaults, name)
            sources[name] = ThresholdSource(
                Origin.PROVISIONAL, f"provisional default for {model_name} ({defaults.source})"
            )
        else:
            values[name] = getattr(FALLBACK_THRESHOLDS, name)
            sources[name] = ThresholdSource(Origin.GENERIC, f"generic default ({model_name} has no measured defaults)")
    from_rows = {Origin.CALIBRATED, Origin.AUTO_CALIBRATED}
    one_applied = (sources["similar"].origin in from_rows) != (sources["near_duplicate"].origin in from_rows)
    if values["similar"] > values["near_duplicate"] and one_applied:
        # An environment variable for one band and applied thresholds for the other clash: no valid band is
        # left, so the similar band starts where the near-duplicate one does. (Environment variables against
        # the measured defaults are refused by the system check at start-up.)
        values["similar"] = values["near_duplicate"]
        sources["similar"] = ThresholdSource(
            sources["similar"].origin,
            f"{sources['similar'].description}, lowered to the near-duplicate threshold",
            sources["similar"].setting_id,
        )
    return ThresholdsInForce(
        model_name=model_name,
        match=values["match"],
        near_duplicate=values["near_duplicate"],
        similar=values["similar"],
        source=sources["near_duplicate"].description,
        sources=sources,
        setting_id=applied.id if applied is not None else None,
    )


def _applied_source(applied: _Applied) -> ThresholdSource:
    day = f" on {applied.measured_at:%Y-%m-%d}" if applied.measured_at else ""
    if applied.origin == Origin.AUTO_CALIBRATED:
        return ThresholdSource(Origin.AUTO_CALIBRATED, f"auto-calibrated on this library{day}", applied.id)
    by = f" by {applied.applied_by}" if applied.applied_by else ""
    return ThresholdSource(Origin.CALIBRATED, f"calibrated on this library{day}{by}", applied.id)
