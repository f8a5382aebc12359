"""How far a rejected copy of a library photo stays from its original, per quality reason (offline MobileNet-V2).

Run from the repository root: ``.venv/bin/python bench/blurred_copies.py``. It measures what the rejected-copy
check (duplicates/services/rejected_copies.py) decides on:
- library: distractors-dev/train (200 photos, less the one the blur check rejects) + the 9 sharp photos of
  ../shared/data/blur;
- positives: copies of library photos (Gaussian blur, motion blur, downscaled below 64 px, darkened or
  brightened until >98 % of pixels are near black / white), kept only when image_create's quality checks
  reject them for the reason named, plus the blurred shots of the blur set (a second exposure of the same
  scene as a sharp library photo);
- negatives: the same copies of distractors-dev/val photos, which are not in the library.
For each reason it prints cosine to the original, whether the original is the nearest library image, the
nearest library image of negatives, and a threshold sweep: recall (nearest is the original and at or above t)
and false notices (nearest is another photo and at or above t, over positives and negatives). For the blur
rejections it then measures the check's second stage: the 5 or 10 nearest library images compared again after
blurring query and candidate alike (duplicates.blur_match) at three radii, with the same sweep.
Takes about 5 minutes of CPU (2 cores); the figures do not depend on the machine.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2
import numpy as np
from PIL import Image, ImageFilter

from duplicates.blur_match import REBLUR_RADIUS, reblurred
from gallery.image_file import decode_upload
from gallery.quality import QualityReport, QualityThresholds, assess_quality
from search.embedding import load_embedder
from search.model_input import load_rgb_for_embedding, model_input_pixels
from tests.images import OFFLINE_WEIGHTS, shared_path

MAX_PIXELS = 100_000_000
BLUR_FRACTIONS = (0.004, 0.006, 0.010)  # Gaussian radius as a fraction of the long side
MOTION_FRACTIONS = (0.03, 0.05)  # motion-blur length as a fraction of the long side
BLUR_NAMES = [f"gaussian {f:.1%}" for f in BLUR_FRACTIONS] + [f"motion {f:.0%}" for f in MOTION_FRACTIONS]
REBLUR_RADII = (2.5, 4.0, 6.0)
REBLUR_SWEEP = [0.80, 0.84, 0.86, 0.88, 0.90, 0.92, 0.94]
CANDIDATES = (5, 10)  # nearest library images re-compared after blurring both alike
SWEEP = [0.60, 0.65, 0.70, 0.72, 0.74, 0.76, 0.78, 0.80, 0.82, 0.84, 0.86, 0.88]


def jpeg(image: Image.Image, quality: int = 85) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def motion_blur(image: Image.Image, length: int) -> Image.Image:
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0 / length
    return Image.fromarray(cv2.filter2D(np.asarray(image.convert("RGB")), -1, kernel))


def copies(image: Image.Image) -> dict[str, list[bytes]]:
    """Edited copies of one photo, by the rejection they aim at."""
    rgb = image.convert("RGB")
    long_side = max(rgb.size)
    pixels = np.asarray(rgb, np.float32)
    return {
        "blurry": [jpeg(rgb.filter(ImageFilter.GaussianBlur(long_side * f))) for f in BLUR_FRACTIONS]
        + [jpeg(motion_blur(rgb, max(3, int(long_side * f)))) for f in MOTION_FRACTIONS],
        "too_small": [
            jpeg(rgb.resize((max(1, rgb.width * s // long_side), max(1, rgb.height * s // long_side))))
            for s in (60, 40)
        ],
        "mostly_black": [jpeg(Image.fromarray(np.clip(pixels * f, 0, 255).astype(np.uint8))) for f in (0.06, 0.04)],
        "mostly_white": [
            jpeg(Image.fromarray(np.clip(255 - (255 - pixels) * f, 0, 255).astype(np.uint8))) for f in (0.06, 0.04)
        ],
    }


def quality_report(data: bytes) -> QualityReport:
    """What image_create's quality checks measure and decide for these upload bytes."""
    decoded = decode_upload(data, max_pixels=MAX_PIXELS)
    return assess_quality(decoded.preview, thresholds=QualityThresholds(), size=(decoded.width, decoded.height))


def rejection(data: bytes) -> str:
    report = quality_report(data)
    return report.rejection.reason if report.rejection is not None else ""


def main() -> None:
    embedder = load_embedder(model_name="mobilenet_v2", weights_path=OFFLINE_WEIGHTS, num_threads=2)
    train = [p for p in sorted(shared_path("data", "distractors-dev", "train").glob("*.jpg")) if p.stem != "135037"]
    val = sorted(shared_path("data", "distractors-dev", "val").glob("*.jpg"))
    blur_root = shared_path("data", "blur")
    with (blur_root / "labels.csv").open(newline="") as handle:
        blur_rows = list(csv.DictReader(handle))
    sharp = {row["scene_id"]: blur_root / row["file"] for row in blur_rows if row["blurred"] == "0"}
    library_paths = train + list(sharp.values())
    library = embedder.embed_sources([p.read_bytes() for p in library_paths]).vectors
    print(f"library: {len(library_paths)} photos")

    # (reason, library index of the original or -1, bytes)
    samples: list[tuple[str, int, bytes]] = []
    off_target: dict[str, int] = {}
    for index, path in [(i, p) for i, p in enumerate(train)] + [(-1, p) for p in val]:
        with Image.open(path) as image:
            for reason, files in copies(image).items():
                for variant, data in enumerate(files):
                    got = rejection(data)
                    if got == reason:
                        samples.append((reason, index, data))
                        if reason == "blurry":
                            samples.append((f"blurry: {BLUR_NAMES[variant]}", index, data))
                    else:
                        key = f"{reason}->{got or 'accepted'}"
                        off_target[key] = off_target.get(key, 0) + 1
    for row in blur_rows:
        if row["blurred"] == "1" and row["scene_id"] in sharp:
            data = (blur_root / row["file"]).read_bytes()
            reason = rejection(data)
            samples.append((f"blur-set ({reason or 'accepted'})", library_paths.index(sharp[row["scene_id"]]), data))
    print("copies whose rejection was another reason (not used):", off_target)
    unique = list(dict.fromkeys(data for _, _, data in samples))
    position = {data: row for row, data in enumerate(unique)}
    vectors = embedder.embed_sources(unique).vectors[[position[data] for _, _, data in samples]]
    scores = vectors @ library.T
    # Blurred alike: the library and every blur-rejected query at the model input, per radius.
    blur_rows = [i for i, sample in enumerate(samples) if sample[0].startswith("blur")]
    blur_unique = list(dict.fromkeys(samples[i][2] for i in blur_rows))
    library_pixels = [model_input_pixels(load_rgb_for_embedding(p.read_bytes())) for p in library_paths]
    query_pixels = {data: model_input_pixels(load_rgb_for_embedding(data)) for data in blur_unique}
    reblur: dict[float, tuple[np.ndarray, dict[bytes, np.ndarray]]] = {}
    for radius in REBLUR_RADII:
        lib = embedder.embed_pixels(np.stack([reblurred(px, radius=radius) for px in library_pixels]))
        queries = embedder.embed_pixels(
            np.stack([reblurred(query_pixels[data], radius=radius) for data in blur_unique])
        )
        reblur[radius] = (lib, dict(zip(blur_unique, queries, strict=True)))
    for reason in sorted({s[0] for s in samples}):
        rows = [i for i, s in enumerate(samples) if s[0] == reason]
        pos = [i for i in rows if samples[i][1] >= 0]
        neg = [i for i in rows if samples[i][1] < 0]
        to_original = np.array([scores[i, samples[i][1]] for i in pos])
        top = scores[rows].argmax(axis=1)
        top_score = scores[rows].max(axis=1)
        nearest = dict(zip(rows, zip(top.tolist(), top_score.tolist(), strict=True), strict=True))
        top1 = np.mean([nearest[i][0] == samples[i][1] for i in pos]) if pos else float("nan")
        print(f"\n== {reason}: {len(pos)} copies of library photos, {len(neg)} of other photos")
        if pos:
            q = np.percentile(to_original, [0, 5, 25, 50])
            print(
                f"  cosine to original: min {q[0]:.3f}  p5 {q[1]:.3f}  p25 {q[2]:.3f}  median {q[3]:.3f};"
                f" original is the nearest: {top1:.1%}"
            )
        if neg:
            best = np.array([nearest[i][1] for i in neg])
            print(
                f"  others' nearest library image: max {best.max():.3f}  p99 {np.percentile(best, 99):.3f}"
                f"  median {np.median(best):.3f}"
            )
        wrong_pos = [nearest[i][1] for i in pos if nearest[i][0] != samples[i][1]]
        print("  t      recall  false notices (wrong photo among copies / copies of photos not in the library)")
        for t in SWEEP:
            hit = sum(nearest[i][0] == samples[i][1] and nearest[i][1] >= t for i in pos)
            false_pos = sum(s >= t for s in wrong_pos)
            false_neg = sum(nearest[i][1] >= t for i in neg)
            recall = hit / len(pos) if pos else float("nan")
            print(f"  {t:.2f}  {recall:6.1%}  {false_pos} / {false_neg}")
        if reason.startswith("blur"):
            reblur_report(samples, rows, pos, neg, scores, reblur)


def reblur_report(samples, rows, pos, neg, scores, reblur) -> None:
    """The copy check's second stage: the CANDIDATES nearest library images, compared after blurring alike."""
    for (radius, (lib, queries)), count in [(item, n) for item in reblur.items() for n in CANDIDATES]:
        best: dict[int, tuple[int, float]] = {}
        for i in rows:
            candidates = np.argsort(-scores[i])[:count]
            again = lib[candidates] @ queries[samples[i][2]]
            best[i] = (int(candidates[again.argmax()]), float(again.max()))
        found = np.mean([best[i][0] == samples[i][1] for i in pos]) if pos else float("nan")
        true = np.array([best[i][1] for i in pos if best[i][0] == samples[i][1]] or [np.nan])
        print(
            f"  blurred alike (radius {radius} px at 224, top {count}): original is the best {found:.1%};"
            f" its cosine min {true.min():.3f} median {np.median(true):.3f}"
        )
        wrong = [best[i][1] for i in pos if best[i][0] != samples[i][1]] + [best[i][1] for i in neg]
        if wrong:
            print(f"    best wrong photo: max {max(wrong):.3f}  median {np.median(wrong):.3f}")
        for t in REBLUR_SWEEP:
            hit = sum(best[i][0] == samples[i][1] and best[i][1] >= t for i in pos)
            false_pos = sum(best[i][0] != samples[i][1] and best[i][1] >= t for i in pos)
            false_neg = sum(best[i][1] >= t for i in neg)
            recall = hit / len(pos) if pos else float("nan")
            print(f"    {t:.2f}  {recall:6.1%}  {false_pos} / {false_neg}")
        if radius == REBLUR_RADIUS and count == max(CANDIDATES):
            margin_report(samples, rows, pos, neg, scores, lib, queries, count)


def margin_report(samples, rows, pos, neg, scores, lib, queries, count) -> None:
    """A lower threshold when the best candidate stands out: (best - second best) >= margin after blurring alike."""
    top: dict[int, tuple[int, float, float]] = {}
    for i in rows:
        candidates = np.argsort(-scores[i])[:count]
        again = lib[candidates] @ queries[samples[i][2]]
        order = np.argsort(-again)
        top[i] = (int(candidates[order[0]]), float(again[order[0]]), float(again[order[0]] - again[order[1]]))
    print("    threshold / margin: recall  false notices (copies / not in the library)")
    for t in (0.80, 0.83, 0.85, 0.88, 0.90):
        for margin in (0.0, 0.05, 0.08, 0.10, 0.12):
            named = {i for i in rows if top[i][1] >= t and top[i][2] >= margin}
            hit = sum(i in named and top[i][0] == samples[i][1] for i in pos)
            false_pos = sum(i in named and top[i][0] != samples[i][1] for i in pos)
            false_neg = sum(i in named for i in neg)
            print(f"    {t:.2f} / {margin:.2f}  {hit / max(1, len(pos)):6.1%}  {false_pos} / {false_neg}")


if __name__ == "__main__":
    main()
