"""Issue 7 point 9: the duplicates API is staff-only like the duplicates web pages, except check-before-upload."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from duplicates.models import DuplicateDecision, DuplicatePair
from duplicates.services.pair_review import duplicate_pair_resolve
from gallery.services import image_create
from tests.images import photo_jpeg

pytestmark = pytest.mark.django_db


@pytest.fixture
def decided_pair(staff):
    """A pair with a logged decision (the reviewer's name is in the log)."""
    a = image_create(data=photo_jpeg(1), original_name="a.jpg").image
    b = image_create(data=photo_jpeg(2), original_name="secret-b.jpg").image
    pair = DuplicatePair.objects.create(
        image_a=a, image_b=b, similarity=0.97, kind=DuplicatePair.Kind.NEAR_DUPLICATE, evidence={}
    )
    decision = duplicate_pair_resolve(pair=pair, action="not_duplicate", user=staff, source="api")
    pair.refresh_from_db()
    return pair, decision


def review_urls(pair: DuplicatePair, decision: DuplicateDecision) -> list[tuple[str, str]]:
    return [
        ("get", "/api/duplicates/"),
        ("get", f"/api/duplicates/?image={pair.image_a_id}"),
        ("get", f"/api/duplicates/{pair.pk}/"),
        ("post", f"/api/duplicates/{pair.pk}/resolve/"),
        ("post", f"/api/duplicates/{pair.pk}/undo/"),
        ("get", "/api/duplicates/decisions/"),
        ("get", f"/api/duplicates/decisions/{decision.pk}/"),
        ("post", f"/api/duplicates/decisions/{decision.pk}/undo/"),
    ]


def test_plain_users_cannot_read_or_change_the_review(api, decided_pair):
    pair, decision = decided_pair
    for method, url in review_urls(pair, decision):
        response = getattr(api, method)(url, {"action": "confirm"} if method == "post" else None, format="json")
        assert response.status_code == 403, url
        assert response.json()["error"]["code"] == "permission_denied", url
        assert b"sam" not in response.content
        assert b"secret-b" not in response.content
    pair.refresh_from_db()
    assert pair.review_status == "not_duplicate"
    assert DuplicateDecision.objects.count() == 1


def test_anonymous_clients_are_asked_to_sign_in(decided_pair):
    pair, decision = decided_pair
    for method, url in review_urls(pair, decision):
        assert getattr(APIClient(), method)(url).status_code in (401, 403), url


def test_staff_read_the_review(staff_api, decided_pair):
    pair, _decision = decided_pair
    assert staff_api.get("/api/duplicates/?status=all").json()["count"] == 1
    assert staff_api.get(f"/api/duplicates/{pair.pk}/").status_code == 200
    log = staff_api.get("/api/duplicates/decisions/").json()
    assert log["count"] == 1


@pytest.mark.ml
def test_check_before_upload_stays_open_to_signed_in_users(api):
    response = api.post(
        "/api/duplicates/check/", {"file": SimpleUploadedFile("mine.jpg", photo_jpeg(3))}, format="multipart"
    )
    assert response.status_code == 200, response.content
