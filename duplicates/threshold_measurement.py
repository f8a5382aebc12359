"""Calibrating the duplicate thresholds of any backbone on the user's own images: pure logic, no Django.

A sample of library images is edited the ways copies get edited (resize, recompression, crop, brightness,
small rotation, mirror); each edited copy is embedded and compared with every image of a pool of library
images. Its own original is the one true match (a positive); every other pool image is a negative, as it
would be for a new upload. Precision and recall per threshold follow, with a plot, and the suggested
thresholds: `near_duplicate`, the lowest threshold whose precision (and that of every threshold above it)
reaches the target, `similar`, the score that 99 % of the edited copies still reach, and `match`, search's
"same scene" line (search/result_labels.py): the score that only 0.01 % of the pairs of different photos reach.

The library may already hold copies of a sampled image; counting them as negatives would push the
threshold up. Pool images that a reviewer confirmed as duplicates of the sample, or that geometric
verification matches with it, are set aside as probable copies and listed in the result.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from core.pixels import upright_rgb

DEFAULT_TARGET_PRECISION = 0.999
DEFAULT_SIMILAR_RECALL = 0.99
# Share of different-photo pairs at or above the suggested match threshold. On the dev photos that is 0.79
# for MobileNet-V2, beside its measured 0.80 where a search result labelled "same scene" is right 95 % of the
# time and exposure brackets mostly reach it (bench/search_labels.py).
MATCH_NEGATIVE_SHARE = 1e-4
DEFAULT_SAMPLE_SIZE = 100
# Transforms work on a copy at most this big: enough for a 224x224 model input after a crop to 60 %.
WORK_SIZE = 1024
GRID_STEP = 0.005
TOP_NEGATIVES = 20
# Library images per sampled image checked geometrically as possible existing copies (the best-scoring
# first): a photo with more copies than this leaves the rest counted as negatives (a higher threshold).
SUSPECTS_PER_SAMPLE = 200

Transform = Callable[[Image.Image, np.random.Generator], Image.Image]


def _recompressed(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=int(rng.integers(25, 45)))
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def _resized(factor: float) -> Transform:
    def resize(image: Image.Image, rng: np.random.Generator) -> Image.Image:
        size = (max(16, round(image.width * factor)), max(16, round(image.height * factor)))
        return image.resize(size, Image.Resampling.LANCZOS)

    return resize


def _cropped(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A random crop keeping 70-85 % of each side (50-70 % of the picture)."""
    keep = rng.uniform(0.70, 0.85)
    width, height = max(1, round(image.width * keep)), max(1, round(image.height * keep))
    left = int(rng.integers(0, image.width - width + 1))
    top = int(rng.integers(0, image.height - height + 1))
    return image.crop((left, top, left + width, top + height))


def _brightness(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    factor = rng.uniform(1.2, 1.35) if rng.random() < 0.5 else rng.uniform(0.65, 0.8)
    return ImageEnhance.Brightness(image).enhance(factor)


def rotated_without_corners(image: Image.Image, degrees: float) -> Image.Image:
    """Rotated, then cropped to the largest upright rectangle of the same shape without empty corners."""
    turned = image.rotate(degrees, resample=Image.Resampling.BICUBIC)
    angle = math.radians(abs(degrees))
    ratio = max(image.width / image.height, image.height / image.width)
    keep = 1 / (math.cos(angle) + math.sin(angle) * ratio)
    width, height = image.width * keep, image.height * keep
    left, top = (image.width - width) / 2, (image.height - height) / 2
    return turned.crop((round(left), round(top), round(left + width), round(top + height)))


def _rotated(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Rotated 3-6 degrees either way (a tilted scan or a straightened horizon)."""
    return rotated_without_corners(image, rng.uniform(3, 6) * (1 if rng.random() < 0.5 else -1))


def _mirrored(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return ImageOps.mirror(image)


TRANSFORMS: dict[str, Transform] = {
    "resize_50": _resized(0.5),
    "resize_25": _resized(0.25),
    "jpeg_25_45": _recompressed,
    "crop_70_85": _cropped,
    "brightness": _brightness,
    "rotate_3_6": _rotated,
    "mirror": _mirrored,
}


def working_copy(image: Image.Image) -> Image.Image:
    """Upright RGB at most WORK_SIZE on its longest side (JPEGs decode at reduced scale)."""
    image.draft("RGB", (WORK_SIZE, WORK_SIZE))
    rgb = upright_rgb(image)
    rgb.thumbnail((WORK_SIZE, WORK_SIZE), Image.Resampling.LANCZOS)
    return rgb


def edited_copies(image: Image.Image, *, rng: np.random.Generator) -> list[tuple[str, Image.Image]]:
    """One copy per transform, made from the same working copy."""
    base = working_copy(image)
    return [(name, transform(base, rng)) for name, transform in TRANSFORMS.items()]


def copy_suspects(
    *,
    source_id: int,
    vectors: np.ndarray,
    floor: float,
    pool_ids: np.ndarray,
    pool_vectors: np.ndarray,
    limit: int = SUSPECTS_PER_SAMPLE,
) -> list[int]:
    """Pool images that the sampled image or one of its edited copies (`vectors`, one per row) scores at
    least `floor` with: the ones worth a geometric check before they count as negatives (best first)."""
    scores = (np.asarray(pool_vectors, dtype=np.float32) @ np.asarray(vectors, dtype=np.float32).T).max(axis=1)
    ids = np.asarray(pool_ids, dtype=np.int64)
    mask = (scores >= floor) & (ids != source_id)
    order = np.argsort(-scores[mask], kind="stable")[:limit]
    return ids[mask][order].tolist()


def suspect_floor(positives: np.ndarray, *, similar_recall: float = DEFAULT_SIMILAR_RECALL) -> float:
    """Negatives below the score that 99 % of edited copies reach can't move the suggested thresholds."""
    return float(np.quantile(np.asarray(positives), 1 - similar_recall))


@dataclass(frozen=True)
class CalibrationSet:
    """Embedded copies, their originals, and the negative pool; ids are library ids."""

    copy_vectors: np.ndarray  # (c, d) unit rows
    copy_source: np.ndarray  # (c,) library id of each copy's original
    copy_transform: list[str]
    source_vectors: dict[int, np.ndarray]  # library id -> stored vector of the original
    pool_ids: np.ndarray  # (p,)
    pool_vectors: np.ndarray  # (p, d)
    probable_copies: dict[int, set[int]] = field(default_factory=dict)  # original id -> pool ids set aside


@dataclass
class CalibrationResult:
    thresholds: list[float]
    precision: list[float]
    recall: list[float]
    false_positives: list[int]
    positives: int
    negatives: int
    target_precision: float
    suggested_near_duplicate: float | None
    suggested_similar: float
    recall_at_suggested: float | None
    precision_at_suggested: float | None
    per_transform: dict[str, dict[str, float]]
    top_negatives: list[dict[str, float | int | str]]
    probable_copies: list[list[int]]
    notes: list[str] = field(default_factory=list)
    suggested_match: float | None = None  # search's "same scene" line; None in runs stored before it existed

    def as_json(self) -> dict[str, object]:
        return asdict(self)

    def table(self, *, step: float = 0.02) -> list[tuple[float, float, float, int]]:
        """(threshold, precision, recall, false positives) every `step`, for printing."""
        every = max(1, round(step / GRID_STEP))
        rows = zip(self.thresholds, self.precision, self.recall, self.false_positives, strict=True)
        return [row for position, row in enumerate(rows) if position % every == 0]


def calibrate(
    data: CalibrationSet,
    *,
    target_precision: float = DEFAULT_TARGET_PRECISION,
    similar_recall: float = DEFAULT_SIMILAR_RECALL,
    low: float = 0.5,
) -> CalibrationResult:
    """Precision/recall per threshold of the calibration set and the suggested thresholds."""
    if not 0 < target_precision < 1:
        raise ValueError(f"target precision must be between 0 and 1, got {target_precision}")
    copies = np.asarray(data.copy_vectors, dtype=np.float32)
    if copies.shape[0] == 0:
        raise ValueError("no edited copies to calibrate with")
    sources = np.asarray(data.copy_source, dtype=np.int64)
    positives = np.einsum("ij,ij->i", copies, np.stack([data.source_vectors[int(s)] for s in sources]))

    grid = np.round(np.arange(low, 1.0 + 1e-9, GRID_STEP), 4)
    edges = np.append(grid, np.inf)
    negative_counts = np.zeros(grid.shape[0], dtype=np.int64)
    below_grid = 0
    top: list[tuple[float, int, int, str]] = []
    pool_ids = np.asarray(data.pool_ids, dtype=np.int64)
    pool = np.asarray(data.pool_vectors, dtype=np.float32)
    for start in range(0, copies.shape[0], 256):
        block = copies[start : start + 256] @ pool.T
        for row in range(block.shape[0]):
            source = int(sources[start + row])
            excluded = pool_ids == source
            aside = data.probable_copies.get(source)
            if aside:
                excluded |= np.isin(pool_ids, np.fromiter(aside, dtype=np.int64))
            scores = block[row][~excluded]
            counts, _ = np.histogram(scores, bins=edges)
            negative_counts += counts
            below_grid += int((scores < grid[0]).sum())
            best = np.argsort(-block[row])[: TOP_NEGATIVES + 1 + len(aside or ())]
            for column in best:
                if not excluded[column]:
                    top.append(
                        (float(block[row, column]), source, int(pool_ids[column]), data.copy_transform[start + row])
                    )
    negatives = int(negative_counts.sum()) + below_grid
    false_positives = np.cumsum(negative_counts[::-1])[::-1]
    true_positives = np.array([(positives >= t).sum() for t in grid])
    precision = true_positives / np.maximum(1, true_positives + false_positives)
    precision = np.where(true_positives + false_positives == 0, 1.0, precision)
    recall = true_positives / positives.shape[0]

    # The lowest threshold from which precision stays at the target all the way up.
    meets = precision >= target_precision
    suggested_nd: float | None = None
    notes: list[str] = []
    if meets[-1]:
        first_bad = np.flatnonzero(~meets)
        position = 0 if first_bad.shape[0] == 0 else int(first_bad[-1]) + 1
        suggested_nd = float(grid[position])
    else:
        notes.append(f"No threshold reaches precision {target_precision}: look at the top negatives.")
    similar = round(float(np.floor(np.quantile(positives, 1 - similar_recall) / GRID_STEP) * GRID_STEP), 4)
    if suggested_nd is not None:
        similar = min(similar, suggested_nd)
    rare = np.flatnonzero(false_positives <= MATCH_NEGATIVE_SHARE * negatives)
    match = max(similar, float(grid[rare[0]]) if rare.shape[0] else 1.0)
    if suggested_nd is not None:
        match = min(match, suggested_nd)
    per_transform = {}
    for name in dict.fromkeys(data.copy_transform):
        scores = positives[np.array([t == name for t in data.copy_transform])]
        per_transform[name] = {
            "count": int(scores.shape[0]),
            "mean": round(float(scores.mean()), 4),
            "min": round(float(scores.min()), 4),
            "recall_at_suggested": None if suggested_nd is None else round(float((scores >= suggested_nd).mean()), 4),
            "recall_at_similar": round(float((scores >= similar).mean()), 4),
        }
    at = None if suggested_nd is None else int(np.flatnonzero(grid == suggested_nd)[0])
    top.sort(reverse=True)
    return CalibrationResult(
        thresholds=[float(t) for t in grid],
        precision=[round(float(p), 6) for p in precision],
        recall=[round(float(r), 6) for r in recall],
        false_positives=[int(f) for f in false_positives],
        positives=int(positives.shape[0]),
        negatives=negatives,
        target_precision=target_precision,
        suggested_near_duplicate=suggested_nd,
        suggested_similar=similar,
        suggested_match=match,
        recall_at_suggested=None if at is None else round(float(recall[at]), 6),
        precision_at_suggested=None if at is None else round(float(precision[at]), 6),
        per_transform=per_transform,
        top_negatives=[
            {"similarity": round(score, 4), "sample_id": source, "library_id": other, "transform": name}
            for score, source, other, name in top[:TOP_NEGATIVES]
        ],
        probable_copies=sorted([source, other] for source, others in data.probable_copies.items() for other in others),
        notes=notes,
    )


def plot_png(result: CalibrationResult, *, title: str) -> bytes:
    """Precision and recall per threshold, and the two score distributions, as a PNG (Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 4.2), dpi=100)
    curves, bars = figure.subplots(1, 2)
    thresholds = np.array(result.thresholds)
    curves.plot(thresholds, result.precision, label="precision", color="#3659e3")
    curves.plot(thresholds, result.recall, label="recall (edited copies)", color="#12805c")
    if result.suggested_near_duplicate is not None:
        curves.axvline(result.suggested_near_duplicate, color="#b42318", linestyle="--", label="near-duplicate")
    curves.axvline(result.suggested_similar, color="#b54708", linestyle=":", label="similar")
    curves.axhline(result.target_precision, color="#667085", linewidth=0.8)
    curves.set_xlabel("cosine threshold")
    curves.set_ylim(0, 1.02)
    curves.set_title("Precision and recall per threshold")
    curves.legend(loc="lower left", fontsize=8)
    false_positives = np.array(result.false_positives, dtype=np.float64)
    per_bin = np.maximum(false_positives - np.append(false_positives[1:], 0), 0)
    bars.bar(thresholds, per_bin, width=GRID_STEP, color="#b42318", alpha=0.6, label="negatives")
    true_positives = np.array(result.recall) * result.positives
    positives_per_bin = np.maximum(true_positives - np.append(true_positives[1:], 0), 0)
    bars.bar(thresholds, positives_per_bin, width=GRID_STEP, color="#12805c", alpha=0.6, label="edited copies")
    bars.set_yscale("log")
    bars.set_xlabel("cosine to the sample image")
    bars.set_title("Score distributions (pairs per bin, log)")
    bars.legend(fontsize=8)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
