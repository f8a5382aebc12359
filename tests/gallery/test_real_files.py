"""Every real camera file in ../shared/data/exif through the upload API: none gives a 500, broken EXIF
never blocks an upload, and formats outside the allow-list (HEIC, AVIF, JPEG XL) get a clear 415."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from gallery.models import Image
from tests.images import shared_path

pytestmark = pytest.mark.django_db

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".tiff", ".tif", ".heic", ".heif", ".avif", ".jxl"}
REFUSED_FORMATS = {".heic", ".heif", ".avif", ".jxl"}


def real_files() -> list:
    root = shared_path("data", "exif")
    return sorted(path for path in root.rglob("*") if path.suffix.lower() in IMAGE_SUFFIXES)


def test_real_camera_files_are_stored_or_refused_clearly(api, settings):
    settings.IMGSIM_MAX_UPLOAD_BYTES = 200 * 1024 * 1024
    outcomes: dict[str, list[str]] = {}
    for path in real_files():
        response = api.post("/api/images/", {"file": SimpleUploadedFile(path.name, path.read_bytes())})
        assert response.status_code < 500, path
        body = response.json()
        outcome = body["outcome"] if "outcome" in body else body["error"]["code"]
        outcomes.setdefault(outcome, []).append(path.name)
        if path.suffix.lower() in REFUSED_FORMATS:
            assert response.status_code == 415, (path, body)
        else:
            assert response.status_code in (200, 201), (path, body)
    assert len(outcomes.get("accepted", [])) >= 90, outcomes
    assert Image.objects.count() == sum(
        len(names) for key, names in outcomes.items() if key in {"accepted", "rejected"}
    )
