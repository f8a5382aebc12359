"""Rate limits on the expensive endpoints (uploads decode images; searches run the model).

The counters live in the shared cache (CACHES), so every web worker counts against one budget, and the
web forms (/upload/, /search/) spend the same budget as the API through `web_form_throttle_wait`.
"""

from __future__ import annotations

import math

from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle, UserRateThrottle


class SettingsRateThrottle(UserRateThrottle):
    """A per-user rate read from the current settings (DRF binds its rates once, at first import)."""

    def get_rate(self) -> str | None:
        rates = api_settings.DEFAULT_THROTTLE_RATES
        if self.scope not in rates:
            raise ImproperlyConfigured(f"No throttle rate set for scope {self.scope!r} in DEFAULT_THROTTLE_RATES")
        return rates[self.scope]


class UploadRateThrottle(SettingsRateThrottle):
    scope = "upload"


class SearchRateThrottle(SettingsRateThrottle):
    scope = "search"


def web_form_throttle_wait(request: HttpRequest, throttle: SimpleRateThrottle) -> int | None:
    """Seconds to wait when a web form's POST is over its API rate (same key, same cache), else None."""
    if throttle.allow_request(request, None):  # type: ignore[arg-type]
        return None
    return max(1, math.ceil(throttle.wait() or 1))


def throttled_message(what: str, wait: int) -> str:
    return f"Too many {what} for now; try again in {wait} seconds."
