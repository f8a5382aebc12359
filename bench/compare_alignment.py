"""How well the compare view lines up a copy with its photo: screen position (the view before alignment), the
geometric check's transform alone, and the transform refined on larger pictures (what the view uses).

For each real photo (../shared/data/large-photos, 1920x1080 to 5640x3172, and three neardup-dev originals,
~500 px), copies whose relation to the photo is known exactly: a crop rescaled down, a crop rescaled up, the
mirror image of a crop, a quarter turn, a half turn. Each copy is registered onto its photo; the error is the
largest distance, in the photo's pixels, between where the transform puts the copy's corners and centre and
where they truly are. "Screen position" is where the panes put them side by side without alignment: both
fitted into one 718x780 pane (the desktop's) under one zoom and pan. Times are median CPU seconds per pair,
decode included (CPU, not wall time: the machines are shared), the refined one also as a ratio.

    .venv/bin/python bench/compare_alignment.py [--photos N]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imgsim_site.settings")

from PIL import Image, ImageOps

from duplicates.alignment import picture_alignment

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
PANE = (718, 780)

Truth = Callable[[np.ndarray], np.ndarray]  # points of the copy -> the same points on the photo


def copies(photo: Image.Image) -> dict[str, tuple[Image.Image, Truth]]:
    width, height = photo.size
    box = (round(width * 0.3), round(height * 0.2), round(width * 0.85), round(height * 0.9))
    crop = photo.crop(box)
    origin = np.array(box[:2], dtype=float)

    def rescaled(scale: float) -> tuple[Image.Image, Truth]:
        size = (round(crop.width * scale), round(crop.height * scale))
        factor = np.array([crop.width / size[0], crop.height / size[1]])
        return crop.resize(size, Image.Resampling.LANCZOS), lambda p: origin + p * factor

    return {
        "crop x0.5": rescaled(0.5),
        "crop x1.6": rescaled(1.6),
        "mirrored crop": (ImageOps.mirror(crop), lambda p: origin + np.c_[crop.width - p[:, 0], p[:, 1]]),
        "quarter turn": (photo.transpose(Image.Transpose.ROTATE_90), lambda p: np.c_[width - p[:, 1], p[:, 0]]),
        "half turn": (photo.transpose(Image.Transpose.ROTATE_180), lambda p: np.c_[width - p[:, 0], height - p[:, 1]]),
    }


def jpeg(picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def mapped(homography: np.ndarray, points: np.ndarray) -> np.ndarray:
    projected = np.hstack([points, np.ones((len(points), 1))]) @ homography.T
    return projected[:, :2] / projected[:, 2:3]


def screen_position(photo_size: tuple[int, int], copy_size: tuple[int, int]) -> np.ndarray:
    """Copy pixels -> photo pixels through the screen, both fitted into one pane (the unaligned view)."""

    def fitted(size: tuple[int, int]) -> np.ndarray:
        fit = min(PANE[0] / size[0], PANE[1] / size[1])
        offset = (np.array(PANE) - np.array(size) * fit) / 2
        return np.array([[fit, 0, offset[0]], [0, fit, offset[1]], [0, 0, 1]])

    return np.linalg.inv(fitted(photo_size)) @ fitted(copy_size)


def photos(limit: int) -> list[Path]:
    large = sorted((DATA / "large-photos").glob("*.jpg"))
    small = [DATA / "neardup-dev" / "images" / name for name in ("000000.jpg", "000002.jpg", "000005.jpg")]
    missing = [path for path in large[:1] + small if not path.exists()]
    if missing:
        raise SystemExit(f"missing {missing[0]}: the bench reads ../shared/data (see its README)")
    return (large + small)[:limit]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=15)
    args = parser.parse_args()
    Image.MAX_IMAGE_PIXELS = None
    errors: dict[str, list[float]] = {"screen position": [], "check alone": [], "refined": []}
    seconds: dict[str, list[float]] = {"check alone": [], "refined": []}
    pairs = aligned = 0
    for path in photos(args.photos):
        photo = Image.open(path).convert("RGB")
        photo_bytes = jpeg(photo)
        for name, (copy, truth) in copies(photo).items():
            pairs += 1
            copy_bytes = jpeg(copy)
            w, h = copy.size
            points = np.array([[0, 0], [w, 0], [0, h], [w, h], [w / 2, h / 2]], dtype=float)
            expected = truth(points)
            screen = mapped(screen_position(photo.size, copy.size), points)
            found = {}
            for label, refine in (("check alone", False), ("refined", True)):
                start = time.process_time()
                alignment = picture_alignment(
                    io.BytesIO(photo_bytes),
                    io.BytesIO(copy_bytes),
                    first_size=photo.size,
                    second_size=copy.size,
                    refine=refine,
                )
                seconds[label].append(time.process_time() - start)
                if alignment.homography is not None:
                    found[label] = mapped(alignment.homography, points)
            if len(found) < 2:
                print(f"  {path.name} {name}: not aligned ({alignment.inliers} inliers)")
                continue
            aligned += 1
            errors["screen position"].append(float(np.hypot(*(screen - expected).T).max()))
            for label, where in found.items():
                errors[label].append(float(np.hypot(*(where - expected).T).max()))
    print(f"{aligned} of {pairs} copies aligned ({args.photos} photos x {pairs // max(1, args.photos)} copies)")
    print("largest error per copy (corners and centre), in the photo's pixels: median / p90 / max")
    for label, values in errors.items():
        median, p90, top = np.percentile(values, [50, 90, 100])
        print(f"  {label:16s} {median:8.1f} {p90:8.1f} {top:8.1f}")
    check, refined = np.median(seconds["check alone"]), np.median(seconds["refined"])
    print(
        f"CPU time per pair (median): check alone {check * 1000:.0f} ms, refined {refined * 1000:.0f} ms "
        f"({refined / check:.1f}x)"
    )


if __name__ == "__main__":
    main()
