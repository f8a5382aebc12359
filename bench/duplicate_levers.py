"""Levers for the edited copies that detection still misses (issue 10, goal 3), each measured on the dev data.

Run from the repository root after bench/duplicates.py has filled its caches (embeddings, grey-zone inliers):

    .venv/bin/python bench/duplicate_levers.py                 # all levers, ~10 minutes on an idle machine
    .venv/bin/python bench/duplicate_levers.py --only below-floor pooling

Same data as bench/duplicates.py (neardup-dev + distractors-dev + the generated families, offline MobileNet-V2)
and the product's rule at the mobilenet_v2 defaults (0.88 / 0.70, grey zone verified by the mirror-aware
ORB + RANSAC check) as the starting point. Each lever prints what it adds: same-photo pairs gained (TP),
pairs of different photos gained (FP), overall precision and recall, and the five weakest family types.

- below-floor: each image's N best neighbours below the similar floor (down to --low) verified by the
  geometric check; pairs under the floor are never candidates today.
- inliers-by-cosine: fewer RANSAC inliers required in the upper grey zone (from --split up).
- blur-aware: pairs with a soft image (quality sharpness < --soft) among its 10 nearest neighbours, cosine
  in [--low, near), compared again after blurring both alike (duplicates.blur_match, as the rejected-copy
  check does).
- pooling: generalised-mean (GeM) pooling of the backbone's last feature map instead of the average, scored
  by the share of same-photo pairs of each type that reach the 99.9th percentile of different-photo pairs
  (the floor any rule needs them above), and then with the whole rule (candidates, check, threshold sweep).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __name__ == "__main__":
    # Run as a script, bench/ is sys.path[0] and bench/duplicates.py would shadow the `duplicates` package.
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import numpy as np

from bench import duplicates as bench
from bench import edited_families
from duplicates import geometry

NEAR, SIMILAR = 0.88, 0.70  # the product's mobilenet_v2 defaults (search/thresholds.py)
LEVERS = ("below-floor", "inliers-by-cosine", "blur-aware", "pooling")


class Baseline:
    """The dev data, all pairs, the product's candidates and which pairs its rule accepts."""

    def __init__(self, args: argparse.Namespace) -> None:
        folder = edited_families.ensure_families(
            cache=bench.OUT,
            copies=edited_families.DEFAULT_COPIES,
            seed=edited_families.DEFAULT_SEED,
            limit=None,
            brackets=30,
        )
        self.data = bench.load_dev(families=folder)
        self.pairs = bench.all_pairs(self.data)
        self.candidates = bench.candidate_pairs(self.data, self.pairs, floor=SIMILAR, verbose=False)
        self.inliers = bench.geometric_evidence(self.data, self.candidates)
        accepted = bench.accepted_by(self.candidates, near=NEAR, low=SIMILAR, extra=self.inliers.verified(mirror=True))
        self.accepted = self.on_all_pairs(self.candidates, accepted)
        self.files = len(self.data.files)
        self.categories = bench.categories(self.data, self.pairs.first, self.pairs.second)

    def on_all_pairs(self, subset: bench.PairSet, mask: np.ndarray) -> np.ndarray:
        """A mask over a subset of pairs as a mask over all pairs."""
        return bench.among(self.pairs, subset.first[mask], subset.second[mask], files=len(self.data.files))

    def report(self, label: str, accepted: np.ndarray) -> None:
        gained = accepted & ~self.accepted
        positive = self.pairs.positive
        tp, fp = int((accepted & positive).sum()), int((accepted & ~positive).sum())
        by_type = {
            name: float((accepted & mask & positive).sum() / max(1, (mask & positive).sum()))
            for name, mask in self.categories.items()
        }
        weakest = sorted(by_type.items(), key=lambda item: item[1])[:5]
        print(
            f"   {label:<34} +TP {int((gained & positive).sum()):>4} +FP {int((gained & ~positive).sum()):>3} | "
            f"P {tp / max(1, tp + fp):.5f} R {tp / self.pairs.total_positives:.4f} | "
            + ", ".join(f"{name.split(': ')[-1]} {recall:.3f}" for name, recall in weakest)
        )


def rank_below(scores: np.ndarray, floor: float, depth: int) -> np.ndarray:
    """(n, n) rank of each image among another's neighbours scoring below `floor` (depth or more: not ranked)."""
    below = np.where(scores < floor, scores, -2.0)
    np.fill_diagonal(below, -2.0)
    order = np.argsort(-below, axis=1)[:, :depth]
    rank = np.full(scores.shape, depth, dtype=np.int16)
    rows = np.arange(scores.shape[0])[:, None]
    rank[rows, order] = np.arange(depth)
    return rank


def below_floor(base: Baseline, args: argparse.Namespace) -> None:
    print(f"\n== below-floor: the N best neighbours in [{args.low}, {SIMILAR}) of each image, geometric check")
    scores = base.data.vectors @ base.data.vectors.T
    rank = rank_below(scores, SIMILAR, 10)
    pair_rank = np.minimum(rank[base.pairs.first, base.pairs.second], rank[base.pairs.second, base.pairs.first])
    missed = base.pairs.positive & (base.pairs.cosine < SIMILAR)
    for name, mask in base.categories.items():
        lost = mask & missed
        if lost.any() and "copydays" not in name:
            shares = " ".join(f"top {n}: {(pair_rank[lost] < n).mean():.2f}" for n in (1, 3, 5, 10))
            print(f"   {name:>30}: {int(lost.sum()):>3} pairs under the floor; among the best below it, {shares}")
    base.report("product rule (baseline)", base.accepted)
    for top in args.below_top:
        chosen = np.flatnonzero((pair_rank < top) & (base.pairs.cosine >= args.low) & (base.pairs.cosine < SIMILAR))
        inliers = bench.geometric_evidence(base.data, base.pairs, chosen=chosen).product()[chosen]
        print(f"   N = {top}: {chosen.shape[0]} pairs checked ({chosen.shape[0] / base.files:.2f} per image)")
        for needed in (geometry.MIN_INLIERS, 40):
            accepted = base.accepted.copy()
            accepted[chosen[inliers >= needed]] = True
            base.report(f"N = {top}, >= {needed} inliers", accepted)


def inliers_by_cosine(base: Baseline, args: argparse.Namespace) -> None:
    print(f"\n== inliers-by-cosine: fewer inliers needed from cosine {args.split} up (grey zone only)")
    checked = base.inliers.product()
    cosine = base.candidates.cosine
    grey = (cosine >= SIMILAR) & (cosine < NEAR)
    upper = grey & (cosine >= args.split)
    negatives = checked[upper & ~base.candidates.positive]
    print(
        f"   different-photo pairs in [{args.split}, {NEAR}): {negatives.shape[0]} (inliers max "
        f"{negatives.max() if negatives.shape[0] else 0}); below {args.split}: 99.9th percentile "
        f"{np.quantile(checked[grey & ~upper & ~base.candidates.positive], 0.999):.0f}"
    )
    base.report("product rule (baseline)", base.accepted)
    for needed in (15, 12, 10):
        extra = np.where(cosine >= args.split, checked >= needed, checked >= geometry.MIN_INLIERS)
        accepted = bench.accepted_by(base.candidates, near=NEAR, low=SIMILAR, extra=extra)
        base.report(f">= {needed} inliers from {args.split}", base.on_all_pairs(base.candidates, accepted))


def blur_aware(base: Baseline, args: argparse.Namespace) -> None:
    from duplicates.blur_match import reblurred
    from search.model_input import load_rgb_for_embedding, model_input_pixels

    print(f"\n== blur-aware: pairs with an image of sharpness < {args.soft}, compared after blurring both alike")
    _, sharpness = bench.quality_checks(base.data)
    scores = base.data.vectors @ base.data.vectors.T
    np.fill_diagonal(scores, -2.0)
    nearest = np.argsort(-scores, axis=1)[:, :10]
    close = np.zeros(scores.shape, dtype=bool)
    close[np.arange(base.files)[:, None], nearest] = True
    first, second = base.pairs.first, base.pairs.second
    chosen = np.flatnonzero(
        ~base.accepted
        & (np.minimum(sharpness[first], sharpness[second]) < args.soft)
        & (close[first, second] | close[second, first])
        & (base.pairs.cosine >= args.low)
        & (base.pairs.cosine < NEAR)
    )
    images = sorted(set(first[chosen].tolist()) | set(second[chosen].tolist()))
    soft = int((sharpness < args.soft).sum())
    print(f"   {soft} soft images, {chosen.shape[0]} pairs, {len(images)} images re-embedded")
    pixels = np.stack(
        [reblurred(model_input_pixels(load_rgb_for_embedding(base.data.files[i].read_bytes()))) for i in images]
    )
    vectors = dict(zip(images, bench.embedder().embed_pixels(pixels), strict=True))
    alike = np.array([vectors[int(first[p])] @ vectors[int(second[p])] for p in chosen])
    base.report("product rule (baseline)", base.accepted)
    for threshold in (0.88, 0.90, 0.93):
        accepted = base.accepted.copy()
        accepted[chosen[alike >= threshold]] = True
        base.report(f"blurred alike >= {threshold}", accepted)


def gem_vectors(base: Baseline, power: float) -> np.ndarray:
    """Unit vectors from the generalised mean (power p) of MobileNet-V2's last feature map, per file."""
    import torch
    import torchvision

    from search.embedding import IMAGENET_MEAN, IMAGENET_STD
    from search.model_input import load_rgb_for_embedding, model_input_pixels

    cache = bench.OUT / f"levers-gem{power:g}-{len(base.data.files)}.npy"
    if cache.exists():
        return np.load(cache)
    model = torchvision.models.mobilenet_v2(weights=None)
    model.load_state_dict(torch.load(str(bench.WEIGHTS), weights_only=True), strict=False)
    model.eval()
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    rows = []
    for start in range(0, len(base.data.files), 64):
        pixels = np.stack(
            [model_input_pixels(load_rgb_for_embedding(p.read_bytes())) for p in base.data.files[start : start + 64]]
        )
        batch = torch.from_numpy(pixels).permute(0, 3, 1, 2).float().div(255.0).sub(mean).div(std)
        with torch.inference_mode():
            features = model.features(batch).clamp(min=1e-6)
            pooled = features.pow(power).mean((2, 3)).pow(1 / power)
            rows.append(torch.nn.functional.normalize(pooled, dim=1).numpy())
    vectors = np.vstack(rows).astype(np.float32)
    np.save(cache, vectors)
    return vectors


def pooling(base: Baseline, args: argparse.Namespace) -> None:
    print("\n== pooling: average (the product) against GeM; reach = share of same-photo pairs at or above the")
    print("   99.9th percentile of different-photo pairs")
    positive = base.pairs.positive
    variants = {"average (product)": base.data.vectors, **{f"GeM p={p:g}": gem_vectors(base, p) for p in args.gem}}
    for label, vectors in variants.items():
        cosine = (vectors @ vectors.T)[base.pairs.first, base.pairs.second]
        floor = np.quantile(cosine[~positive], 0.999)
        reach = ", ".join(
            f"{name.split(': ')[-1][:14]} {(cosine[mask & positive] >= floor).mean():.3f}"
            for name, mask in base.categories.items()
        )
        print(f"   {label:<18} floor {floor:.3f} | {reach}")
    for label, vectors in list(variants.items())[1:]:
        data = base.data.with_vectors(vectors)
        pairs = bench.all_pairs(data)
        floor = float(np.quantile(pairs.cosine[~pairs.positive], args.gem_floor_quantile))
        candidates = bench.candidate_pairs(data, pairs, floor=floor, verbose=False)
        rule = bench.geometric_evidence(data, candidates).verified(mirror=True)
        best = bench.sweep(data, pairs, candidates, rule, similar=floor, label=f"{label}, similar floor {floor:.3f}")
        if best is not None:
            accepted = bench.accepted_by(candidates, near=best[0], low=floor, extra=rule)
            bench.print_types(
                f"{label} at its lowest near-duplicate threshold keeping precision >= 0.999 ({best[0]}) / {floor:.3f}",
                data,
                pairs,
                candidates,
                {label: accepted},
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=LEVERS, default=list(LEVERS))
    parser.add_argument("--low", type=float, default=0.55, help="lowest cosine the below-floor levers look at")
    parser.add_argument("--below-top", type=int, nargs="+", default=[3, 5])
    parser.add_argument("--split", type=float, default=0.80)
    parser.add_argument("--soft", type=float, default=0.60, help="sharpness under which an image counts as soft")
    parser.add_argument("--gem", type=float, nargs="+", default=[3.0])
    parser.add_argument(
        "--gem-floor-quantile",
        type=float,
        default=0.9849,
        help="GeM's similar floor as this quantile of different-photo pairs (0.9849: where 0.70 sits for average)",
    )
    args = parser.parse_args()
    base = Baseline(args)
    bench.django_ready()
    for lever, run in zip(LEVERS, (below_floor, inliers_by_cosine, blur_aware, pooling), strict=True):
        if lever in args.only:
            run(base, args)


if __name__ == "__main__":
    main()
