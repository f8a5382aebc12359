"""Rate limits on the expensive endpoints (uploads decode images; searches run the model).

Counted per user in fixed windows of the shared cache (CACHES) with core.rate_limit: every web worker
counts against one budget, and requests arriving at once cannot pass it. Searches count requests: the API
views' throttle classes, and the search page through `web_form_throttle_wait`. Uploads count files: every
web path that stores uploaded files (the API, the upload page, search's "add to library") asks
`upload_refusal` before storing any, and a request that would go over the limit is refused whole.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest
from rest_framework.exceptions import Throttled
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from core.rate_limit import RateSpend, rate_limit_spend

PERIODS = {"s": (1, "second"), "m": (60, "minute"), "h": (3600, "hour"), "d": (86400, "day")}


@dataclass(frozen=True)
class Rate:
    limit: int
    seconds: int
    period: str  # "hour"


def scope_rate(scope: str) -> Rate:
    """The scope's rate ("600/hour") from the current settings (DRF binds its own rates once, at first import)."""
    rates = api_settings.DEFAULT_THROTTLE_RATES
    if scope not in rates:
        raise ImproperlyConfigured(f"No throttle rate set for scope {scope!r} in DEFAULT_THROTTLE_RATES")
    try:
        count, period = str(rates[scope]).split("/")
        seconds, name = PERIODS[period[:1]]
        return Rate(limit=int(count), seconds=seconds, period=name)
    except (ValueError, KeyError):
        raise ImproperlyConfigured(
            f"Throttle rate {rates[scope]!r} for scope {scope!r} is not like 600/hour (per second, minute, hour or day)"
        ) from None


def rate_spend(request: HttpRequest | Request, *, scope: str, amount: int) -> RateSpend:
    """Spend `amount` of the requesting user's budget for `scope` (the client address's when signed out)."""
    rate = scope_rate(scope)
    user = getattr(request, "user", None)
    ident = f"user-{user.pk}" if user is not None and user.is_authenticated else BaseThrottle().get_ident(request)
    return rate_limit_spend(key=f"throttle_{scope}_{ident}", amount=amount, limit=rate.limit, period=rate.seconds)


class WindowRateThrottle(BaseThrottle):
    """One of the scope's budget per request, counted atomically (DRF's throttles read, then write back)."""

    scope: str
    spend: RateSpend | None = None

    def allow_request(self, request: Request, view: object) -> bool:
        self.spend = rate_spend(request, scope=self.scope, amount=1)
        return self.spend.granted

    def wait(self) -> float | None:
        return self.spend.resets_in if self.spend is not None else None


class SearchRateThrottle(WindowRateThrottle):
    scope = "search"


class RateRefused(Throttled):
    """A request refused whole because it would go over its rate; `left` is what the window still allows."""

    def __init__(self, message: str, spend: RateSpend) -> None:
        super().__init__(detail=message)  # without `wait`, which would add DRF's own sentence to the message
        self.wait = spend.resets_in
        self.left = spend.left


def upload_refusal(request: HttpRequest | Request, *, files: int) -> RateRefused | None:
    """Spend one upload per file of this request; when they would go over the limit, none is spent and the
    refusal to answer with (429, Retry-After) is returned instead."""
    spend = rate_spend(request, scope="upload", amount=files)
    if spend.granted:
        return None
    period = scope_rate("upload").period
    left = f"{spend.left} upload is" if spend.left == 1 else f"{spend.left} uploads are"
    return RateRefused(
        f"Too many uploads: this request has {_plural(files, 'file')}, and {left} left of your {spend.limit} per "
        f"{period}. Nothing of it was stored; the count starts again in {_duration(spend.resets_in)}.",
        spend,
    )


def web_form_throttle_wait(request: HttpRequest, throttle: BaseThrottle) -> int | None:
    """Seconds to wait when a web form's POST is over its API rate (same key, same cache), else None."""
    if throttle.allow_request(request, None):  # type: ignore[arg-type]
        return None
    return max(1, math.ceil(throttle.wait() or 1))


def throttled_message(what: str, wait: int) -> str:
    return f"Too many {what} for now; try again in {wait} seconds."


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _duration(seconds: int) -> str:
    """Seconds as a person says them: '45 seconds', '12 minutes', '3 hours' (rounded up)."""
    if seconds < 120:
        return _plural(seconds, "second")
    if seconds < 2 * 3600:
        return _plural(math.ceil(seconds / 60), "minute")
    return _plural(math.ceil(seconds / 3600), "hour")
