"""Ingest speed: the seed-style loop vs the real pipeline on large photos, measured side by side.

Usage (from the repository root, no Django needed):
    .venv/bin/python bench/ingest.py [--limit N] [--repeat R] [--rounds K] [--batch-size B] [--ablation]

Every round times, on the same list of files (the large photos repeated R times):
  seed-style   one image at a time, full PIL decode, transforms.Resize((224, 224)), eager fp32 ResNet-18
               (the logic of ../shared/bench/seed_baseline.py, run in this process)
  pipeline     Embedder.embed_sources: draft-mode decode in a background thread, batches, optimised model
  model-only   the same optimised model on pre-decoded uint8 pixels (the ceiling for the pipeline)
Rounds are interleaved so that load from other processes hits all three alike; the best round of each is
reported. Weights are random (seeded_embedder): weights don't change speed. Embedding equality is checked
against the eager fp32 model; draft-vs-full-decode agreement is measured with real ImageNet features (the
offline MobileNet-V2 weights from ../shared/models) because random features barely tell photos apart.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from search import embedding  # noqa: E402

SHARED_DIR = REPO_ROOT.parent / "shared"
PHOTOS_DIR = SHARED_DIR / "data" / "large-photos"
OFFLINE_WEIGHTS = SHARED_DIR / "models" / "mobilenet_v2_imagenet_features.pth"


def require(path: Path) -> Path:
    if not path.exists():
        sys.exit(f"Missing {path}: the benchmark reads ../shared (beside the repository). Clone or copy it there.")
    return path


def seed_style_model():
    """Exactly what ../shared/bench/seed_baseline.py builds."""
    import torch
    import torchvision
    from torchvision import transforms

    model = torchvision.models.resnet18(weights=None)
    model.fc = torch.nn.Identity()
    model.eval()
    transform = transforms.Compose(
        [
            transforms.Resize((224, 224)),
            transforms.ToTensor(),
            transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ]
    )
    return model, transform


def time_seed_style(files: list[Path], model, transform) -> float:
    import torch

    start = time.perf_counter()
    with torch.no_grad():
        for path in files:
            x = transform(Image.open(path).convert("RGB")).unsqueeze(0)
            torch.nn.functional.normalize(model(x), dim=1)
    return time.perf_counter() - start


def time_pipeline(files: list[Path], embedder: embedding.Embedder, batch_size: int) -> float:
    start = time.perf_counter()
    result = embedder.embed_sources(files, batch_size=batch_size)
    elapsed = time.perf_counter() - start
    if result.errors or len(result.ok_indices) != len(files):
        raise RuntimeError(f"pipeline failed on some photos: {result.errors}")
    return elapsed


def time_model_only(pixels: np.ndarray, embedder: embedding.Embedder, batch_size: int) -> float:
    start = time.perf_counter()
    for i in range(0, len(pixels), batch_size):
        embedder.embed_pixels(pixels[i : i + batch_size])
    return time.perf_counter() - start


def full_decode_pixels(path: Path) -> np.ndarray:
    """No draft mode: what the pipeline would feed the model if it decoded every pixel."""
    with Image.open(path) as image:
        image.load()
        upright = embedding.ImageOps.exif_transpose(image) or image
        return embedding.model_input_pixels(upright.convert("RGB"))


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def report_equality(unique: list[Path], pixels: np.ndarray) -> None:
    """Optimised model vs eager fp32 on the same pixels: must be equal for duplicate thresholds to hold."""
    optimised = embedding.seeded_embedder(model_name="resnet18", seed=0)
    reference = embedding.seeded_embedder(model_name="resnet18", seed=0, optimize=False)
    worst = float(np.max(np.abs(1 - cosine_rows(optimised.embed_pixels(pixels), reference.embed_pixels(pixels)))))
    print(f"max |1 - cosine| optimised vs eager fp32, resnet18 (seeded): {worst:.2e} (goal <= 1e-4)")
    if OFFLINE_WEIGHTS.exists():
        real = embedding.load_embedder(model_name="mobilenet_v2", weights_path=OFFLINE_WEIGHTS)
        real_ref = embedding.load_embedder(model_name="mobilenet_v2", weights_path=OFFLINE_WEIGHTS, optimize=False)
        worst = float(np.max(np.abs(1 - cosine_rows(real.embed_pixels(pixels), real_ref.embed_pixels(pixels)))))
        print(f"max |1 - cosine| optimised vs eager fp32, mobilenet_v2 (offline ImageNet): {worst:.2e}")

        draft = real.embed_pixels(pixels)
        full = real.embed_pixels(np.stack([full_decode_pixels(p) for p in unique]))
        agree = cosine_rows(draft, full)
        others = draft @ draft.T
        between = others[~np.eye(len(unique), dtype=bool)]
        print(
            f"draft vs full decode, mobilenet_v2 ImageNet features, {len(unique)} photos: cosine min "
            f"{agree.min():.4f} mean {agree.mean():.4f} (different photos: mean {between.mean():.3f}, "
            f"max {between.max():.3f})"
        )
        for path, value in sorted(zip(unique, agree, strict=True), key=lambda item: item[1])[:3]:
            print(f"    lowest: {path.name} {value:.4f}")
    else:
        print(f"(no {OFFLINE_WEIGHTS}: skipped the real-weights checks)")


def ablation(unique: list[Path], pixels: np.ndarray, batch_size: int) -> None:
    """Where the time goes: decode variants (one thread) and model variants (all threads)."""
    import torch

    print("\n-- ablation: decode + resize to 224x224, one thread, ms per photo (best of 2)")

    def decode_full(path: Path) -> np.ndarray:
        return embedding.model_input_pixels(Image.open(path).convert("RGB"))

    def decode_draft_only(path: Path) -> np.ndarray:
        image = Image.open(io.BytesIO(path.read_bytes()))
        image.draft("RGB", (224, 224))
        return embedding.model_input_pixels(image.convert("RGB"))

    def decode_pipeline(path: Path) -> np.ndarray:
        return embedding.model_input_pixels(embedding.load_rgb_for_embedding(path))

    for name, decode in [
        ("full decode", decode_full),
        ("draft mode", decode_draft_only),
        ("draft + progressive DC-only", decode_pipeline),
    ]:
        best = min(_timed(lambda decode=decode: [decode(p) for p in unique]) for _ in range(2))
        print(f"   {name:30s} {1000 * best / len(unique):7.1f} ms/photo")

    print(f"-- ablation: model only, img/s ({torch.get_num_threads()} threads)")
    reference = embedding.seeded_embedder(seed=0, optimize=False)
    optimised = embedding.seeded_embedder(seed=0)
    work = np.concatenate([pixels] * max(1, 32 // len(pixels)))
    for name, model_embedder in [("eager fp32", reference), ("BN folded + channels-last", optimised)]:
        for size in sorted({1, 8, batch_size, 32}):
            best = min(_timed(lambda e=model_embedder, s=size: time_model_only(work, e, s)) for _ in range(2))
            print(f"   {name:30s} batch {size:3d} {len(work) / best:7.1f} img/s")


def _timed(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="use only the first N photos")
    parser.add_argument("--repeat", type=int, default=4, help="repeat the photo list R times (default 4: 48)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (default 3)")
    parser.add_argument("--batch-size", type=int, default=embedding.DEFAULT_BATCH_SIZE)
    parser.add_argument("--ablation", action="store_true", help="also time decode and model variants")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)

    import torch

    unique = sorted(require(PHOTOS_DIR).glob("*.jpg"))[: args.limit]
    if not unique:
        sys.exit(f"No JPEGs in {PHOTOS_DIR}")
    files = unique * args.repeat
    for path in unique:  # page cache warm for everyone
        path.read_bytes()

    embedder = embedding.seeded_embedder(model_name="resnet18", seed=0)
    seed_model, seed_transform = seed_style_model()
    print(
        f"{len(files)} images ({len(unique)} photos x {args.repeat}) from {PHOTOS_DIR}; "
        f"{embedding.available_cpu_count()} CPUs available, torch threads {torch.get_num_threads()}, "
        f"batch {args.batch_size}"
    )
    decoded = np.stack([embedding.model_input_pixels(embedding.load_rgb_for_embedding(p)) for p in unique])
    model_pixels = np.concatenate([decoded] * args.repeat)
    time_pipeline(unique[:2], embedder, args.batch_size)  # warm-up: thread pool, allocator, oneDNN kernels
    time_model_only(model_pixels[: args.batch_size], embedder, args.batch_size)
    time_seed_style(unique[:1], seed_model, seed_transform)

    rates: dict[str, list[float]] = {"seed-style": [], "pipeline": [], "model-only": []}
    for round_number in range(1, args.rounds + 1):
        rates["seed-style"].append(len(files) / time_seed_style(files, seed_model, seed_transform))
        rates["pipeline"].append(len(files) / time_pipeline(files, embedder, args.batch_size))
        rates["model-only"].append(len(files) / time_model_only(model_pixels, embedder, args.batch_size))
        print(f"round {round_number}: " + ", ".join(f"{k} {v[-1]:.1f} img/s" for k, v in rates.items()))

    best = {name: max(values) for name, values in rates.items()}
    print(f"\nseed-style loop:  {best['seed-style']:7.2f} images/s (best of {args.rounds} rounds)")
    print(f"pipeline:         {best['pipeline']:7.2f} images/s")
    print(f"model-only:       {best['model-only']:7.2f} images/s (pre-decoded pixels, same optimised model)")
    ratio = best["pipeline"] / best["seed-style"]
    median_ratio = statistics.median(p / s for p, s in zip(rates["pipeline"], rates["seed-style"], strict=True))
    print(f"ratio pipeline/seed: {ratio:.1f}x (median of per-round ratios {median_ratio:.1f}x; goal >= 10x)")
    share = best["pipeline"] / best["model-only"]
    print(f"pipeline share of model-only: {100 * share:.0f}% (goal >= 75%)")

    report_equality(unique, decoded)
    if args.ablation:
        ablation(unique, decoded, args.batch_size)


if __name__ == "__main__":
    main()
