"""Issue 7 reproductions for hostile image files, through the API and the web forms.

Each test is an attack the campaign ran; none may answer 5xx, store a row for a refused file or leave a
file behind.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image as PILImage

from core.pixels import decode_budget, decode_cost
from gallery.models import Image
from tests.images import deflate_tiff, encode, photo_jpeg

pytestmark = pytest.mark.django_db


def stored_files(settings) -> list[str]:
    root = settings.MEDIA_ROOT
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()) if root.exists() else []


def big_endian_grey_tiff(size: tuple[int, int] = (128, 128)) -> bytes:
    """The issue's file: Image.new('I;16B', (128, 128)).save('g.tif'), with a 16-bit texture so it is a real picture."""
    rng = np.random.default_rng(7)
    ramp = np.linspace(0, 65535, size[0])[None, :] * np.ones((size[1], 1)) * 0.7
    texture = ramp + rng.integers(0, 16000, size=(size[1], size[0]))
    image = PILImage.frombytes("I;16B", size, np.clip(texture, 0, 65535).astype(">u2").tobytes())
    data = encode(image, "TIFF")
    assert PILImage.open(io.BytesIO(data)).mode == "I;16B"
    return data


@pytest.mark.ml
def test_big_endian_sixteen_bit_tiff_is_stored_via_the_api(api, committed, settings):
    response = committed(
        api.post, "/api/images/", {"file": SimpleUploadedFile("g.tif", big_endian_grey_tiff())}, format="multipart"
    )
    assert response.status_code == 201, response.content
    image = Image.objects.get(pk=response.json()["image"]["id"])
    assert (image.format, image.width, image.height) == ("TIFF", 128, 128)
    thumbnail = PILImage.open(image.thumbnail.open("rb"))
    assert 60 < np.asarray(thumbnail.convert("L")).mean() < 200  # scaled from 16 bits, not clipped to white


@pytest.mark.ml
def test_big_endian_sixteen_bit_tiff_in_a_multi_file_request(api, committed, settings):
    files = [SimpleUploadedFile("a.jpg", photo_jpeg(1)), SimpleUploadedFile("g.tif", big_endian_grey_tiff())]
    response = committed(api.post, "/api/images/", {"files": files}, format="multipart")
    assert response.status_code == 207, response.content
    assert [item["http_status"] for item in response.json()["results"]] == [201, 201]
    assert Image.objects.count() == 2


@pytest.mark.ml
def test_big_endian_sixteen_bit_tiff_as_a_query(api, web, settings):
    tiff = big_endian_grey_tiff()
    search = api.post("/api/search/", {"file": SimpleUploadedFile("g.tif", tiff), "k": 3}, format="multipart")
    assert search.status_code == 200, search.content
    check = api.post("/api/duplicates/check/", {"file": SimpleUploadedFile("g.tif", tiff)}, format="multipart")
    assert check.status_code == 200, check.content
    page = web.post("/search/", {"file": SimpleUploadedFile("g.tif", tiff), "k": 3})
    assert page.status_code == 200
    assert Image.objects.count() == 0
    assert stored_files(settings) == []


@pytest.mark.ml
def test_big_endian_sixteen_bit_tiff_on_the_upload_page(web, committed):
    response = committed(web.post, "/upload/", {"files": [SimpleUploadedFile("g.tif", big_endian_grey_tiff())]})
    assert response.status_code == 200
    assert Image.objects.get().format == "TIFF"


@pytest.mark.ml
@pytest.mark.parametrize("mode", ["I;16", "I;16L", "I", "F"])
def test_every_wide_grey_mode_is_handled(api, committed, mode):
    rng = np.random.default_rng(3)
    values = rng.integers(0, 60000, size=(96, 96))
    if mode in ("I", "F"):
        image = PILImage.fromarray(values.astype(np.int32 if mode == "I" else np.float32), mode)
    else:
        image = PILImage.frombytes(mode, (96, 96), values.astype("<u2").tobytes())
    response = committed(
        api.post, "/api/images/", {"file": SimpleUploadedFile("w.tif", encode(image, "TIFF"))}, format="multipart"
    )
    assert response.status_code == 201, response.content


def test_pixel_cap_is_the_setting_not_pillows_default(api, settings, monkeypatch):
    """A 95 MP PNG (of zeros, 100 KB) under a 100 MP cap is decoded, not refused at Pillow's ~89.5 MP."""
    settings.IMGSIM_MAX_PIXELS = 100_000_000
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 1024 * 1024 * 1024 // 4 // 3)  # Pillow's default
    data = encode(PILImage.new("L", (10_000, 9_500)), "PNG")
    response = api.post("/api/images/", {"file": SimpleUploadedFile("big.png", data)}, format="multipart")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["outcome"], body["image"]["reason_code"]) == ("rejected", "solid_color")  # measured, kept
    assert (body["image"]["width"], body["image"]["height"]) == (10_000, 9_500)


def test_pixel_cap_message_names_the_real_limit(api, settings):
    settings.IMGSIM_MAX_PIXELS = 1_000_000
    data = encode(PILImage.new("L", (1100, 1000)), "PNG")
    response = api.post("/api/images/", {"file": SimpleUploadedFile("big.png", data)}, format="multipart")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_many_pixels"
    assert "1,100,000 pixels" in response.json()["error"]["message"]
    assert "1,000,000" in response.json()["error"]["message"]
    assert Image.objects.count() == 0
    assert stored_files(settings) == []


HEAVY_SIDE = (2000, 2000)  # 4 MP, at the cap of the test below: a budget of 4 bytes x 4 MP + one 8 MiB strip


@pytest.mark.parametrize(
    ("make", "status"),
    [
        pytest.param(lambda: deflate_tiff(HEAVY_SIDE), 413, id="tiff-16bit-rgb-one-strip"),
        pytest.param(lambda: deflate_tiff(HEAVY_SIDE, rows_per_strip=16), 201, id="tiff-16bit-rgb-small-strips"),
        pytest.param(lambda: deflate_tiff(HEAVY_SIDE, samples=4), 413, id="tiff-16bit-rgba-one-strip"),
        pytest.param(lambda: deflate_tiff(HEAVY_SIDE, samples=1, photometric=1), 201, id="tiff-16bit-grey-one-strip"),
        pytest.param(
            lambda: deflate_tiff(HEAVY_SIDE, bits=32, samples=1, photometric=1, sample_format=3),
            413,
            id="tiff-float-one-strip",
        ),
        pytest.param(
            lambda: encode(PILImage.new("F", HEAVY_SIDE), "TIFF", compression="tiff_adobe_deflate"),
            201,
            id="tiff-float",
        ),
        pytest.param(lambda: encode(PILImage.new("I;16", HEAVY_SIDE), "PNG"), 201, id="png-16bit-grey"),
        pytest.param(lambda: encode(PILImage.new("RGBA", HEAVY_SIDE, (9, 9, 9, 99)), "PNG"), 201, id="png-rgba"),
        pytest.param(lambda: encode(PILImage.new("RGB", HEAVY_SIDE), "WEBP"), 413, id="webp"),
    ],
)
def test_heavy_modes_are_decoded_within_the_memory_bound_or_refused(api, settings, make, status):
    """Issue 20: a 515 KB 16-bit RGB TIFF stored as one deflate strip took ~850 MB to decode. Every file is
    decoded within 4 bytes x IMGSIM_MAX_PIXELS (and one strip), or refused before decoding with a 413."""
    settings.IMGSIM_MAX_PIXELS = HEAVY_SIDE[0] * HEAVY_SIDE[1]
    data = make()
    assert len(data) < 100_000  # small on disk, heavy to decode
    response = api.post("/api/images/", {"file": SimpleUploadedFile("heavy", data)}, format="multipart")
    assert response.status_code == status, response.content
    cost = decode_cost(PILImage.open(io.BytesIO(data)))
    if status == 201:
        assert cost <= decode_budget(settings.IMGSIM_MAX_PIXELS)
        return
    error = response.json()["error"]
    assert error["code"] == "too_large_to_decode"
    assert f"would need about {cost / 1e6:,.0f} MB" in error["message"]
    assert f"the limit is {decode_budget(settings.IMGSIM_MAX_PIXELS) / 1e6:,.0f} MB" in error["message"]
    assert Image.objects.count() == 0
    assert stored_files(settings) == []


def test_pillow_threshold_follows_the_setting():
    from django.conf import settings as django_settings

    assert django_settings.IMGSIM_MAX_PIXELS == PILImage.MAX_IMAGE_PIXELS


@pytest.mark.ml
def test_a_query_upload_is_decoded_once(api, monkeypatch):
    """Search by upload embeds the validated preview: the file's bytes are never decoded a second time."""
    opened: list[int] = []
    real_open = PILImage.open

    def counting_open(*args, **kwargs):
        opened.append(1)
        return real_open(*args, **kwargs)

    monkeypatch.setattr(PILImage, "open", counting_open)
    data = encode(PILImage.new("L", (3000, 2000), 90), "PNG")
    response = api.post("/api/search/", {"file": SimpleUploadedFile("q.png", data), "k": 3}, format="multipart")
    assert response.status_code == 200, response.content
    assert len(opened) == 1


def script_jpeg() -> bytes:
    """A valid JPEG whose EXIF Make is a script, as the campaign uploaded it."""
    exif = PILImage.Exif()
    exif[0x010F] = "<script>alert(document.cookie)</script>"
    return photo_jpeg(11, exif=exif.tobytes())


@pytest.mark.ml
def test_original_uploaded_as_html_is_served_as_a_jpeg_attachment(api, staff_web, committed, settings):
    response = committed(
        api.post, "/api/images/", {"file": SimpleUploadedFile("holiday.html", script_jpeg(), "text/html")}
    )
    assert response.status_code == 201, response.content
    image = Image.objects.get(pk=response.json()["image"]["id"])
    assert image.file.name.endswith(".jpg")
    assert all(not name.endswith(".html") for name in stored_files(settings))

    served = staff_web.get(f"/images/{image.pk}/file/")
    assert served.status_code == 200
    assert served["Content-Type"] == "image/jpeg"
    assert served["X-Content-Type-Options"] == "nosniff"
    assert served["Content-Disposition"] == 'attachment; filename="holiday.jpg"'
    assert served["Content-Security-Policy"].startswith("sandbox")
    thumbnail = staff_web.get(f"/images/{image.pk}/thumbnail/")
    assert (thumbnail["Content-Type"], thumbnail["X-Content-Type-Options"]) == ("image/webp", "nosniff")

    page = staff_web.get(f"/images/{image.pk}/").content.decode()
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert" in page


@pytest.mark.ml
def test_a_row_stored_with_a_hostile_extension_is_still_served_safely(api, staff_web, committed, settings):
    """Rows stored before the fix keep their .html name: the type comes from the format column."""
    response = committed(api.post, "/api/images/", {"file": SimpleUploadedFile("x.jpg", script_jpeg())})
    image = Image.objects.get(pk=response.json()["image"]["id"])
    old_path = settings.MEDIA_ROOT / image.file.name
    hostile_name = image.file.name.rsplit(".", 1)[0] + ".html"
    old_path.rename(settings.MEDIA_ROOT / hostile_name)
    Image.objects.filter(pk=image.pk).update(file=hostile_name, original_name="holiday.html")

    served = staff_web.get(f"/images/{image.pk}/file/")
    assert served.status_code == 200
    assert served["Content-Type"] == "image/jpeg"
    assert served["Content-Disposition"].startswith("attachment;")
    assert served["X-Content-Type-Options"] == "nosniff"
    assert b"".join(served.streaming_content) == (settings.MEDIA_ROOT / hostile_name).read_bytes()
