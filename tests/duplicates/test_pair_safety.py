"""A similar pair holds two different photos: no suggestion trashes one of them, only an explicit choice."""

from __future__ import annotations

import pytest

from duplicates.models import DuplicateDecision, DuplicatePair
from gallery.models import Image
from gallery.services import image_create
from tests.images import photo_jpeg

pytestmark = pytest.mark.django_db


@pytest.fixture
def similar_pair() -> DuplicatePair:
    first, second = (
        image_create(data=photo_jpeg(seed, size=(120, 90)), original_name=f"s{seed}.jpg").image for seed in (11, 12)
    )
    return DuplicatePair.objects.create(
        image_a=first,
        image_b=second,
        kind=DuplicatePair.Kind.SIMILAR,
        similarity=0.8,
        evidence={"cosine": 0.8, "phash_distance": 20, "geometric_inliers": None, "same_camera": True},
    )


def test_keep_suggested_on_a_similar_pair_is_refused_and_trashes_nothing(staff_api, similar_pair):
    response = staff_api.post(f"/api/duplicates/{similar_pair.pk}/resolve/", {"action": "keep_suggested"})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "not_same_photo"
    assert not Image.objects.filter(trashed_at__isnull=False).exists()
    assert not DuplicateDecision.objects.exists()
    explicit = staff_api.post(f"/api/duplicates/{similar_pair.pk}/resolve/", {"action": "delete_b"})
    assert explicit.status_code == 200, explicit.content
    assert list(Image.objects.filter(trashed_at__isnull=False).values_list("pk", flat=True)) == [
        similar_pair.image_b_id
    ]


def test_similar_pair_page_offers_an_explicit_choice_and_no_suggestion(staff_web, similar_pair):
    page = staff_web.get(f"/duplicates/{similar_pair.pk}/").content.decode()
    assert 'value="keep_suggested"' not in page
    assert 'value="delete_a"' in page
    assert 'value="delete_b"' in page
    assert "different photos that look alike" in page
