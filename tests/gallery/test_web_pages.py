"""The web UI through the test client: sign-in, upload page (no-JS fallback), gallery, detail, staff actions."""

from __future__ import annotations

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image as PILImage

from duplicates.services.trash import images_trash
from gallery import services
from gallery.models import Image
from search.models import LibraryChange
from tests.images import encode, jpeg_with_rating, photo_jpeg

pytestmark = pytest.mark.django_db


def post_files(web, *files):
    return web.post("/upload/", {"files": list(files)})


def test_pages_need_sign_in(client):
    for url in ["/", "/upload/"]:
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")


def test_sign_in_page_works(client, user):
    assert client.get("/accounts/login/").status_code == 200
    response = client.post("/accounts/login/", {"username": "ana", "password": "pw-ana-12345"})
    assert response.status_code == 302
    assert client.get("/").status_code == 200


def test_upload_page_renders_dropzone(web):
    response = web.get("/upload/")
    assert response.status_code == 200
    assert b'id="dropzone"' in response.content
    assert b"upload.js" in response.content


@pytest.mark.ml
def test_upload_form_fallback_reports_each_outcome(web, committed):
    response = committed(
        post_files,
        web,
        SimpleUploadedFile("sunset.jpg", photo_jpeg(30), "image/jpeg"),
        SimpleUploadedFile("grey.png", encode(PILImage.new("RGB", (200, 200), "grey"), "PNG"), "image/png"),
        SimpleUploadedFile("broken.jpg", b"\xff\xd8\xff garbage", "image/jpeg"),
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "sunset.jpg" in page
    assert "queued for embedding" in page
    assert "grey.png" in page
    assert "solid" in page.lower()
    assert "broken.jpg" in page
    assert Image.objects.count() == 2
    assert Image.objects.get(original_name="sunset.jpg").status == Image.Status.INDEXED


def test_upload_form_with_only_bad_files_answers_4xx(web):
    response = post_files(web, SimpleUploadedFile("x.jpg", b"nope", "image/jpeg"))
    assert response.status_code == 415
    assert Image.objects.count() == 0


@pytest.mark.ml
def test_gallery_shows_thumbnails_badges_and_filters(web, committed):
    committed(post_files, web, SimpleUploadedFile("rated.jpg", jpeg_with_rating(31, 5), "image/jpeg"))
    committed(post_files, web, SimpleUploadedFile("plain.jpg", photo_jpeg(32), "image/jpeg"))
    page = web.get("/").content.decode()
    assert "rated.jpg" in page
    assert "plain.jpg" in page
    assert "★★★★★" in page
    assert "/thumbnail/" in page
    filtered = web.get("/?rating=5").content.decode()
    assert "rated.jpg" in filtered
    assert "plain.jpg" not in filtered


@pytest.mark.ml
def test_gallery_paginates(web, committed, monkeypatch):
    monkeypatch.setattr("gallery.views.GALLERY_PAGE_SIZE", 2)
    for seed in range(33, 38):
        committed(post_files, web, SimpleUploadedFile(f"p{seed}.jpg", photo_jpeg(seed), "image/jpeg"))
    page = web.get("/").content.decode()
    assert "Page 1 of 3" in page
    assert "Page 3 of 3" in web.get("/?page=3").content.decode()


def test_detail_page_explains_a_rejection(web, committed):
    committed(post_files, web, SimpleUploadedFile("tiny.jpg", photo_jpeg(38, (30, 30)), "image/jpeg"))
    image = Image.objects.get()
    page = web.get(f"/images/{image.pk}/").content.decode()
    assert "Rejected: Too small." in page  # a label for people, not the code
    assert image.status_message in page


@pytest.mark.ml
def test_thumbnail_and_original_are_served(web, committed):
    data = photo_jpeg(39)
    committed(post_files, web, SimpleUploadedFile("orig.jpg", data, "image/jpeg"))
    image = Image.objects.get()
    thumb = web.get(f"/images/{image.pk}/thumbnail/")
    assert thumb.status_code == 200
    assert thumb["Content-Type"] == "image/webp"
    original = web.get(f"/images/{image.pk}/file/")
    assert b"".join(original.streaming_content) == data


@pytest.mark.ml
def test_staff_can_accept_a_rejected_image(web, staff_web, committed):
    committed(post_files, web, SimpleUploadedFile("grey.png", encode(PILImage.new("RGB", (200, 200), "grey"), "PNG")))
    image = Image.objects.get()
    assert web.post(f"/images/{image.pk}/retry/").status_code == 403  # non-staff: the 403 page
    assert Image.objects.get().status == Image.Status.REJECTED
    committed(staff_web.post, f"/images/{image.pk}/retry/")
    assert Image.objects.get().status == Image.Status.INDEXED


def test_delete_on_the_image_page_moves_the_image_to_the_trash(staff_web, committed, searchable_upload):
    image = searchable_upload(photo_jpeg(40), "d.jpg")
    form = f'action="/images/{image.pk}/delete/"'
    assert form in staff_web.get(f"/images/{image.pk}/").content.decode()
    response = committed(staff_web.post, f"/images/{image.pk}/delete/", follow=True)
    assert f"Moved #{image.pk} d.jpg to the trash" in response.content.decode()
    image.refresh_from_db()
    assert image.trashed_at is not None  # purged only from the trash
    assert default_storage.exists(image.file.name)
    assert LibraryChange.objects.filter(image_id=image.pk).exists()  # searches drop it
    assert f"/images/{image.pk}/" not in staff_web.get("/").content.decode()
    assert [item["id"] for item in staff_web.get("/api/trash/").json()["results"]] == [image.pk]
    assert form not in staff_web.get(f"/images/{image.pk}/").content.decode()  # in the trash already


def test_upload_page_says_a_copy_of_a_trashed_photo_is_in_the_trash_and_offers_staff_to_restore_it(web, staff_web):
    image = services.image_create(data=photo_jpeg(42), original_name="kept.jpg").image
    images_trash(images=[image], user=None)
    copy = SimpleUploadedFile("copy.jpg", photo_jpeg(42), "image/jpeg")
    page = post_files(web, copy).content.decode()
    assert f'In the trash as <a href="/images/{image.pk}/">#{image.pk}</a>' in page
    assert "A staff member can restore it from the Trash." in page
    assert "in the trash</span>" in page  # the row's badge
    copy.seek(0)
    page = post_files(staff_web, copy).content.decode()
    assert f'<form method="post" action="/trash/{image.pk}/restore/">' in page
    assert Image.objects.count() == 1


@pytest.mark.ml
def test_original_keeps_a_hostile_file_name_out_of_the_header(web, committed):
    committed(post_files, web, SimpleUploadedFile('evil"\r\nX-Injected: 1 é.jpg', photo_jpeg(41), "image/jpeg"))
    image = Image.objects.get()
    response = web.get(f"/images/{image.pk}/file/")
    assert response.status_code == 200
    assert "X-Injected" not in response.headers
    assert response["Content-Disposition"].startswith("attachment; filename")
