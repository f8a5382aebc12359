"""Issue 7 point 4: rate limits count in one shared cache and cover the web forms as well as the API.
Issue 20 points 2 and 3: uploads count files (a request over the limit stores nothing), and counting is atomic
on the database cache and on Redis."""

from __future__ import annotations

import contextlib
import itertools
import threading
import uuid

import pytest
import redis
from django.core.cache import caches
from django.core.cache.backends.db import DatabaseCache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

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
    # The count is a row of the shared table, so a second worker process refuses the same user.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT cache_key FROM imgsim_cache WHERE cache_key LIKE %s", [f"%throttle_upload_user-{user.pk}:%"]
        )
        (stored_key,) = cursor.fetchone()
    another_worker = DatabaseCache(settings.CACHES["default"]["LOCATION"], {})
    assert another_worker.get(stored_key.split(":", 2)[2]) == 3
    assert Image.objects.count() == 3


def test_the_upload_page_spends_the_same_budget(api, web, rates, settings):
    rates(upload="2/hour")
    assert [upload(api, seed).status_code for seed in range(2)] == [201, 201]
    response = web.post("/upload/", {"files": [SimpleUploadedFile("x.jpg", photo_jpeg(9))]})
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert "this request has 1 file, and 0 uploads are left of your 2 per hour" in response.content.decode()
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


def test_redis_holds_the_counters_when_configured(api, rates, redis_stored):
    rates(upload="1/hour")
    assert upload(api, 1).status_code == 201
    assert upload(api, 2).status_code == 429
    assert [int(count) for count in redis_stored().values()] == [1]


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


@pytest.fixture
def redis_stored(settings):
    """The shared cache on Redis (its own key prefix in db 13); calling it gives what is stored there."""
    url = "redis://127.0.0.1:6379/13"
    prefix = f"imgsim-test-{uuid.uuid4().hex}"
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url, "KEY_PREFIX": prefix}
    }
    client = redis.Redis.from_url(url)

    def stored() -> dict[bytes, bytes]:
        return {key: client.get(key) for key in client.scan_iter(f"{prefix}:*")}

    try:
        client.ping()
    except redis.RedisError as error:  # the suite needs the same services as CI
        pytest.fail(f"Redis at {url} is not reachable ({error}); start it (see .ci/run)")
    yield stored
    if keys := list(stored()):
        client.delete(*keys)


@pytest.fixture(params=["database", "redis"])
def shared_cache(request):
    """Each backend the shared cache runs on: the database table (SQLite or PostgreSQL), or Redis."""
    if request.param == "redis":
        request.getfixturevalue("redis_stored")
    yield
    if request.param == "database":
        caches["default"].clear()  # the test database's table: a transactional test leaves its rows


@pytest.fixture
def reads_meet(monkeypatch):
    """Make every worker thread's first cache read wait for the others' (up to 2 s): a count that is read and
    then written back then lets every one of them through. An atomic count does not read this way."""

    def arrange(count: int) -> None:
        backend = type(caches["default"])
        read = backend.get
        meeting = threading.Barrier(count, timeout=2)
        has_read = threading.local()
        has_read.done = True  # the test's own thread does not take part

        def get(cache, key, default=None, version=None):
            value = read(cache, key, default, version)
            if not getattr(has_read, "done", False):
                has_read.done = True
                with contextlib.suppress(threading.BrokenBarrierError):
                    meeting.wait()
            return value

        monkeypatch.setattr(backend, "get", get)

    return arrange


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_at_the_limit_let_exactly_the_limit_through(shared_cache, user, rates, at_once, reads_meet):
    rates(search="5/hour")
    reads_meet(16)

    def search(_: int) -> int:
        client = APIClient()
        client.force_authenticate(user)
        return client.post("/api/search/", {}, format="multipart").status_code  # counted, then 400 (no file)

    statuses = at_once(16, search)
    assert sorted(statuses) == [400] * 5 + [429] * 11


@pytest.mark.django_db(transaction=True)
def test_concurrent_increments_on_the_database_cache_all_count(at_once, reads_meet):
    cache = caches["default"]
    cache.set("hits", 0, 60)
    reads_meet(16)
    at_once(16, lambda _: [cache.incr("hits") for _ in range(5)])
    assert cache.get("hits") == 80


def files(first_seed: int, count: int) -> list[SimpleUploadedFile]:
    return [
        SimpleUploadedFile(f"{seed}.jpg", photo_jpeg(seed, size=(96, 72)))
        for seed in range(first_seed, first_seed + count)
    ]


def test_api_uploads_count_files_and_a_request_over_the_limit_stores_nothing(api, rates):
    rates(upload="5/hour")
    assert api.post("/api/images/", {"files": files(0, 3)}, format="multipart").status_code == 207
    for attempt in range(5):
        refused = api.post("/api/images/", {"files": files(100 + 20 * attempt, 20)}, format="multipart")
        assert refused.status_code == 429
        error = refused.json()["error"]
        assert error["code"] == "throttled"
        assert "this request has 20 files, and 2 uploads are left of your 5 per hour" in error["message"]
        assert error["left"] == 2
        assert int(refused["Retry-After"]) == error["retry_after_seconds"] > 0
    assert Image.objects.count() == 3
    assert api.post("/api/images/", {"files": files(3, 2)}, format="multipart").status_code == 207
    assert upload(api, 9).status_code == 429
    assert Image.objects.count() == 5


def test_the_upload_page_counts_files_too(web, rates):
    rates(upload="2/hour")
    response = web.post("/upload/", {"files": files(0, 3)})
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert "this request has 3 files, and 2 uploads are left of your 2 per hour" in response.content.decode()
    assert Image.objects.count() == 0
    assert web.post("/upload/", {"files": files(0, 2)}).status_code == 200
    assert Image.objects.count() == 2


def test_adding_a_search_query_to_the_library_spends_an_upload(api, web, rates):
    rates(upload="1/hour")
    assert upload(api, 1).status_code == 201
    query = {"file": SimpleUploadedFile("q.jpg", photo_jpeg(2)), "add_to_library": "true"}
    refused = api.post("/api/search/", query, format="multipart")
    assert refused.status_code == 429
    assert refused.json()["error"]["left"] == 0
    page = web.post("/search/", {"file": SimpleUploadedFile("q.jpg", photo_jpeg(2)), "k": 3, "add_to_library": "on"})
    assert page.status_code == 429
    assert "this request has 1 file, and 0 uploads are left of your 1 per hour" in page.content.decode()
    assert Image.objects.count() == 1
