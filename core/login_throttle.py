"""Failed sign-ins throttled per username and client address, in the shared cache.

After IMGSIM_LOGIN_MAX_FAILURES wrong passwords for one username from one address within
IMGSIM_LOGIN_WINDOW_SECONDS, that pair is refused (without checking the password) until the window ends.
Keyed on both, so an attacker elsewhere cannot lock a user out, and one address cannot try many
passwords on one account. Used by the site's login page and the admin's (ThrottledAdminSite, the admin site
through imgsim_site.apps.ImgsimAdminConfig); both answer a refused attempt with 429.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse

TOO_MANY_ATTEMPTS = "too_many_attempts"


def _key(request: HttpRequest | None, username: str) -> str:
    address = request.META.get("REMOTE_ADDR", "") if request is not None else ""
    digest = hashlib.sha256(f"{username.strip().casefold()}\0{address}".encode()).hexdigest()
    return f"login-failures:{digest}"


def login_failures(*, request: HttpRequest | None, username: str) -> int:
    """How many failed sign-ins this username has had from this address in the current window."""
    return int(cache.get(_key(request, username), 0))


def login_failure_record(*, request: HttpRequest | None, username: str) -> int:
    """Count one more failed sign-in; the window starts at the first failure."""
    key = _key(request, username)
    if cache.add(key, 1, timeout=settings.IMGSIM_LOGIN_WINDOW_SECONDS):
        return 1
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=settings.IMGSIM_LOGIN_WINDOW_SECONDS)
        return 1


def login_failures_clear(*, request: HttpRequest | None, username: str) -> None:
    cache.delete(_key(request, username))


class LoginThrottleMixin:
    """For AuthenticationForm subclasses: refuse a throttled username+address before checking the password."""

    request: HttpRequest | None

    def clean(self) -> dict[str, Any]:
        username = str(self.data.get("username", ""))  # type: ignore[attr-defined]
        if login_failures(request=self.request, username=username) >= settings.IMGSIM_LOGIN_MAX_FAILURES:
            minutes = max(1, round(settings.IMGSIM_LOGIN_WINDOW_SECONDS / 60))
            raise ValidationError(
                f"Too many failed sign-ins for this account from your address. Try again in {minutes} minutes.",
                code=TOO_MANY_ATTEMPTS,
            )
        try:
            cleaned = super().clean()  # type: ignore[misc]
        except ValidationError:
            login_failure_record(request=self.request, username=username)
            raise
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
