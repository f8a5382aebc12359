"""Per-model similarity thresholds: cosine scales differ between backbones, so every default is per model.

Settings (IMGSIM_MATCH_THRESHOLD, IMGSIM_NEAR_DUPLICATE_THRESHOLD, IMGSIM_SIMILAR_THRESHOLD) override these;
`manage.py calibrate_duplicates` measures them on a user's own library.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class ModelThresholds:
    match: float  # a search result at or above this "looks like" the query
    near_duplicate: float  # the same photo: crops, rescales, recompressions, small edits
    similar: float  # same scene or burst, shown apart from duplicates
    source: str  # where the numbers come from


MODEL_THRESHOLDS: dict[str, ModelThresholds] = {
    # The original prototype's duplicate threshold for ResNet-18. Its ImageNet weights cannot be downloaded
    # on the machines this was developed on, so these are not re-measured: calibrate on your library.
    "resnet18": ModelThresholds(match=0.80, near_duplicate=0.99, similar=0.90, source="prototype (not re-measured)"),
    # Measured with bench/duplicates.py on ../shared/data/neardup-dev + distractors-dev (899 distinct photos,
    # 22,201 same-photo pairs). near_duplicate: the label-free calibration (calibrate_duplicates, 100 images
    # x 7 edits) suggests 0.885 for precision 0.999 (a cheetah and a leopard photo score 0.87); with the
    # grey zone from `similar` verified geometrically, 0.88 gives precision 0.99995, recall 0.978 on the
    # labelled pairs (cosine alone: 0.795 is needed for precision 0.999, recall 0.957). similar (and match):
    # 99 % of same-photo pairs score >= 0.694; unrelated photos score 0.56 (median).
    "mobilenet_v2": ModelThresholds(match=0.70, near_duplicate=0.88, similar=0.70, source="bench/duplicates.py"),
}
FALLBACK_THRESHOLDS = ModelThresholds(match=0.80, near_duplicate=0.95, similar=0.85, source="generic")


def thresholds_for(model_name: str) -> ModelThresholds:
    """The thresholds in force for a model: settings first, then the model's measured defaults."""
    defaults = MODEL_THRESHOLDS.get(model_name, FALLBACK_THRESHOLDS)
    return ModelThresholds(
        match=_first_set(settings.IMGSIM_MATCH_THRESHOLD, defaults.match),
        near_duplicate=_first_set(settings.IMGSIM_NEAR_DUPLICATE_THRESHOLD, defaults.near_duplicate),
        similar=_first_set(settings.IMGSIM_SIMILAR_THRESHOLD, defaults.similar),
        source=defaults.source,
    )


def _first_set(value: float | None, default: float) -> float:
    return default if value is None else value
