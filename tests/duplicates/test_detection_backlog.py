"""The detection backlog: images awaiting duplicate detection are counted in GET /api/duplicates/detection/ and
on the review page, with an estimate from the recent pace, and the page does not say "no groups" as if
finished while detection runs (stored vectors, no model)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from duplicates.models import DetectionCheck
from duplicates.selectors import detection as detection_selectors
from duplicates.selectors.detection import detection_backlog, detection_settings_key
from duplicates.services.detection import duplicate_detection_run
from tests.search.test_library_view import synthetic_library

pytestmark = pytest.mark.django_db

API = "/api/duplicates/detection/"


@pytest.fixture(autouse=True)
def _counted_each_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(detection_selectors, "BACKLOG_CACHE_SECONDS", 0)


def test_backlog_is_shown_while_images_await_detection_and_gone_after(staff_web, api):
    synthetic_library(6, seed=5)
    state = api.get(API).json()
    assert state["waiting"] == 6
    assert state["done"] is False
    assert state["seconds_left"] is None  # nothing checked lately: no estimate
    assert state["summary"] == "Still checking 6 photos for duplicates."
    page = staff_web.get("/duplicates/").content.decode()
    assert "Still checking 6 photos for duplicates." in page
    assert "No pending groups yet: duplicate detection is still comparing new photos" in page
    assert "<p>No pending duplicate groups.</p>" not in page

    duplicate_detection_run()
    state = api.get(API).json()
    assert state["waiting"] == 0
    assert state["done"] is True
    page = staff_web.get("/duplicates/").content.decode()
    assert "Still checking" not in page
    assert "<p>No pending duplicate groups.</p>" in page


def test_estimate_comes_from_the_checks_of_the_last_minutes():
    ids = sorted(synthetic_library(150, seed=6))
    key, now = detection_settings_key(), timezone.now()
    # 60 checks over the last two minutes (0.5 a second); one older check does not count towards the pace.
    DetectionCheck.objects.bulk_create(
        DetectionCheck(image_id=pk, settings_key=key, checked_at=now - timedelta(seconds=120 - 2 * n))
        for n, pk in enumerate(ids[:60])
    )
    DetectionCheck.objects.create(image_id=ids[60], settings_key=key, checked_at=now - timedelta(hours=1))
    backlog = detection_backlog()
    assert backlog.waiting == 89
    assert backlog.per_minute == pytest.approx(30, rel=0.02)
    assert backlog.seconds_left == pytest.approx(178, abs=3)
    assert backlog.summary == "Still checking 89 photos for duplicates, about 3 minutes left."

    # Checks under other settings (before a threshold change) neither count as done nor set the pace.
    DetectionCheck.objects.filter(image_id__in=ids[:60]).update(settings_key="old-settings")
    assert detection_backlog().waiting == 149
    assert detection_backlog().seconds_left is None


def test_the_count_is_shared_for_a_few_seconds(monkeypatch, api):
    monkeypatch.setattr(detection_selectors, "BACKLOG_CACHE_SECONDS", 60)
    synthetic_library(2, seed=7)
    assert api.get(API).json()["waiting"] == 2
    synthetic_library(3, seed=8, start=10)
    assert api.get(API).json()["waiting"] == 2  # the pages polling it share one count
