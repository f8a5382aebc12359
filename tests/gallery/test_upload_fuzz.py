"""A seeded, bounded fuzz run of malformed files against the upload API and the upload page.

A few hundred files across every accepted format: truncations, bit flips, broken headers, huge declared
dimensions, wrong extensions, markup and garbage. Whatever happens, no 5xx, no row for a refused file and
no file left behind (every stored row owns exactly its original and its thumbnail).
"""

from __future__ import annotations

import random
import struct
import zlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image as PILImage

from gallery.models import Image
from tests.images import encode, photo_like_image

pytestmark = pytest.mark.django_db

SEED = 20261130
FILES_PER_MUTATION = 40
EXTENSIONS = [".jpg", ".png", ".webp", ".gif", ".bmp", ".tif", ".html", ".svg", ".exe", "", ".jpg.php"]


def base_files() -> dict[str, bytes]:
    """One small valid file per accepted format, plus 16-bit and palette variants."""
    picture = photo_like_image(77, (96, 72))
    files = {fmt: encode(picture, fmt) for fmt in ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")}
    files["PNG16"] = encode(picture.convert("L").convert("I;16"), "PNG")
    files["TIFF16B"] = encode(PILImage.frombytes("I;16B", (96, 72), bytes(range(256)) * 54), "TIFF")
    files["PNGP"] = encode(picture.convert("P"), "PNG", transparency=0)
    return files


def png_with_size(data: bytes, width: int, height: int) -> bytes:
    """The PNG with its IHDR claiming another size (CRC fixed, so only the size is wrong)."""
    ihdr = bytearray(data[16:29])
    ihdr[0:8] = struct.pack(">II", width, height)
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + bytes(ihdr)) & 0xFFFFFFFF)
    return data[:16] + bytes(ihdr) + crc + data[33:]


def mutate(rng: random.Random, kind: str, data: bytes, fmt: str) -> bytes:
    if kind == "truncate":
        return data[: rng.randrange(0, len(data))]
    if kind == "bitflip":
        out = bytearray(data)
        for _ in range(rng.randint(1, 24)):
            position = rng.randrange(len(out))
            out[position] ^= 1 << rng.randrange(8)
        return bytes(out)
    if kind == "header":
        out = bytearray(data)
        start = rng.randrange(0, min(64, len(out)))
        out[start : start + rng.randint(1, 16)] = rng.randbytes(rng.randint(1, 16))
        return bytes(out)
    if kind == "huge":
        png = data if fmt.startswith("PNG") else encode(photo_like_image(rng.randrange(1000), (64, 48)), "PNG")
        side = rng.choice([20_000, 65_535, 2**31 - 1, 0])
        return png_with_size(png, side, rng.choice([side, 1, 30_000]))
    if kind == "splice":
        cut = rng.randrange(len(data))
        return data[:cut] + rng.randbytes(rng.randint(1, 4096)) + data[cut:]
    if kind == "garbage":
        return rng.randbytes(rng.randint(0, 5000))
    if kind == "markup":
        return (
            rng.choice([b"<svg onload=alert(1)>", b"<!DOCTYPE html><script>x</script>", b"\xef\xbb\xbf <html>"]) + data
        )
    raise ValueError(kind)


def fuzz_cases() -> list[tuple[str, bytes]]:
    rng = random.Random(SEED)
    bases = base_files()
    cases = []
    for kind in ("truncate", "bitflip", "header", "huge", "splice", "garbage", "markup"):
        for _ in range(FILES_PER_MUTATION):
            fmt = rng.choice(sorted(bases))
            name = f"fuzz-{kind}{rng.choice(EXTENSIONS)}"
            cases.append((name, mutate(rng, kind, bases[fmt], fmt)))
    return cases


def files_on_disk(settings) -> set[str]:
    root = settings.MEDIA_ROOT
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()} if root.exists() else set()


def assert_nothing_orphaned(settings) -> None:
    owned = {name for row in Image.objects.values_list("file", "thumbnail") for name in row}
    assert files_on_disk(settings) == owned


def test_malformed_files_never_crash_store_or_leak(api, settings):
    cases = fuzz_cases()
    assert len(cases) == 280
    statuses: dict[int, int] = {}
    for name, data in cases:
        before = Image.objects.count()
        response = api.post("/api/images/", {"file": SimpleUploadedFile(name, data)}, format="multipart")
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        assert response.status_code < 500, (name, response.content[:300])
        assert response["Content-Type"] == "application/json", name
        if response.status_code >= 400:
            assert Image.objects.count() == before, name
            assert response.json()["error"]["code"], name
    assert_nothing_orphaned(settings)
    assert statuses.get(400, 0) > 0  # damaged files were seen...
    assert statuses.get(413, 0) > 0  # ...huge ones...
    assert statuses.get(415, 0) > 0  # ...and non-images


def test_malformed_files_on_the_upload_page(web, settings):
    rng = random.Random(SEED + 1)
    cases = rng.sample(fuzz_cases(), 40)
    response = web.post("/upload/", {"files": [SimpleUploadedFile(name, data) for name, data in cases]})
    assert response.status_code < 500
    assert_nothing_orphaned(settings)
