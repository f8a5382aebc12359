"""Near-duplicate detection benchmark: pair precision/recall on real photos, and the cost per image at scale.

Run from the repository root (no Django, no database):

    .venv/bin/python bench/duplicates.py                       # everything; ~15 min the first time
    .venv/bin/python bench/duplicates.py --skip-scale          # only the real-photo part
    .venv/bin/python bench/duplicates.py --sizes 10000 100000  # smaller scale part
    .venv/bin/python bench/duplicates.py --skip-scale --skip-calibration --flip  # issue 10's figures

(a) ../shared/data/neardup-dev (8 photos x ~100 variants, labels.csv: group_id) + distractors-dev (300
unrelated photos, each its own group) + families of edited copies of the distractors made by
bench/edited_families.py (4 per photo, two edits each, cached in bench/out/), embedded with the offline
ImageNet MobileNet-V2. Precision and recall are printed per family type (Copydays, original-copy per edit,
both edited, one of them mirrored), for the geometric check with and without mirror images; exposure
brackets of 30 photos are checked to land at least in the similar band; `--flip` also measures a
flip-invariant embedding (the mean of f(x) and f(mirror x)) and what it costs at ingest. Byte-identical
files are exact duplicates, caught by sha256 before anything is embedded, so each distinct file counts
once and pairs are counted between distinct files. A pair is positive when both files are in one group.
Printed: precision/recall per threshold for all pairs; the recall the product's k-NN candidate search
keeps; the same with geometric verification (ORB + RANSAC) or a perceptual hash deciding the grey zone;
the thresholds reaching precision >= 0.999 (chosen with the labels); and the thresholds the label-free
calibration (duplicates/threshold_measurement.py, as `manage.py calibrate_duplicates` runs it) suggests, with their
figures on the labels. Last, per family type, what the user is told beyond each pair: files in one duplicate
group (what a reviewer acts on), and the product's whole path, where uploads the quality checks reject as
blurry stay out of the library and the rejected-copy check names the photo they copy.

(b) Per-image detection cost at 10k, 100k and 1M library sizes with synthetic clustered vectors
(bench/search.py's generator): the product's candidate step (PCA + HNSW index, exact re-rank on the full
vectors, adaptive k) against brute force over all vectors, one query at a time on one thread, timed
alternately in the same run. Brute force grows linearly with the library; the index does not.

Embeddings, edited copies and geometric checks are cached in bench/out/ (gitignored).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

if __name__ == "__main__":
    # Run as a script, bench/ is sys.path[0] and this file would shadow the `duplicates` package.
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import numpy as np
from PIL import Image, ImageOps

from bench import edited_families
from bench.search import SyntheticEmbeddings
from duplicates import geometry, group_linking, threshold_measurement
from duplicates.candidate_pairs import K_MAX, K_START, Bands, canonical_pairs, neighbours_above
from duplicates.evidence import hamming, phash, upright
from search.index.scoring import rerank
from search.index.vector_index import IndexParams, build_index

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
OUT = REPO / "bench" / "out"
WEIGHTS = SHARED / "models" / "mobilenet_v2_imagenet_features.pth"
MODEL = "mobilenet_v2"
TARGET_PRECISION = 0.999
GREY_LOW = 0.60  # grey-zone pairs from here up are geometrically checked (and cached)
GREY_HIGH = 0.95
PHASH_MAX_DISTANCE = 10


def django_ready() -> None:
    """The product's modules that also read the database import its models, which need Django's settings;
    nothing here touches the database."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imgsim_site.settings")
    import django

    django.setup()


def measured_defaults():  # search.thresholds.ModelThresholds of MODEL
    """The product's measured defaults for MODEL (applied thresholds live in the database: not used here)."""
    django_ready()
    from search.thresholds import MODEL_THRESHOLDS

    return MODEL_THRESHOLDS[MODEL]


def require(path: Path) -> Path:
    if not path.exists():
        sys.exit(f"Missing {path}: the benchmark reads ../shared (beside the repository). Clone or copy it there.")
    return path


# --- (a) the real photos --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DevData:
    files: list[Path]  # distinct files (one per sha256)
    groups: np.ndarray
    vectors: np.ndarray
    total_files: int
    exact_copies: int  # files dropped as byte-identical to a kept one
    kinds: np.ndarray  # per file: "copydays" (neardup-dev), "original" (distractors-dev) or "copy" (generated)
    edits: list[tuple[str, ...]]  # per file: the generated copy's two edits (empty for the others)
    captions: np.ndarray  # per file: the generated copy has a caption

    def with_vectors(self, vectors: np.ndarray) -> DevData:
        return replace(self, vectors=vectors)


def dev_files() -> tuple[list[Path], list[str]]:
    root = require(SHARED / "data" / "neardup-dev")
    with require(root / "labels.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    files = [root / row["file"] for row in rows]
    groups = [row["group_id"] for row in rows]
    distractors = sorted(require(SHARED / "data" / "distractors-dev").glob("*/*.jpg"))
    return files + distractors, groups + [f"distractor-{path.stem}" for path in distractors]


def embedder():  # search.embedding.Embedder, imported lazily (torch)
    from search.embedding import get_embedder

    return get_embedder(model_name=MODEL, weights_path=require(WEIGHTS))


def embedded(files: list[Path], digests: list[str], *, what: str, mirrored: bool = False) -> np.ndarray:
    """The product's embeddings of these files (of their mirror images with `mirrored`), cached by content."""
    cache_key = hashlib.sha256(("\n".join(digests) + MODEL).encode()).hexdigest()[:16]
    cache = OUT / f"duplicates-embeddings-{MODEL}{'-mirrored' if mirrored else ''}-{cache_key}.npy"
    if cache.exists():
        print(f"embeddings of {len(files)} {what} from {cache.relative_to(REPO)}")
        return np.load(cache)
    started = time.perf_counter()
    if mirrored:
        pictures = []
        for path in files:
            with Image.open(path) as image:
                pictures.append(ImageOps.mirror(upright(image).convert("RGB")))
        vectors = embedder().embed_images(pictures)
    else:
        result = embedder().embed_sources([str(path) for path in files])
        if result.errors:
            sys.exit(f"could not embed: {result.errors}")
        vectors = result.vectors
    OUT.mkdir(parents=True, exist_ok=True)
    np.save(cache, vectors)
    print(f"embedded {len(files)} {what} in {time.perf_counter() - started:.0f}s (cached in {cache.name})")
    return vectors


def load_dev(*, families: Path | None = None) -> DevData:
    """neardup-dev + distractors-dev, plus the generated families' copies when a folder is given."""
    files, groups = dev_files()
    kinds = ["copydays" if group.startswith("g") else "original" for group in groups]
    edits: list[tuple[str, ...]] = [() for _ in files]
    captions = [False for _ in files]
    if families is not None:
        members = [member for member in edited_families.read_labels(families) if member.kind == "copy"]
        files += [families / member.file for member in members]
        groups += [member.family for member in members]
        kinds += ["copy"] * len(members)
        edits += [member.edits for member in members]
        captions += [member.caption for member in members]
    digests = [hashlib.sha256(path.read_bytes()).hexdigest() for path in files]
    keep: dict[str, int] = {}
    for position, digest in enumerate(digests):
        keep.setdefault(digest, position)
    order = sorted(keep.values())
    # Two caches (the dev photos, the generated copies) so that other generator settings reuse the first.
    dev = [i for i in order if kinds[i] != "copy"]
    generated = [i for i in order if kinds[i] == "copy"]
    parts = [embedded([files[i] for i in dev], [digests[i] for i in dev], what="distinct dev files")]
    if generated:
        parts.append(embedded([files[i] for i in generated], [digests[i] for i in generated], what="edited copies"))
    order = dev + generated
    return DevData(
        files=[files[i] for i in order],
        groups=np.array([groups[i] for i in order]),
        vectors=np.vstack(parts),
        total_files=len(files),
        exact_copies=len(files) - len(order),
        kinds=np.array([kinds[i] for i in order]),
        edits=[edits[i] for i in order],
        captions=np.array([captions[i] for i in order], dtype=bool),
    )


def mirrored_vectors(data: DevData) -> np.ndarray:
    """Embeddings of every file's mirror image (for the flip-invariant embedding experiment)."""
    digests = [hashlib.sha256(path.read_bytes()).hexdigest() for path in data.files]
    return embedded(data.files, digests, what="mirror images", mirrored=True)


@dataclass
class PairSet:
    """Candidate pairs (i < j, positions in DevData.files) with cosine, label and optional evidence."""

    first: np.ndarray
    second: np.ndarray
    cosine: np.ndarray
    positive: np.ndarray
    total_positives: int  # over ALL pairs: recall's denominator

    def subset(self, mask: np.ndarray) -> PairSet:
        return PairSet(
            self.first[mask], self.second[mask], self.cosine[mask], self.positive[mask], self.total_positives
        )


def all_pairs(data: DevData) -> PairSet:
    scores = data.vectors @ data.vectors.T
    first, second = np.triu_indices(len(data.files), 1)
    positive = data.groups[first] == data.groups[second]
    return PairSet(first, second, scores[first, second], positive, int(positive.sum()))


def knn_pairs(data: DevData, pairs: PairSet, *, k_start: int, k_max: int, floor: float) -> PairSet:
    """The pairs the product's candidate search returns (exact index at this size: no approximation)."""
    ids = np.arange(len(data.files), dtype=np.int64)
    index = build_index(ids=ids, vectors=data.vectors, ratings=None, params=IndexParams(exact_below=10**9))

    def search(queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        _, candidates = index.search(queries, k=min(k, len(index)))
        return rerank(
            query_vectors=queries,
            query_ratings=None,
            candidate_ids=candidates,
            ids=ids,
            vectors=data.vectors,
            ratings=None,
            k=k,
            weight=0.0,
        )

    found = canonical_pairs(
        ids,
        neighbours_above(
            query_ids=ids, query_vectors=data.vectors, search=search, floor=floor, k_start=k_start, k_max=k_max
        ),
    )
    keys = np.array(list(found), dtype=np.int64).reshape(-1, 2)
    return pairs.subset(among(pairs, keys[:, 0], keys[:, 1], files=len(data.files)))


def among(pairs: PairSet, first: np.ndarray, second: np.ndarray, *, files: int) -> np.ndarray:
    """Mask over `pairs`: which of them are among the given (first < second) pairs of positions."""
    listed = np.zeros(files * files, dtype=bool)
    listed[first * files + second] = True
    return listed[pairs.first * files + pairs.second]


def rates(pairs: PairSet, accepted: np.ndarray) -> tuple[float, float, int, int]:
    true_positives = int((accepted & pairs.positive).sum())
    false_positives = int((accepted & ~pairs.positive).sum())
    precision = true_positives / max(1, true_positives + false_positives)
    return precision, true_positives / pairs.total_positives, true_positives, false_positives


def accepted_by(pairs: PairSet, *, near: float, low: float, extra: np.ndarray | None) -> np.ndarray:
    """near-duplicates: cosine >= near, or in [low, near) when the extra evidence says so."""
    accepted = pairs.cosine >= near
    if extra is not None:
        accepted |= (pairs.cosine >= low) & extra
    return accepted


def best_for_precision(
    pairs: PairSet, grid: np.ndarray, *, low: float, extra: np.ndarray | None
) -> tuple[float, float, float] | None:
    """(threshold, precision, recall) of the lowest threshold from which precision stays >= target."""
    rows = [(t, *rates(pairs, accepted_by(pairs, near=t, low=low, extra=extra))[:2]) for t in grid]
    good = [row[1] >= TARGET_PRECISION for row in rows]
    if not good[-1]:
        return None
    position = max((i for i, ok in enumerate(good) if not ok), default=-1) + 1
    return rows[position]


def print_table(title: str, pairs: PairSet, grid: np.ndarray, rules: dict[str, np.ndarray | None], low: float) -> None:
    print(f"\n{title}")
    header = "".join(f" | {name:^27}" for name in rules)
    print(f"{'t':>6}{header}")
    print(f"{'':>6}" + " | precision  recall      FP" * len(rules))
    for t in grid:
        cells = []
        for extra in rules.values():
            precision, recall, _, false_positives = rates(pairs, accepted_by(pairs, near=t, low=low, extra=extra))
            cells.append(f" | {precision:>9.5f} {recall:>7.4f} {false_positives:>7d}")
        print(f"{t:>6.3f}{''.join(cells)}")


def features_for(files: list[Path], *, mirrored: bool = True) -> list[geometry.LocalFeatures]:
    return [geometry.local_features(geometry.load_for_matching(str(path)), mirrored=mirrored) for path in files]


def pair_name(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


@dataclass
class Inliers:
    """RANSAC inliers of the grey-zone candidate pairs (-1 outside it): direct, and the first picture's
    mirror image against the second (computed only where the direct match fails, else -1)."""

    direct: np.ndarray
    mirror: np.ndarray

    def verified(self, *, mirror: bool) -> np.ndarray:
        passed = self.direct >= geometry.MIN_INLIERS
        return passed | (self.mirror >= geometry.MIN_INLIERS) if mirror else passed

    def product(self) -> np.ndarray:
        """What geometry.count_inliers returns for the pair."""
        return np.maximum(self.direct, self.mirror)


def geometric_evidence(data: DevData, pairs: PairSet, *, chosen: np.ndarray | None = None) -> Inliers:
    """Direct and mirrored RANSAC inliers of the chosen pairs (positions; by default the grey zone), cached by
    file names."""
    params = (
        f"{geometry.MATCH_SIZE}-{geometry.ORB_FEATURES}-{geometry.RATIO_TEST}-{geometry.RANSAC_REPROJECTION_PX}"
        f"-{getattr(geometry, 'MIN_SIDE', 0)}-{geometry.MIN_INLIERS}-{geometry.CHECK}-{geometry.MAX_SCALE}"
    )
    cache = OUT / f"duplicates-inliers-by-name-{hashlib.sha256(params.encode()).hexdigest()[:16]}.json"
    known: dict[str, list[int]] = json.loads(cache.read_text()) if cache.exists() else {}
    grey = np.flatnonzero((pairs.cosine >= GREY_LOW) & (pairs.cosine < GREY_HIGH)) if chosen is None else chosen
    names = [pair_name(path) for path in data.files]
    keys = {p: f"{names[pairs.first[p]]}|{names[pairs.second[p]]}" for p in grey}
    todo = [p for p in grey if keys[p] not in known]
    if todo:
        print(f"geometric verification of {len(todo)} pairs (cached afterwards)...", flush=True)
        needed = sorted({int(pairs.first[p]) for p in todo} | {int(pairs.second[p]) for p in todo})
        features = dict(zip(needed, features_for([data.files[i] for i in needed]), strict=True))
        for done, p in enumerate(todo):
            first, second = features[int(pairs.first[p])], features[int(pairs.second[p])]
            direct = geometry.similarity_inliers(first, second)
            mirror = -1
            if direct < geometry.MIN_INLIERS and first.mirrored is not None:
                mirror = geometry.similarity_inliers(first.mirrored, second)
            known[keys[p]] = [direct, mirror]
            if done % 20000 == 19999:
                cache.write_text(json.dumps(known))
        cache.write_text(json.dumps(known))
    direct = np.full(pairs.cosine.shape[0], -1, dtype=np.int64)
    mirror = np.full(pairs.cosine.shape[0], -1, dtype=np.int64)
    for p in grey:
        direct[p], mirror[p] = known[keys[p]]
    return Inliers(direct=direct, mirror=mirror)


def verification_cost(data: DevData, pairs: PairSet, *, sample: int, rounds: int, seed: int) -> None:
    """ms per grey-zone pair, direct matching only (before) and mirror-aware (after), timed alternately."""
    rng = np.random.default_rng(seed)
    grey = np.flatnonzero((pairs.cosine >= GREY_LOW) & (pairs.cosine < GREY_HIGH))
    chosen = rng.choice(grey, size=min(sample, grey.shape[0]), replace=False)
    images = sorted({int(pairs.first[p]) for p in chosen} | {int(pairs.second[p]) for p in chosen})
    pictures = {i: geometry.load_for_matching(str(data.files[i])) for i in images}
    timings: dict[str, list[float]] = {"before": [], "after": []}
    features_ms: dict[str, list[float]] = {"before": [], "after": []}
    for _ in range(rounds):
        for label, mirrored in (("before", False), ("after", True)):
            started = time.perf_counter()
            features = {i: geometry.local_features(picture, mirrored=mirrored) for i, picture in pictures.items()}
            features_ms[label].append((time.perf_counter() - started) * 1000 / len(images))
            match = geometry.count_inliers if mirrored else geometry.similarity_inliers
            started = time.perf_counter()
            for p in chosen:
                match(features[int(pairs.first[p])], features[int(pairs.second[p])])
            timings[label].append((time.perf_counter() - started) * 1000 / len(chosen))
    before, after = np.median(timings["before"]), np.median(timings["after"])
    f_before, f_after = np.median(features_ms["before"]), np.median(features_ms["after"])
    per_pair = len(images) / len(chosen)  # images whose features a pair needs, without a cache
    print(
        f"\nGeometric verification cost ({len(chosen)} random grey-zone pairs, {len(images)} images, 1 thread, "
        f"median of {rounds} alternating rounds):\n"
        f"   ORB features per image: before (direct only) {f_before:.2f} ms, after (+ mirror image) "
        f"{f_after:.2f} ms ({f_after / f_before:.2f}x)\n"
        f"   matching + RANSAC per pair: before {before:.2f} ms, after {after:.2f} ms ({after / before:.2f}x)\n"
        f"   per pair with its share of features ({per_pair:.2f} images per pair here): before "
        f"{before + per_pair * f_before:.2f} ms, after {after + per_pair * f_after:.2f} ms "
        f"({(after + per_pair * f_after) / (before + per_pair * f_before):.2f}x)"
    )


def perceptual_hashes(files: list[Path]) -> list[int]:
    hashes = []
    for path in files:
        with Image.open(path) as image:
            image.draft("RGB", (256, 256))
            hashes.append(phash(upright(image)))
    return hashes


def calibrate_on_dev(data: DevData, *, sample_size: int, seed: int) -> threshold_measurement.CalibrationResult:
    """What `manage.py calibrate_duplicates` suggests for this library, labels unseen."""
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(len(data.files), size=min(sample_size, len(data.files)), replace=False))
    key = hashlib.sha256(
        f"{seed}-{sample.tolist()}-{sorted(threshold_measurement.TRANSFORMS)}".encode() + data.vectors[:4].tobytes()
    ).hexdigest()[:16]
    cache = OUT / f"duplicates-calibration-copies-{key}.npz"
    if cache.exists():
        stored = np.load(cache)
        copy_vectors, copy_source, copy_transform = stored["vectors"], stored["source"], stored["transform"].tolist()
    else:
        print(
            f"embedding {len(sample) * len(threshold_measurement.TRANSFORMS)} edited copies (cached afterwards)...",
            flush=True,
        )
        pictures, copy_source, copy_transform = [], [], []
        copy_rng = np.random.default_rng(seed + 1)
        for position in sample:
            with Image.open(data.files[position]) as image:
                for name, picture in threshold_measurement.edited_copies(image, rng=copy_rng):
                    pictures.append(picture)
                    copy_source.append(int(position))
                    copy_transform.append(name)
        copy_vectors = embedder().embed_images(pictures)
        copy_source = np.array(copy_source)
        np.savez(cache, vectors=copy_vectors, source=copy_source, transform=np.array(copy_transform))
    ids = np.arange(len(data.files), dtype=np.int64)
    positives = np.einsum("ij,ij->i", copy_vectors, data.vectors[copy_source])
    floor = threshold_measurement.suspect_floor(positives)
    suspects = {
        int(s): threshold_measurement.copy_suspects(
            source_id=int(s),
            vectors=np.vstack([data.vectors[s], copy_vectors[copy_source == s]]),
            floor=floor,
            pool_ids=ids,
            pool_vectors=data.vectors,
        )
        for s in sample
    }
    features: dict[int, geometry.LocalFeatures] = {}

    def feature(position: int) -> geometry.LocalFeatures:
        if position not in features:
            features[position] = geometry.local_features(geometry.load_for_matching(str(data.files[position])))
        return features[position]

    probable = {
        source: {
            other for other in others if geometry.count_inliers(feature(source), feature(other)) >= geometry.MIN_INLIERS
        }
        for source, others in suspects.items()
    }
    return threshold_measurement.calibrate(
        threshold_measurement.CalibrationSet(
            copy_vectors=copy_vectors,
            copy_source=copy_source,
            copy_transform=copy_transform,
            source_vectors={int(s): data.vectors[s] for s in sample},
            pool_ids=ids,
            pool_vectors=data.vectors,
            probable_copies=probable,
        ),
        target_precision=TARGET_PRECISION,
    )


def group_scores(groups: list[list[int]], labels: np.ndarray) -> tuple[float, float, int, int]:
    """(purity, completeness, groups, largest) of predicted groups (positions) against the true labels."""
    in_groups = sum(len(members) for members in groups)
    pure = sum(Counter(labels[members].tolist()).most_common(1)[0][1] for members in groups)
    families = Counter(labels.tolist())
    best: dict[str, int] = {}
    for members in groups:
        for label, count in Counter(labels[members].tolist()).items():
            best[label] = max(best.get(label, 0), count)
    multi = [label for label, size in families.items() if size >= 2]
    completeness = float(np.mean([best.get(label, 0) / families[label] for label in multi])) if multi else 1.0
    return pure / max(1, in_groups), completeness, len(groups), max((len(m) for m in groups), default=0)


def wrong_pairs(labels: np.ndarray, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`count` pairs between members of two different multi-image families (the chaining case)."""
    families = [label for label, size in Counter(labels.tolist()).items() if size >= 2]
    first, second = [], []
    for _ in range(count):
        one, two = rng.choice(len(families), size=2, replace=False)
        first.append(rng.choice(np.flatnonzero(labels == families[one])))
        second.append(rng.choice(np.flatnonzero(labels == families[two])))
    return np.array(first, dtype=np.int64), np.array(second, dtype=np.int64)


def quality_checks(data: DevData) -> tuple[np.ndarray, np.ndarray]:
    """Per file, the reason image_create's quality checks reject it at upload ("" when accepted) and its
    sharpness, cached by name."""
    from bench.blurred_copies import quality_report  # decode_upload + assess_quality, as the upload path runs them

    cache = OUT / "duplicates-quality-by-name.json"
    known: dict[str, list] = json.loads(cache.read_text()) if cache.exists() else {}
    names = [pair_name(path) for path in data.files]
    todo = [i for i, name in enumerate(names) if name not in known]
    if todo:
        print(f"quality checks of {len(todo)} files (cached afterwards)...", flush=True)
        for i in todo:
            report = quality_report(data.files[i].read_bytes())
            reason = report.rejection.reason if report.rejection is not None else ""
            known[names[i]] = [reason, report.scores["sharpness"]]
        cache.write_text(json.dumps(known))
    return np.array([known[name][0] for name in names]), np.array([known[name][1] for name in names])


def blurred_copy_notices(data: DevData, library: np.ndarray, rejected: np.ndarray, *, threshold: float) -> np.ndarray:
    """Per file, the library file the rejected-copy check names (-1: none or not rejected as blurry): its
    CANDIDATES nearest library files by plain cosine, compared again after blurring both alike, as
    duplicates/services/rejected_copies.py does."""
    django_ready()
    from duplicates.blur_match import reblurred
    from duplicates.services.rejected_copies import CANDIDATES
    from search.model_input import load_rgb_for_embedding, model_input_pixels

    named = np.full(len(data.files), -1, dtype=np.int64)
    members = np.flatnonzero(library)
    pixels: dict[int, np.ndarray] = {}

    def blurred(i: int) -> np.ndarray:
        if i not in pixels:
            pixels[i] = reblurred(model_input_pixels(load_rgb_for_embedding(data.files[i].read_bytes())))
        return pixels[i]

    for query in np.flatnonzero(rejected):
        scores = data.vectors[members] @ data.vectors[query]
        nearest = members[np.argsort(-scores)[:CANDIDATES]]
        vectors = embedder().embed_pixels(np.stack([blurred(int(query))] + [blurred(int(i)) for i in nearest]))
        alike = vectors[1:] @ vectors[0]
        if alike.max() >= threshold:
            named[query] = nearest[int(np.argmax(alike))]
    return named


def shown_to_reviewer(
    data: DevData, pairs: PairSet, candidates: PairSet, verified: np.ndarray, *, near: float, similar: float
) -> None:
    """Per family type, what the product tells the user about each same-photo pair, beyond the pair itself.

    Since duplicate groups (issue 9) a reviewer acts on groups: two files in one near-duplicate group are shown
    as copies of one photo whether or not their own pair was found. And uploads that the quality checks
    reject as blurry never enter the library; the rejected-copy check names the library photo they copy.
    Columns: the pair itself is a near-duplicate (what the tables above count); both files are in one
    near-duplicate group (every file in the library); the product's path (uploads the quality checks reject
    stay out; a pair counts when both files are in one group, or a rejected file is named a copy of the other
    file or of a file in its group); the pair itself is at least similar (shown in the similar band).
    """
    near_mask = accepted_by(candidates, near=near, low=similar, extra=verified)
    ids = np.arange(len(data.files), dtype=np.int64)

    def group_of(usable: np.ndarray) -> np.ndarray:
        keep = near_mask & usable[candidates.first] & usable[candidates.second]
        home = np.full(len(data.files), -1, dtype=np.int64)
        kept = candidates.subset(keep)
        for number, members in enumerate(
            group_linking.group_pairs(ids=ids, first=kept.first, second=kept.second, cosine=kept.cosine)
        ):
            home[members] = number
        return home

    def together(home: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        return (home[first] >= 0) & (home[first] == home[second])

    everyone = np.ones(len(data.files), dtype=bool)
    grouped_all = together(group_of(everyone), pairs.first, pairs.second)

    reasons, _ = quality_checks(data)
    library = reasons == ""
    blurry = reasons == "blurry"
    home = group_of(library)
    django_ready()
    from duplicates.selectors.thresholds import REJECTED_COPY_OFFSETS

    threshold = min(0.99, near + REJECTED_COPY_OFFSETS.get(MODEL, 0.0))  # as rejected_copy_threshold, no database
    named = blurred_copy_notices(data, library, blurry, threshold=threshold)
    # A rejected file stands for the library file it is named a copy of (itself when in the library).
    stand_in = np.where(library, ids, named)
    first, second = stand_in[pairs.first], stand_in[pairs.second]
    known = (first >= 0) & (second >= 0)
    product = known & ((first == second) | together(home, np.maximum(first, 0), np.maximum(second, 0)))

    n = len(data.files)
    direct = among(pairs, candidates.first[near_mask], candidates.second[near_mask], files=n)
    at_least_similar = (pairs.cosine >= similar) & among(pairs, candidates.first, candidates.second, files=n)

    print(
        f"\nWhat the user is told, per family type, at the defaults ({near} / {similar}). The quality checks "
        f"reject {int((~library).sum())} of {n} files at upload ({int(blurry.sum())} as blurry; "
        f"{int((named >= 0).sum())} of those are named a copy of a library file, "
        f"{int(((named >= 0) & (data.groups[np.maximum(named, 0)] != data.groups)).sum())} of them wrongly). "
        "Recall over ALL same-photo pairs of the type; FP: pairs of different photos counted."
    )
    columns = {
        "pair is near-duplicate": direct,
        "in one group": grouped_all,
        "product path (+ gate)": product,
        "pair at least similar": at_least_similar,
    }
    print(f"{'family type':>28} {'pairs':>6}" + "".join(f" | {name:^22}" for name in columns))
    print(f"{'':>28} {'':>6}" + " |  precision recall   FP" * len(columns))
    for kind, mask in {**categories(data, pairs.first, pairs.second), "all pairs": everyone[pairs.first]}.items():
        positives = int((mask & pairs.positive).sum())
        cells = ""
        for shown in columns.values():
            tp = int((shown & mask & pairs.positive).sum())
            fp = int((shown & mask & ~pairs.positive).sum())
            cells += f" | {tp / max(1, tp + fp):>10.5f} {tp / max(1, positives):>6.4f} {fp:>4}"
        print(f"{kind:>28} {positives:>6}{cells}")


def groups_on_dev(data: DevData, candidates: PairSet, inliers: np.ndarray, *, near: float, similar: float) -> None:
    """Group purity and completeness of each grouping rule on the product's near-duplicate pairs."""
    near_mask = accepted_by(candidates, near=near, low=similar, extra=inliers >= geometry.MIN_INLIERS)
    similar_mask = ~near_mask & (candidates.cosine >= similar)
    pairs = candidates.subset(near_mask)
    ids = np.arange(len(data.files), dtype=np.int64)
    families = sum(1 for size in Counter(data.groups.tolist()).values() if size >= 2)
    print(
        f"\nGroups from the near-duplicate pairs at the defaults ({near_mask.sum():,} pairs, precision "
        f"{rates(candidates, near_mask)[0]:.5f}); {families} true families of 2+ distinct images. purity = share of "
        "grouped images whose group's majority label is theirs; completeness = per family, share of its images in "
        "its largest group, averaged. 'wrong +N': N pairs between two families added at the near-duplicate "
        "threshold (mean over 5 draws)."
    )
    rules: dict[str, dict[str, object]] = {
        "connected components": {"rule": "components"},
        "star (leader)": {"rule": "leader"},
        **{f"linked, min_links {m}": {"rule": "linked", "min_links": m} for m in (0.5, 1.0)},
        **{f"shared, min_shared {m}": {"rule": "shared", "min_shared": m} for m in (0.1, 0.25, 0.5, 0.75)},
    }
    print(
        f"{'rule':>24} | {'purity':>7} {'complete':>8} {'groups':>6} {'largest':>7} | {'purity wrong +1':>15} "
        f"{'+5':>6} {'+20':>6} | {'ms':>6}"
    )
    rng = np.random.default_rng(0)
    draws = {count: [wrong_pairs(data.groups, count, rng) for _ in range(5)] for count in (1, 5, 20)}
    for name, params in rules.items():
        started = time.perf_counter()
        groups = group_linking.group_pairs(
            ids=ids, first=pairs.first, second=pairs.second, cosine=pairs.cosine, **params
        )
        elapsed = (time.perf_counter() - started) * 1000
        purity, completeness, count, largest = group_scores(groups, data.groups)
        polluted = []
        for extra in (1, 5, 20):
            values = []
            for first, second in draws[extra]:
                noisy = group_linking.group_pairs(
                    ids=ids,
                    first=np.concatenate([pairs.first, first]),
                    second=np.concatenate([pairs.second, second]),
                    cosine=np.concatenate([pairs.cosine, np.full(first.shape[0], near)]),
                    **params,
                )
                values.append(group_scores(noisy, data.groups)[0])
            polluted.append(float(np.mean(values)))
        print(
            f"{name:>24} | {purity:>7.4f} {completeness:>8.4f} {count:>6} {largest:>7} | {polluted[0]:>15.4f} "
            f"{polluted[1]:>6.4f} {polluted[2]:>6.4f} | {elapsed:>6.0f}"
        )
    grouped = group_linking.group_pairs(ids=ids, first=pairs.first, second=pairs.second, cosine=pairs.cosine)
    home = {member: number for number, members in enumerate(grouped) for member in members}
    band = candidates.subset(similar_mask)
    outside = np.array(
        [
            home.get(a) is None or home.get(a) != home.get(b)
            for a, b in zip(band.first.tolist(), band.second.tolist(), strict=True)
        ],
        dtype=bool,
    )
    band = band.subset(outside)
    print(
        f"similar band: {band.cosine.shape[0]:,} pairs outside one near-duplicate group (the dev data has no bursts: "
        "these are hard copies that failed the geometric check, and look-alike photos). A similar group should be "
        "a few photos of one scene, so besides purity: the largest group and the share of grouped images in groups "
        "of more than 20."
    )
    for name, params in {
        "connected components": {"rule": "components"},
        "star (leader)": {"rule": "leader"},
        **{f"shared, min_shared {m}": {"rule": "shared", "min_shared": m} for m in (0.5, 0.75, 0.9)},
    }.items():
        similar_groups = group_linking.group_pairs(
            ids=ids, first=band.first, second=band.second, cosine=band.cosine, **params
        )
        purity, _, count, largest = group_scores(similar_groups, data.groups)
        grouped = sum(len(members) for members in similar_groups)
        big = sum(len(members) for members in similar_groups if len(members) > 20) / max(1, grouped)
        print(
            f"{name:>24} | purity {purity:.4f} | {count:>4} groups, {grouped:>4} images, largest {largest:>4}, "
            f"in groups > 20: {big:.3f}"
        )


def categories(data: DevData, first: np.ndarray, second: np.ndarray) -> dict[str, np.ndarray]:
    """Which family type each pair belongs to (a pair can be in several): recall and precision per type."""
    copy = data.kinds == "copy"
    copydays = data.kinds == "copydays"
    one_copy = copy[first] ^ copy[second]
    the_copy = np.where(copy[first], first, second)
    both = copy[first] & copy[second]
    found = {"copydays (neardup-dev)": copydays[first] | copydays[second]}
    if not copy.any():
        return found
    has = {edit: np.array([edit in made for made in data.edits]) for edit in edited_families.EDITS}
    for edit in edited_families.EDITS:
        found[f"original-copy: {edit}"] = one_copy & has[edit][the_copy]
    found["original-copy: caption"] = one_copy & data.captions[the_copy]
    found["original-copy: all"] = one_copy
    found["both edited"] = both
    found["both edited, one mirrored"] = both & (has["mirror"][first] ^ has["mirror"][second])
    return found


@dataclass
class TypeRates:
    precision: float
    recall: float
    positives: int
    false_positives: int


def rates_by_type(data: DevData, pairs: PairSet, candidates: PairSet, accepted: np.ndarray) -> dict[str, TypeRates]:
    """Per family type: precision among the accepted pairs of that type, recall over ALL its same-photo pairs."""
    everywhere = categories(data, pairs.first, pairs.second)
    among = categories(data, candidates.first, candidates.second)
    found = {}
    for name, mask in everywhere.items():
        positives = int((mask & pairs.positive).sum())
        tp = int((accepted & candidates.positive & among[name]).sum())
        fp = int((accepted & ~candidates.positive & among[name]).sum())
        found[name] = TypeRates(tp / max(1, tp + fp), tp / max(1, positives), positives, fp)
    return found


def print_types(
    title: str, data: DevData, pairs: PairSet, candidates: PairSet, rules: dict[str, np.ndarray]
) -> dict[str, dict[str, TypeRates]]:
    print(f"\n{title}")
    print(f"{'family type':>28} {'pairs':>6}" + "".join(f" | {name[:25]:^25}" for name in rules))
    print(f"{'':>28} {'':>6}" + " | precision  recall    FP" * len(rules))
    table = {name: rates_by_type(data, pairs, candidates, accepted) for name, accepted in rules.items()}
    overall = {name: rates(candidates, accepted) for name, accepted in rules.items()}
    for kind in next(iter(table.values())):
        cells = "".join(
            f" | {row.precision:>9.5f} {row.recall:>7.4f} {row.false_positives:>5}"
            for row in (table[name][kind] for name in rules)
        )
        print(f"{kind:>28} {next(iter(table.values()))[kind].positives:>6}{cells}")
    cells = "".join(f" | {overall[name][0]:>9.5f} {overall[name][1]:>7.4f} {overall[name][3]:>5}" for name in rules)
    print(f"{'all pairs':>28} {pairs.total_positives:>6}{cells}")
    return table


def sweep(
    data: DevData, pairs: PairSet, candidates: PairSet, extra: np.ndarray, *, similar: float, label: str
) -> tuple[float, float, float] | None:
    """Overall precision/recall and the worst family type's recall per near-duplicate threshold; returns the
    lowest threshold keeping precision >= target (and every higher one too) with its rates."""
    print(f"\n{label}: near-duplicate threshold sweep, grey zone [{similar}, t) verified")
    print(f"{'t':>6} {'precision':>9} {'recall':>7} {'FP':>4} | worst family type (recall)")
    rows = []
    for t in np.round(np.arange(0.78, 0.951, 0.01), 3):
        accepted = accepted_by(candidates, near=t, low=similar, extra=extra)
        precision, recall, _, fp = rates(candidates, accepted)
        by_type = rates_by_type(data, pairs, candidates, accepted)
        worst = min(by_type, key=lambda name: by_type[name].recall)
        rows.append((float(t), precision, recall))
        print(f"{t:>6.3f} {precision:>9.5f} {recall:>7.4f} {fp:>4} | {worst} ({by_type[worst].recall:.4f})")
    good = [row[1] >= TARGET_PRECISION for row in rows]
    if not good[-1]:
        return None
    return rows[max((i for i, ok in enumerate(good) if not ok), default=-1) + 1]


def candidate_pairs(data: DevData, pairs: PairSet, *, floor: float, verbose: bool) -> PairSet:
    if verbose:
        print(f"\nk-NN candidates (each image queries the library; pairs from either side), floor {floor}:")
        print(f"{'search':>22} {'pairs':>8} {'pos >= floor':>13} {'kept':>7} {'pos >= 0.85':>12} {'kept':>7}")
    full_floor = int((pairs.positive & (pairs.cosine >= floor)).sum())
    full_high = int((pairs.positive & (pairs.cosine >= 0.85)).sum())
    searches = [("k = 20", 20, 20), ("k = 50", 50, 50)] if verbose else []
    found = pairs
    for label, k_start, k_max in [*searches, (f"adaptive {K_START}..{K_MAX}", K_START, K_MAX)]:
        found = knn_pairs(data, pairs, k_start=k_start, k_max=k_max, floor=floor)
        found_floor = int((found.positive & (found.cosine >= floor)).sum())
        found_high = int((found.positive & (found.cosine >= 0.85)).sum())
        if verbose:
            print(
                f"{label:>22} {found.cosine.shape[0]:>8,} {full_floor:>13,} {found_floor / full_floor:>7.4f} "
                f"{full_high:>12,} {found_high / full_high:>7.4f}"
            )
    return found


def families_folder(args: argparse.Namespace) -> Path | None:
    if args.copies == 0:
        return None
    return edited_families.ensure_families(
        cache=OUT, copies=args.copies, seed=args.family_seed, limit=args.families, brackets=args.brackets
    )


def real_photos(args: argparse.Namespace) -> None:
    folder = families_folder(args)
    print(
        "== (a) real photos: neardup-dev + distractors-dev"
        + (f" + generated families ({folder.relative_to(REPO)})" if folder else "")
        + f", {MODEL} (offline ImageNet weights)"
    )
    data = load_dev(families=folder)
    pairs = all_pairs(data)
    groups = len(set(data.groups.tolist()))
    print(
        f"{data.total_files} files, {data.exact_copies} byte-identical copies caught by sha256 before embedding "
        f"-> {len(data.files)} distinct files in {groups} groups; {pairs.cosine.shape[0]:,} pairs, "
        f"{pairs.total_positives:,} positive (same group)"
    )
    negatives = pairs.cosine[~pairs.positive]
    print(
        f"cosine: positives median {np.median(pairs.cosine[pairs.positive]):.3f}, 1st percentile "
        f"{np.quantile(pairs.cosine[pairs.positive], 0.01):.3f}; negatives median {np.median(negatives):.3f}, "
        f"99.9th percentile {np.quantile(negatives, 0.999):.3f}, max {negatives.max():.3f}"
    )
    grid = np.round(np.arange(0.70, 0.951, 0.01), 3)
    print_table(
        "All pairs, cosine alone (the upper bound of any k-NN candidate search):", pairs, grid, {"cosine": None}, 0
    )
    oracle = best_for_precision(pairs, np.round(np.arange(0.5, 1.0, 0.005), 3), low=0, extra=None)
    if oracle:
        print(
            f"-> all pairs, cosine alone: precision >= {TARGET_PRECISION} from t = {oracle[0]:.3f}: "
            f"precision {oracle[1]:.5f}, recall {oracle[2]:.4f}"
        )

    low = args.similar
    candidates = candidate_pairs(data, pairs, floor=low, verbose=True)
    inliers = geometric_evidence(data, candidates)
    hashes = perceptual_hashes(data.files)
    distance = np.array(
        [hamming(hashes[a], hashes[b]) for a, b in zip(candidates.first, candidates.second, strict=True)]
    )
    rules = {
        "cosine": None,
        f"+ geometry >= {geometry.MIN_INLIERS} (direct)": inliers.verified(mirror=False),
        f"+ geometry >= {geometry.MIN_INLIERS} (+ mirror)": inliers.verified(mirror=True),
        f"+ pHash <= {PHASH_MAX_DISTANCE} bits": distance <= PHASH_MAX_DISTANCE,
    }
    print_table(
        f"Adaptive k-NN candidates; grey zone [{low}, t) decided by the extra evidence (recall over ALL pairs):",
        candidates,
        grid,
        rules,
        low,
    )
    print(f"\nThresholds reaching precision >= {TARGET_PRECISION} (chosen with the labels), grey zone from {low}:")
    fine = np.round(np.arange(0.5, 1.0, 0.005), 3)
    for name, extra in rules.items():
        chosen = best_for_precision(candidates, fine, low=low, extra=extra)
        if chosen is None:
            print(f"   {name:>30}: none")
        else:
            print(f"   {name:>30}: t = {chosen[0]:.3f}  precision {chosen[1]:.5f}  recall {chosen[2]:.4f}")
    checked = inliers.product()
    inliers_negative = checked[(checked >= 0) & ~candidates.positive]
    inliers_positive = checked[(checked >= 0) & candidates.positive]
    direct_negative = inliers.direct[(inliers.direct >= 0) & ~candidates.positive]
    print(
        f"grey-zone inliers (mirror-aware): negatives max {inliers_negative.max()}, 99.9th percentile "
        f"{np.quantile(inliers_negative, 0.999):.0f} (direct only: max {direct_negative.max()}, 99.9th "
        f"{np.quantile(direct_negative, 0.999):.0f}); positives passing {geometry.MIN_INLIERS}: "
        f"{(inliers_positive >= geometry.MIN_INLIERS).mean():.3f} (direct only "
        f"{(inliers.direct[(inliers.direct >= 0) & candidates.positive] >= geometry.MIN_INLIERS).mean():.3f})"
    )
    if not args.skip_cost:
        verification_cost(data, candidates, sample=args.cost_pairs, rounds=3, seed=args.seed)

    if not args.skip_calibration:
        calibration_on_dev(data, candidates, rules, args)

    defaults = measured_defaults()
    print(
        f"\nThe product's {MODEL} defaults (search/thresholds.py): near_duplicate {defaults.near_duplicate}, "
        f"similar {defaults.similar}, geometric verification in between:"
    )
    for name, extra in rules.items():
        accepted = accepted_by(candidates, near=defaults.near_duplicate, low=defaults.similar, extra=extra)
        precision, recall, tp, fp = rates(candidates, accepted)
        print(f"   {name:>30}: precision {precision:.5f}  recall {recall:.4f}  ({tp:,} TP, {fp} FP)")
    by_rule = {
        name: accepted_by(candidates, near=defaults.near_duplicate, low=defaults.similar, extra=extra)
        for name, extra in rules.items()
        if "pHash" not in name
    }
    print_types(
        f"Per family type at the defaults ({defaults.near_duplicate} / {defaults.similar}); recall over ALL "
        "same-photo pairs of the type, precision among the accepted pairs of the type:",
        data,
        pairs,
        candidates,
        by_rule,
    )
    mirror_rule = inliers.verified(mirror=True)
    sweep(data, pairs, candidates, mirror_rule, similar=defaults.similar, label="Mirror-aware geometry")
    if folder is not None:
        brackets(folder, data, similar=defaults.similar, near=defaults.near_duplicate)
    if args.flip:
        flip_invariant(args, data, pairs, candidates, mirror_rule)
    groups_on_dev(data, candidates, inliers.product(), near=defaults.near_duplicate, similar=defaults.similar)
    shown_to_reviewer(data, pairs, candidates, mirror_rule, near=defaults.near_duplicate, similar=defaults.similar)


def brackets(folder: Path, data: DevData, *, similar: float, near: float) -> None:
    """Exposure brackets of one scene (the original and -2..+2 EV): at least in the similar band?"""
    members = [member for member in edited_families.read_labels(folder) if member.kind == "bracket"]
    if not members:
        return
    files = [folder / member.file for member in members]
    vectors = embedded(files, [hashlib.sha256(path.read_bytes()).hexdigest() for path in files], what="brackets")
    position = {pair_name(path): i for i, path in enumerate(data.files)}
    scenes: dict[str, list[tuple[Path, np.ndarray]]] = {}
    for member, path, vector in zip(members, files, vectors, strict=True):
        original = data.files[position[f"{Path(member.source).parent.name}/{Path(member.source).name}"]]
        scenes.setdefault(member.source, [(original, data.vectors[data.files.index(original)])])
        scenes[member.source].append((path, vector))
    bands: Counter[str] = Counter()
    cosines = []
    features: dict[Path, geometry.LocalFeatures] = {}
    for shots in scenes.values():
        for (a, va), (b, vb) in ((x, y) for i, x in enumerate(shots) for y in shots[i + 1 :]):
            cosine = float(va @ vb)
            cosines.append(cosine)
            if cosine >= near:
                bands["near_duplicate"] += 1
            elif cosine < similar:
                bands["none"] += 1
            else:
                for path in (a, b):
                    if path not in features:
                        features[path] = geometry.local_features(geometry.load_for_matching(str(path)))
                verified = geometry.count_inliers(features[a], features[b]) >= geometry.MIN_INLIERS
                bands["near_duplicate (verified)" if verified else "similar"] += 1
    total = sum(bands.values())
    stops = ", ".join(f"{ev:+.0f}" for ev in edited_families.BRACKET_EV)
    print(
        f"\nExposure brackets ({len(scenes)} scenes: the photo and {stops} "
        f"EV, {total} pairs): cosine min {min(cosines):.3f}, median {np.median(cosines):.3f}; bands: "
        + ", ".join(f"{name} {count} ({count / total:.3f})" for name, count in bands.most_common())
    )


def flip_invariant(
    args: argparse.Namespace, data: DevData, pairs: PairSet, candidates: PairSet, mirror_rule: np.ndarray
) -> None:
    """Would a flip-invariant embedding (the mean of f(x) and f(mirror x)) add recall worth its cost?"""
    mirrored = mirrored_vectors(data)
    mean = data.vectors + mirrored
    mean /= np.linalg.norm(mean, axis=1, keepdims=True)
    flipped = data.with_vectors(mean.astype(np.float32))
    flip_pairs = all_pairs(flipped)
    print("\nFlip-invariant embedding (mean of f(x) and f(mirror x), re-normalised) against the product's:")
    for label, subject in (("product", pairs), ("flip-invariant", flip_pairs)):
        chosen = best_for_precision(subject, np.round(np.arange(0.5, 1.0, 0.005), 3), low=0, extra=None)
        by_type = rates_by_type(data, subject, subject, subject.cosine >= (chosen[0] if chosen else 1.0))
        print(
            f"   {label:>15}, cosine alone over all pairs: precision >= {TARGET_PRECISION} from "
            f"{chosen[0] if chosen else None}: recall {chosen[2] if chosen else 0:.4f}; "
            + ", ".join(f"{name} {value.recall:.3f}" for name, value in by_type.items() if "mirror" in name)
        )
    defaults = measured_defaults()
    everywhere = categories(data, pairs.first, pairs.second)
    print(
        f"   same-photo pairs per type: share reaching the similar floor {defaults.similar} (candidates at all: "
        f"the recall ceiling) and the near-duplicate threshold {defaults.near_duplicate} (no geometry needed):"
    )
    for name, mask in everywhere.items():
        wanted = mask & pairs.positive
        cells = [
            f"{(subject.cosine[wanted] >= t).mean():.4f}"
            for t in (defaults.similar, defaults.near_duplicate)
            for subject in (pairs, flip_pairs)
        ]
        print(
            f"   {name:>28}: >= similar: product {cells[0]}, flip-invariant {cells[1]}; >= near_duplicate: "
            f"product {cells[2]}, flip-invariant {cells[3]}"
        )
    ingest_cost(data, rounds=3)
    if not args.flip_geometry:
        return
    flip_candidates = candidate_pairs(flipped, flip_pairs, floor=args.similar, verbose=False)
    flip_inliers = geometric_evidence(flipped, flip_candidates)
    plain = sweep(data, pairs, candidates, mirror_rule, similar=defaults.similar, label="product embedding")
    flip = sweep(
        flipped,
        flip_pairs,
        flip_candidates,
        flip_inliers.verified(mirror=True),
        similar=defaults.similar,
        label="flip-invariant embedding",
    )
    for label, chosen in (("product", plain), ("flip-invariant", flip)):
        if chosen is not None:
            print(f"   {label}: lowest near-duplicate threshold at precision >= {TARGET_PRECISION}: {chosen[0]}")
    if plain is not None and flip is not None:
        print_types(
            "Mirror-aware geometry, each embedding at its own lowest threshold with precision >= target:",
            data,
            pairs,
            candidates,
            {"product": accepted_by(candidates, near=plain[0], low=defaults.similar, extra=mirror_rule)},
        )
        print_types(
            "",
            flipped,
            flip_pairs,
            flip_candidates,
            {
                "flip-invariant": accepted_by(
                    flip_candidates, near=flip[0], low=defaults.similar, extra=flip_inliers.verified(mirror=True)
                )
            },
        )


def ingest_cost(data: DevData, *, rounds: int) -> None:
    """Embedding throughput of the product against embedding each photo and its mirror image, alternately."""
    files = [path for path, kind in zip(data.files, data.kinds, strict=True) if kind == "original"][:96]
    model = embedder()
    model.embed_sources([str(path) for path in files[:8]])  # warm-up
    plain, both = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        model.embed_sources([str(path) for path in files])
        plain.append(len(files) / (time.perf_counter() - started))
        started = time.perf_counter()
        model.embed_sources([str(path) for path in files])
        pictures = []
        for path in files:
            with Image.open(path) as image:
                pictures.append(ImageOps.mirror(upright(image).convert("RGB")))
        model.embed_images(pictures)
        both.append(len(files) / (time.perf_counter() - started))
    print(
        f"   ingest cost ({len(files)} distractor photos 481x321, {rounds} alternating rounds): product "
        f"{np.median(plain):.1f} img/s, with the mirror image embedded too {np.median(both):.1f} img/s "
        f"({np.median(both) / np.median(plain):.2f}x); large photos spend more of their time decoding, so the "
        "second model pass costs them relatively less"
    )


def calibration_on_dev(
    data: DevData, candidates: PairSet, rules: dict[str, np.ndarray | None], args: argparse.Namespace
) -> None:
    print(
        f"\nCalibration on this library (label-free, {args.calibration_sample} sampled images x "
        f"{len(threshold_measurement.TRANSFORMS)} edits, as calibrate_duplicates runs it):"
    )
    result = calibrate_on_dev(data, sample_size=args.calibration_sample, seed=args.seed)
    print(
        f"   {result.positives} edited copies, {result.negatives:,} negative pairs, "
        f"{len(result.probable_copies)} library images set aside as probable copies of the sample (geometry)"
    )
    for name, stats in result.per_transform.items():
        print(f"   {name:>12}: cosine to original mean {stats['mean']:.3f} min {stats['min']:.3f}")
    plot = OUT / "duplicates-calibration-dev.png"
    plot.write_bytes(threshold_measurement.plot_png(result, title=f"{MODEL} on neardup-dev + distractors-dev"))
    print(f"   plot: {plot.relative_to(REPO)}")
    near, similar = result.suggested_near_duplicate, result.suggested_similar
    print(
        f"   suggested near_duplicate {near}, similar {similar} (calibration precision "
        f"{result.precision_at_suggested}, recall on edited copies {result.recall_at_suggested})"
    )
    if near is not None:
        print(f"   on the labelled pairs (adaptive k-NN candidates, grey zone [{similar}, {near})):")
        for name, extra in rules.items():
            precision, recall, tp, fp = rates(candidates, accepted_by(candidates, near=near, low=similar, extra=extra))
            print(f"   {name:>30}: precision {precision:.5f}  recall {recall:.4f}  ({tp:,} TP, {fp} FP)")


# --- (b) the cost per image at scale ---------------------------------------------------------------------


def one_blas_thread():  # threadpoolctl.ThreadpoolController limits, or None
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # not a requirement of the project: run with OPENBLAS_NUM_THREADS=1 instead
        print("   (threadpoolctl not installed: BLAS threads follow OPENBLAS_NUM_THREADS / OMP_NUM_THREADS)")
        return None
    return threadpool_limits(limits=1)


def scale(args: argparse.Namespace) -> None:
    import faiss

    print(f"\n== (b) per-image detection cost, synthetic clustered {args.dim}-d vectors, 1 thread per query")
    model = SyntheticEmbeddings.create(dim=args.dim, seed=args.seed)
    params = IndexParams()
    bands = Bands(near_duplicate=0.95, similar=0.90)  # this generator's scale: near-duplicates ~0.95
    rows = []
    for size in args.sizes:
        rng = np.random.default_rng(args.seed + size)
        library = model.sample(size, rng=rng)
        queries = model.queries(library, args.queries, rng=rng)[: args.queries // 2]  # the near-duplicates
        ids = np.arange(size, dtype=np.int64)
        faiss.omp_set_num_threads(os.cpu_count() or 1)
        started = time.perf_counter()
        index = build_index(ids=ids, vectors=library, ratings=None, params=replace(params, exact_below=0))
        build_s = time.perf_counter() - started
        faiss.omp_set_num_threads(1)

        def search(batch: np.ndarray, k: int, index=index, library=library) -> tuple[np.ndarray, np.ndarray]:
            _, candidates = index.search(batch, k=index.candidate_count(k))
            wanted = np.unique(candidates[candidates >= 0])
            return rerank(
                query_vectors=batch,
                query_ratings=None,
                candidate_ids=candidates,
                ids=wanted,
                vectors=library[wanted],
                ratings=None,
                k=k,
                weight=0.0,
            )

        index_ns, brute_ns, agree = [], [], []
        limits = one_blas_thread()  # one BLAS thread, like the one faiss thread
        for row in range(queries.shape[0]):
            one = queries[row : row + 1]
            started = time.perf_counter_ns()
            found = neighbours_above(query_ids=np.array([-1]), query_vectors=one, search=search, floor=bands.similar)
            index_ns.append(time.perf_counter_ns() - started)
            started = time.perf_counter_ns()
            scores = library @ one[0]  # brute force: every vector of the library scored
            top = np.argpartition(-scores, K_START)[:K_START]
            brute_ns.append(time.perf_counter_ns() - started)
            expected = set(top[scores[top] >= bands.similar].tolist())
            agree.append(len(expected & {n.id for n in found[0]}) / max(1, len(expected)))
        if limits is not None:
            limits.unregister()
        index_ms, brute_ms = np.median(index_ns) / 1e6, np.median(brute_ns) / 1e6
        rows.append((size, build_s, index_ms, brute_ms, float(np.mean(agree))))
        print(
            f"   {size:>9,}: index build {build_s:6.1f}s | per image: index + re-rank {index_ms:7.3f} ms, "
            f"brute force {brute_ms:8.3f} ms, brute/index {brute_ms / index_ms:6.1f}x | pairs found vs exact "
            f"{np.mean(agree):.4f}",
            flush=True,
        )
        del index, library
    first = rows[0]
    print(f"\n   {'size':>9} {'index ms':>9} {'x vs first':>10} {'brute ms':>9} {'x vs first':>10} {'size x':>7}")
    for size, _, index_ms, brute_ms, _ in rows:
        print(
            f"   {size:>9,} {index_ms:>9.3f} {index_ms / first[2]:>10.2f} {brute_ms:>9.3f} "
            f"{brute_ms / first[3]:>10.2f} {size / first[0]:>7.0f}"
        )
    print("   (medians over the queries; both timed alternately in this run, so load hits both alike)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=400, help="synthetic queries per size (half are timed)")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--similar", type=float, default=0.70, help="the similar band / grey-zone floor")
    parser.add_argument("--calibration-sample", type=int, default=threshold_measurement.DEFAULT_SAMPLE_SIZE)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-dev", action="store_true")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--skip-calibration", action="store_true", help="skip the label-free calibration part")
    parser.add_argument("--skip-cost", action="store_true", help="skip timing the geometric verification")
    parser.add_argument("--cost-pairs", type=int, default=300, help="grey-zone pairs timed for the cost")
    parser.add_argument(
        "--copies", type=int, default=edited_families.DEFAULT_COPIES, help="edited copies per family (0: none)"
    )
    parser.add_argument("--families", type=int, default=None, help="families from the first N distractors")
    parser.add_argument("--brackets", type=int, default=30, help="exposure brackets of the first N distractors")
    parser.add_argument("--family-seed", type=int, default=edited_families.DEFAULT_SEED)
    parser.add_argument("--flip", action="store_true", help="measure a flip-invariant embedding too")
    parser.add_argument(
        "--flip-geometry", action="store_true", help="with --flip: the full rule on it too (verifies its pairs)"
    )
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    if not args.skip_dev:
        real_photos(args)
    if not args.skip_scale:
        scale(args)


if __name__ == "__main__":
    main()
