"""Review you can trust: apply every near-duplicate suggestion blindly and count what is lost, with main's
rules ("before") and this branch's ("after"), in one run.

Run from the repository root (no Django database; the embeddings, edited copies and geometric checks are
cached in bench/out/ and shared with bench/duplicates.py):

    .venv/bin/python bench/review_safety.py --copydays 2 --big 1 --attacks 2 --workers 3   # bench/README.md

The library: the neardup-dev photos (Copydays: `--copydays` of its 8 photos with ~100 variants each) and
distractors-dev (300 distinct photos), 4 edited copies of each of the first `--families` distractors
(bench/edited_families.py), and `--big` big families of `--big-copies` strongly attacked copies of other
distractors (each copy through bench/edited_families.py's edits `--attacks` times: two edits from crop, half
size, brightness, colour, rotation, mirror, blur, greyscale, maybe a caption, JPEG 35-85, each time). Pairs
as the product stores them: adaptive k-NN candidates from the similar floor, cosine >= near_duplicate, or the
grey zone verified by ORB + RANSAC (mirror-aware; `--workers` processes).

Printed, before and after:
- grouping: purity, mixed groups, completeness (per family of 2+ files, its share in its largest group)
  overall and on the big families (Copydays and generated), also with wrong pairs injected between families
  and with a share of the pairs missed;
- applying every group's suggestion as it stands, one decision per group covering all its members: distinct
  photos trashed (files of another photo than the kept copy), families lost entirely, and the share of
  redundant copies trashed (per family, at most its size - 1 can go). Before, the suggestion trashes every
  member but the kept copy; after, only the members whose own pair with the kept copy is a near-duplicate:
  as stored by detection ("stored pairs only"), and with the members that have no such pair checked against
  the kept copy geometrically, as detection now does for the members of pending groups ("+ check vs the
  kept"). The rest are left for review.
The kept copy is the product's choice order on what the files tell without the quality checks: higher
resolution, then the larger file (sharpness and rating come second and third in the product).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import multiprocessing
import sys
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

if __name__ == "__main__":
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import numpy as np
from PIL import Image, ImageOps

from bench import edited_families
from bench.duplicates import (
    OUT,
    DevData,
    PairSet,
    accepted_by,
    all_pairs,
    candidate_pairs,
    embedded,
    geometric_evidence,
    load_dev,
    measured_defaults,
    pair_name,
    wrong_pairs,
)
from duplicates import geometry, group_linking

BIG_SEED = 20261207


def big_families(*, count: int, copies: int, skip: int, attacks: int) -> list[edited_families.FamilyMember]:
    """`count` families of `copies` attacked copies of the distractors after the first `skip` (so they don't
    overlap the 4-copy families), labelled like them: the original distractor belongs to its big family.
    Each copy goes through bench/edited_families.py's edits `attacks` times (two edits, maybe a caption and a
    JPEG of quality 35-85 each time)."""
    sources = edited_families.source_photos()[skip : skip + count]
    name = f"big-families-v{edited_families.GENERATOR_VERSION}-s{BIG_SEED}-c{copies}-n{count}-k{skip}-a{attacks}"
    folder = OUT / name
    # "big<attacks>/<stem>-<n>.jpg": the geometric checks are cached by folder and file name, and the 4-copy
    # families' files are "copies/<stem>-<n>.jpg".
    big = folder / f"big{attacks}"
    if not (folder / edited_families.LABELS).exists():
        print(f"generating {count} big families x {copies} copies attacked {attacks}x in {folder}...", flush=True)
        big.mkdir(parents=True, exist_ok=True)
        rows = []
        for path in sources:
            source = path.relative_to(edited_families.SOURCES).as_posix()
            with Image.open(path) as opened:
                photo = ImageOps.exif_transpose(opened).convert("RGB")
            for number in range(copies):
                picture, edits = photo, []
                for attack in range(attacks):
                    ((member, data),) = edited_families.edited_copies(
                        picture, name=f"{source}#{number}#{attack}", copies=1, seed=BIG_SEED
                    )
                    edits += member.edits
                    with Image.open(io.BytesIO(data)) as opened:
                        picture = opened.convert("RGB")
                target = big / f"{path.stem}-{number}.jpg"
                target.write_bytes(data)
                rows.append([target.name, f"distractor-{path.stem}", source, "copy", "+".join(edits), 0, 0])
        with (folder / edited_families.LABELS).open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(edited_families.FIELDS)
            writer.writerows(rows)
    return [replace(member, file=str(big / member.file)) for member in edited_families.read_labels(folder)]


def library(args: argparse.Namespace) -> tuple[DevData, np.ndarray]:
    """The files, their labels and vectors, and per file whether it belongs to a big family."""
    folder = edited_families.ensure_families(
        cache=OUT, copies=4, seed=edited_families.DEFAULT_SEED, limit=args.families, brackets=0
    )
    data = load_dev(families=folder)
    copydays = sorted({label for label in data.groups.tolist() if label.startswith("g")})[: args.copydays]
    keep = np.array([not label.startswith("g") or label in copydays for label in data.groups.tolist()])
    members = big_families(count=args.big, copies=args.big_copies, skip=args.families or 0, attacks=args.attacks)
    files = [Path(member.file) for member in members]
    digests = [hashlib.sha256(path.read_bytes()).hexdigest() for path in files]
    vectors = embedded(files, digests, what="big-family copies") if files else np.zeros((0, data.vectors.shape[1]))
    big_labels = {member.family for member in members}
    data = DevData(
        files=[path for path, kept in zip(data.files, keep, strict=True) if kept] + files,
        groups=np.concatenate([data.groups[keep], np.array([member.family for member in members], dtype=object)]),
        vectors=np.vstack([data.vectors[keep], vectors]).astype(np.float32),
        total_files=int(keep.sum()) + len(files),
        exact_copies=0,
        kinds=np.concatenate([data.kinds[keep], np.array(["copy"] * len(files), dtype=object)]),
        edits=[edit for edit, kept in zip(data.edits, keep, strict=True) if kept] + [m.edits for m in members],
        captions=np.concatenate([data.captions[keep], np.array([m.caption for m in members], dtype=bool)]),
    )
    data = replace(data, groups=data.groups.astype(str))
    big = np.array([label in big_labels or label in copydays for label in data.groups.tolist()])
    return data, big


def _inliers_of(task: tuple[list[str], list[tuple[int, int]]]) -> list[list[int]]:
    """[direct, mirror] inliers of pairs of files, as bench/duplicates.py geometric_evidence counts them."""
    files, todo = task
    features: dict[int, geometry.LocalFeatures] = {}

    def of(position: int) -> geometry.LocalFeatures:
        if position not in features:
            features[position] = geometry.local_features(geometry.load_for_matching(files[position]))
        return features[position]

    found = []
    for first, second in todo:
        a, b = of(first), of(second)
        direct = geometry.similarity_inliers(a, b)
        mirror = -1
        if direct < geometry.MIN_INLIERS and a.mirrored is not None:
            mirror = geometry.similarity_inliers(a.mirrored, b)
        found.append([direct, mirror])
    return found


def prefill_geometry(data: DevData, candidates: PairSet, grey: np.ndarray, *, workers: int) -> None:
    """Fill bench/duplicates.py's cache of geometric checks for these pairs with `workers` processes."""
    cache = geometry_cache()
    known: dict[str, list[int]] = json.loads(cache.read_text()) if cache.exists() else {}
    names = [pair_name(path) for path in data.files]
    keys = {int(p): f"{names[candidates.first[p]]}|{names[candidates.second[p]]}" for p in grey}
    todo = sorted(
        (int(candidates.first[p]), int(candidates.second[p]), key) for p, key in keys.items() if key not in known
    )
    if not todo or workers <= 1:
        return
    print(f"geometric verification of {len(todo)} pairs in {workers} processes (cached afterwards)...", flush=True)
    files = [str(path) for path in data.files]
    parts = [todo[start::workers] for start in range(workers)]
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        results = pool.map(_inliers_of, [(files, [(a, b) for a, b, _ in part]) for part in parts])
    for part, found in zip(parts, results, strict=True):
        for (_, _, key), value in zip(part, found, strict=True):
            known[key] = value
    cache.write_text(json.dumps(known))


def geometry_cache() -> Path:
    """bench/duplicates.py geometric_evidence's cache file."""
    params = (
        f"{geometry.MATCH_SIZE}-{geometry.ORB_FEATURES}-{geometry.RATIO_TEST}-{geometry.RANSAC_REPROJECTION_PX}"
        f"-{getattr(geometry, 'MIN_SIDE', 0)}-{geometry.MIN_INLIERS}-{geometry.CHECK}-{geometry.MAX_SCALE}"
    )
    return OUT / f"duplicates-inliers-by-name-{hashlib.sha256(params.encode()).hexdigest()[:16]}.json"


def stored_pairs(data: DevData, *, near: float, similar: float, workers: int = 1) -> tuple[PairSet, np.ndarray]:
    """The near-duplicate pairs the product stores (k-NN candidates, cosine or verified grey zone), and which
    of them passed by cosine alone."""
    candidates = candidate_pairs(data, all_pairs(data), floor=similar, verbose=False)
    grey = np.flatnonzero((candidates.cosine >= similar) & (candidates.cosine < near))  # the product's grey zone
    prefill_geometry(data, candidates, grey, workers=workers)
    inliers = geometric_evidence(data, candidates, chosen=grey)
    accepted = accepted_by(candidates, near=near, low=similar, extra=inliers.verified(mirror=True))
    return candidates.subset(accepted), candidates.cosine[accepted] >= near


RULES = {"before": {"rule": "shared"}, "after": {"rule": "attached"}}
# Shares of the stored pairs dropped at random: detection misses pairs (approximate k-NN, strong edits that
# fail the geometric check), which is what leaves copies' matches unshared in a big family.
MISSED = (0.2, 0.4)


def grouped(n: int, pairs: PairSet, params: dict[str, object], extra: tuple[np.ndarray, np.ndarray] | None = None):
    """Groups (lists of positions) of the pairs with a grouping rule, with wrong pairs added."""
    first, second, cosine = pairs.first, pairs.second, pairs.cosine
    if extra is not None:
        first = np.concatenate([first, extra[0]])
        second = np.concatenate([second, extra[1]])
        cosine = np.concatenate([cosine, np.full(extra[0].shape[0], 0.9)])
    return group_linking.group_pairs(ids=np.arange(n), first=first, second=second, cosine=cosine, **params)


@dataclass
class Grouping:
    purity: float
    mixed: int  # groups holding files of two or more photos
    completeness: float  # per family of 2+ files, its share in its largest group, averaged
    big_completeness: float
    big_worst: float
    big_left_out: float  # share of the big families' files in no group


def grouping_scores(groups: list[list[int]], labels: np.ndarray, big: np.ndarray) -> Grouping:
    in_groups = sum(len(members) for members in groups)
    pure = sum(Counter(labels[members].tolist()).most_common(1)[0][1] for members in groups)
    mixed = sum(1 for members in groups if len(set(labels[members].tolist())) > 1)
    families = Counter(labels.tolist())
    best: dict[str, int] = {}
    for members in groups:
        for label, count in Counter(labels[members].tolist()).items():
            best[label] = max(best.get(label, 0), count)
    share = {label: best.get(label, 0) / size for label, size in families.items() if size >= 2}
    big_labels = sorted(set(labels[big].tolist()))
    grouped_files = np.zeros(labels.shape[0], dtype=bool)
    for members in groups:
        grouped_files[members] = True
    return Grouping(
        purity=pure / max(1, in_groups),
        mixed=mixed,
        completeness=float(np.mean(list(share.values()))),
        big_completeness=float(np.mean([share[label] for label in big_labels])),
        big_worst=min(share[label] for label in big_labels),
        big_left_out=float((~grouped_files[big]).mean()),
    )


@dataclass
class Outcome:
    distinct_trashed: int  # trashed files of another photo than their group's kept copy
    photos_lost: int  # photos (families) with no file left
    redundant_trashed: float  # share of the redundant copies (per family: size - 1) that went to the trash
    aside: int  # members the suggestion left for review


def suggestion_outcome(
    groups: list[list[int]],
    pairs: PairSet,
    labels: np.ndarray,
    rank: np.ndarray,
    *,
    verified_only: bool,
    checked: set[tuple[int, int]] | None = None,
) -> Outcome:
    """Apply every group's suggestion, one decision per group over all its members: keep the best copy and
    trash the rest (before) or only the members whose own pair with the kept copy is a near-duplicate (or,
    with `checked`, passed the geometric check against it)."""
    linked = set(zip(pairs.first.tolist(), pairs.second.tolist(), strict=True)) | (checked or set())
    trashed = np.zeros(labels.shape[0], dtype=bool)
    wrong = aside = 0
    for members in groups:
        keep = max(members, key=lambda member: rank[member])
        for member in members:
            if member == keep:
                continue
            if verified_only and (min(keep, member), max(keep, member)) not in linked:
                aside += 1
                continue
            trashed[member] = True
            wrong += int(labels[member] != labels[keep])
    families = Counter(labels.tolist())
    gone = Counter(labels[trashed].tolist())
    redundant = sum(size - 1 for size in families.values())
    removed = sum(min(gone[label], size - 1) for label, size in families.items())
    lost = sum(1 for label, size in families.items() if gone[label] == size)
    return Outcome(wrong, lost, removed / max(1, redundant), aside)


FEATURES: dict[int, geometry.LocalFeatures] = {}
CHECKED: dict[tuple[int, int], bool] = {}


def checked_against_keep(data: DevData, groups: list[list[int]], pairs: PairSet, rank: np.ndarray) -> set:
    """The (member, kept copy) pairs of members with no pair with their kept copy that pass the geometric check
    (ORB + RANSAC, mirror-aware, as detection runs it), whatever their cosine: what checking each member
    against the kept copy would verify."""
    linked = set(zip(pairs.first.tolist(), pairs.second.tolist(), strict=True))
    todo = []
    for members in groups:
        keep = max(members, key=lambda member: rank[member])
        todo += [
            (min(keep, m), max(keep, m)) for m in members if m != keep and (min(keep, m), max(keep, m)) not in linked
        ]

    def of(position: int) -> geometry.LocalFeatures:
        if position not in FEATURES:
            FEATURES[position] = geometry.local_features(geometry.load_for_matching(str(data.files[position])))
        return FEATURES[position]

    for key in todo:
        if key not in CHECKED:
            CHECKED[key] = geometry.count_inliers(of(key[0]), of(key[1])) >= geometry.MIN_INLIERS
    return {key for key in todo if CHECKED[key]}


def keep_rank(files: list[Path]) -> np.ndarray:
    """The suggested copy's order without the quality checks: resolution, then file size (as suggest_keep)."""
    rank = np.zeros(len(files), dtype=np.float64)
    for position, path in enumerate(files):
        with Image.open(path) as image:
            width, height = image.size
        rank[position] = width * height * 1e9 + path.stat().st_size
    return rank


def report(data: DevData, big: np.ndarray, pairs: PairSet, *, draws: int) -> None:
    labels = data.groups
    n = len(data.files)
    rank = keep_rank(data.files)
    families = Counter(labels.tolist())
    big_labels = sorted(set(labels[big].tolist()))
    print(
        f"{n} files, {len(families)} photos ({sum(1 for s in families.values() if s >= 2)} with 2+ files), "
        f"{len(big_labels)} big families ({', '.join(f'{families[label]}' for label in big_labels)} files); "
        f"{pairs.first.shape[0]:,} near-duplicate pairs as stored "
        f"({int((~pairs.positive).sum())} of them between different photos)"
    )
    rng = np.random.default_rng(0)
    injected = {count: [wrong_pairs(labels, count, rng) for _ in range(draws)] for count in (1, 5, 20)}
    print(
        "\nGrouping: purity (share of grouped files whose group's majority photo is theirs), mixed groups, "
        "completeness per photo of 2+ files (share in its largest group, mean), on the big families (mean, worst) "
        "and their files in no group; mixed groups with N wrong pairs injected between photos (mean of "
        f"{draws} draws)."
    )
    print(
        f"{'rule':>8} | {'purity':>7} {'mixed':>5} {'complete':>8} | {'big':>6} {'worst':>6} {'no group':>8} | "
        f"{'mixed +1':>8} {'+5':>5} {'+20':>5}"
    )
    missed = {share: rng.random(pairs.first.shape[0]) >= share for share in MISSED}
    groupings = {}
    for name, params in RULES.items():
        groups = grouped(n, pairs, params)
        groupings[name] = groups
        scores = grouping_scores(groups, labels, big)
        noisy = {
            count: float(
                np.mean(
                    [grouping_scores(grouped(n, pairs, params, extra), labels, big).mixed for extra in injected[count]]
                )
            )
            for count in injected
        }
        print(
            f"{name:>8} | {scores.purity:>7.4f} {scores.mixed:>5} {scores.completeness:>8.4f} | "
            f"{scores.big_completeness:>6.4f} {scores.big_worst:>6.4f} {scores.big_left_out:>8.4f} | "
            f"{noisy[1]:>8.1f} {noisy[5]:>5.1f} {noisy[20]:>5.1f}"
        )
        for share, kept in missed.items():
            scores = grouping_scores(grouped(n, pairs.subset(kept), params), labels, big)
            print(
                f"{'':>8} | with {share:.0%} of the pairs missed: purity {scores.purity:.4f}, mixed {scores.mixed}, "
                f"complete {scores.completeness:.4f} | big {scores.big_completeness:.4f}, worst "
                f"{scores.big_worst:.4f}, no group {scores.big_left_out:.4f}"
            )
    print(
        "\nApplying every suggestion blindly (one decision per group, every member): distinct photos trashed "
        "(files of another photo than the kept copy; goal 0), photos lost entirely, redundant copies trashed "
        "(per photo at most its files - 1; goal >= 0.95), members left for review."
    )
    print(f"{'rule':>28} | {'distinct trashed':>16} {'photos lost':>11} {'redundant':>9} {'aside':>6}")
    checked = checked_against_keep(data, groupings["after"], pairs, rank)
    cases = {
        "before (main)": (groupings["before"], False, None),
        "after grouping, trash all": (groupings["after"], False, None),
        "after, stored pairs only": (groupings["after"], True, None),
        "after (+ check vs the kept)": (groupings["after"], True, checked),
    }
    for name, (groups, verified_only, extra) in cases.items():
        outcome = suggestion_outcome(groups, pairs, labels, rank, verified_only=verified_only, checked=extra)
        print(
            f"{name:>28} | {outcome.distinct_trashed:>16} {outcome.photos_lost:>11} "
            f"{outcome.redundant_trashed:>9.4f} {outcome.aside:>6}"
        )
    print(f"with 5 wrong pairs injected (mean of {draws} draws):")
    for name, params, verified_only in (
        ("before (main)", RULES["before"], False),
        ("after (+ check vs the kept)", RULES["after"], True),
    ):
        outcomes = []
        for first, second in injected[5]:
            noisy = PairSet(
                np.concatenate([pairs.first, np.minimum(first, second)]),
                np.concatenate([pairs.second, np.maximum(first, second)]),
                np.concatenate([pairs.cosine, np.full(first.shape[0], 0.9)]),
                np.concatenate([pairs.positive, np.zeros(first.shape[0], dtype=bool)]),
                pairs.total_positives,
            )
            groups = grouped(n, noisy, params)
            extra = checked_against_keep(data, groups, noisy, rank) if verified_only else None
            outcomes.append(suggestion_outcome(groups, noisy, labels, rank, verified_only=verified_only, checked=extra))
        print(
            f"{name:>28} | {np.mean([o.distinct_trashed for o in outcomes]):>16.1f} "
            f"{np.mean([o.photos_lost for o in outcomes]):>11.1f} "
            f"{np.mean([o.redundant_trashed for o in outcomes]):>9.4f} {np.mean([o.aside for o in outcomes]):>6.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copydays", type=int, default=8, help="Copydays photos (~100 variants each) of 8")
    parser.add_argument("--families", type=int, default=100, help="4-copy families of the first N distractors")
    parser.add_argument("--big", type=int, default=4, help="big families of attacked copies")
    parser.add_argument("--big-copies", type=int, default=100)
    parser.add_argument("--attacks", type=int, default=2, help="rounds of two edits per big-family copy")
    parser.add_argument("--draws", type=int, default=5, help="draws of injected wrong pairs")
    parser.add_argument("--workers", type=int, default=2, help="processes for the geometric checks")
    parser.add_argument("--prepare", action="store_true", help="only compute the caches")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    defaults = measured_defaults()
    data, big = library(args)
    pairs, _ = stored_pairs(data, near=defaults.near_duplicate, similar=defaults.similar, workers=args.workers)
    print(f"{len(data.files)} files, {int(big.sum())} in big families, {pairs.first.shape[0]:,} near-duplicate pairs")
    if args.prepare:
        return
    report(data, big, pairs, draws=args.draws)


if __name__ == "__main__":
    main()
