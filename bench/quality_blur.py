"""How well the quality checks work on real photos, and what they cost.

Run from the repository root: ``.venv/bin/python bench/quality_blur.py``. Prints:
1. the sharpness (and the prototype's Laplacian variance) of every photo in ../shared/data/blur;
2. accuracy, precision and recall for "blurred" at the default threshold, with the confusion matrix;
3. how many sharp real photos (neardup-dev, distractors-dev, large-photos) each default check rejects;
4. a sweep of thresholds with the same figures and the false rejections of those sharp photos, so a user
   can pick a stricter or looser threshold, and the best any Laplacian-variance threshold can do;
5. how much the sharpness of one photo moves when it is saved at 768..2048 pixels, and the blur figures
   again through the 1024-px preview of gallery.image_file.decode_upload, which is what image_create
   passes to assess_quality (a second resampling lowers sharpness by about 0.01);
6. time per image for assess_quality on a large photo, as ratios against a full decode of the same photo
   measured in the same run (absolute times on shared machines vary, ratios measured side by side not).
"""

from __future__ import annotations

import csv
import io
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2
import numpy as np
from PIL import Image

from gallery.image_file import decode_upload
from gallery.quality import QualityThresholds, assess_quality
from tests.images import shared_path

DEFAULTS = QualityThresholds()
SWEEP = [round(0.40 + 0.02 * step, 2) for step in range(14)]


def blur_set() -> list[tuple[str, str, bool, dict[str, float]]]:
    """(file, label, blurred, scores) for every photo listed in blur/labels.csv."""
    folder = shared_path("data", "blur")
    rows = []
    with (folder / "labels.csv").open(newline="") as labels:
        for row in csv.DictReader(labels):
            with Image.open(folder / row["file"]) as image:
                scores = assess_quality(image, thresholds=DEFAULTS).scores
            rows.append((Path(row["file"]).name, row["label"], row["blurred"] == "1", scores))
    return rows


def sharp_photos() -> dict[str, list[Path]]:
    """The real photos that are all sharp enough to keep, by folder."""
    return {
        "neardup-dev": sorted(shared_path("data", "neardup-dev", "images").glob("*.jpg")),
        "distractors-dev": sorted(shared_path("data", "distractors-dev").glob("*/*.jpg")),
        "large-photos": sorted(shared_path("data", "large-photos").glob("*.jpg")),
    }


def confusion(rows: list[tuple[bool, float]], threshold: float) -> tuple[int, int, int, int]:
    """(true pos, false pos, false neg, true neg) for "blurred" when the score is below threshold."""
    tp = sum(1 for blurred, score in rows if blurred and score < threshold)
    fp = sum(1 for blurred, score in rows if not blurred and score < threshold)
    fn = sum(1 for blurred, score in rows if blurred and score >= threshold)
    return tp, fp, fn, len(rows) - tp - fp - fn


def rates(tp: int, fp: int, fn: int, tn: int) -> str:
    """Accuracy, precision and recall as one line."""
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    return f"accuracy {(tp + tn) / (tp + fp + fn + tn):.3f}  precision {precision:.3f}  recall {recall:.3f}"


def per_image_seconds(run: Callable[[], object], repeats: int) -> float:
    """Median wall time of one call."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def print_blur_set(rows: list[tuple[str, str, bool, dict[str, float]]]) -> None:
    print("== 1. blur set: per-file scores (sharpness decides; laplacian_variance for comparison)")
    print(f"{'file':34s} {'label':13s} {'sharpness':>9s} {'lap.var':>8s}  verdict")
    for name, label, _, scores in sorted(rows, key=lambda row: row[3]["sharpness"]):
        verdict = "blurry" if scores["sharpness"] < DEFAULTS.blur_min_score else "kept"
        sharp, laplacian = scores["sharpness"], scores["laplacian_variance"]
        print(f"{name:34s} {label:13s} {sharp:9.3f} {laplacian:8.1f}  {verdict}")

    tp, fp, fn, tn = confusion([(r[2], r[3]["sharpness"]) for r in rows], DEFAULTS.blur_min_score)
    print(f"\n== 2. default blur_min_score {DEFAULTS.blur_min_score}: {rates(tp, fp, fn, tn)}")
    print("confusion (rows: truth, columns: verdict)   blurry  kept")
    print(f"  blurred ({tp + fn:2d})                            {tp:6d} {fn:5d}")
    print(f"  sharp   ({fp + tn:2d})                            {fp:6d} {tn:5d}")


def print_sweep(rows: list[tuple[str, str, bool, dict[str, float]]], photos: list[dict[str, float]]) -> None:
    photo_scores = [scores["sharpness"] for scores in photos]
    print(f"\n== 4. threshold sweep: blur set of {len(rows)}, false rejections of {len(photos)} sharp photos")
    print(f"{'blur_min_score':>14s}  {'accuracy':>8s} {'precision':>9s} {'recall':>6s}  false rejections")
    for threshold in SWEEP:
        tp, fp, fn, tn = confusion([(r[2], r[3]["sharpness"]) for r in rows], threshold)
        precision = tp / (tp + fp) if tp + fp else float("nan")
        rejected = sum(1 for score in photo_scores if score < threshold)
        mark = "  <- default" if threshold == DEFAULTS.blur_min_score else ""
        print(
            f"{threshold:14.2f}  {(tp + tn) / len(rows):8.3f} {precision:9.3f} {tp / (tp + fn):6.3f}"
            f"  {rejected:4d}{mark}"
        )
    lap = [(r[2], r[3]["laplacian_variance"]) for r in rows]
    # Among the thresholds with the best accuracy, the lowest: it rejects the fewest sharp photos.
    correct, negative_threshold = max(
        (sum(1 for blurred, score in lap if (score < limit) == blurred), -limit)
        for limit in sorted({score for _, score in lap} | {float("inf")})
    )
    threshold = -negative_threshold
    rejected = sum(1 for scores in photos if scores["laplacian_variance"] < threshold)
    print(
        f"for comparison, the best Laplacian-variance threshold on the blur set, {threshold:.1f}: "
        f"accuracy {correct / len(lap):.3f}, false rejections {rejected} of {len(photos)}"
    )


def print_false_rejections(photos: dict[str, list[Path]]) -> list[dict[str, float]]:
    print("\n== 3. sharp real photos rejected by the default checks")
    all_scores: list[dict[str, float]] = []
    for folder, paths in photos.items():
        reasons: dict[str, list[str]] = {}
        minimum_std, worst_dark, worst_bright = float("inf"), 0.0, 0.0
        for path in paths:
            with Image.open(path) as image:
                report = assess_quality(image, thresholds=DEFAULTS)
            all_scores.append(report.scores)
            minimum_std = min(minimum_std, report.scores["color_std"])
            worst_dark = max(worst_dark, report.scores["dark_fraction"])
            worst_bright = max(worst_bright, report.scores["bright_fraction"])
            if report.rejection is not None:
                label = f"{path.name} ({report.rejection.score:.3f})"
                reasons.setdefault(report.rejection.reason, []).append(label)
        total = sum(len(names) for names in reasons.values())
        print(
            f"{folder:16s} {total:3d} of {len(paths):4d} rejected {reasons or ''}\n"
            f"{'':16s} lowest colour std {minimum_std:.1f}, highest dark fraction {worst_dark:.3f}, "
            f"highest bright fraction {worst_bright:.3f}"
        )
    return all_scores


def print_resolution_stability(rows: list[tuple[str, str, bool, dict[str, float]]]) -> None:
    print("\n== 5. sharpness of the same photo saved at 2048/1536/1024/768 px (JPEG q92): spread")
    folder = shared_path("data", "blur")
    spreads = []
    with (folder / "labels.csv").open(newline="") as labels:
        files = [row["file"] for row in csv.DictReader(labels)]
    for file in files:
        with Image.open(folder / file) as original:
            rgb = original.convert("RGB")
        scores = []
        for long_side in (2048, 1536, 1024, 768):
            copy = rgb.copy()
            copy.thumbnail((long_side, long_side), Image.Resampling.LANCZOS)
            buffer = io.BytesIO()
            copy.save(buffer, "JPEG", quality=92)
            with Image.open(io.BytesIO(buffer.getvalue())) as image:
                scores.append(assess_quality(image, thresholds=DEFAULTS).scores["sharpness"])
        spreads.append(max(scores) - min(scores))
    print(f"mean spread {statistics.mean(spreads):.3f}, largest {max(spreads):.3f} (sharpness units)")

    preview_rows = []
    for (name, _, blurred, direct), file in zip(rows, files, strict=True):
        preview = decode_upload((folder / file).read_bytes(), max_pixels=10**9).preview
        score = assess_quality(preview, thresholds=DEFAULTS).scores["sharpness"]
        preview_rows.append((blurred, score, score - direct["sharpness"], name))
    tp, fp, fn, tn = confusion([(blurred, score) for blurred, score, _, _ in preview_rows], DEFAULTS.blur_min_score)
    shift = statistics.mean(delta for _, _, delta, _ in preview_rows)
    print(f"through decode_upload's preview: {rates(tp, fp, fn, tn)}; mean sharpness change {shift:+.3f}")
    blinds = shared_path("data", "large-photos", "Blinds.jpg")
    macro = decode_upload(blinds.read_bytes(), max_pixels=10**9).preview
    macro_sharpness = assess_quality(macro, thresholds=DEFAULTS).scores["sharpness"]
    print(f"  the macro photo closest to the threshold, Blinds.jpg, through the preview: {macro_sharpness:.3f}")


def print_timing() -> None:
    print("\n== 6. time per image (median of repeats; ratios against a full decode measured in this run)")
    with Image.open(shared_path("data", "large-photos", "Elephants_5640x3172.jpg")) as elephants:
        big = elephants.convert("RGB").resize((6000, 4000), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    big.save(buffer, "JPEG", quality=90)
    data = buffer.getvalue()

    def full_decode() -> None:
        with Image.open(io.BytesIO(data)) as image:
            image.load()

    def assess_undecoded() -> None:
        with Image.open(io.BytesIO(data)) as image:
            assess_quality(image, thresholds=DEFAULTS)

    def prototype() -> None:
        with Image.open(io.BytesIO(data)) as image:
            grey = np.asarray(image.convert("L"))
        cv2.Laplacian(grey, cv2.CV_64F).var()

    decode = per_image_seconds(full_decode, 5)
    undecoded = per_image_seconds(assess_undecoded, 10)
    loaded = per_image_seconds(lambda: assess_quality(big, thresholds=DEFAULTS), 10)
    naive = per_image_seconds(prototype, 3)
    preview = big.resize((1024, 683), Image.Resampling.BILINEAR)
    on_preview = per_image_seconds(lambda: assess_quality(preview, thresholds=DEFAULTS), 20)
    rows = [
        ("6000x4000 JPEG full decode (baseline)", decode),
        ("assess_quality, JPEG opened but not decoded (draft)", undecoded),
        ("assess_quality, already decoded 6000x4000 RGB", loaded),
        ("assess_quality on a 1024x683 preview (image_create)", on_preview),
        ("prototype: full decode + grey + Laplacian at full size", naive),
    ]
    for label, seconds in rows:
        print(f"{label:55s} {seconds * 1000:7.1f} ms  {seconds / decode:5.2f}")


def main() -> None:
    rows = blur_set()
    print_blur_set(rows)
    photos = sharp_photos()
    photo_scores = print_false_rejections(photos)
    print_sweep(rows, photo_scores)
    print_resolution_stability(rows)
    print_timing()


if __name__ == "__main__":
    main()
