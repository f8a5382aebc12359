"""Similar groups that are one scene: purity of the similar band's groups and exposure brackets kept together.

Run from the repository root (no database; ~15 minutes the first time on a loaded 2-core machine, mostly the
geometric check of 21,000 grey-zone pairs; cached in bench/out/ afterwards, ~15 s):

    .venv/bin/python bench/similar_scenes.py [--camera-scenes 30] [--plain-scenes 30]

The library: ../shared/data/neardup-dev + distractors-dev with exposure brackets made from distractors by
bench/edited_families.py. Camera brackets (`camera_brackets`): the first 30 distractors are replaced by five
frames each (-2 to +2 EV), 0.2 s apart, with the camera's EXIF, as a camera writes a bracket. Plain brackets
(`exposure_brackets`): the next 30 distractors get four edits each (-2, -1, +1, +2 EV), no EXIF: the same
pixels as a brightness-edited copy. Every bracket file is labelled with its photo's scene. The product's path is
replayed: adaptive k-NN candidates at the similar floor, cosine bands, the grey zone verified geometrically
(ORB + RANSAC), the near-duplicate groups, then the similar band (pairs outside one near-duplicate group)
grouped by each rule.

Printed per rule ("before" = the similar band as main groups it, then each lever alone and combined): purity
(share of grouped images whose group's majority scene is theirs), groups, groups mixing scenes, largest,
images grouped; bracket completeness (share of bracket sets whose files are all in one similar group, and in
one group of either band) and bracket pair recall (share of bracket pairs in one similar group / one group).

Levers (duplicates/scene_match.py is what the product runs):
- EXIF bands: two shots of one camera taken at different moments, seconds apart, are similar, not near-duplicates;
- scene evidence: a similar pair is grouped only when the camera says one burst (same camera, seconds apart),
  the exposure-normalised thumbnails agree, or the geometric check's inliers reach a count (each measured);
- the grouping rule's strictness (SIMILAR_MIN_SHARED).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

if __name__ == "__main__":
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import numpy as np
from PIL import Image as PILImage
from PIL import ImageOps

from bench import edited_families
from bench.duplicates import (
    OUT,
    DevData,
    PairSet,
    all_pairs,
    django_ready,
    embedded,
    geometric_evidence,
    knn_pairs,
    load_dev,
    measured_defaults,
    pair_name,
)
from duplicates import geometry, group_linking, scene_match
from duplicates.candidate_pairs import K_MAX, K_START
from duplicates.evidence import ImageFacts
from gallery.exif import read_exif


@dataclass(frozen=True)
class Library:
    data: DevData
    bracket_set: np.ndarray  # per file: the bracket set (scene number) it belongs to, -1 for none
    bracket_kind: dict[int, str]  # scene number -> "camera" (frames with EXIF) or "plain" (photo + 4 edits)
    taken: list[datetime.datetime | None]
    cameras: list[str]


def plain_brackets(scenes: range, seed: int) -> Path:
    """edited_families.exposure_brackets of these distractors (the photo plus -2, -1, +1, +2 EV, no EXIF)."""
    sources = edited_families.source_photos()[scenes.start : scenes.stop]
    folder = (
        OUT / f"similar-scenes-plain-brackets-v{edited_families.GENERATOR_VERSION}-s{seed}-{scenes.start}-{scenes.stop}"
    )
    if (folder / edited_families.LABELS).exists():
        return folder
    members = []
    for path in sources:
        name = path.relative_to(edited_families.SOURCES).as_posix()
        with PILImage.open(path) as opened:
            photo = ImageOps.exif_transpose(opened).convert("RGB")
        for member, data in edited_families.exposure_brackets(photo, name=name, seed=seed):
            target = folder / member.file
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            members.append(member)
    edited_families._write_labels(folder, members)
    return folder


def library(dev: DevData, *, camera_scenes: int, plain_scenes: int, seed: int) -> Library:
    """The dev photos, with the first `camera_scenes` distractors replaced by camera brackets of them (five
    frames with EXIF) and the next `plain_scenes` distractors joined by their plain brackets; each bracket
    file labelled with its photo's scene."""
    camera = edited_families.ensure_camera_brackets(cache=OUT, seed=seed, scenes=camera_scenes)
    plain = plain_brackets(range(camera_scenes, camera_scenes + plain_scenes), seed)
    camera_members = edited_families.read_labels(camera)
    plain_members = [m for m in edited_families.read_labels(plain) if m.kind == "bracket"]
    position = {pair_name(path): i for i, path in enumerate(dev.files)}

    def source_position(member: edited_families.FamilyMember) -> int:
        return position[f"{Path(member.source).parent.name}/{Path(member.source).name}"]

    replaced = {source_position(m) for m in camera_members}
    keep = np.array([i for i in range(len(dev.files)) if i not in replaced])
    files = [*(camera / m.file for m in camera_members), *(plain / m.file for m in plain_members)]
    vectors = embedded(files, [hashlib.sha256(path.read_bytes()).hexdigest() for path in files], what="brackets")
    labels = [dev.groups[source_position(m)] for m in [*camera_members, *plain_members]]
    data = replace(
        dev,
        files=[*(dev.files[i] for i in keep), *files],
        groups=np.concatenate([dev.groups[keep], np.array(labels)]),
        vectors=np.vstack([dev.vectors[keep], vectors]).astype(np.float32),
        kinds=np.concatenate([dev.kinds[keep], np.array(["bracket"] * len(files))]),
        edits=[*(dev.edits[i] for i in keep), *(m.edits for m in [*camera_members, *plain_members])],
        captions=np.concatenate([dev.captions[keep], np.zeros(len(files), dtype=bool)]),
    )
    scene_of: dict[str, int] = {}
    bracket_kind: dict[int, str] = {}
    bracket_set = np.full(len(data.files), -1, dtype=np.int64)
    offset = len(keep)
    for number, member in enumerate([*camera_members, *plain_members]):
        scene = scene_of.setdefault(member.source, len(scene_of))
        bracket_kind[scene] = "camera" if member.kind == "camera-bracket" else "plain"
        bracket_set[offset + number] = scene
    new_position = {pair_name(path): i for i, path in enumerate(data.files)}
    for member in plain_members:  # the plain set's photo itself is its 0 EV frame
        bracket_set[new_position[f"{Path(member.source).parent.name}/{Path(member.source).name}"]] = scene_of[
            member.source
        ]
    taken, cameras = [], []
    for path in data.files:
        with PILImage.open(path) as opened:
            exif = read_exif(opened)
        taken.append(exif.taken_at)
        cameras.append(f"{exif.camera_make} {exif.camera_model}".strip())
    return Library(data=data, bracket_set=bracket_set, bracket_kind=bracket_kind, taken=taken, cameras=cameras)


def exposure_scores(data: DevData, pairs: PairSet, chosen: np.ndarray) -> np.ndarray:
    """scene_match.exposure_agreement of the chosen pairs (NaN elsewhere), cached by file names."""
    cache = OUT / f"similar-scenes-exposure-{scene_match.EXPOSURE_CHECK}.json"
    known: dict[str, float] = json.loads(cache.read_text()) if cache.exists() else {}
    names = [pair_name(path) for path in data.files]
    keys = {int(p): f"{names[pairs.first[p]]}|{names[pairs.second[p]]}" for p in chosen}
    todo = [p for p, key in keys.items() if key not in known]
    if todo:
        started = time.perf_counter()
        needed = sorted({int(pairs.first[p]) for p in todo} | {int(pairs.second[p]) for p in todo})
        thumbs = {i: scene_match.exposure_thumbnail(scene_match.load_thumbnail(str(data.files[i]))) for i in needed}
        for p in todo:
            known[keys[p]] = scene_match.exposure_agreement(thumbs[int(pairs.first[p])], thumbs[int(pairs.second[p])])
        cache.write_text(json.dumps(known))
        elapsed = time.perf_counter() - started
        print(f"exposure-normalised comparison of {len(todo)} pairs ({len(needed)} images) in {elapsed:.1f}s")
    scores = np.full(pairs.cosine.shape[0], np.nan)
    for p, key in keys.items():
        scores[p] = known[key]
    return scores


def scores_of(groups: list[list[int]], labels: np.ndarray) -> tuple[float, int, int, int, int]:
    """(purity, groups, groups mixing scenes, largest, images grouped)."""
    grouped = sum(len(members) for members in groups)
    pure = sum(Counter(labels[members].tolist()).most_common(1)[0][1] for members in groups)
    mixed = sum(len(set(labels[members].tolist())) > 1 for members in groups)
    return pure / max(1, grouped), len(groups), mixed, max((len(m) for m in groups), default=0), grouped


def homes(groups: list[list[int]], n: int) -> np.ndarray:
    home = np.full(n, -1, dtype=np.int64)
    for number, members in enumerate(groups):
        home[members] = number
    return home


def bracket_figures(lib: Library, kind: str, near_home: np.ndarray, similar_home: np.ndarray) -> list[float]:
    """Over the bracket sets of this kind: [sets whose files are all in one similar group, all in one group of
    either band, bracket pairs sharing a similar group, sharing a group of either band]."""
    scenes = [s for s, k in lib.bracket_kind.items() if k == kind]
    if not scenes:
        return [float("nan")] * 4

    def together(home: np.ndarray, a: int, b: int) -> bool:
        return bool(home[a] >= 0 and home[a] == home[b])

    whole_similar = whole_any = pairs_similar = pairs_any = total = 0
    for scene in scenes:
        members = np.flatnonzero(lib.bracket_set == scene)
        links = [(int(a), int(b)) for i, a in enumerate(members) for b in members[i + 1 :]]
        in_similar = [together(similar_home, a, b) for a, b in links]
        in_near = [together(near_home, a, b) for a, b in links]
        whole_similar += all(in_similar)
        whole_any += all(in_similar) or all(in_near)
        pairs_similar += sum(in_similar)
        pairs_any += sum(x or y for x, y in zip(in_similar, in_near, strict=True))
        total += len(links)
    return [whole_similar / len(scenes), whole_any / len(scenes), pairs_similar / total, pairs_any / total]


def facts(lib: Library, i: int) -> ImageFacts:
    return ImageFacts(id=i, width=0, height=0, file_size=0, taken_at=lib.taken[i], camera=lib.cameras[i])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--camera-scenes", type=int, default=30, help="camera bracket sets (first N distractors)")
    parser.add_argument("--plain-scenes", type=int, default=30, help="plain bracket sets (the next N)")
    parser.add_argument("--seed", type=int, default=edited_families.DEFAULT_SEED)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    django_ready()
    defaults = measured_defaults()
    near, similar = defaults.near_duplicate, defaults.similar
    lib = library(
        load_dev(families=None), camera_scenes=args.camera_scenes, plain_scenes=args.plain_scenes, seed=args.seed
    )
    data = lib.data
    n = len(data.files)
    pairs = all_pairs(data)
    candidates = knn_pairs(data, pairs, k_start=K_START, k_max=K_MAX, floor=similar)
    grey = np.flatnonzero((candidates.cosine >= similar) & (candidates.cosine < near))
    print(
        f"{n} distinct files: neardup-dev + distractors-dev, {args.camera_scenes} distractors replaced by camera "
        f"brackets (5 frames with EXIF, 0.2 s apart), {args.plain_scenes} joined by plain brackets (the photo + "
        f"4 EV edits, no EXIF); {candidates.cosine.shape[0]:,} candidate pairs >= {similar}, {grey.shape[0]:,} in "
        f"the grey zone [{similar}, {near})"
    )
    inliers = geometric_evidence(data, candidates, chosen=grey).product()
    first, second = candidates.first.tolist(), candidates.second.tolist()
    distinct = np.array(
        [scene_match.distinct_shots(facts(lib, a), facts(lib, b)) for a, b in zip(first, second, strict=True)]
    )
    burst = np.array(
        [
            scene_match.burst(taken=(lib.taken[a], lib.taken[b]), cameras=(lib.cameras[a], lib.cameras[b]))
            for a, b in zip(first, second, strict=True)
        ]
    )
    copies = (candidates.cosine >= near) | (inliers >= geometry.MIN_INLIERS)
    bracket_pair = (lib.bracket_set[candidates.first] >= 0) & (
        lib.bracket_set[candidates.first] == lib.bracket_set[candidates.second]
    )
    exposure = exposure_scores(data, candidates, np.flatnonzero(~copies | distinct | bracket_pair))
    for kind in ("camera", "plain"):
        scenes = [scene for scene, made in lib.bracket_kind.items() if made == kind]
        chosen = bracket_pair & np.isin(lib.bracket_set[candidates.first], scenes)
        bands = Counter(
            "near-duplicate (cosine)"
            if cosine >= near
            else "near-duplicate (geometry)"
            if count >= geometry.MIN_INLIERS
            else "similar"
            for cosine, count in zip(candidates.cosine[chosen], inliers[chosen], strict=True)
        )
        print(
            f"{kind} bracket pairs: {int(chosen.sum())} candidates, cosine {candidates.cosine[chosen].min():.3f}-"
            f"{candidates.cosine[chosen].max():.3f}; "
            f"exposure agreement median {np.nanmedian(exposure[chosen]):.3f}, "
            f"min {np.nanmin(exposure[chosen]):.3f}, 5th pct "
            f"{np.nanquantile(exposure[chosen], 0.05):.3f}; distinct shots (EXIF) {int((chosen & distinct).sum())}; "
            "bands by cosine and geometry: " + ", ".join(f"{name} {count}" for name, count in bands.most_common())
        )
    print(
        f"EXIF: {sum(t is not None for t in lib.taken)} files with a capture time; {int(distinct.sum())} candidate "
        f"pairs are distinct shots of one camera seconds apart, {int((distinct & copies).sum())} of them "
        "near-duplicates by cosine or geometry"
    )
    scene = candidates.positive
    for label, values in (("inliers", inliers.astype(float)), ("exposure agreement", exposure)):
        wanted = ~copies & (values == values)
        one, other = values[wanted & scene], values[wanted & ~scene]
        print(
            f"similar-band pairs ({int(wanted.sum()):,}), {label}: one scene ({one.shape[0]}) median "
            f"{np.median(one):.3f}, 5th pct {np.quantile(one, 0.05):.3f} | different scenes median "
            f"{np.median(other):.3f}, 99th pct {np.quantile(other, 0.99):.3f}, 99.9th {np.quantile(other, 0.999):.3f}, "
            f"max {other.max():.3f}"
        )
    ids = np.arange(n, dtype=np.int64)

    def replay(name: str, *, exif_bands: bool, verified: np.ndarray | None, min_shared: float) -> None:
        near_mask = copies & ~distinct if exif_bands else copies
        near_pairs = candidates.subset(near_mask)
        near_groups = group_linking.group_pairs(
            ids=ids, first=near_pairs.first, second=near_pairs.second, cosine=near_pairs.cosine
        )
        near_home = homes(near_groups, n)
        outside = (near_home[candidates.first] < 0) | (near_home[candidates.first] != near_home[candidates.second])
        keep = ~near_mask & outside
        if verified is not None:
            keep &= verified
        kept = candidates.subset(keep)
        groups = group_linking.group_pairs(
            ids=ids, first=kept.first, second=kept.second, cosine=kept.cosine, min_shared=min_shared
        )
        purity, count, mixed, largest, grouped = scores_of(groups, data.groups)
        similar_home = homes(groups, n)
        camera = bracket_figures(lib, "camera", near_home, similar_home)
        plain = bracket_figures(lib, "plain", near_home, similar_home)
        print(
            f"{name:>46} | {int(keep.sum()):>6} | {purity:>6.3f} {count:>6} {mixed:>5} {largest:>7} {grouped:>6} | "
            + " ".join(f"{value:>6.3f}" for value in camera)
            + " | "
            + " ".join(f"{value:>6.3f}" for value in plain)
        )
        for p in np.flatnonzero(keep & ~candidates.positive)[: 5 if verified is not None else 0]:
            a, b = int(candidates.first[p]), int(candidates.second[p])
            print(
                f"{'':>46}   different scenes: {pair_name(data.files[a])} ~ {pair_name(data.files[b])}, cosine "
                f"{candidates.cosine[p]:.3f}, inliers {inliers[p]}, exposure {exposure[p]:.3f}"
            )

    print(
        "\nColumns: similar-band pairs grouped | purity, groups, groups mixing scenes, largest, images in similar "
        "groups | camera bracket sets: share in one similar group, in one group of either band; bracket pairs in "
        "one similar group, in one group of either band | the same for plain bracket sets"
    )
    print(
        f"{'similar band rule':>46} | {'pairs':>6} | {'purity':>6} {'groups':>6} {'mixed':>5} {'largest':>7} "
        f"{'images':>6} | {'camera sets, pairs':>27} | {'plain sets, pairs':>27}"
    )
    replay("before: cosine only, min_shared 0.9", exif_bands=False, verified=None, min_shared=0.9)
    for shared in (0.5, 0.75, 1.0):
        replay(f"cosine only, min_shared {shared}", exif_bands=False, verified=None, min_shared=shared)
    replay("EXIF bands, cosine only, 0.9", exif_bands=True, verified=None, min_shared=0.9)
    replay("EXIF bands + burst evidence, 0.9", exif_bands=True, verified=burst, min_shared=0.9)
    for k in (6, 10, 15, 20):
        replay(f"inliers >= {k}, 0.9", exif_bands=False, verified=inliers >= k, min_shared=0.9)
    for t in (0.80, 0.90):
        replay(f"exposure >= {t}, 0.9", exif_bands=False, verified=exposure >= t, min_shared=0.9)
    product = scene_match.is_same_scene_arrays(inliers=inliers, exposure=exposure) | burst
    replay("scene evidence, no EXIF bands, 0.9", exif_bands=False, verified=product, min_shared=0.9)
    replay(
        "EXIF bands + evidence with inliers >= 10, 0.9",
        exif_bands=True,
        verified=product | (inliers >= 10),
        min_shared=0.9,
    )
    replay("product: EXIF bands + scene evidence, 0.5", exif_bands=True, verified=product, min_shared=0.5)
    replay("product: EXIF bands + scene evidence, 0.9", exif_bands=True, verified=product, min_shared=0.9)


if __name__ == "__main__":
    main()
