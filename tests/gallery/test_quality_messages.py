"""A quality rejection never contradicts itself: wherever it is shown (the API, the upload and image pages, the
folder import) the measured value is written with enough digits to read below (or above) the limit it broke."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from PIL import Image as PILImage

from gallery.image_file import decode_upload
from gallery.models import Image
from gallery.quality import QualityThresholds, assess_quality
from tests.images import encode, photo_jpeg

pytestmark = pytest.mark.django_db


def nearly_black_png(corner: int = 0) -> bytes:
    """98.04 % black (the limit is 98.0 %): one decimal writes both as 98.0 %."""
    pixels = np.zeros((500, 500, 3), dtype=np.uint8)
    pixels[corner : corner + 70, :70] = 255  # 4,900 of 250,000 pixels
    return encode(PILImage.fromarray(pixels), "PNG")


def numbers(text: str) -> list[float]:
    return [float(value) for value in re.findall(r"\d+\.\d+", text)]


def test_rejections_write_the_measured_value_on_the_right_side_of_the_limit(api, web, settings, tmp_path):
    # given a photo whose sharpness is a millionth below the minimum, and a frame 98.04 % black
    photo = photo_jpeg(60)
    sharpness = assess_quality(decode_upload(photo, max_pixels=10**8).preview, thresholds=QualityThresholds()).scores
    settings.IMGSIM_BLUR_MIN_SCORE = sharpness["sharpness"] + 1e-6
    # when they are uploaded through the API
    blurry = api.post("/api/images/", {"file": SimpleUploadedFile("soft.jpg", photo)}, format="multipart").json()
    dark = api.post("/api/images/", {"file": SimpleUploadedFile("dark.png", nearly_black_png())}).json()
    # then each message reads the value below (above) the limit, with the numbers the API gives
    assert blurry["image"]["reason_code"] == "blurry"
    measured, limit = numbers(blurry["image"]["status_message"])
    assert measured < limit
    assert blurry["image"]["quality_score"] < blurry["image"]["quality_threshold"]
    assert dark["image"]["reason_code"] == "mostly_black"
    assert (
        "98.04% of pixels are at or below brightness 16, more than the maximum 98.0%."
        in dark["image"]["status_message"]
    )
    # and the image page says the same in its facts
    for image in Image.objects.all():
        page = web.get(f"/images/{image.pk}/").content.decode()
        assert image.status_message in page
        shown, threshold = numbers(page.split("Measured ")[1].split(".</div>")[0])
        if image.reason_code == "blurry":
            assert shown < threshold
            assert f"<dd>{page.split('Measured ')[1].split(',')[0]}</dd>" in page  # the facts list agrees
        else:
            assert shown > threshold
    # and so does the folder import
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "dark.png").write_bytes(nearly_black_png(corner=100))
    out = io.StringIO()
    call_command("import_images", str(folder), "--no-progress", stdout=out)
    assert "dark.png: rejected: Image is almost entirely black: 98.04% of pixels" in out.getvalue()
