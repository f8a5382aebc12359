"""The staff pages (duplicate review, pairs, decision log, trash, calibration and thresholds) for everyone
else: a signed-in non-staff user gets a 403 page saying staff access is needed, with a way back to the
library; a visitor who is not signed in goes to the sign-in page; staff get the page."""

from __future__ import annotations

import pytest
from django.test import Client

from duplicates.models import DuplicateGroup, DuplicatePair
from tests.duplicates.conftest import make_groups

pytestmark = pytest.mark.django_db


@pytest.fixture
def review_urls() -> dict[str, list[str]]:
    """A group of three real (made) photos with its pairs: the pages and the actions that act on them."""
    group = make_groups([3], seed=510)[0]
    pair = DuplicatePair.objects.order_by("id").first()
    assert pair is not None
    pages = [
        "/duplicates/",
        "/duplicates/pairs/",
        f"/duplicates/{pair.pk}/",
        "/duplicates/decisions/",
        "/duplicates/calibration/",
        "/trash/",
    ]
    actions = [
        f"/duplicates/groups/{group.pk}/resolve/",
        f"/duplicates/{pair.pk}/resolve/",
        "/duplicates/calibration/1/apply/",
        "/duplicates/thresholds/undo/",
        f"/trash/{group.members.first().image_id}/restore/",
    ]
    return {"pages": pages, "actions": actions}


def test_signed_in_non_staff_get_a_403_page_that_says_staff_access_is_needed(
    web: Client, staff_web: Client, review_urls
):
    for url in review_urls["pages"]:
        response = web.get(url)
        assert response.status_code == 403, url
        html = response.content.decode()
        assert 'id="error-403"' in html, url
        assert "Staff access is needed" in html
        assert '<a class="btn primary" href="/">Go to the library</a>' in html
        assert "imgsim.css" in html  # the site's own page, not Django's bare one
        assert "ana" in html  # says who is signed in
    for url in review_urls["actions"]:
        assert web.post(url, {"action": "keep_all"}).status_code == 403, url
    group = DuplicateGroup.objects.get()
    assert group.status == DuplicateGroup.Status.PENDING  # nothing was decided
    assert not DuplicatePair.objects.exclude(review_status="pending").exists()
    for url in review_urls["pages"]:
        assert staff_web.get(url).status_code == 200, url


def test_visitors_who_are_not_signed_in_go_to_the_sign_in_page(client: Client, review_urls):
    for url in review_urls["pages"]:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"] == f"/accounts/login/?next={url}", url
