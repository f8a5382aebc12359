"""Search result labels (same photo / same scene / looks alike / weak): where the lines go, and how true each
label is on real photos.

Run from the repository root (no database; the embeddings are bench/duplicates.py's, cached in bench/out/):

    .venv/bin/python bench/search_labels.py                  # ~6 min the first time (embedding), seconds after
    .venv/bin/python bench/search_labels.py --brackets 100   # exposure brackets of the first N distractors

Library: ../shared/data/neardup-dev (8 photos x ~100 copies) + distractors-dev (300 photos) + their edited
copies and exposure brackets (-2, -1, +1, +2 EV) from bench/edited_families.py, embedded with the offline
ImageNet MobileNet-V2. Truth for a pair: the same photo (one neardup-dev group; a distractor and its edited
copies), the same scene (an exposure bracket with its photo, the photo's copies or another bracket of it), or
different photos.

1. Score distributions: different-photo pairs (percentiles), same-photo pairs, same-scene pairs; where the
   label lines sit in them, and the candidate lines for "same scene" with their precision.
2. Search by library image: every image queries the rest (top k). Per label, how many results carry it and
   its precision: "same photo" true when the result is the same photo; "same scene" true when it is the same
   photo or scene; "looks alike" and "weak" true when the result is not the same photo or scene (they claim
   no match). Plus the share of same-photo results labelled "same photo".
3. Uploads with no real match: each distractor photo queries the library without its own photo, copies and
   brackets (as an unrelated upload would); how often the answer says "no match", and how many results are
   labelled a match.
4. Candidate "same scene" lines judged on those top-k results (how the match threshold was chosen).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

if __name__ == "__main__":
    # Run as a script, bench/ is sys.path[0] and bench/duplicates.py would shadow the `duplicates` package.
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import numpy as np

from bench import edited_families
from bench.duplicates import OUT, DevData, django_ready, embedded, load_dev
from duplicates import threshold_measurement

LABELS = ("same_photo", "same_scene", "looks_alike", "weak")


@dataclass(frozen=True)
class Library:
    """Every distinct file with its photo (same-photo truth) and scene (same-scene truth)."""

    names: list[str]
    photos: np.ndarray  # same value: the same photo
    scenes: np.ndarray  # same value: the same scene (a photo is its own scene unless bracketed)
    kinds: np.ndarray  # copydays / original / copy / bracket
    vectors: np.ndarray


def library(data: DevData, folder: Path) -> Library:
    """The dev files plus the exposure brackets: a bracket is a photo of its own, in its source's scene."""
    members = [member for member in edited_families.read_labels(folder) if member.kind == "bracket"]
    files = [folder / member.file for member in members]
    vectors = embedded(files, [hashlib.sha256(path.read_bytes()).hexdigest() for path in files], what="brackets")
    photos = [str(group) for group in data.groups] + [f"bracket-{member.file}" for member in members]
    scenes = [str(group) for group in data.groups] + [
        member.family.replace("bracket-", "distractor-") for member in members
    ]
    names = [f"{path.parent.name}/{path.name}" for path in data.files] + [member.file for member in members]
    kinds = [str(kind) for kind in data.kinds] + ["bracket"] * len(members)
    return Library(
        names=names,
        photos=np.array(photos),
        scenes=np.array(scenes),
        kinds=np.array(kinds),
        vectors=np.vstack([data.vectors, vectors]).astype(np.float32),
    )


@dataclass(frozen=True)
class Lines:
    same_photo: float
    same_scene: float
    looks_alike: float

    def label(self, scores: np.ndarray) -> np.ndarray:
        labels = np.full(scores.shape, "weak", dtype=object)
        labels[scores >= self.looks_alike] = "looks_alike"
        labels[scores >= self.same_scene] = "same_scene"
        labels[scores >= self.same_photo] = "same_photo"
        return labels


def pair_scores(lib: Library) -> tuple[np.ndarray, np.ndarray]:
    """Cosine of every pair (i < j) and its truth: 2 same photo, 1 same scene, 0 different."""
    scores = lib.vectors @ lib.vectors.T
    first, second = np.triu_indices(len(lib.names), 1)
    truth = np.where(
        lib.photos[first] == lib.photos[second], 2, np.where(lib.scenes[first] == lib.scenes[second], 1, 0)
    )
    return scores[first, second], truth


def distributions(scores: np.ndarray, truth: np.ndarray, lines: Lines, *, near: float) -> None:
    different, scene, same = scores[truth == 0], scores[truth == 1], scores[truth == 2]
    print(f"\n1. Score distributions ({scores.shape[0]:,} pairs)")
    quantiles = (0.5, 0.9, 0.99, 0.999, 0.9999)
    print(
        f"   different photos ({different.shape[0]:,}): "
        + ", ".join(f"p{q * 100:g} {np.quantile(different, q):.3f}" for q in quantiles)
        + f", max {different.max():.3f}"
    )
    print(
        f"   same scene, exposure brackets ({scene.shape[0]:,}): "
        + ", ".join(f"p{q * 100:g} {np.quantile(scene, q):.3f}" for q in (0.01, 0.05, 0.1, 0.25, 0.5))
    )
    print(
        f"   same photo ({same.shape[0]:,}): "
        + ", ".join(f"p{q * 100:g} {np.quantile(same, q):.3f}" for q in (0.01, 0.05, 0.1, 0.5))
    )
    print(f"   share at or above each line:    {'different':>10} {'same scene':>11} {'same photo':>11}")
    for name, value in (
        ("same photo", lines.same_photo),
        ("same scene", lines.same_scene),
        ("looks alike", lines.looks_alike),
    ):
        print(
            f"   {name:>11} {value:.3f}: {(different >= value).mean():>19.6f} {(scene >= value).mean():>11.3f} "
            f"{(same >= value).mean():>11.3f}"
        )
    print("   candidate 'same scene' lines (pairs in [line, same photo)): scene or photo share, brackets reached")
    grid = np.round(np.arange(0.5, 1.0 + 1e-9, threshold_measurement.GRID_STEP), 4)
    rare = grid[[(different >= t).mean() <= threshold_measurement.MATCH_NEGATIVE_SHARE for t in grid]]
    print(
        f"   the calibration's rule for match (only {threshold_measurement.MATCH_NEGATIVE_SHARE:.2%} of "
        f"different-photo pairs at or above it) on these pairs: {rare[0]:.3f}"
    )
    for line in np.round(np.arange(0.70, near + 1e-9, 0.02), 3):
        band = (scores >= line) & (scores < near)
        true = band & (truth > 0)
        print(
            f"   {line:.2f}: {band.sum():>7,} pairs, precision {true.sum() / max(1, band.sum()):.4f}, "
            f"brackets at or above {(scene >= line).mean():.3f}, different photos above {(different >= line).sum():,}"
        )


def top_k(lib: Library, queries: np.ndarray, k: int, *, excluded: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(scores, positions) of each query's k best library images, its excluded positions left out."""
    all_scores = lib.vectors[queries] @ lib.vectors.T
    for row, positions in enumerate(excluded):
        all_scores[row, positions] = -np.inf
    order = np.argsort(-all_scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(all_scores, order, axis=1), order


def by_library_image(lib: Library, lines: Lines, k: int) -> None:
    queries = np.arange(len(lib.names))
    scores, positions = top_k(lib, queries, k, excluded=[np.array([q]) for q in queries])
    labels = lines.label(scores)
    same_photo = lib.photos[positions] == lib.photos[queries][:, None]
    same_scene = lib.scenes[positions] == lib.scenes[queries][:, None]
    bracketed = (lib.kinds[positions] == "bracket") | (lib.kinds[queries] == "bracket")[:, None]
    print(f"\n2. Search by library image: {len(queries):,} queries, top {k} ({scores.size:,} results)")
    print(f"   {'label':>11} {'results':>8} {'precision':>9}   same photo / same scene / different")
    for name in LABELS:
        mask = labels == name
        count = int(mask.sum())
        photo, scene = int((mask & same_photo).sum()), int((mask & same_scene & ~same_photo).sum())
        other = count - photo - scene
        true = photo if name == "same_photo" else photo + scene if name == "same_scene" else other
        print(f"   {name:>11} {count:>8,} {true / max(1, count):>9.4f}   {photo:,} / {scene:,} / {other:,}")
    photo_label = labels == "same_photo"
    print(
        f"   'same photo' counting a bracket of the scene as right too: "
        f"{(photo_label & same_scene).sum() / max(1, photo_label.sum()):.4f}; without the brackets in the "
        f"library: {(photo_label & same_photo & ~bracketed).sum() / max(1, (photo_label & ~bracketed).sum()):.4f}"
    )
    found = same_photo.sum()
    print(f"   same-photo results labelled 'same photo': {(same_photo & (labels == 'same_photo')).sum() / found:.4f}")
    scene_only = same_scene & ~same_photo
    print(
        f"   same-scene results (brackets) labelled 'same scene' or 'same photo': "
        f"{(scene_only & np.isin(labels, ['same_photo', 'same_scene'])).sum() / max(1, scene_only.sum()):.4f} "
        f"of {int(scene_only.sum())}"
    )


def unmatched_uploads(lib: Library, lines: Lines, k: int, *, before: float) -> None:
    originals = np.flatnonzero(lib.kinds == "original")
    excluded = [np.flatnonzero(lib.scenes == lib.scenes[q]) for q in originals]
    scores, _ = top_k(lib, originals, k, excluded=excluded)
    labels = lines.label(scores)
    said_no_match = ~np.isin(labels, ["same_photo", "same_scene"]).any(axis=1)
    print(
        f"\n3. Uploads with no real match: {len(originals)} distractor photos against the library without their "
        f"photo, copies and brackets, top {k}"
    )
    print(
        f"   answer says 'no photo is the same photo or scene': {said_no_match.mean():.4f}; best score median "
        f"{np.median(scores[:, 0]):.3f}, max {scores[:, 0].max():.3f}"
    )
    for name in LABELS:
        print(f"   results labelled {name:>11}: {(labels == name).sum():>5,} ({(labels == name).mean():.4f})")
    print(f"   queries with a result labelled 'looks alike': {(labels == 'looks_alike').any(axis=1).mean():.4f}")
    print(
        f"   before (one match threshold {before}, no labels): answer said 'matched' for "
        f"{(scores[:, 0] >= before).mean():.4f} of them, with {(scores >= before).sum():,} results above it"
    )


def scene_lines(lib: Library, k: int, *, near: float) -> None:
    """Candidate "same scene" lines judged on what users see: the top k of both searches above."""
    queries = np.arange(len(lib.names))
    scores, positions = top_k(lib, queries, k, excluded=[np.array([q]) for q in queries])
    same_photo = lib.photos[positions] == lib.photos[queries][:, None]
    same_scene = lib.scenes[positions] == lib.scenes[queries][:, None]
    scene_only = same_scene & ~same_photo
    originals = np.flatnonzero(lib.kinds == "original")
    unrelated, _ = top_k(lib, originals, k, excluded=[np.flatnonzero(lib.scenes == lib.scenes[q]) for q in originals])
    print(f"\n4. Candidate 'same scene' lines, top {k}: line, 'same scene' precision (same scene or photo),")
    print("   same-scene results labelled a match, unrelated uploads told 'no match', their results labelled a match")
    for line in (0.70, 0.74, 0.76, 0.78, 0.79, 0.80, 0.81, 0.82, 0.84, 0.86):
        band = (scores >= line) & (scores < near)
        print(
            f"   {line:.2f}: {(band & same_scene).sum() / max(1, band.sum()):.4f}, "
            f"{(scene_only & (scores >= line)).sum() / max(1, scene_only.sum()):.4f}, "
            f"{(unrelated[:, 0] < line).mean():.4f}, {(unrelated >= line).sum():,}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--before", type=float, default=0.70, help="the single match threshold search used before")
    parser.add_argument("--brackets", type=int, default=100, help="exposure brackets of the first N distractors")
    parser.add_argument("--copies", type=int, default=edited_families.DEFAULT_COPIES)
    parser.add_argument("--family-seed", type=int, default=edited_families.DEFAULT_SEED)
    args = parser.parse_args()
    folder = edited_families.ensure_families(
        cache=OUT, copies=args.copies, seed=args.family_seed, limit=None, brackets=args.brackets
    )
    lib = library(load_dev(families=folder), folder)
    django_ready()
    from search.result_labels import label_lines
    from search.thresholds import MODEL_THRESHOLDS, configured_thresholds

    thresholds = configured_thresholds("mobilenet_v2")
    lines = Lines(**vars(label_lines(thresholds)))
    print(
        f"\nLines in force for mobilenet_v2 ({MODEL_THRESHOLDS['mobilenet_v2'].source}): same photo "
        f">= {lines.same_photo}, same scene >= {lines.same_scene}, looks alike >= {lines.looks_alike}"
    )
    scores, truth = pair_scores(lib)
    distributions(scores, truth, lines, near=lines.same_photo)
    by_library_image(lib, lines, args.k)
    unmatched_uploads(lib, lines, args.k, before=args.before)
    scene_lines(lib, args.k, near=lines.same_photo)


if __name__ == "__main__":
    main()
