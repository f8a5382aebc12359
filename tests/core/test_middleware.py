"""A database connection dropped under a request: reads and uploads run again on a fresh connection, other
writes get a clear 503 and change nothing. On PostgreSQL the connection is really terminated
(pg_terminate_backend from a second connection); on SQLite the driver's error is simulated at the same point."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import OperationalError, connection
from django.test import Client, RequestFactory

from gallery.models import Image
from imgsim_site.error_handlers import server_error
from tests.images import shared_path
from tests.imgsim_site.test_settings import settings_in_subprocess

pytestmark = pytest.mark.django_db(transaction=True)

PHOTO = ("distractors-dev", "train", "100075.jpg")


def photo_upload() -> SimpleUploadedFile:
    return SimpleUploadedFile("beach.jpg", shared_path("data", *PHOTO).read_bytes(), "image/jpeg")


def terminate_own_backend() -> None:
    """Ask the server, from a second connection, to drop the connection this request is using."""
    pid = connection.connection.info.backend_pid
    params = connection.get_connection_params()
    with psycopg.connect(**{k: v for k, v in params.items() if k != "cursor_factory"}, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])


@contextlib.contextmanager
def connection_dropped_at(sql_start: str, *, times: int = 1) -> Iterator[list[str]]:
    """Drop the request's database connection just before the first `times` queries that start with sql_start."""
    dropped: list[str] = []

    def wrapper(execute, sql, params, many, context):
        if len(dropped) < times and sql.lstrip().upper().startswith(sql_start.upper()):
            dropped.append(sql)
            if connection.vendor == "postgresql":
                terminate_own_backend()
            else:
                raise OperationalError("disk I/O error (simulated: the database went away)")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        yield dropped


def stored_files(settings) -> list[str]:
    root = settings.MEDIA_ROOT
    return [str(path) for path in root.rglob("*") if path.is_file()] if root.exists() else []


def test_persistent_connections_are_health_checked(tmp_path):
    # The suite itself closes connections after each request (tests/conftest.py), so read the settings a
    # fresh production process gets.
    config = settings_in_subprocess(IMGSIM_VAR_DIR=str(tmp_path), DATABASE_URL="postgres://u:p@db.example/imgsim")
    assert config["db"]["CONN_HEALTH_CHECKS"] is True
    assert config["db"]["CONN_MAX_AGE"] == 60
    tuned = settings_in_subprocess(
        IMGSIM_VAR_DIR=str(tmp_path), DATABASE_URL="postgres://u:p@db.example/imgsim", IMGSIM_DB_CONN_MAX_AGE="5"
    )
    assert tuned["db"]["CONN_MAX_AGE"] == 5


@pytest.mark.ml
def test_a_connection_dropped_between_requests_is_replaced(web, api):
    api.post("/api/images/", {"file": photo_upload()}, format="multipart")
    assert web.get("/").status_code == 200
    if connection.vendor == "postgresql":
        connection.ensure_connection()
        terminate_own_backend()  # the kept connection dies while idle (a database restart, an administrator)
    response = web.get("/")
    assert response.status_code == 200
    assert "beach.jpg" in response.content.decode()


@pytest.mark.ml
def test_api_read_is_answered_on_a_fresh_connection(api):
    api.post("/api/images/", {"file": photo_upload()}, format="multipart")

    with connection_dropped_at('SELECT "gallery_image"') as dropped:
        response = api.get("/api/images/")

    assert dropped, "the drop was never triggered"
    assert response.status_code == 200, response.content
    assert [item["original_name"] for item in response.json()["results"]] == ["beach.jpg"]


@pytest.mark.ml
def test_web_page_read_is_answered_on_a_fresh_connection(web, api):
    api.post("/api/images/", {"file": photo_upload()}, format="multipart")

    with connection_dropped_at('SELECT "gallery_image"') as dropped:
        response = web.get("/")

    assert dropped
    assert response.status_code == 200
    assert "beach.jpg" in response.content.decode()


@pytest.mark.ml
def test_read_that_fails_twice_is_a_json_503_on_the_api(api):
    api.post("/api/images/", {"file": photo_upload()}, format="multipart")

    with connection_dropped_at('SELECT "gallery_image"', times=2) as dropped:
        response = api.get("/api/images/")

    assert len(dropped) == 2
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.json()["error"]["code"] == "database_unavailable"
    assert api.get("/api/images/").status_code == 200  # and the next request works


@pytest.mark.ml
def test_upload_interrupted_by_a_dropped_connection_is_run_again_and_stored_once(api, settings):
    with connection_dropped_at('INSERT INTO "gallery_image"') as dropped:
        response = api.post("/api/images/", {"file": photo_upload()}, format="multipart")

    assert dropped
    assert response.status_code == 201, response.content
    assert response.json()["outcome"] == "accepted"
    image = Image.objects.get()
    assert image.original_name == "beach.jpg"
    # The interrupted first run removed its files: only this image's original and thumbnail are stored.
    assert sorted(stored_files(settings)) == sorted(
        str(settings.MEDIA_ROOT / name) for name in (image.file.name, image.thumbnail.name)
    )


@pytest.mark.ml
def test_upload_with_a_token_interrupted_is_run_again_with_the_same_authentication(user):
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    client = APIClient(enforce_csrf_checks=True)  # as a real client: a session-authenticated POST needs CSRF
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    with connection_dropped_at('INSERT INTO "gallery_image"') as dropped:
        response = client.post("/api/images/", {"file": photo_upload()}, format="multipart")

    assert dropped
    assert response.status_code == 201, response.content  # not 403 "CSRF cookie not set"
    assert Image.objects.get().uploaded_by == user


@pytest.mark.ml
def test_upload_that_fails_twice_is_503_and_stores_nothing(api, settings):
    with connection_dropped_at('INSERT INTO "gallery_image"', times=2) as dropped:
        response = api.post("/api/images/", {"file": photo_upload()}, format="multipart")

    assert len(dropped) == 2
    assert response.status_code == 503
    body = response.json()
    assert body["error"]["code"] == "database_unavailable"
    assert "nothing of this request was stored" in body["error"]["message"]
    assert Image.objects.count() == 0
    assert stored_files(settings) == []
    # Sent again, it is stored once.
    again = api.post("/api/images/", {"file": photo_upload()}, format="multipart")
    assert again.status_code == 201
    assert Image.objects.count() == 1


@pytest.mark.ml
def test_web_upload_form_interrupted_once_is_stored(web):
    with connection_dropped_at('INSERT INTO "gallery_image"') as dropped:
        response = web.post("/upload/", {"files": [photo_upload()]})

    assert dropped
    assert response.status_code == 200
    assert Image.objects.count() == 1


def test_web_upload_form_interrupted_twice_is_a_friendly_503_page(web, settings):
    with connection_dropped_at('INSERT INTO "gallery_image"', times=2) as dropped:
        response = web.post("/upload/", {"files": [photo_upload()]})

    assert len(dropped) == 2
    assert response.status_code == 503
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert "Back in a moment" in page
    assert "Traceback" not in page
    assert Image.objects.count() == 0
    assert stored_files(settings) == []


@pytest.mark.ml
def test_a_write_not_declared_repeatable_is_503_and_changes_nothing(api, staff_api, settings):
    image_id = api.post("/api/images/", {"file": photo_upload()}, format="multipart").json()["image"]["id"]
    assert staff_api.delete(f"/api/images/{image_id}/").status_code == 204  # to the trash: purged from there
    files_before = sorted(stored_files(settings))

    with connection_dropped_at('DELETE FROM "gallery_image"') as dropped:
        response = staff_api.post(f"/api/trash/{image_id}/purge/")

    assert len(dropped) == 1  # not run a second time
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "database_unavailable"
    assert Image.objects.filter(pk=image_id).exists()
    assert sorted(stored_files(settings)) == files_before


def test_database_error_outside_a_view_is_a_503_too():
    request = RequestFactory().get("/api/images/")
    try:
        raise OperationalError("server closed the connection unexpectedly")
    except OperationalError:
        response = server_error(request)
    assert response.status_code == 503
    assert response["Retry-After"] == "5"


def test_other_errors_stay_a_500(settings):
    request = RequestFactory().get("/")
    try:
        raise ValueError("a bug")
    except ValueError:
        response = server_error(request)
    assert response.status_code == 500


def test_a_real_500_still_is_one(user):
    client = Client(raise_request_exception=False)
    client.force_login(user)
    assert client.get("/images/999999/").status_code == 404
