"""POST /api/images/ end to end: real images in, stored rows and background embedding out; bad input refused."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image as PILImage

from duplicates.services.trash import images_trash
from gallery import services
from gallery.models import Image
from search.models import LibraryChange
from tests.images import encode, jpeg_with_rating, photo_jpeg, photo_like_image, shared_path

pytestmark = pytest.mark.django_db


def upload(api, data: bytes, name: str = "photo.jpg", content_type: str = "image/jpeg"):
    return api.post("/api/images/", {"file": SimpleUploadedFile(name, data, content_type)}, format="multipart")


def stored_files(settings) -> list[str]:
    root = settings.MEDIA_ROOT
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()) if root.exists() else []


@pytest.mark.ml
def test_upload_stores_image_and_embeds_it_after_commit(api, committed):
    response = committed(upload, api, photo_jpeg(1, (640, 480)), "holiday.jpg")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["outcome"] == "accepted"
    image = Image.objects.get(pk=body["image"]["id"])
    assert image.original_name == "holiday.jpg"
    assert (image.width, image.height, image.format) == (640, 480, "JPEG")
    assert image.file.name.startswith("originals/")
    assert "holiday" not in image.file.name
    assert image.status == Image.Status.INDEXED
    assert image.embedding_model == "mobilenet_v2"
    vector = image.vector
    assert vector is not None
    assert vector.shape == (1280,)
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-4)
    detail = api.get(f"/api/images/{image.pk}/").json()
    assert detail["status"] == "indexed"
    assert api.get(detail["thumbnail_url"]).status_code == 200


@pytest.mark.ml
def test_same_bytes_again_names_the_existing_image(api, committed):
    data = photo_jpeg(2)
    first = committed(upload, api, data, "a.jpg").json()
    again = committed(upload, api, data, "copy-of-a.jpg")

    assert again.status_code == 200
    assert again.json()["outcome"] == "exact_duplicate"
    assert again.json()["image"]["id"] == first["image"]["id"]
    assert Image.objects.count() == 1


@pytest.mark.ml
def test_exif_rating_and_camera_are_stored(api, committed):
    body = committed(upload, api, jpeg_with_rating(3, rating=4)).json()
    assert body["image"]["rating"] == 4
    assert body["image"]["camera_make"] == "TestCam"


@pytest.mark.ml
def test_real_photo_with_star_rating(api, committed):
    data = shared_path(
        "data", "exif", "immich-test-assets", "files", "metadata", "rating", "mongolels.jpg"
    ).read_bytes()
    body = committed(upload, api, data, "mongolels.jpg").json()
    assert body["outcome"] == "accepted", body
    assert body["image"]["rating"] == 3


@pytest.mark.ml
def test_exif_orientation_is_applied_to_the_stored_size(api, committed):
    exif = PILImage.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    data = encode(photo_like_image(4, (400, 300)), "JPEG", quality=90, exif=exif.tobytes())
    body = committed(upload, api, data).json()
    assert (body["image"]["width"], body["image"]["height"]) == (300, 400)
    assert body["image"]["orientation"] == 6


@pytest.mark.parametrize(
    ("fmt", "name"),
    [("PNG", "a.png"), ("WEBP", "a.webp"), ("GIF", "a.gif"), ("BMP", "a.bmp"), ("TIFF", "a.tiff")],
)
@pytest.mark.ml
def test_every_allowed_format_is_accepted(api, committed, fmt, name):
    data = encode(photo_like_image(5, (200, 150)), fmt)
    response = committed(upload, api, data, name, "application/octet-stream")
    assert response.status_code == 201, response.content
    assert response.json()["image"]["format"] == fmt
    assert Image.objects.get(pk=response.json()["image"]["id"]).status == Image.Status.INDEXED


def test_low_quality_image_is_rejected_with_reason_and_score(api, committed):
    solid = encode(PILImage.new("RGB", (300, 200), (120, 130, 140)), "PNG")
    response = committed(upload, api, solid, "grey.png")

    assert response.status_code == 201
    body = response.json()
    assert body["outcome"] == "rejected"
    assert body["image"]["status"] == "rejected"
    assert body["image"]["reason_code"] == "solid_color"
    assert body["image"]["quality_score"] is not None
    assert body["image"]["quality_threshold"] is not None
    assert Image.objects.get().embedding is None  # never embedded, never searchable


def test_too_small_image_is_rejected(api, committed):
    body = committed(upload, api, photo_jpeg(6, (40, 30))).json()
    assert body["image"]["reason_code"] == "too_small"
    assert (body["image"]["quality_score"], body["image"]["quality_threshold"]) == (40, 64)


@pytest.mark.ml
def test_size_check_judges_the_file_not_the_preview(api, committed):
    body = committed(upload, api, photo_jpeg(14, (2400, 90))).json()  # a panorama strip, preview 1024x38
    assert body["outcome"] == "accepted", body["image"]["status_message"]


def assert_refused(response, status: int, code: str, settings) -> None:
    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]
    assert Image.objects.count() == 0
    assert stored_files(settings) == []


def test_not_an_image_is_refused(api, settings):
    assert_refused(upload(api, b"hello, world" * 100, "notes.jpg"), 415, "not_an_image", settings)


def test_svg_disguised_as_jpeg_is_refused(api, settings):
    svg = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    assert_refused(upload(api, svg, "cat.jpg"), 415, "unsupported_format", settings)


def test_html_disguised_as_png_is_refused(api, settings):
    assert_refused(
        upload(api, b"<!DOCTYPE html><html><body>hi</body></html>", "x.png"), 415, "unsupported_format", settings
    )


def test_truncated_jpeg_is_refused(api, settings):
    data = photo_jpeg(7, (800, 600))
    assert_refused(upload(api, data[: len(data) // 2]), 400, "corrupt_image", settings)


def test_format_outside_the_allow_list_is_refused(api, settings):
    buffer = io.BytesIO()
    photo_like_image(8, (100, 100)).save(buffer, format="ICO")
    assert_refused(upload(api, buffer.getvalue(), "icon.ico"), 415, "unsupported_format", settings)


def test_decompression_bomb_is_refused(api, settings):
    settings.IMGSIM_MAX_PIXELS = 1_000_000
    bomb = encode(PILImage.new("L", (2000, 2000), 0), "PNG", optimize=True)  # tiny file, 4 MP
    assert len(bomb) < 50_000
    assert_refused(upload(api, bomb, "bomb.png"), 413, "too_many_pixels", settings)


def test_file_too_large_is_refused_with_413(api, settings):
    settings.IMGSIM_MAX_UPLOAD_BYTES = 10_000
    assert_refused(upload(api, photo_jpeg(9, (800, 600))), 413, "file_too_large", settings)


def test_empty_file_is_refused(api, settings):
    assert_refused(upload(api, b"", "empty.jpg"), 400, "empty_file", settings)


def test_request_without_file_is_refused(api):
    response = api.post("/api/images/", {}, format="multipart")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"


@pytest.mark.ml
def test_several_files_get_one_outcome_each(api, committed):
    files = [
        SimpleUploadedFile("good.jpg", photo_jpeg(10), "image/jpeg"),
        SimpleUploadedFile("bad.jpg", b"not an image at all", "image/jpeg"),
        SimpleUploadedFile("good2.jpg", photo_jpeg(11), "image/jpeg"),
    ]
    response = committed(api.post, "/api/images/", {"files": files}, format="multipart")
    assert response.status_code == 207
    outcomes = [(item["name"], item["outcome"], item["http_status"]) for item in response.json()["results"]]
    assert outcomes == [("good.jpg", "accepted", 201), ("bad.jpg", "error", 415), ("good2.jpg", "accepted", 201)]
    assert Image.objects.filter(status="indexed").count() == 2


def test_upload_needs_authentication(client, settings):
    response = client.post("/api/images/", {"file": SimpleUploadedFile("a.jpg", photo_jpeg(12))})
    assert response.status_code in (401, 403)
    assert Image.objects.count() == 0


@pytest.mark.ml
def test_list_filters_by_status_and_rating_and_paginates(api, committed):
    for seed, rating in [(20, 5), (21, 3), (22, None)]:
        data = jpeg_with_rating(seed, rating) if rating is not None else photo_jpeg(seed)
        committed(upload, api, data)
    committed(upload, api, encode(PILImage.new("RGB", (300, 200), "white"), "PNG"))

    assert api.get("/api/images/").json()["count"] == 4
    assert api.get("/api/images/?status=rejected").json()["count"] == 1
    assert api.get("/api/images/?rating=4%2B").json()["count"] == 1
    assert api.get("/api/images/?rating=unrated").json()["count"] == 2
    page = api.get("/api/images/?page_size=2").json()
    assert len(page["results"]) == 2
    assert page["next"]


def test_page_size_is_capped_at_the_pagination_maximum(api):
    # given more images than the largest page allows (rows only: listing never opens the files)
    cap = 200
    Image.objects.bulk_create(
        Image(
            file=f"originals/{n}.jpg",
            sha256=f"{n:064x}",
            width=64,
            height=64,
            format="JPEG",
            file_size=1000,
            status=Image.Status.REJECTED,
        )
        for n in range(cap + 5)
    )
    # when a client asks for a huge page
    first = api.get("/api/images/?page_size=100000")
    # then it gets the cap, and the rest on the next page
    assert first.status_code == 200
    body = first.json()
    assert (body["count"], len(body["results"])) == (cap + 5, cap)
    assert "page=2" in body["next"]
    assert len(api.get(body["next"]).json()["results"]) == 5


def test_delete_is_staff_only_and_moves_to_the_trash_which_alone_purges(
    api, staff_api, committed, settings, searchable_upload
):
    image_id = searchable_upload(photo_jpeg(13), "d.jpg").pk
    files = stored_files(settings)
    assert api.delete(f"/api/images/{image_id}/").status_code == 403
    assert committed(staff_api.delete, f"/api/images/{image_id}/").status_code == 204
    assert Image.objects.get(pk=image_id).trashed_at is not None
    assert stored_files(settings) == files  # kept: restorable from the trash
    assert LibraryChange.objects.filter(image_id=image_id).exists()  # searches drop it
    assert [row["id"] for row in staff_api.get("/api/trash/").json()["results"]] == [image_id]
    assert committed(staff_api.post, f"/api/trash/{image_id}/purge/").status_code in (200, 204)
    assert not Image.objects.filter(pk=image_id).exists()
    assert stored_files(settings) == []


def test_admin_moves_images_to_the_trash_and_deletes_only_from_there(staff_web, committed):
    image = services.image_create(data=photo_jpeg(14), original_name="a.jpg").image
    change = f"/admin/gallery/image/{image.pk}/"
    assert staff_web.get(f"{change}delete/").status_code == 403  # a library image: not deleted for good
    data = {"action": "move_to_trash", "_selected_action": [image.pk]}
    committed(staff_web.post, "/admin/gallery/image/", data)
    image.refresh_from_db()
    assert image.trashed_at is not None
    committed(staff_web.post, f"{change}delete/", {"post": "yes"})
    assert not Image.objects.filter(pk=image.pk).exists()


def test_uploading_a_copy_of_a_trashed_photo_says_it_is_in_the_trash_and_staff_can_restore_it(api, staff_api, staff):
    data = photo_jpeg(14)
    image = upload(api, data).json()["image"]
    images_trash(images=[Image.objects.get(pk=image["id"])], user=staff)
    # when a user uploads the same bytes again, then nothing is stored and the answer names the trashed image
    again = upload(api, data, "again.jpg")
    assert again.status_code == 200
    body = again.json()
    assert (body["outcome"], body["in_trash"], body["image"]["id"]) == ("exact_duplicate_in_trash", True, image["id"])
    assert body["restore_url"] is None  # restoring is staff work
    assert Image.objects.count() == 1
    # when staff upload it (one file of several), then the answer carries the restore URL, which restores it
    both = staff_api.post(
        "/api/images/",
        {"files": [SimpleUploadedFile("a.jpg", data, "image/jpeg"), SimpleUploadedFile("b.jpg", photo_jpeg(15))]},
        format="multipart",
    ).json()["results"]
    assert [result["outcome"] for result in both] == ["exact_duplicate_in_trash", "accepted"]
    assert [result["in_trash"] for result in both] == [True, False]
    restore_url = both[0]["restore_url"]
    assert restore_url == f"http://testserver/api/trash/{image['id']}/restore/"
    assert staff_api.post(restore_url).status_code == 200
    assert Image.objects.get(pk=image["id"]).trashed_at is None
    assert upload(api, data).json() | {"image": None} == {
        "name": "photo.jpg",
        "outcome": "exact_duplicate",
        "http_status": 200,
        "image": None,
        "in_trash": False,
        "restore_url": None,
        "error": None,
    }


def test_openapi_schema_is_served(api):
    response = api.get("/api/schema/")
    assert response.status_code == 200
    assert b"/api/images/" in response.content
