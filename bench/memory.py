"""Peak memory of one decode, for every mode and bit depth, on every path an upload or a stored file takes.

Each measurement runs in a fresh subprocess (so one input's peak cannot hide another's): it sets up
Django on a throw-away SQLite database (and loads the model for the search path), reads the file, notes
its peak RSS so far (ru_maxrss), runs the real code path once, and reports the new peak minus that
baseline: the memory this one request or task added. Pillow's C allocations are invisible to
tracemalloc; RSS sees them.

    .venv/bin/python bench/memory.py                           # this checkout
    .venv/bin/python bench/memory.py --code /tmp/imgsim-main   # another checkout (e.g. main, for "before")

Paths (present on main and here):
  upload   gallery.services.image_create: validation, EXIF, quality checks, thumbnail, stored file
  search   search.selectors.query_image_from_upload: validation and the query embedding
  embed    search.model_input.load_rgb_for_embedding + model_input_pixels: the worker's decode of a stored file
  match    duplicates.geometry.load_for_matching + local_features: the geometric check's decode
  preview  gallery.renditions.image_preview_webp (1600 px): the image page's preview of a stored original
  zoom     the same at 4096 px: the image page's zoomed view

The bound is the README's: 4 bytes x IMGSIM_MAX_PIXELS (the decode) plus SLACK_MB for everything after it.
A refusal counts like any outcome: ok when the memory it took stayed within the bound. "estimate" is
core.pixels.decode_cost of the measured checkout as the upload path sees the file (JPEGs drafted to its
1024-px preview): what the code compares with its budget, 4 x IMGSIM_MAX_PIXELS + 8 MiB, before decoding.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.images import deflate_tiff  # noqa: E402  (the bench runs as a script from the repository root)

WEIGHTS = REPO.parent / "shared" / "models" / "mobilenet_v2_imagenet_features.pth"
SIDE = (10_000, 8_800)  # 88 MP: under Pillow's default 89.5 MP bomb threshold and the 100 MP cap
ISSUE_SIDE = (9_400, 9_400)  # issue 20's file: 88 MP, 515 KB
MAX_PIXELS = 100_000_000  # IMGSIM_MAX_PIXELS's default, which the children run with
SLACK_MB = 32  # strips, the reduced copies, the thumbnail, the file's bytes (README: "plus ~30 MB")
PATHS = ("upload", "search", "embed", "match", "preview", "zoom")


def _save(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def _png16_rgb(size: tuple[int, int]) -> bytes:
    """A 16-bit RGB PNG of zeros (Pillow writes RGB PNGs at 8 bits only), compressed row by row."""
    width, height = size
    packer = zlib.compressobj(9)
    row = bytes(1 + width * 6)
    idat = b"".join(packer.compress(row * min(256, height - top)) for top in range(0, height, 256)) + packer.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _bmp_rle8(size: tuple[int, int]) -> bytes:
    """An 8-bit RLE BMP of zeros (Pillow reads RLE BMPs but does not write them)."""
    width, height = size
    runs = b"\xff\x00" * (width // 255) + (bytes([width % 255, 0]) if width % 255 else b"")
    pixels = (runs + b"\x00\x00") * height + b"\x00\x01"
    palette = b"".join(bytes([value, value, value, 0]) for value in range(256))
    offset = 14 + 40 + len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(pixels), 2835, 2835, 256, 0)
    return b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + info + palette + pixels


def _frames(mode: str, colours: list[object]) -> list[Image.Image]:
    return [Image.new(mode, SIDE, colour) for colour in colours]


def _animated(fmt: str, mode: str, colours: list[object], **options: object) -> bytes:
    first, *rest = _frames(mode, colours)
    return _save(first, fmt, save_all=True, append_images=rest, **options)


def _noise_jpeg_source() -> Image.Image:
    rng = np.random.default_rng(1)
    tile = Image.fromarray(rng.integers(0, 255, size=(1100, 1250, 3), dtype=np.uint8), "RGB")
    image = Image.new("RGB", SIDE)
    for x in range(0, SIDE[0], 1250):
        for y in range(0, SIDE[1], 1100):
            image.paste(tile, (x, y))
    return image


# name -> (mode as decoded, file suffix, maker)
CASES: dict[str, tuple[str, str, Callable[[], bytes]]] = {
    "png-1-bilevel": ("1", "png", lambda: _save(Image.new("1", SIDE), "PNG")),
    "png-l": ("L", "png", lambda: _save(Image.new("L", SIDE, 90), "PNG")),
    "png-la": ("LA", "png", lambda: _save(Image.new("LA", SIDE, (90, 128)), "PNG")),
    "png-p-transparent": ("P", "png", lambda: _save(Image.new("P", SIDE), "PNG", transparency=0)),
    "png-rgb": ("RGB", "png", lambda: _save(Image.new("RGB", SIDE), "PNG")),
    "png-rgba": ("RGBA", "png", lambda: _save(Image.new("RGBA", SIDE, (10, 20, 30, 128)), "PNG")),
    "png-rgb-exif-rotated-6": ("RGB", "png", lambda: _save(Image.new("RGB", SIDE), "PNG", exif=_exif(6))),
    "png-16bit-grey": ("I;16", "png", lambda: _save(Image.new("I;16", SIDE), "PNG")),
    "png-16bit-rgb": ("RGB;16", "png", lambda: _png16_rgb(SIDE)),
    "apng-rgba-2-frames": ("RGBA", "png", lambda: _animated("PNG", "RGBA", [(0, 0, 0, 0), (9, 9, 9, 255)])),
    "tiff-16bit-rgb-one-strip": ("RGB;16", "tif", lambda: deflate_tiff(ISSUE_SIDE)),
    "tiff-16bit-rgb-small-strips": ("RGB;16", "tif", lambda: deflate_tiff(ISSUE_SIDE, rows_per_strip=8)),
    "tiff-16bit-rgba-one-strip": ("RGBA;16", "tif", lambda: deflate_tiff(SIDE, samples=4)),
    "tiff-16bit-grey-big-endian": (
        "I;16B",
        "tif",
        lambda: _save(Image.new("I;16B", SIDE), "TIFF", compression="tiff_adobe_deflate"),
    ),
    "tiff-32bit-int": ("I", "tif", lambda: _save(Image.new("I", SIDE), "TIFF", compression="tiff_adobe_deflate")),
    "tiff-float": ("F", "tif", lambda: _save(Image.new("F", SIDE), "TIFF", compression="tiff_adobe_deflate")),
    "tiff-float-one-strip": (
        "F",
        "tif",
        lambda: deflate_tiff(SIDE, bits=32, samples=1, photometric=1, sample_format=3),
    ),
    "tiff-cmyk": ("CMYK", "tif", lambda: _save(Image.new("CMYK", SIDE), "TIFF", compression="tiff_adobe_deflate")),
    "tiff-ycbcr": ("YCbCr", "tif", lambda: _save(Image.new("YCbCr", SIDE), "TIFF", compression="tiff_adobe_deflate")),
    "tiff-jpeg": ("RGB", "tif", lambda: _save(Image.new("RGB", SIDE), "TIFF", compression="jpeg")),
    "tiff-lab": ("LAB", "tif", lambda: _save(Image.new("LAB", SIDE), "TIFF", compression="tiff_adobe_deflate")),
    "tiff-rgb-3-pages": (
        "RGB",
        "tif",
        lambda: _animated("TIFF", "RGB", [(0, 0, 0), (9, 9, 9), (99, 9, 9)], compression="tiff_adobe_deflate"),
    ),
    "gif-p-2-frames": ("P", "gif", lambda: _animated("GIF", "P", [0, 1])),
    "bmp-rle8": ("L", "bmp", lambda: _bmp_rle8(SIDE)),
    "webp-lossy-rgb": ("RGB", "webp", lambda: _save(Image.new("RGB", SIDE), "WEBP", quality=50)),
    "webp-lossless-rgba": ("RGBA", "webp", lambda: _save(Image.new("RGBA", SIDE), "WEBP", lossless=True)),
    "webp-animated-2-frames": ("RGB", "webp", lambda: _animated("WEBP", "RGB", [(0, 0, 0), (9, 9, 9)])),
    "jpeg-noise": ("RGB", "jpg", lambda: _save(_noise_jpeg_source(), "JPEG", quality=60)),
    "jpeg-exif-rotated-6": ("RGB", "jpg", lambda: _save(Image.new("RGB", SIDE), "JPEG", exif=_exif(6))),
    "jpeg-progressive": ("RGB", "jpg", lambda: _save(Image.new("RGB", SIDE), "JPEG", progressive=True)),
    "jpeg-cmyk-progressive": ("CMYK", "jpg", lambda: _save(Image.new("CMYK", SIDE), "JPEG", progressive=True)),
}


def make_inputs(folder: Path, names: list[str]) -> dict[str, Path]:
    """The inputs, written once (their making is not measured)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in names:
        _mode, suffix, make = CASES[name]
        path = folder / f"{name}.{suffix}"
        if not path.exists():
            part = path.with_suffix(".part")
            part.write_bytes(make())
            part.rename(path)
        paths[name] = path
    return paths


CHILD = r"""
import io, json, os, resource, sys, time
sys.path.insert(0, os.getcwd())
import django
django.setup()
from django.conf import settings
from django.core.management import call_command
call_command("migrate", verbosity=0)
path, mode = sys.argv[1], sys.argv[2]
if mode == "search":
    try:
        from search.services.embedding_queue import embedder_get
    except ImportError:  # --code of a checkout whose search/services.py is one module
        from search.services import embedder_get
    embedder_get()
    from search.selectors import query_image_from_upload
elif mode == "upload":
    from gallery.services import image_create
elif mode == "embed":
    try:
        from search.model_input import load_rgb_for_embedding, model_input_pixels
    except ImportError:  # a checkout from before the decoding left search/embedding.py (--code)
        from search.embedding import load_rgb_for_embedding, model_input_pixels
elif mode == "match":
    from duplicates.geometry import load_for_matching, local_features
else:
    from gallery.renditions import image_preview_webp
estimate = None
try:
    from PIL import Image
    from core.pixels import decode_cost
    with Image.open(path) as opened:
        opened.draft("RGB", (1024, 1024))  # as the upload path decodes it (JPEGs only; others ignore it)
        estimate = decode_cost(opened)
except Exception:
    pass
data = open(path, "rb").read()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
outcome = "ok"
try:
    if mode == "search":
        query_image_from_upload(data=data)
    elif mode == "upload":
        result = image_create(data=data, original_name=os.path.basename(path))  # stored, not queued
        outcome = result.outcome + (":" + result.image.reason_code if result.image.reason_code else "")
    elif mode == "embed":
        model_input_pixels(load_rgb_for_embedding(data))
    elif mode == "match":
        local_features(load_for_matching(io.BytesIO(data)))
    else:
        image_preview_webp(handle=io.BytesIO(data), size=1600 if mode == "preview" else 4096)
except Exception as error:
    outcome = f"{type(error).__name__}: {getattr(error, 'code', '')} {str(error)[:90]}"
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"added_mb": (peak - base) / 1024, "seconds": seconds, "outcome": outcome,
                  "estimate_mb": None if estimate is None else estimate / 2**20,
                  "max_pixels": settings.IMGSIM_MAX_PIXELS}))
"""


def measure(code: Path, path: Path, mode: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="imgsim-bench-memory-") as var:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("IMGSIM_", "DJANGO_", "DATABASE_URL"))}
        env.update(
            DJANGO_SETTINGS_MODULE="imgsim_site.settings",
            IMGSIM_VAR_DIR=var,
            IMGSIM_MODEL="mobilenet_v2",
            IMGSIM_WEIGHTS=str(WEIGHTS),
            IMGSIM_TORCH_THREADS="1",
            IMGSIM_LOG_LEVEL="WARNING",
        )
        result = subprocess.run(
            [sys.executable, "-c", CHILD, str(path), mode], cwd=code, env=env, capture_output=True, text=True
        )
    if result.returncode != 0:
        return {"error": result.stderr.strip().splitlines()[-1] if result.stderr else f"exit {result.returncode}"}
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--code", type=Path, default=REPO, help="the checkout to measure (default: this one)")
    parser.add_argument("--inputs", type=Path, default=Path(tempfile.gettempdir()) / "imgsim-bench-memory-inputs")
    parser.add_argument("--paths", nargs="+", default=list(PATHS), choices=PATHS)
    parser.add_argument("--only", nargs="*", choices=list(CASES), help="input names to run (default: all)")
    args = parser.parse_args()
    if not WEIGHTS.is_file() and "search" in args.paths:
        sys.exit(f"Missing {WEIGHTS}: the search path loads the offline MobileNet-V2 weights from ../shared/models.")
    names = args.only or list(CASES)
    # Made in a child process: a child's ru_maxrss starts from its parent's peak, so this process stays small.
    made = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys; sys.path.insert(0, {str(REPO)!r}); from bench.memory import make_inputs; "
            f"make_inputs(__import__('pathlib').Path({str(args.inputs)!r}), {names!r})",
        ],
        check=False,
    )
    if made.returncode != 0:
        sys.exit("Could not write the inputs")
    inputs = make_inputs(args.inputs, names)  # already there: only lists them
    print(f"code: {args.code.resolve()}")
    print(
        f"| {'mode':7} | {'file':28} | {'size':>7} | {'path':7} | {'added MB':>8} | {'estimate MB':>11} "
        f"| {'bound MB':>8} | ok  | {'seconds':>7} | outcome"
    )
    print("| --- | --- | ---: | --- | ---: | ---: | ---: | --- | ---: | --- |")
    for name, path in inputs.items():
        size = f"{path.stat().st_size / 1024:.0f} KB"
        for mode in args.paths:
            row = measure(args.code, path, mode)
            if "error" in row:
                print(f"| {CASES[name][0]:7} | {name:28} | {size:>7} | {mode:7} | - | - | - | - | - | {row['error']}")
                continue
            bound = (4 * row["max_pixels"]) / 2**20 + SLACK_MB
            estimate = "-" if row["estimate_mb"] is None else f"{row['estimate_mb']:.0f}"
            ok = "yes" if row["added_mb"] <= bound else "NO"
            print(
                f"| {CASES[name][0]:7} | {name:28} | {size:>7} | {mode:7} | {row['added_mb']:8.0f} | {estimate:>11} "
                f"| {bound:8.0f} | {ok:3} | {row['seconds']:7.1f} | {row['outcome']} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
