"""Real test images: photo-like ones made with NumPy/Pillow, and paths into ../shared/data.

Made images have texture at several scales and sharp edges, so that they pass the quality checks the way
a real photo does; each seed gives a different scene.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SHARED_DIR = Path(__file__).resolve().parents[2] / "shared"
SHARED_DATA_DIR = SHARED_DIR / "data"
OFFLINE_WEIGHTS = SHARED_DIR / "models" / "mobilenet_v2_imagenet_features.pth"


def shared_path(*parts: str) -> Path:
    """A file under ../shared; fails (never skips) with a message naming the file and how to get it."""
    path = SHARED_DIR.joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(
            f"Test data missing: {path}. The tests read real images and the offline weights from the "
            f"'shared' folder that sits beside the repository (../shared). Clone or copy it there."
        )
    return path


def photo_like_image(seed: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A deterministic RGB scene: smooth colour field, random shapes with hard edges, fine grain."""
    rng = np.random.default_rng(seed)
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    field = np.zeros((height, width, 3), np.float32)
    for _ in range(6):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        sigma = rng.uniform(0.15, 0.5) * max(width, height)
        colour = rng.uniform(40, 215, size=3)
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))
        field += blob[..., None] * (colour - 128)[None, None, :] * 0.6
    field = np.clip(field + 128, 0, 255)
    image = Image.fromarray(field.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(14):
        x0, y0 = rng.uniform(0, width), rng.uniform(0, height)
        w, h = rng.uniform(0.05, 0.35) * width, rng.uniform(0.05, 0.35) * height
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        if rng.random() < 0.5:
            draw.ellipse([x0, y0, x0 + w, y0 + h], fill=colour)
        else:
            draw.rectangle([x0, y0, x0 + w, y0 + h], fill=colour)
    grain = rng.normal(0, 6, size=(height, width, 3))
    pixels = np.clip(np.asarray(image, np.float32) + grain, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def encode(image: Image.Image, fmt: str = "JPEG", **save_kwargs: object) -> bytes:
    """The image as file bytes in the given format."""
    buffer = io.BytesIO()
    if fmt == "JPEG" and image.mode not in ("RGB", "L", "CMYK"):
        image = image.convert("RGB")
    image.save(buffer, format=fmt, **save_kwargs)
    return buffer.getvalue()


def photo_jpeg(seed: int, size: tuple[int, int] = (320, 240), **save_kwargs: object) -> bytes:
    """A photo-like JPEG, quality 90 unless told otherwise."""
    save_kwargs.setdefault("quality", 90)
    return encode(photo_like_image(seed, size), "JPEG", **save_kwargs)


def jpeg_with_rating(seed: int, rating: int, size: tuple[int, int] = (320, 240)) -> bytes:
    """A photo-like JPEG whose EXIF carries a star rating (tag 0x4746, as Windows and Lightroom write it)."""
    exif = Image.Exif()
    exif[0x4746] = rating
    exif[0x010F] = "TestCam"
    exif[0x0110] = "Model 1"
    return photo_jpeg(seed, size, exif=exif.tobytes())


def blurred_jpeg(path: Path, fraction: float = 0.006) -> bytes:
    """A photo blurred (Gaussian of `fraction` of its long side) and saved as JPEG: a copy the blur check
    rejects at 0.006 (2.9 px on a 481 x 321 distractors-dev photo) and the copy check names."""
    with Image.open(path) as image:
        rgb = image.convert("RGB")
    return encode(rgb.filter(ImageFilter.GaussianBlur(max(rgb.size) * fraction)), "JPEG", quality=90)


def deflate_tiff(
    size: tuple[int, int],
    *,
    bits: int = 16,
    samples: int = 3,
    photometric: int = 2,
    rows_per_strip: int | None = None,
    sample_format: int = 1,
    row: bytes | None = None,
) -> bytes:
    """A little-endian deflate TIFF whose every row is `row` (zeros by default), `rows_per_strip` rows per
    strip (one strip for the whole picture by default): what Pillow cannot write, such as 16-bit RGB or a
    single strip as large as the picture. A picture of zeros is tiny on disk whatever its size."""
    import struct
    import zlib

    width, height = size
    stride = width * samples * bits // 8
    row = bytes(stride) if row is None else row
    assert len(row) == stride
    rows_per_strip = min(rows_per_strip or height, height)
    strips = []
    for top in range(0, height, rows_per_strip):
        packer = zlib.compressobj(9)
        rows = min(rows_per_strip, height - top)
        chunk = max(1, (8 << 20) // stride)  # compress 8 MB at a time: the raw strip is never held whole
        parts = [packer.compress(row * min(chunk, rows - done)) for done in range(0, rows, chunk)]
        strips.append(b"".join(parts) + packer.flush())
    data_offset = 8
    offsets, position = [], data_offset
    for strip in strips:
        offsets.append(position)
        position += len(strip)
    extra = bytearray()  # values that do not fit in an IFD entry, placed after the pixels
    extra_offset = position

    def values(kind: int, items: list[int]) -> tuple[int, int, bytes]:
        code = {3: "H", 4: "I"}[kind]
        packed = struct.pack(f"<{len(items)}{code}", *items)
        if len(packed) <= 4:
            return kind, len(items), packed.ljust(4, b"\0")
        offset = extra_offset + len(extra)
        extra.extend(packed + (b"\0" if len(packed) % 2 else b""))
        return kind, len(items), struct.pack("<I", offset)

    entries = {
        256: values(4, [width]),
        257: values(4, [height]),
        258: values(3, [bits] * samples),
        259: values(3, [8]),
        262: values(3, [photometric]),
        273: values(4, offsets),
        277: values(3, [samples]),
        278: values(4, [rows_per_strip]),
        279: values(4, [len(strip) for strip in strips]),
        284: values(3, [1]),
        339: values(3, [sample_format] * samples),
    }
    ifd_offset = extra_offset + len(extra)
    ifd = struct.pack("<H", len(entries)) + b"".join(
        struct.pack("<HHI", tag, kind, count) + value for tag, (kind, count, value) in sorted(entries.items())
    )
    return b"II*\0" + struct.pack("<I", ifd_offset) + b"".join(strips) + bytes(extra) + ifd + b"\0\0\0\0"
