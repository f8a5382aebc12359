"""System checks run at start-up (`manage.py check`, runserver, migrate): a wrong model setting is named
before the first upload fails."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

from search.embedding import backbone_names


@register()
def embedding_settings_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
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
