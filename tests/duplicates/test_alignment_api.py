"""The compare view's alignment through the API: copies of a real photo (a crop rescaled up, a mirror image, a
half turn, a quarter turn stored with an EXIF orientation) uploaded like any photo, each registered onto the
original by a homography that maps known points of the copy onto the original's within a few pixels."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from PIL import Image as PILImage
from PIL import ImageOps
from rest_framework.test import APIClient

from duplicates.selectors import alignment as alignment_selectors
from gallery.models import Image
from tests.duplicates.conftest import distractor_files
from tests.images import shared_path

pytestmark = pytest.mark.django_db

PHOTO = shared_path("data", "distractors-dev", "train", "100075.jpg")
CROP = (100, 60, 420, 300)  # of the 481 x 321 photo
CROP_SCALE = 2.5  # 800 x 600: larger than the check's match size, so it is matched scaled down
TOLERANCE_PX = 3.0


def _jpeg(picture: PILImage.Image, *, orientation: int | None = None) -> bytes:
    buffer = io.BytesIO()
    exif = PILImage.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    picture.save(buffer, "JPEG", quality=92, exif=exif)
    return buffer.getvalue()


def _upload(api: APIClient, name: str, data: bytes) -> int:
    response = api.post("/api/images/", {"file": SimpleUploadedFile(name, data)}, format="multipart")
    assert response.status_code == 201, response.json()
    return response.json()["image"]["id"]


def _mapped(homography: list[list[float]], points: np.ndarray) -> np.ndarray:
    projected = np.hstack([points, np.ones((len(points), 1))]) @ np.array(homography).T
    return projected[:, :2] / projected[:, 2:3]


def _alignment(api: APIClient, a: int, b: int) -> dict:
    response = api.get(f"/api/duplicates/alignment/?a={a}&b={b}")
    assert response.status_code == 200, response.json()
    return response.json()


@pytest.fixture
def photo() -> PILImage.Image:
    return PILImage.open(PHOTO).convert("RGB")


def test_copies_register_onto_the_original_within_a_few_pixels(api, photo):
    # given a real photo and four copies of it, uploaded by a user
    width, height = photo.size
    left, top, right, bottom = CROP
    crop_size = (round((right - left) * CROP_SCALE), round((bottom - top) * CROP_SCALE))
    original = _upload(api, "photo.jpg", _jpeg(photo))
    copies = {
        # name: (file, where a point (x, y) of the copy is on the original)
        "crop, rescaled": (
            _jpeg(photo.crop(CROP).resize(crop_size, PILImage.Resampling.LANCZOS)),
            lambda x, y: (left + x / CROP_SCALE, top + y / CROP_SCALE),
        ),
        "mirror image": (_jpeg(ImageOps.mirror(photo)), lambda x, y: (width - x, y)),
        "half turn": (_jpeg(photo.transpose(PILImage.Transpose.ROTATE_180)), lambda x, y: (width - x, height - y)),
        # stored turned a quarter anticlockwise, shown upright by its EXIF orientation 6 (turn clockwise)
        "quarter turn, upright by EXIF": (
            _jpeg(photo.transpose(PILImage.Transpose.ROTATE_90), orientation=6),
            lambda x, y: (x, y),
        ),
    }
    for name, (data, on_original) in copies.items():
        copy = _upload(api, f"{name}.jpg", data)
        stored = Image.objects.get(pk=copy)
        # when the compare view asks how the copy registers onto the original
        body = _alignment(api, original, copy)
        # then the homography takes the copy's corners and inner points to where they are on the original
        assert body["aligned"] is True, name
        assert body["reason"] == "matched"
        assert body["inliers"] >= body["min_inliers"] == 20
        assert body["mirrored"] is (name == "mirror image"), name
        assert body["a"] == {"id": original, "width": width, "height": height}
        assert body["b"] == {"id": copy, "width": stored.width, "height": stored.height}
        w, h = stored.width, stored.height
        points = np.array([[0, 0], [w, 0], [0, h], [w, h], [w * 0.3, h * 0.6], [w * 0.8, h * 0.25]])
        expected = np.array([on_original(x, y) for x, y in points])
        error = np.hypot(*(_mapped(body["homography"], points) - expected).T)
        assert error.max() < TOLERANCE_PX, f"{name}: {error.round(2)}"


def test_either_order_answers_from_one_cached_computation(api, photo, monkeypatch):
    original = _upload(api, "photo.jpg", _jpeg(photo))
    copy = _upload(api, "half.jpg", _jpeg(photo.resize((240, 160), PILImage.Resampling.LANCZOS)))
    forward = _alignment(api, original, copy)

    def refuse(*args: object, **kwargs: object) -> None:
        pytest.fail("computed again: the shared cache had the alignment of these two files")

    monkeypatch.setattr(alignment_selectors, "picture_alignment", refuse)
    backward = _alignment(api, copy, original)
    assert backward["inliers"] == forward["inliers"]
    roundtrip = np.array(backward["homography"]) @ np.array(forward["homography"])
    assert np.allclose(roundtrip / roundtrip[2, 2], np.eye(3), atol=1e-6)
    assert np.isclose(forward["homography"][0][0], 2.0, atol=0.03)  # a pixel of the half-size copy spans two


def test_different_photos_are_not_aligned(api):
    first, second = (_upload(api, path.name, path.read_bytes()) for path in distractor_files(2))
    body = _alignment(api, first, second)
    assert body["aligned"] is False
    assert body["reason"] == "no_match"
    assert body["inliers"] < body["min_inliers"]
    assert body["homography"] is None


def test_only_who_may_open_both_images_gets_an_alignment(api, staff_api, photo):
    original = _upload(api, "photo.jpg", _jpeg(photo))
    mirror = _upload(api, "mirror.jpg", _jpeg(ImageOps.mirror(photo)))
    url = f"/api/duplicates/alignment/?a={original}&b={mirror}"
    assert APIClient().get(url).status_code in (401, 403)
    assert api.get(f"/api/duplicates/alignment/?a={original}&b={original}").status_code == 400
    assert api.get(f"/api/duplicates/alignment/?a={original}&b=x").status_code == 400
    # a trashed image is the staff's to open, like its file
    Image.objects.filter(pk=mirror).update(trashed_at=timezone.now())
    refused = api.get(url)
    assert refused.status_code == 404
    assert refused.json()["error"]["code"] == "not_found"
    assert api.get(f"/images/{mirror}/file/").status_code == 404
    assert staff_api.get(url).json()["aligned"] is True


def test_a_process_busy_aligning_other_pictures_answers_503(api, photo, monkeypatch):
    original = _upload(api, "photo.jpg", _jpeg(photo))
    mirror = _upload(api, "mirror.jpg", _jpeg(ImageOps.mirror(photo)))
    monkeypatch.setattr(alignment_selectors, "ALIGNMENT_WAIT_SECONDS", 0.05)
    assert alignment_selectors._computing.acquire(timeout=1)  # another request computing one
    try:
        busy = api.get(f"/api/duplicates/alignment/?a={original}&b={mirror}")
    finally:
        alignment_selectors._computing.release()
    assert busy.status_code == 503
    assert busy.json()["error"]["code"] == "alignment_busy"
    assert _alignment(api, original, mirror)["aligned"] is True  # computed once the process is free
