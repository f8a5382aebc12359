"""Issue 7 reproductions for hostile requests: fuzzed query strings, oversized bodies, malformed forms.

Every answer is a clear 4xx in the API's JSON error shape (or the right page), never a 500, and nothing
is stored.
"""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from gallery.models import Image
from pipeline.services import image_ingest
from tests.images import photo_jpeg

pytestmark = pytest.mark.django_db

HUGE = "99999999999999999999"


def error_code(response) -> str:
    assert response["Content-Type"] == "application/json", response.content[:200]
    return response.json()["error"]["code"]


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/api/images/?rating=%C2%B2", "rating"),  # "²": str.isdigit() says yes, int() says no
        ("/api/images/?rating=%C2%B2%2B", "rating"),
        ("/api/images/?status=nope", "status"),
        (f"/api/images/?q={'x' * 101}", "q"),
        ("/api/duplicates/?image=%C2%B2", "image"),
        (f"/api/duplicates/?image={HUGE}", "image"),
        ("/api/duplicates/?image=-1", "image"),
        ("/api/duplicates/?kind=cousin", "kind"),
        ("/api/duplicates/?status=everything", "status"),
        ("/api/duplicates/decisions/?pair=%C2%B2", "pair"),
        (f"/api/duplicates/decisions/?pair={HUGE}", "pair"),
    ],
)
def test_bad_filters_are_a_400_naming_the_field(staff_api, url, field):
    response = staff_api.get(url)
    assert response.status_code == 400
    assert error_code(response) == "invalid"
    assert field in response.json()["error"]["fields"]


@pytest.mark.parametrize(
    "url",
    [
        f"/api/images/{HUGE}/",
        f"/api/images/{HUGE}/similar/",
        f"/api/duplicates/{HUGE}/",
        f"/api/duplicates/decisions/{HUGE}/",
    ],
)
def test_huge_ids_are_a_404(staff_api, url):  # odd page numbers: tests/core/test_query_params.py
    response = staff_api.get(url)
    assert response.status_code == 404
    assert error_code(response) == "not_found"


@pytest.mark.parametrize(
    "url", ["/?rating=%C2%B2", f"/?page={HUGE}", f"/images/{HUGE}/", f"/images/{HUGE}/file/", f"/duplicates/{HUGE}/"]
)
def test_web_pages_answer_fuzzed_query_strings(staff_web, url):
    assert staff_web.get(url).status_code in (200, 400, 404)


@pytest.mark.ml
def test_valid_filters_still_filter(api, committed):
    committed(image_ingest, data=photo_jpeg(5), original_name="x.jpg")  # stored, embedded: indexed
    assert api.get("/api/images/?rating=unrated&status=indexed").json()["count"] == 1
    assert api.get("/api/images/?rating=3%2B").json()["count"] == 0
    assert Image.objects.count() == 1


def stored_files(settings) -> list[str]:
    root = settings.MEDIA_ROOT
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()) if root.exists() else []


@pytest.fixture
def buffered_bytes(monkeypatch) -> list[int]:
    """How many file bytes reached the handlers that buffer them (memory or temporary file)."""
    from django.core.files.uploadhandler import MemoryFileUploadHandler, TemporaryFileUploadHandler

    seen: list[int] = []
    for handler in (MemoryFileUploadHandler, TemporaryFileUploadHandler):
        original = handler.receive_data_chunk

        def counting(self, raw_data, start, original=original):
            seen.append(len(raw_data))
            return original(self, raw_data, start)

        monkeypatch.setattr(handler, "receive_data_chunk", counting)
    return seen


def test_a_file_over_the_cap_is_refused_while_it_streams(api, settings, buffered_bytes):
    settings.IMGSIM_MAX_UPLOAD_BYTES = 100_000
    big = photo_jpeg(1) + b"\0" * 3_000_000
    response = api.post("/api/images/", {"file": SimpleUploadedFile("huge.jpg", big)}, format="multipart")
    assert response.status_code == 413
    assert error_code(response) == "file_too_large"
    assert "huge.jpg" in response.json()["error"]["message"]
    assert sum(buffered_bytes) <= 100_000 + 65_536  # at most one chunk past the cap, not the 3 MB
    assert Image.objects.count() == 0
    assert stored_files(settings) == []


def test_several_allowed_files_over_the_request_cap_are_refused(api, settings):
    """The campaign's three 49 MB files in one request, scaled down: each is allowed, together they are not."""
    settings.IMGSIM_MAX_UPLOAD_BYTES = 200_000
    settings.IMGSIM_MAX_REQUEST_BYTES = 300_000
    files = [SimpleUploadedFile(f"{n}.jpg", photo_jpeg(n) + b"\0" * (150_000 - len(photo_jpeg(n)))) for n in range(3)]
    response = api.post("/api/images/", {"files": files}, format="multipart")
    assert response.status_code == 413
    assert error_code(response) == "request_too_large"
    assert Image.objects.count() == 0
    assert stored_files(settings) == []


def test_a_declared_length_over_the_cap_is_refused_before_reading(api, settings):
    response = api.post(
        "/api/images/",
        {"file": SimpleUploadedFile("a.jpg", photo_jpeg(2))},
        format="multipart",
        CONTENT_LENGTH="314572800",
    )
    assert response.status_code == 413
    assert error_code(response) == "request_too_large"
    assert "300 MB" in response.json()["error"]["message"]
    json_body = api.post("/api/duplicates/1/resolve/", {"action": "confirm"}, format="json", CONTENT_LENGTH="314572800")
    assert json_body.status_code == 413
    assert Image.objects.count() == 0


@pytest.mark.parametrize(("url", "field"), [("/upload/", "files"), ("/search/", "file")])
def test_web_forms_show_the_cap_as_a_form_error(web, settings, url, field):
    settings.IMGSIM_MAX_UPLOAD_BYTES = 100_000
    big = SimpleUploadedFile("huge.jpg", photo_jpeg(3) + b"\0" * 500_000)
    response = web.post(url, {field: big})
    assert response.status_code == 413
    page = response.content.decode()
    assert "huge.jpg is too large; the limit is 98 KB per file." in page
    assert "<form" in page
    declared = web.post(url, {field: SimpleUploadedFile("a.jpg", photo_jpeg(4))}, CONTENT_LENGTH="314572800")
    assert declared.status_code == 413
    assert "the limit is 100 MB per request" in declared.content.decode()
    assert Image.objects.count() == 0
    assert stored_files(settings) == []


def test_too_many_files_is_a_json_400(api, settings):
    files = [SimpleUploadedFile(f"{n}.jpg", b"x") for n in range(settings.IMGSIM_MAX_FILES_PER_REQUEST + 1)]
    response = api.post("/api/images/", {"files": files}, format="multipart")
    assert response.status_code == 400
    assert error_code(response) == "too_many_files"
    assert Image.objects.count() == 0


def test_too_many_fields_is_a_json_400(api):
    fields = {f"f{n}": "1" for n in range(1001)}
    response = api.post(
        "/api/images/", {**fields, "file": SimpleUploadedFile("a.jpg", photo_jpeg(5))}, format="multipart"
    )
    assert response.status_code == 400
    assert error_code(response) == "too_many_fields"
    assert Image.objects.count() == 0


def test_an_oversized_text_field_is_a_json_413(api):
    response = api.post("/api/search/", {"k": "1" * 11_000_000}, format="multipart")
    assert response.status_code == 413
    assert error_code(response) == "request_too_large"


def test_an_unknown_api_url_is_a_json_404(api):
    response = api.get("/api/no-such-thing/")
    assert response.status_code == 404
    assert error_code(response) == "not_found"
