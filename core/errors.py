"""The one error type services raise for a request they refuse: a code, a sentence and an HTTP status."""

from __future__ import annotations


class ServiceError(Exception):
    """A refusal that any caller can show as it is: code for machines, message for people, status for HTTP.

    The API's exception handler turns it into the JSON error shape; web views show the message.
    """

    default_status = 400

    def __init__(self, code: str, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = self.default_status if status is None else status
