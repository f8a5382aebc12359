"""Who may open the staff pages: staff; anyone else signed in gets a 403 page saying so, not a sign-in form.

Django's staff_member_required sends a signed-in non-staff user to the admin's login as if they were signed
out, which reads as a broken session. Every staff-only web page uses this one decorator instead.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

STAFF_ONLY = "Staff access is needed for this page."


def staff_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Staff only: anonymous visitors go to the sign-in page, signed-in non-staff get the 403 page."""

    @wraps(view)
    def staff_view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user = request.user
        if not user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not (user.is_active and user.is_staff):
            raise PermissionDenied(STAFF_ONLY)
        return view(request, *args, **kwargs)

    return staff_view
