"""A form returns to the page it came from, and never to another site."""

from __future__ import annotations

import pytest
from django.test import RequestFactory

from core.redirects import redirect_back


@pytest.mark.parametrize(
    ("posted", "expected"),
    [
        ("/duplicates/?kind=similar&after=4", "/duplicates/?kind=similar&after=4"),
        ("/images/7/", "/images/7/"),
        ("https://evil.example/", "/fallback/"),
        ("//evil.example/duplicates/", "/fallback/"),
        ("/\\evil.example/", "/fallback/"),
        ("javascript:alert(1)", "/fallback/"),
        ("", "/fallback/"),
    ],
)
def test_redirect_back_stays_on_this_site(posted, expected):
    request = RequestFactory().post("/duplicates/groups/1/resolve/", {"next": posted})
    assert redirect_back(request, "/fallback/").url == expected
