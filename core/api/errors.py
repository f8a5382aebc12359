"""One error shape for the API: {"error": {"code": ..., "message": ...}} plus DRF's field details."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler

from core.api.throttles import RateRefused
from core.errors import ServiceError
from core.query_params import InvalidQueryParameter
from core.request_limits import request_limit_error


def error_response(code: str, message: str, *, http_status: int, **extra: Any) -> Response:
    return Response({"error": {"code": code, "message": message, **extra}}, status=http_status)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Service errors keep their own code and status; DRF's errors get a code and a readable message too."""
    if isinstance(exc, ServiceError):
        return error_response(exc.code, exc.message, http_status=exc.status)
    # Django's refusals of a malformed or oversized body (our streaming caps, too many files or fields,
    # an oversized field) would otherwise escape DRF and become Django's bare HTML 400 page.
    refused = request_limit_error(exc)
    if refused is not None:
        code, message, http_status = refused
        return error_response(code, message, http_status=http_status)
    # A query parameter that is not a whole number in range: a 400 naming it, as a serializer's field error is.
    if isinstance(exc, InvalidQueryParameter):
        exc = exceptions.ValidationError({exc.parameter: [exc.message]})
    # Django's own 404 / 403 (get_object_or_404 in a view) get the same shape as DRF's.
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(*exc.args)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(*exc.args)
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        detail = response.data
        response.data = {"error": {"code": "invalid", "message": _first_message(detail), "fields": detail}}
    elif isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else "error"
        response.data = {"error": {"code": code, "message": str(exc.detail)}}
        if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
            response.data["error"]["retry_after_seconds"] = int(exc.wait)
        if isinstance(exc, RateRefused):
            response.data["error"]["left"] = exc.left
    return response


def _first_message(detail: Any) -> str:
    if isinstance(detail, dict):
        for field, value in detail.items():
            inner = _first_message(value)
            return inner if field == "non_field_errors" else f"{field}: {inner}"
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    return str(detail)
