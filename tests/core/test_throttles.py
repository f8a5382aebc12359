"""Issue 7 point 4: rate limits count in one shared cache and cover the web forms as well as the API."""

from __future__ import annotations

import itertools
import uuid

import pytest
from django.core.cache import caches
from django.core.cache.backends.db import DatabaseCache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core import cache as core_cache
from core.cache import SharedDatabaseCache
from gallery.models import Image
from tests.images import photo_jpeg

pytestmark = pytest.mark.django_db


@pytest.fixture
def rates(settings):
    def set_rates(upload: str = "10000/hour", search: str = "10000/hour") -> None:
        settings.REST_FRAMEWORK = {
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {"upload": upload, "search": search},
        }

    return set_rates


def upload(client, seed: int):
    return client.post(
        "/api/images/", {"file": SimpleUploadedFile(f"{seed}.jpg", photo_jpeg(seed))}, format="multipart"
    )


def test_the_cache_is_the_database_table_every_worker_reads(settings):
    assert settings.CACHES["default"]["BACKEND"] == "core.cache.SharedDatabaseCache"
    another_worker = DatabaseCache(settings.CACHES["default"]["LOCATION"], {})
    caches["default"].set("shared-probe", 42)
    assert another_worker.get("shared-probe") == 42


def test_api_uploads_over_the_rate_are_refused_across_workers(api, user, rates, settings):
    rates(upload="3/hour")
    assert [upload(api, seed).status_code for seed in range(3)] == [201, 201, 201]
    refused = upload(api, 3)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "throttled"
    assert refused.json()["error"]["retry_after_seconds"] > 0
    # The history is in the shared table, so a second worker process refuses the same user.
    another_worker = DatabaseCache(settings.CACHES["default"]["LOCATION"], {})
    assert len(another_worker.get(f"throttle_upload_{user.pk}")) == 3
    assert Image.objects.count() == 3


def test_the_upload_page_spends_the_same_budget(api, web, rates, settings):
    rates(upload="2/hour")
    assert [upload(api, seed).status_code for seed in range(2)] == [201, 201]
    response = web.post("/upload/", {"files": [SimpleUploadedFile("x.jpg", photo_jpeg(9))]})
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert "Too many uploads for now; try again in" in response.content.decode()
    assert Image.objects.count() == 2


def test_the_search_page_spends_the_same_budget(api, web, rates):
    rates(search="1/hour")
    assert api.post("/api/search/", {}, format="multipart").status_code == 400  # counted, then refused as invalid
    response = web.post("/search/", {"file": SimpleUploadedFile("q.jpg", photo_jpeg(4)), "k": 3})
    assert response.status_code == 429
    assert "Too many searches for now; try again in" in response.content.decode()
    assert api.post("/api/search/", {}, format="multipart").status_code == 429


def test_web_page_views_are_not_throttled(web, rates):
    rates(upload="1/hour", search="1/hour")
    for _ in range(3):
        assert web.get("/upload/").status_code == 200
        assert web.get("/search/").status_code == 200


def test_redis_holds_the_counters_when_configured(api, user, rates, settings):
    url = "redis://127.0.0.1:6379/0"
    prefix = f"imgsim-test-{uuid.uuid4().hex}"
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url, "KEY_PREFIX": prefix}
    }
    cache = caches["default"]
    try:
        cache.get("ping")
    except Exception as error:  # the suite needs the same services as CI
        pytest.fail(f"Redis at {url} is not reachable ({error}); start it (see .ci/run)")
    rates(upload="1/hour")
    try:
        assert upload(api, 1).status_code == 201
        assert upload(api, 2).status_code == 429
        assert len(cache.get(f"throttle_upload_{user.pk}")) == 1
    finally:
        cache.delete(f"throttle_upload_{user.pk}")


@pytest.fixture
def fresh_count(monkeypatch):
    """Number the shared cache's sets from 1, so the next CULL_EVERY - 1 sets are upserts."""
    monkeypatch.setattr(SharedDatabaseCache, "_sets", itertools.count(1))


def test_a_set_is_one_statement_and_every_worker_reads_it(settings, fresh_count):
    cache = caches["default"]
    another_worker = DatabaseCache(settings.CACHES["default"]["LOCATION"], {})
    with CaptureQueriesContext(connection) as first:
        cache.set("probe", [1.5, 2.5], 60)
    with CaptureQueriesContext(connection) as second:
        cache.set("probe", [3.5], 60)  # the key exists now: the same statement updates it
    assert (len(first), len(second)) == (1, 1)
    assert another_worker.get("probe") == [3.5]
    cache.set("forever", "kept", None)
    cache.set("gone", "expired", -1)
    assert (another_worker.get("forever"), another_worker.get("gone", "missing")) == ("kept", "missing")
    assert cache.get_many(["probe", "forever"]) == {"probe": [3.5], "forever": "kept"}


def test_the_table_is_still_culled_every_nth_set(settings, fresh_count, monkeypatch):
    monkeypatch.setattr(core_cache, "CULL_EVERY", 5)
    cache = SharedDatabaseCache(
        settings.CACHES["default"]["LOCATION"], {"OPTIONS": {"MAX_ENTRIES": 10, "CULL_FREQUENCY": 2}}
    )
    for n in range(40):
        cache.set(f"key-{n}", n, 60)
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM imgsim_cache")
        rows = cursor.fetchone()[0]
    # Without the cull all 40 would stay; with it at most MAX_ENTRIES + CULL_EVERY (+1 for the culling set).
    assert rows <= 10 + 5 + 1
    assert cache.get("key-39") == 39
