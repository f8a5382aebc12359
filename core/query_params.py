"""Integer query parameters, read one way everywhere: ASCII digits within bounds, else a 400 naming the parameter.

str.isdigit() accepts "²", int() accepts " 1", "1_0" and other scripts' digits, and neither has an upper bound:
a number no database integer holds fails inside the query as a 500. Views read an integer parameter with
query_int; serializers that read a query string use WholeNumberField, which parses the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, overload

from django.core.exceptions import BadRequest
from rest_framework import serializers

MAX_DB_INTEGER = 2**63 - 1  # the largest value of a 64-bit database integer (ids, counts)


class InvalidQueryParameter(BadRequest):
    """A parameter that is not a whole number in its range.

    A BadRequest, so Django answers it with the site's 400 page (imgsim_site.error_handlers); the API's
    exception handler answers it as a 400 in the JSON error shape with the parameter among the fields.
    """

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter
        self.message = message


def whole_number(value: str, *, name: str, minimum: int = 0, maximum: int = MAX_DB_INTEGER) -> int:
    """`value` as an int when it is ASCII digits only (no sign, space, point or exponent) in [minimum, maximum]."""
    digits = value.lstrip("0") or "0"
    # Digits are counted before int(): int() refuses (ValueError) strings of more than 4300 digits.
    if value.isascii() and value.isdigit() and len(digits) <= len(str(maximum)):
        number = int(digits)
        if minimum <= number <= maximum:
            return number
    shown = value if len(value) <= 24 else f"{value[:24]}…"
    message = f"{name} must be a whole number from {minimum} to {maximum} (digits only), got {shown!r}."
    raise InvalidQueryParameter(name, message)


@overload
def query_int(
    params: Mapping[str, Any], name: str, *, default: int, minimum: int = 0, maximum: int = MAX_DB_INTEGER
) -> int: ...


@overload
def query_int(
    params: Mapping[str, Any], name: str, *, default: None = None, minimum: int = 0, maximum: int = MAX_DB_INTEGER
) -> int | None: ...


def query_int(
    params: Mapping[str, Any],
    name: str,
    *,
    default: int | None = None,
    minimum: int = 0,
    maximum: int = MAX_DB_INTEGER,
) -> int | None:
    """The parameter `name` of a query string (request.GET, query_params) as an int, `default` when it is
    absent or empty (an HTML form sends an empty field); anything else raises InvalidQueryParameter."""
    value = params.get(name, "")
    if value == "":
        return default
    return whole_number(str(value), name=name, minimum=minimum, maximum=maximum)


class WholeNumberField(serializers.IntegerField):
    """A serializer's integer parsed as query_int parses it; bounds default to 0 and MAX_DB_INTEGER."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 0)
        kwargs.setdefault("max_value", MAX_DB_INTEGER)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, int) and not isinstance(data, bool):
            data = str(data)  # a JSON number: the same bounds
        if not isinstance(data, str):
            self.fail("invalid")
        minimum = 0 if self.min_value is None else self.min_value
        maximum = MAX_DB_INTEGER if self.max_value is None else self.max_value
        try:
            return whole_number(data, name=self.field_name, minimum=minimum, maximum=maximum)
        except InvalidQueryParameter as error:
            raise serializers.ValidationError(error.message, code="invalid") from None
