"""Failed sign-ins throttled per username and client address, in the shared cache.

Each password check spends one attempt of IMGSIM_LOGIN_MAX_FAILURES per window of IMGSIM_LOGIN_WINDOW_SECONDS
for that username and address, before the password is checked (core.rate_limit, atomic): with none left the
pair is refused without checking, until the window ends, however many attempts arrive at once. A wrong
password keeps its attempt spent; a right one clears the count. Keyed on both, so an attacker elsewhere
cannot lock a user out, and one address cannot try many passwords on one account. Used by the site's login
page and the admin's (ThrottledAdminSite, the admin site through imgsim_site.apps.ImgsimAdminConfig); both
answer a refused attempt with 429.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse

from core.rate_limit import RateSpend, rate_limit_clear, rate_limit_spend

TOO_MANY_ATTEMPTS = "too_many_attempts"


def _key(request: HttpRequest | None, username: str) -> str:
    address = request.META.get("REMOTE_ADDR", "") if request is not None else ""
    digest = hashlib.sha256(f"{username.strip().casefold()}\0{address}".encode()).hexdigest()
    return f"login-failures:{digest}"


def login_attempt_spend(*, request: HttpRequest | None, username: str) -> RateSpend:
    """Spend one sign-in attempt of this username from this address; refused once the window's are spent."""
    return rate_limit_spend(
        key=_key(request, username),
        amount=1,
        limit=settings.IMGSIM_LOGIN_MAX_FAILURES,
        period=settings.IMGSIM_LOGIN_WINDOW_SECONDS,
    )


def login_failures_clear(*, request: HttpRequest | None, username: str) -> None:
    rate_limit_clear(key=_key(request, username), period=settings.IMGSIM_LOGIN_WINDOW_SECONDS)


class LoginThrottleMixin:
    """For AuthenticationForm subclasses: refuse a throttled username+address before checking the password."""

    request: HttpRequest | None

    def clean(self) -> dict[str, Any]:
        fields = self.cleaned_data  # type: ignore[attr-defined]
        if fields.get("username") is None or not fields.get("password"):
            return super().clean()  # type: ignore[misc]  # no password is checked: nothing spent, nothing cleared
        username = str(self.data.get("username", ""))  # type: ignore[attr-defined]
        attempt = login_attempt_spend(request=self.request, username=username)
        if not attempt.granted:
            minutes = max(1, math.ceil(attempt.resets_in / 60))
            raise ValidationError(
                "Too many failed sign-ins for this account from your address. "
                f"Try again in {minutes} minute{'' if minutes == 1 else 's'}.",
                code=TOO_MANY_ATTEMPTS,
            )
        cleaned = super().clean()  # type: ignore[misc]  # a wrong password raises: its attempt stays spent
        login_failures_clear(request=self.request, username=username)
        return cleaned


class ThrottledAuthenticationForm(LoginThrottleMixin, AuthenticationForm):
    """The site's sign-in form."""


class ThrottledAdminAuthenticationForm(LoginThrottleMixin, AdminAuthenticationForm):
    """The admin's sign-in form."""


def _refused_as_too_many(response: HttpResponse, form: AuthenticationForm) -> HttpResponse:
    """A throttled attempt answers 429 with Retry-After; the page still shows the form and its message."""
    if form.has_error("__all__", TOO_MANY_ATTEMPTS):
        response.status_code = 429
        response["Retry-After"] = str(settings.IMGSIM_LOGIN_WINDOW_SECONDS)
    return response


class ThrottledLoginView(LoginView):
    """The sign-in page."""

    authentication_form = ThrottledAuthenticationForm

    def form_invalid(self, form: AuthenticationForm) -> HttpResponse:
        return _refused_as_too_many(super().form_invalid(form), form)


class ThrottledAdminSite(admin.AdminSite):
    """The admin site, whose sign-in page is throttled and refuses as the site's does.

    AdminSite.login builds Django's LoginView itself, so the status is set on the page it answers, which
    carries the form it checked.
    """

    login_form = ThrottledAdminAuthenticationForm

    @login_not_required  # as AdminSite.login is
    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        response = super().login(request, extra_context)
        form = (getattr(response, "context_data", None) or {}).get("form")
        return response if form is None else _refused_as_too_many(response, form)
