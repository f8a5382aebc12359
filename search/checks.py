"""System checks run at start-up (`manage.py check`, runserver, migrate): a wrong model setting is named
before the first upload fails."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

from search.embedding import backbone_names
from search.thresholds import configured_thresholds


@register()
def embedding_settings_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """A backbone name that does not exist, or a weights file that is not there."""
    messages: list[CheckMessage] = []
    if settings.IMGSIM_MODEL not in backbone_names():
        messages.append(
            Error(
                f"IMGSIM_MODEL={settings.IMGSIM_MODEL!r} is not a known backbone.",
                hint=f"Choose one of: {', '.join(backbone_names())}.",
                id="imgsim.E001",
            )
        )
    if settings.IMGSIM_WEIGHTS and not Path(settings.IMGSIM_WEIGHTS).is_file():
        messages.append(
            Warning(
                f"IMGSIM_WEIGHTS={settings.IMGSIM_WEIGHTS} does not exist: embedding will fail.",
                hint="Point IMGSIM_WEIGHTS at a state-dict file for IMGSIM_MODEL, or unset it.",
                id="imgsim.W001",
            )
        )
    return messages


@register()
def threshold_settings_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Similar above near-duplicate leaves no valid band: detection would stop and the review page fail.

    Checked on the thresholds in force for IMGSIM_MODEL (a setting overrides one of the two, the model's
    measured default supplies the other), so an override that only clashes with another model's defaults
    passes.
    """
    thresholds = configured_thresholds(settings.IMGSIM_MODEL)
    if thresholds.similar <= thresholds.near_duplicate:
        return []
    return [
        Error(
            f"The similar threshold ({thresholds.similar:g}) is above the near-duplicate threshold "
            f"({thresholds.near_duplicate:g}) for IMGSIM_MODEL={settings.IMGSIM_MODEL!r}.",
            hint=(
                "Set IMGSIM_SIMILAR_THRESHOLD at or below IMGSIM_NEAR_DUPLICATE_THRESHOLD, or unset them for the "
                "model's measured defaults (manage.py calibrate_duplicates suggests values for your library)."
            ),
            id="imgsim.E002",
        )
    ]
