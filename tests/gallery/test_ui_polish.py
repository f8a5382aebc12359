"""Issue 12's polish list through the test client: error pages, favicon, library filters/sorting/labels,
the image page's preview, zoom and camera name, and the upload page's no-JavaScript messages."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import RequestFactory
from django.views.defaults import server_error
from PIL import Image as PILImage

from gallery.models import Image
from tests.images import encode, jpeg_with_rating, photo_jpeg, shared_path

pytestmark = pytest.mark.django_db


def upload(web, name, data):
    return web.post("/upload/", {"files": [SimpleUploadedFile(name, data, "image/jpeg")]})


def test_unknown_page_is_a_styled_404_with_a_way_back(web):
    response = web.get("/no-such-page/")
    assert response.status_code == 404
    html = response.content.decode()
    assert 'id="error-404"' in html
    assert "imgsim.css" in html
    assert 'href="/"' in html


def test_server_error_page_is_styled_and_needs_no_context():
    response = server_error(RequestFactory().get("/"))
    assert response.status_code == 500
    html = response.content.decode()
    assert 'id="error-500"' in html
    assert "imgsim.css" in html


def test_favicon_is_linked_and_the_ico_path_redirects_to_it(web):
    assert 'rel="icon" href="/static/favicon.svg"' in web.get("/").content.decode()
    response = web.get("/favicon.ico")
    assert response.status_code == 301
    assert response["Location"] == "/static/favicon.svg"


@pytest.mark.ml
def test_library_filters_are_labelled_and_tab_counts_follow_them(web, committed):
    committed(upload, web, "rated.jpg", jpeg_with_rating(31, 5))
    committed(upload, web, "plain.jpg", photo_jpeg(32))
    committed(upload, web, "grey.png", encode(PILImage.new("RGB", (200, 200), "grey"), "PNG"))
    html = web.get("/").content.decode()
    for field in ("id_rating", "id_q", "id_sort"):
        assert f'<label class="field" for="{field}">' in html
    assert ">All 3<" in html
    assert "Rejected 1<" in html
    narrowed = web.get("/?rating=4%2B").content.decode()
    assert ">All 1<" in narrowed
    assert "Indexed 1<" in narrowed
    assert "Rejected 0<" in narrowed
    assert "?rating=4%2B&status=rejected" in narrowed  # the tabs keep the other filters


def test_rejections_read_as_words_not_codes(web, committed):
    committed(upload, web, "grey.png", encode(PILImage.new("RGB", (200, 200), "grey"), "PNG"))
    html = web.get("/").content.decode()
    assert ">Solid colour<" in html
    assert ">solid_color<" not in html


@pytest.mark.ml
def test_empty_library_and_empty_filter_say_different_things(web, committed):
    assert 'id="empty-library"' in web.get("/").content.decode()
    committed(upload, web, "plain.jpg", photo_jpeg(32))
    html = web.get("/?rating=5").content.decode()
    assert 'id="empty-filter"' in html
    assert 'id="empty-library"' not in html
    assert "The library has 1 image." in html


@pytest.mark.ml
def test_sorting_by_rating_and_date_taken(web, committed):
    committed(upload, web, "three.jpg", jpeg_with_rating(41, 3))
    committed(upload, web, "five.jpg", jpeg_with_rating(42, 5))
    committed(upload, web, "unrated.jpg", photo_jpeg(43))
    Image.objects.filter(original_name="three.jpg").update(taken_at=datetime(2020, 1, 1, tzinfo=UTC))
    Image.objects.filter(original_name="unrated.jpg").update(taken_at=datetime(2024, 1, 1, tzinfo=UTC))

    def order(query):
        return re.findall(r'<span class="name">([^<]+)</span>', web.get(f"/?sort={query}").content.decode())

    assert order("rating") == ["five.jpg", "three.jpg", "unrated.jpg"]  # unrated last
    assert order("taken") == ["unrated.jpg", "three.jpg", "five.jpg"]  # no date taken: last
    assert order("taken_asc") == ["three.jpg", "unrated.jpg", "five.jpg"]
    assert order("added") == ["unrated.jpg", "five.jpg", "three.jpg"]
    assert web.get("/?sort=bogus").status_code == 200  # an unknown order is ignored, not an error


@pytest.mark.ml
def test_thumbnails_reserve_their_space(web, committed):
    committed(upload, web, "wide.jpg", photo_jpeg(44, (640, 320)))
    html = web.get("/").content.decode()
    assert 'decoding="async" width="480" height="240"' in html


@pytest.mark.ml
def test_image_page_large_preview_zoom_and_camera_named_once(web, committed):
    path = shared_path("data", "exif", "immich-test-assets", "files", "metadata", "rating", "mongolels.jpg")
    committed(upload, web, path.name, path.read_bytes())
    image = Image.objects.get()
    assert (image.camera_make, image.camera_model) == ("Canon", "Canon EOS 500D")
    html = web.get(f"/images/{image.pk}/").content.decode()
    assert '<dd id="camera">Canon EOS 500D</dd>' in html
    assert f"/images/{image.pk}/preview/large/" in html
    assert f'data-full="/images/{image.pk}/file/"' in html  # a JPEG zooms to the original itself
    preview = web.get(f"/images/{image.pk}/preview/large/")
    assert preview.status_code == 200
    assert preview["Content-Type"] == "image/webp"
    with PILImage.open(io.BytesIO(preview.content)) as picture:
        assert max(picture.size) == min(1600, max(image.width, image.height))
    assert web.get(f"/images/{image.pk}/preview/huge/").status_code == 404
    assert web.get("/images/999999/preview/large/").status_code == 404


@pytest.mark.ml
def test_tiff_zooms_to_a_large_webp(web, committed):
    committed(upload, web, "scan.tiff", encode(PILImage.open(io.BytesIO(photo_jpeg(45, (900, 600)))), "TIFF"))
    image = Image.objects.get()
    assert f'data-full="/images/{image.pk}/preview/full/"' in web.get(f"/images/{image.pk}/").content.decode()
    with PILImage.open(io.BytesIO(web.get(f"/images/{image.pk}/preview/full/").content)) as picture:
        assert picture.size == (900, 600)


def test_upload_fallback_says_truncated_in_words(web):
    truncated = photo_jpeg(46, (640, 480))[:5000]
    response = upload(web, "cut.jpg", truncated)
    assert response.status_code == 400
    html = response.content.decode()
    assert "damaged or incomplete" in html
    assert "image file is truncated" not in html  # Pillow's own words stay out of the page
    assert Image.objects.count() == 0
