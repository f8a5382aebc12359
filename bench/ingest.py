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
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from search import embedding, model_input  # noqa: E402

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


class Timing:
    """Wall and CPU seconds of one run: CPU time per image is what other processes' load distorts least."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0

    def __enter__(self) -> Timing:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc_info) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu


def time_seed_style(files: list[Path], model, transform) -> Timing:
    import torch

    torch.set_num_threads(embedding.available_cpu_count())  # as a fresh process would have it
    with Timing() as timing, torch.no_grad():
        for path in files:
            x = transform(Image.open(path).convert("RGB")).unsqueeze(0)
            torch.nn.functional.normalize(model(x), dim=1)
    return timing


def time_pipeline(files: list[Path], embedder: embedding.Embedder, batch_size: int) -> Timing:
    with Timing() as timing:
        result = embedder.embed_sources(files, batch_size=batch_size)
    if result.errors or len(result.ok_indices) != len(files):
        raise RuntimeError(f"pipeline failed on some photos: {result.errors}")
    return timing


def time_model_only(pixels: np.ndarray, embedder: embedding.Embedder, batch_size: int) -> Timing:
    with Timing() as timing:
        for i in range(0, len(pixels), batch_size):
            embedder.embed_pixels(pixels[i : i + batch_size])
    return timing


def full_decode_pixels(path: Path) -> np.ndarray:
    """No draft mode: what the pipeline would feed the model if it decoded every pixel."""
    with Image.open(path) as image:
        image.load()
        upright = embedding.ImageOps.exif_transpose(image) or image
        return model_input.model_input_pixels(upright.convert("RGB"))


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def report_equality(unique: list[Path], pixels: np.ndarray) -> None:
    """Optimised model vs eager fp32 on the same pixels: must be equal for duplicate thresholds to hold."""
    optimised = embedding.seeded_embedder(model_name="resnet18", seed=0)
    reference = embedding.seeded_embedder(model_name="resnet18", seed=0, optimize=False)
    expected = reference.embed_pixels(pixels)
    worst = float(np.max(np.abs(1 - cosine_rows(optimised.embed_pixels(pixels), expected))))
    print(f"max |1 - cosine| optimised vs eager fp32, resnet18 (seeded): {worst:.2e} (goal <= 1e-4)")
    pipeline = optimised.embed_sources(unique).vectors
    worst = float(np.max(np.abs(1 - cosine_rows(pipeline, expected))))
    print(f"max |1 - cosine| pipeline (embed_sources) vs eager fp32 on the same decoded pixels: {worst:.2e}")
    if OFFLINE_WEIGHTS.exists():
        real = embedding.load_embedder(model_name="mobilenet_v2", weights_path=OFFLINE_WEIGHTS)
        real_ref = embedding.load_embedder(model_name="mobilenet_v2", weights_path=OFFLINE_WEIGHTS, optimize=False)
        worst = float(np.max(np.abs(1 - cosine_rows(real.embed_pixels(pixels), real_ref.embed_pixels(pixels)))))
        print(f"max |1 - cosine| optimised vs eager fp32, mobilenet_v2 (offline ImageNet): {worst:.2e}")

        draft = real.embed_pixels(pixels)
        full = real.embed_pixels(np.stack([full_decode_pixels(p) for p in unique]))
        agree = cosine_rows(draft, full)
        others = draft @ draft.T
        np.fill_diagonal(others, -1)
        first, second = np.unravel_index(np.argmax(others), others.shape)
        print(
            f"draft vs full decode, mobilenet_v2 ImageNet features, {len(unique)} photos: cosine min "
            f"{agree.min():.4f} mean {agree.mean():.4f}"
        )
        print(
            f"    for scale: different files mean {others[others > -1].mean():.3f}; most alike "
            f"{unique[first].name} ~ {unique[second].name} {others[first, second]:.3f}"
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
        return model_input.model_input_pixels(Image.open(path).convert("RGB"))

    def decode_draft_only(path: Path) -> np.ndarray:
        image = Image.open(io.BytesIO(path.read_bytes()))
        image.draft("RGB", (224, 224))
        return model_input.model_input_pixels(image.convert("RGB"))

    def decode_pipeline(path: Path) -> np.ndarray:
        return model_input.model_input_pixels(model_input.load_rgb_for_embedding(path))

    for name, decode in [
        ("full decode", decode_full),
        ("draft mode", decode_draft_only),
        ("draft + progressive DC-only", decode_pipeline),
    ]:
        best = min(_timed(lambda decode=decode: [decode(p) for p in unique]) for _ in range(2))
        print(f"   {name:30s} {1000 * best / len(unique):7.1f} ms/photo")

    threads = embedding.available_cpu_count()
    print(f"-- ablation: model only, img/s (best of 2; {threads} threads unless said)")
    reference = embedding.seeded_embedder(seed=0, optimize=False)
    optimised = embedding.seeded_embedder(seed=0)
    frozen = embedding.seeded_embedder(seed=0, optimize=False)
    with warnings.catch_warnings(), torch.inference_mode():  # torch.jit is deprecated: measured, not used
        warnings.simplefilter("ignore")
        frozen._model = torch.jit.optimize_for_inference(
            torch.jit.freeze(torch.jit.trace(frozen._model, torch.zeros(1, 3, 224, 224)))
        )
    work = np.concatenate([pixels] * max(1, 48 // len(pixels)))
    variants = [("eager fp32", reference, threads), ("BN folded + channels-last", optimised, threads)]
    variants += [("BN folded + channels-last", optimised, 1), ("jit freeze + optimize_for_inference", frozen, threads)]
    for name, model_embedder, model_threads in variants:
        model_embedder.num_threads = model_threads
        for size in [1, 8, 16, 32]:
            time_model_only(work[:size], model_embedder, size)  # warm-up (jit profiles the first calls)
            time_model_only(work[:size], model_embedder, size)
            best = min(time_model_only(work, model_embedder, size).wall for _ in range(2))
            print(f"   {name:36s} {model_threads} thr batch {size:3d} {len(work) / best:7.1f} img/s")
    optimised.num_threads = threads

    print("-- ablation: pipeline variants on the same photos, img/s (best of 2)")
    files = unique * max(1, 48 // len(unique))
    default_decoders, default_adaptive = embedding.DECODE_THREADS, embedding.ADAPTIVE_THREADS
    for name, decoders, adaptive, model_threads in [
        ("default", default_decoders, default_adaptive, threads),
        ("model always on all threads", 1, False, threads),
        ("model always on 1 thread", 1, False, 1),
        ("2 decode threads, adaptive", 2, True, threads),
    ]:
        embedding.DECODE_THREADS, embedding.ADAPTIVE_THREADS = decoders, adaptive
        optimised.num_threads = model_threads
        best = min(time_pipeline(files, optimised, batch_size).wall for _ in range(2))
        print(f"   {name:36s} {len(files) / best:7.1f} img/s")
    embedding.DECODE_THREADS, embedding.ADAPTIVE_THREADS = default_decoders, default_adaptive


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
        f"{embedding.available_cpu_count()} CPUs available; pipeline: batches of {embedding.MIN_BATCH_SIZE}.."
        f"{args.batch_size}, {embedding.DECODE_THREADS} decode thread(s), model threads {embedder.num_threads} "
        f"({embedder.num_threads - embedding.DECODE_THREADS} while the decoder is behind)"
    )
    decoded = np.stack([model_input.model_input_pixels(model_input.load_rgb_for_embedding(p)) for p in unique])
    model_pixels = np.concatenate([decoded] * args.repeat)
    time_pipeline(unique[:2], embedder, args.batch_size)  # warm-up: thread pool, allocator, oneDNN kernels
    time_model_only(model_pixels[: args.batch_size], embedder, args.batch_size)
    time_seed_style(unique[:1], seed_model, seed_transform)

    runs: dict[str, list[Timing]] = {"seed-style": [], "pipeline": [], "model-only": []}
    for round_number in range(1, args.rounds + 1):
        runs["seed-style"].append(time_seed_style(files, seed_model, seed_transform))
        runs["pipeline"].append(time_pipeline(files, embedder, args.batch_size))
        runs["model-only"].append(time_model_only(model_pixels, embedder, args.batch_size))
        print(
            f"round {round_number} (load {os.getloadavg()[0]:.1f}): "
            + ", ".join(f"{name} {len(files) / r[-1].wall:.1f} img/s" for name, r in runs.items())
        )

    rate = {name: len(files) / min(r.wall for r in timings) for name, timings in runs.items()}
    cpu_ms = {name: 1000 * min(r.cpu for r in timings) / len(files) for name, timings in runs.items()}
    print(f"\nbest of {args.rounds} interleaved rounds (images/s; CPU ms per image, all threads):")
    print(f"seed-style loop:  {rate['seed-style']:7.2f} images/s  {cpu_ms['seed-style']:6.1f} CPU ms/image")
    print(f"pipeline:         {rate['pipeline']:7.2f} images/s  {cpu_ms['pipeline']:6.1f} CPU ms/image")
    print(
        f"model-only:       {rate['model-only']:7.2f} images/s  {cpu_ms['model-only']:6.1f} CPU ms/image "
        "(pre-decoded pixels, same optimised model)"
    )
    ratios = [s.wall / p.wall for s, p in zip(runs["seed-style"], runs["pipeline"], strict=True)]
    print(
        f"ratio pipeline/seed: {rate['pipeline'] / rate['seed-style']:.1f}x (goal >= 10x; per round "
        f"{', '.join(f'{r:.1f}x' for r in ratios)}; CPU cost ratio {cpu_ms['seed-style'] / cpu_ms['pipeline']:.1f}x)"
    )
    print(f"pipeline share of model-only: {100 * rate['pipeline'] / rate['model-only']:.0f}% (goal >= 75%)")

    report_equality(unique, decoded)
    if args.ablation:
        ablation(unique, decoded, args.batch_size)


if __name__ == "__main__":
    main()
