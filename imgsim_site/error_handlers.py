"""Django's error views, answering in the API's JSON error shape under /api/ and with Django's pages elsewhere.

DRF shapes the errors raised inside API views; these cover what happens outside them: a URL that matches
no route (an id too long for the database, a typo), a refusal by a middleware, a crash, and a database
connection lost outside a view (a 503, see core/middleware.py).
"""

from __future__ import annotations

import sys

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views import defaults

from core.middleware import DATABASE_ERRORS, database_unavailable_response, discard_broken_connections
from core.query_params import InvalidQueryParameter
from core.request_limits import API_PREFIX, request_limit_error


def _json(code: str, message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """A query parameter that is not a number gets the site's page saying which; other refusals (a forged
    Host header...) get the same page without the request, which they may have made unusable."""
    if isinstance(exception, InvalidQueryParameter):
        if request.path.startswith(API_PREFIX):
            return _json("invalid", exception.message, 400)
        return render(request, "400.html", {"message": exception.message}, status=400)
    if not request.path.startswith(API_PREFIX):
        return defaults.bad_request(request, exception)
    code, message, status = request_limit_error(exception) or ("bad_request", "The request is malformed.", 400)
    return _json(code, message, status)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if not request.path.startswith(API_PREFIX):
        return defaults.permission_denied(request, exception)
    return _json("permission_denied", "You do not have permission to perform this action.", 403)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if not request.path.startswith(API_PREFIX):
        return defaults.page_not_found(request, exception)
    return _json("not_found", "Not found.", 404)


def server_error(request: HttpRequest) -> HttpResponse:
    if isinstance(sys.exc_info()[1], DATABASE_ERRORS):  # outside a view (saving the session...): 503 as inside one
        discard_broken_connections()
        return database_unavailable_response(request)
    if not request.path.startswith(API_PREFIX):
        return defaults.server_error(request)
    return _json("server_error", "Something went wrong on our side; it has been logged.", 500)
