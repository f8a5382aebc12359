"""Request body caps enforced while the body streams in, not after it has been spooled to disk.

Three layers, all driven by settings:
* RequestLimitMiddleware refuses a request whose declared CONTENT_LENGTH is over IMGSIM_MAX_REQUEST_BYTES
  before a byte is read, and parses multipart bodies early so a web form can show a limit as a form error
  (its view is marked with `shows_request_limit_errors`) instead of Django's bare 400 page;
* UploadLimitHandler (first in FILE_UPLOAD_HANDLERS) counts every file's bytes as they arrive and aborts
  the parse as soon as one file passes IMGSIM_MAX_UPLOAD_BYTES or the body passes IMGSIM_MAX_REQUEST_BYTES;
* Django's own DATA_UPLOAD_MAX_MEMORY_SIZE / DATA_UPLOAD_MAX_NUMBER_FIELDS / _FILES for form fields.

Every refusal is a RequestLimitExceeded (or one of Django's SuspiciousOperation errors), which the API's
exception handler turns into its JSON error shape via `request_limit_error`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation, TooManyFieldsSent, TooManyFilesSent
from django.core.files.uploadhandler import FileUploadHandler
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import Resolver404, resolve

ViewFunc = TypeVar("ViewFunc", bound=Callable[..., HttpResponse])

API_PREFIX = "/api/"


class RequestLimitExceeded(RequestDataTooBig):
    """A body over one of our caps; a RequestDataTooBig, so Django and DRF treat it as a 4xx."""

    def __init__(self, code: str, message: str, *, status: int = 413) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def _megabytes(size: int) -> str:
    return f"{size / 1_048_576:.0f} MB" if size >= 1_048_576 else f"{size / 1024:.0f} KB"


def request_too_large(size: int | None) -> RequestLimitExceeded:
    limit = settings.IMGSIM_MAX_REQUEST_BYTES
    what = f" ({_megabytes(size)})" if size else ""
    return RequestLimitExceeded(
        "request_too_large",
        f"The request is too large{what}; the limit is {_megabytes(limit)} per request. Send fewer files per request.",
    )


def file_too_large(name: str) -> RequestLimitExceeded:
    return RequestLimitExceeded(
        "file_too_large",
        f"{name or 'The file'} is too large; the limit is {_megabytes(settings.IMGSIM_MAX_UPLOAD_BYTES)} per file.",
    )


def request_limit_error(error: Exception) -> tuple[str, str, int] | None:
    """(code, message, HTTP status) for a body limit or malformed-request error, None for anything else."""
    if isinstance(error, RequestLimitExceeded):
        return error.code, error.message, error.status
    if isinstance(error, RequestDataTooBig):
        return (
            "request_too_large",
            f"The form fields are too large; the limit is {_megabytes(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)}.",
            413,
        )
    if isinstance(error, TooManyFilesSent):
        return (
            "too_many_files",
            f"Too many files in one request; the limit is {settings.DATA_UPLOAD_MAX_NUMBER_FILES}.",
            400,
        )
    if isinstance(error, TooManyFieldsSent):
        return (
            "too_many_fields",
            f"Too many form fields in one request; the limit is {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS}.",
            400,
        )
    if isinstance(error, SuspiciousOperation):
        return "bad_request", "The request is malformed.", 400
    return None


class UploadLimitHandler(FileUploadHandler):
    """Counts file bytes while they stream and stops the parse at the first byte over a cap.

    It passes chunks on untouched to the next handlers (memory, then temporary file), so nothing past
    the cap is ever buffered or written.
    """

    def handle_raw_input(
        self,
        input_data: Any,
        META: dict[str, Any],
        content_length: int,
        boundary: bytes,
        encoding: str | None = None,
    ) -> None:
        if content_length > settings.IMGSIM_MAX_REQUEST_BYTES:
            raise request_too_large(content_length)
        self.request_bytes = 0

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        self.file_bytes = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        self.file_bytes += len(raw_data)
        self.request_bytes = getattr(self, "request_bytes", 0) + len(raw_data)
        if self.file_bytes > settings.IMGSIM_MAX_UPLOAD_BYTES:
            raise file_too_large(self.file_name or "")
        if self.request_bytes > settings.IMGSIM_MAX_REQUEST_BYTES:
            raise request_too_large(None)
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None  # the next handler builds the uploaded file


def shows_request_limit_errors(view: ViewFunc) -> ViewFunc:
    """Mark a web form view that renders request.request_limit_error itself (as a form error, 4xx)."""
    view.shows_request_limit_errors = True  # type: ignore[attr-defined]
    return view


def _error_response(request: HttpRequest, code: str, message: str, status: int) -> HttpResponse:
    if request.path.startswith(API_PREFIX):
        return JsonResponse({"error": {"code": code, "message": message}}, status=status)
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


class RequestLimitMiddleware:
    """Refuse oversized bodies up front; parse form bodies before CSRF so limits become form errors.

    Goes before CsrfViewMiddleware: a form whose body was refused has lost its CSRF field, and a view
    marked with shows_request_limit_errors is called directly to show the refusal (it stores nothing
    and changes nothing for such a request, so skipping the CSRF check is safe).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > settings.IMGSIM_MAX_REQUEST_BYTES and not getattr(
            self._view_for(request), "shows_request_limit_errors", False
        ):
            error = request_too_large(declared)
            return _error_response(request, error.code, error.message, error.status)
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view_func: Callable[..., HttpResponse], view_args: Any, view_kwargs: Any
    ) -> HttpResponse | None:
        if request.method != "POST" or not getattr(view_func, "shows_request_limit_errors", False):
            return None
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
            if declared > settings.IMGSIM_MAX_REQUEST_BYTES:
                raise request_too_large(declared)
            request.POST  # noqa: B018 (parses the body, files included, through the upload handlers)
        except (SuspiciousOperation, ValueError) as error:
            found = request_limit_error(error) if isinstance(error, SuspiciousOperation) else None
            code, message, status = found or ("bad_request", "The request is malformed.", 400)
            request.request_limit_error = RequestLimitExceeded(code, message, status=status)  # type: ignore[attr-defined]
            return view_func(request, *view_args, **view_kwargs)
        return None

    @staticmethod
    def _view_for(request: HttpRequest) -> Callable[..., HttpResponse] | None:
        try:
            return resolve(request.path_info).func
        except Resolver404:
            return None
