"""Peak memory of the worst inputs inside the caps: upload validation and search by upload.

Each measurement runs in a fresh subprocess (so one input's peak cannot hide another's): it sets up
Django on a throw-away SQLite database, loads the model for the search path, reads the file, notes its
peak RSS so far (ru_maxrss), runs the real code path once, and reports the new peak minus that
baseline: the memory this one request added.

    .venv/bin/python bench/memory.py                       # this checkout
    .venv/bin/python bench/memory.py --code /tmp/imgsim-main   # another checkout (e.g. main, for "before")

Paths: `upload` is gallery.services.image_create (validation, EXIF, quality checks, thumbnail, stored
file), `search` is search.selectors.query_image_from_upload (validation + query embedding), both present
on main and here.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = REPO.parent / "shared" / "models" / "mobilenet_v2_imagenet_features.pth"
SIDE = (10_000, 8_800)  # 88 MP: under Pillow's default 89.5 MP bomb threshold and the 100 MP cap


def make_inputs(folder: Path) -> dict[str, Path]:
    """The worst cases found by the attack campaign, written once (their making is not measured)."""
    folder.mkdir(parents=True, exist_ok=True)
    makers = {
        "png-rgb-zeros-88mp": lambda: (Image.new("RGB", SIDE), "PNG", {}),
        "png-16bit-grey-88mp": lambda: (Image.new("I;16", SIDE), "PNG", {}),
        "tiff-16bit-big-endian-88mp": lambda: (Image.new("I;16B", SIDE), "TIFF", {"compression": "tiff_adobe_deflate"}),
        "png-rgba-88mp": lambda: (Image.new("RGBA", SIDE, (10, 20, 30, 128)), "PNG", {}),
        "jpeg-noise-88mp": lambda: (_noise_jpeg_source(), "JPEG", {"quality": 60}),
    }
    paths = {}
    for name, make in makers.items():
        suffix = {"PNG": ".png", "TIFF": ".tif", "JPEG": ".jpg"}
        path = folder / name
        existing = list(folder.glob(f"{name}.*"))
        if existing:
            paths[name] = existing[0]
            continue
        image, fmt, options = make()
        path = path.with_suffix(suffix[fmt])
        image.save(path, format=fmt, **options)
        paths[name] = path
        del image
    return paths


def _noise_jpeg_source() -> Image.Image:
    rng = np.random.default_rng(1)
    tile = Image.fromarray(rng.integers(0, 255, size=(1100, 1250, 3), dtype=np.uint8), "RGB")
    image = Image.new("RGB", SIDE)
    for x in range(0, SIDE[0], 1250):
        for y in range(0, SIDE[1], 1100):
            image.paste(tile, (x, y))
    return image


CHILD = r"""
import json, os, resource, sys, time
sys.path.insert(0, os.getcwd())
import django
django.setup()
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
else:
    from gallery.services import image_create
data = open(path, "rb").read()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
outcome = "ok"
try:
    if mode == "search":
        query_image_from_upload(data=data)
    else:
        result = image_create(data=data, original_name=os.path.basename(path))  # stored, not queued
        outcome = result.outcome + (":" + result.image.reason_code if result.image.reason_code else "")
except Exception as error:
    outcome = f"{type(error).__name__}: {getattr(error, 'code', '')} {str(error)[:80]}"
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"base_mb": base / 1024, "peak_mb": peak / 1024, "added_mb": (peak - base) / 1024,
                  "seconds": seconds, "outcome": outcome}))
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
        return {"error": result.stderr.strip().splitlines()[-1] if result.stderr else "failed"}
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--code", type=Path, default=REPO, help="the checkout to measure (default: this one)")
    parser.add_argument("--inputs", type=Path, default=Path(tempfile.gettempdir()) / "imgsim-bench-memory-inputs")
    parser.add_argument("--modes", nargs="+", default=["upload", "search"], choices=["upload", "search"])
    parser.add_argument("--only", nargs="*", help="input names to run (default: all)")
    args = parser.parse_args()
    if not WEIGHTS.is_file() and "search" in args.modes:
        sys.exit(f"Missing {WEIGHTS}: the search path loads the offline MobileNet-V2 weights from ../shared/models.")
    # Made in a child process: a child's ru_maxrss starts from its parent's peak, so this process stays small.
    made = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys; sys.path.insert(0, {str(REPO)!r}); from bench.memory import make_inputs; "
            f"make_inputs(__import__('pathlib').Path({str(args.inputs)!r}))",
        ],
        check=False,
    )
    if made.returncode != 0:
        sys.exit("Could not write the inputs")
    inputs = make_inputs(args.inputs)  # already there: only lists them
    print(f"code: {args.code.resolve()}")
    print(f"{'input':28} {'size':>8} {'path':7} {'added MB':>9} {'peak MB':>8} {'seconds':>8}  outcome")
    for name, path in inputs.items():
        if args.only and name not in args.only:
            continue
        for mode in args.modes:
            row = measure(args.code, path, mode)
            size = f"{path.stat().st_size / 1024:.0f} KB"
            if "error" in row:
                print(f"{name:28} {size:>8} {mode:7} {'-':>9} {'-':>8} {'-':>8}  {row['error']}")
                continue
            print(
                f"{name:28} {size:>8} {mode:7} {row['added_mb']:9.0f} {row['peak_mb']:8.0f} "
                f"{row['seconds']:8.2f}  {row['outcome']}"
            )


if __name__ == "__main__":
    main()
