"""core.pixels: every mode Pillow opens becomes upright 8-bit RGB, reduced without a second full-size copy."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from core.pixels import exif_orientation, swaps_axes, upright_rgb
from tests.images import encode, photo_like_image


def reopened(image: Image.Image, fmt: str = "PNG", **kwargs: object) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return Image.open(io.BytesIO(buffer.getvalue()))


def grey_ramp(mode: str, top: int, size: tuple[int, int] = (256, 64)) -> Image.Image:
    """A left-to-right ramp from 0 to top in a wide mode: its middle must come out mid-grey, not white."""
    ramp = np.tile(np.linspace(0, top, size[0]), (size[1], 1))
    dtype = {"I;16": "<u2", "I;16B": ">u2", "I;16L": "<u2", "I": np.int32, "F": np.float32}[mode]
    array = ramp.astype(dtype)
    if mode in ("I", "F"):
        return Image.fromarray(array, mode)
    return Image.frombytes(mode, size, array.tobytes())


@pytest.mark.parametrize(
    ("mode", "top"),
    [("I;16", 65535), ("I;16B", 65535), ("I;16L", 65535), ("I", 65535), ("F", 1.0), ("F", 60000.0), ("I", 200)],
)
def test_wide_samples_are_scaled_not_clipped(mode, top):
    rgb = upright_rgb(grey_ramp(mode, top))
    pixels = np.asarray(rgb)
    assert rgb.mode == "RGB"
    assert rgb.size == (256, 64)
    assert pixels[0, 0].tolist() == [0, 0, 0]
    expected_end = {200: 200, 60000: 233}.get(top, 255)  # 8-bit data stays, 60000 of 65535 is 233
    assert pixels[0, -1, 0] == pytest.approx(expected_end, abs=1)
    assert 0.35 * expected_end <= pixels[0, 128, 0] <= 0.65 * expected_end  # a clip at 255 would make it white


def test_big_endian_sixteen_bit_tiff_from_a_file():
    image = reopened(Image.new("I;16B", (128, 128), 4096), "TIFF")
    rgb = upright_rgb(image, max_side=64)
    assert rgb.mode == "RGB"
    assert max(rgb.size) == 64
    assert np.asarray(rgb)[0, 0].tolist() == [16, 16, 16]


@pytest.mark.parametrize(
    "mode", ["1", "L", "LA", "P", "PA", "RGBA", "CMYK", "YCbCr", "LAB", "HSV", "RGBX", "La", "RGBa"]
)
def test_every_eight_bit_mode_converts(mode):
    image = Image.new(mode, (300, 200))
    for max_side in (None, 100):
        rgb = upright_rgb(image, max_side=max_side)
        assert rgb.mode == "RGB"
        assert max(rgb.size) == (300 if max_side is None else 100)


def test_transparency_is_composited_on_white():
    transparent = Image.new("RGBA", (400, 400), (255, 0, 0, 0))
    assert np.asarray(upright_rgb(transparent, max_side=50)).min() == 255
    palette = Image.new("P", (400, 400), 0)
    palette.putpalette([10, 20, 30] * 256)
    palette.info["transparency"] = 0
    assert np.asarray(upright_rgb(reopened(palette, "GIF"), max_side=50)).min() == 255


def test_reduction_matches_a_thumbnail_of_the_whole_picture():
    source = photo_like_image(3, (2400, 1800))
    reduced = np.asarray(upright_rgb(source, max_side=300), dtype=np.int16)
    expected = source.copy()
    expected.thumbnail((300, 300), Image.Resampling.BILINEAR, reducing_gap=2.0)
    assert reduced.shape == np.asarray(expected).shape == (225, 300, 3)
    assert np.abs(reduced - np.asarray(expected, dtype=np.int16)).mean() < 2.0


@pytest.mark.parametrize("orientation", range(1, 9))
def test_strips_give_the_same_result_as_one_pass(monkeypatch, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(photo_like_image(4, (1000, 700)).convert("RGBA"), "PNG", exif=exif.tobytes())
    whole = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    whole.thumbnail((100, 100), Image.Resampling.BILINEAR, reducing_gap=2.0)
    monkeypatch.setattr("core.pixels.STRIP_BYTES", 1000 * 4 * 7)  # strips of a few rows, turned one by one
    assert np.array_equal(np.asarray(upright_rgb(Image.open(io.BytesIO(data)), max_side=100)), np.asarray(whole))
    full = np.asarray(upright_rgb(Image.open(io.BytesIO(data))))
    assert np.array_equal(full, np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")))


def test_full_size_result_is_reduced_when_it_would_not_fit_beside_the_decode():
    # given a 2000x2000 RGBA PNG (16 MB decoded) under a 4 MP cap: 16 MB + one 8 MiB strip per decode
    ramp = np.add.outer(np.arange(2000), 3 * np.arange(2000)) % 256
    pixels = np.dstack([ramp, ramp.T, 255 - ramp, np.full_like(ramp, 255)]).astype(np.uint8)
    data = encode(Image.fromarray(pixels, "RGBA"), "PNG", compress_level=1)
    # when a caller asks for the whole picture (embedding, duplicate evidence), a full-size RGB copy would
    # make it 32 MB: it gets the picture box-reduced by 2 instead, the same picture at half the size
    reduced = upright_rgb(Image.open(io.BytesIO(data)), max_pixels=4_000_000)
    assert reduced.size == (1000, 1000)
    expected = Image.open(io.BytesIO(data)).convert("RGB").reduce(2)
    assert np.abs(np.asarray(reduced, np.int16) - np.asarray(expected, np.int16)).max() <= 1
    # and under the default cap it stays full size, pixel for pixel
    assert upright_rgb(Image.open(io.BytesIO(data))).size == (2000, 2000)


@pytest.mark.parametrize(("orientation", "size"), [(1, (300, 200)), (3, (300, 200)), (6, (200, 300)), (8, (200, 300))])
def test_exif_orientation_is_applied(orientation, size):
    exif = Image.Exif()
    exif[0x0112] = orientation
    image = Image.open(io.BytesIO(encode(photo_like_image(5, (300, 200)), "JPEG", exif=exif.tobytes())))
    assert exif_orientation(image) == orientation
    assert swaps_axes(orientation) == (size != (300, 200))
    assert upright_rgb(image).size == size


def test_jpeg_is_decoded_scaled_down():
    image = Image.open(io.BytesIO(encode(photo_like_image(6, (2048, 1536)), "JPEG")))
    rgb = upright_rgb(image, max_side=256)
    assert image.size == (512, 384)  # DCT scaling at 1/4 (both sides >= 256): the full size was never decoded
    assert rgb.size == (256, 192)


def test_the_input_is_left_untouched():
    source = Image.new("RGB", (50, 40), (1, 2, 3))
    result = upright_rgb(source)
    result.putpixel((0, 0), (9, 9, 9))
    assert source.getpixel((0, 0)) == (1, 2, 3)
