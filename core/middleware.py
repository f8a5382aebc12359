"""A lost database connection answers 503 with Retry-After (JSON on the API, a short page on the web), not 500.

Why: a database restart, failover or an administrator's pg_terminate_backend drops connections under running
requests. Connections kept between requests are checked before reuse (CONN_HEALTH_CHECKS); a request whose
connection breaks while it runs is run once more on a fresh connection when that is safe: reads (GET, HEAD,
OPTIONS) and the writes a view declares repeatable with @retry_after_lost_connection (uploads: identical bytes
find the image a first run stored). Anything else is answered 503: its transaction was rolled back, so nothing
of it was stored, and the client may send it again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from django.db import InterfaceError, OperationalError, connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string

logger = logging.getLogger(__name__)

DATABASE_ERRORS = (OperationalError, InterfaceError)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
RETRY_AFTER_SECONDS = 5
MESSAGE = (
    "The database is not answering right now (a restart or a dropped connection); nothing of this request was "
    "stored. Please try again in a few seconds."
)


def wants_json(request: HttpRequest) -> bool:
    return request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", "")


def database_unavailable_response(request: HttpRequest) -> HttpResponse:
    """503 with Retry-After; rendered without touching the database (no user, no session, no messages)."""
    if wants_json(request):
        response: HttpResponse = JsonResponse(
            {"error": {"code": "database_unavailable", "message": MESSAGE, "retry_after_seconds": RETRY_AFTER_SECONDS}},
            status=503,
        )
    else:
        response = HttpResponse(render_to_string("database_unavailable.html", {"message": MESSAGE}), status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def discard_broken_connections() -> None:
    """Close the connections whose last query failed and that no longer answer, so the next use reconnects."""
    for connection in connections.all(initialized_only=True):
        if connection.in_atomic_block:
            continue
        try:
            connection.close_if_unusable_or_obsolete()
        except DATABASE_ERRORS:
            connection.close()


RETRY_ATTRIBUTE = "retry_after_lost_connection"
V = TypeVar("V")


def retry_after_lost_connection(*methods: str) -> Callable[[V], V]:
    """Declare that a view (function or class) may run these unsafe methods again after its database connection
    broke: a second run must change nothing that a first, interrupted one stored."""

    def mark(view: V) -> V:
        setattr(view, RETRY_ATTRIBUTE, frozenset(method.upper() for method in methods))
        return view

    return mark


def may_run_again(request: HttpRequest, view: Callable[..., HttpResponse]) -> bool:
    if request.method in SAFE_METHODS:
        return True
    view_class = getattr(view, "cls", None) or getattr(view, "view_class", None)  # DRF / Django class views
    declared = getattr(view, RETRY_ATTRIBUTE, None) or getattr(view_class, RETRY_ATTRIBUTE, frozenset())
    return request.method in declared


class DatabaseUnavailableMiddleware:
    """Retry a read once on a fresh connection when its connection broke; otherwise answer 503."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view: Callable[..., HttpResponse], *args: object) -> None:
        """Remember the user as the view received it: DRF replaces request.user with the user it authenticated
        (a token's), and a second run must start like the first, or DRF's session authenticator would take that
        user and ask for a CSRF token."""
        request._user_before_view = getattr(request, "user", None)  # type: ignore[attr-defined]

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, DATABASE_ERRORS):
            return None
        discard_broken_connections()
        match = request.resolver_match
        if match is not None and may_run_again(request, match.func):
            for _field, uploads in request.FILES.lists():  # a first run read them
                for upload in uploads:
                    upload.seek(0)
            if getattr(request, "_user_before_view", None) is not None:
                request.user = request._user_before_view  # type: ignore[attr-defined]
            try:
                response = match.func(request, *match.args, **match.kwargs)
            except DATABASE_ERRORS as again:
                exception = again
                discard_broken_connections()
            else:
                logger.info(
                    "%s %s: database error (%s); answered on a fresh connection",
                    request.method,
                    request.path,
                    exception,
                )
                return response
        logger.warning("%s %s: database unavailable (%s); answered 503", request.method, request.path, exception)
        return database_unavailable_response(request)
