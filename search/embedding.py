"""Image -> L2-normalised embedding vector, fast on CPU.

The only module of the project that imports torch/torchvision, and only inside functions: the web process
imports this module at start-up and must not pay for torch until it embeds something. No Django here either;
callers pass their settings in.

Speed comes mostly from decoding less (search/model_input.py: JPEG draft mode, and for large progressive JPEGs
at 1/8 scale a stream without the AC data that scale never uses).
The model is the fp32 network with batch-norm folded into the convolutions and channels-last memory: the same
embeddings as the eager model (cosine >= 0.9999), no reduced precision. A background thread decodes the next
images while the model runs; while it is the bottleneck the model leaves it a core (torch threads on 2 cores
plus a busy decoder thrash, the OpenMP threads wait for each other).
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from search.model_input import INPUT_SIZE, ImageSource, _decode_for_model, model_input_pixels

if TYPE_CHECKING:
    import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Pipeline tuning, measured with bench/ingest.py on the 2-core machines (see bench/README.md).
DEFAULT_BATCH_SIZE = 16  # largest batch: the model gains nothing beyond it on CPU
MIN_BATCH_SIZE = 4  # smallest batch the model waits for: ~95% of its batch-16 speed
DECODE_THREADS = 1  # decoding overlaps the model; more decode threads only compete with it for the cores
ADAPTIVE_THREADS = True  # model on num_threads - DECODE_THREADS while the decoder is behind, else num_threads


class WeightsUnavailableError(RuntimeError):
    """The backbone's weights can't be loaded; the message says what to do about it."""


@dataclass(frozen=True)
class BackboneSpec:
    """A registered backbone: how to build it, how big its vector is, how to recognise its weights."""

    name: str
    dim: int
    weights_enum: str  # torchvision class holding the ImageNet weights, e.g. "ResNet18_Weights"
    head: str  # attribute holding the classifier, replaced by Identity to expose the pooled features
    signature_key: str  # a state-dict key only this backbone's weights have (to name wrong files)


BACKBONES: dict[str, BackboneSpec] = {
    spec.name: spec
    for spec in (
        BackboneSpec("resnet18", 512, "ResNet18_Weights", "fc", "layer4.1.bn2.running_var"),
        BackboneSpec("resnet50", 2048, "ResNet50_Weights", "fc", "layer4.2.bn3.running_var"),
        BackboneSpec("mobilenet_v2", 1280, "MobileNet_V2_Weights", "classifier", "features.18.1.running_var"),
    )
}


def backbone_names() -> list[str]:
    """Names accepted as model_name (IMGSIM_MODEL), for settings validation and help texts."""
    return sorted(BACKBONES)


def _backbone_spec(model_name: str) -> BackboneSpec:
    try:
        return BACKBONES[model_name]
    except KeyError:
        raise ValueError(f"Unknown backbone {model_name!r}; choose one of {', '.join(backbone_names())}") from None


# --------------------------------------------------------------------------------------------- the model


@dataclass
class EmbedBatchResult:
    """Vectors for the sources that decoded, in input order, and why the others didn't."""

    vectors: np.ndarray  # (len(ok_indices), dim) float32, L2-normalised rows
    ok_indices: list[int] = field(default_factory=list)
    errors: dict[int, str] = field(default_factory=dict)


def available_cpu_count() -> int:
    """CPUs this process may run on (affinity), not the machine's: more torch threads than that thrash."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class Embedder:
    """A loaded backbone turning images into unit vectors; made by get_embedder() or seeded_embedder()."""

    def __init__(
        self,
        *,
        spec: BackboneSpec,
        model: torch.nn.Module,
        num_threads: int,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        import torch

        self.spec = spec
        self.model_name = spec.name
        self.dim = spec.dim
        self.input_size = INPUT_SIZE
        self.batch_size = batch_size
        self.num_threads = num_threads
        self._model = model
        self._mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        self._lock = threading.Lock()  # one forward at a time: concurrent ones would oversubscribe the cores

    def embed_pixels(self, pixels: np.ndarray, *, threads: int | None = None) -> np.ndarray:
        """(n, size, size, 3) uint8 model inputs -> (n, dim) float32 unit rows (ToTensor+Normalize+model)."""
        import torch

        if pixels.ndim != 4 or pixels.shape[1:] != (self.input_size, self.input_size, 3):
            raise ValueError(f"Expected (n, {self.input_size}, {self.input_size}, 3) pixels, got {pixels.shape}")
        if len(pixels) == 0:
            return np.zeros((0, self.dim), np.float32)
        # NHWC bytes viewed as NCHW: the float tensor is channels-last without a copy into another layout.
        batch = torch.from_numpy(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2).float()
        batch = batch.div_(255.0).sub_(self._mean).div_(self._std)
        with self._lock, torch.inference_mode():
            torch.set_num_threads(threads or self.num_threads)
            features = self._model(batch)
            vectors = torch.nn.functional.normalize(features.float(), dim=1)
        return vectors.numpy().astype(np.float32, copy=False)

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Decoded images (any size or mode) -> (n, dim) float32 unit rows."""
        step = self.batch_size
        chunks = [
            self.embed_pixels(np.stack([model_input_pixels(im, size=self.input_size) for im in images[i : i + step]]))
            for i in range(0, len(images), step)
        ]
        return np.concatenate(chunks) if chunks else np.zeros((0, self.dim), np.float32)

    def embed_sources(self, sources: Sequence[ImageSource], *, batch_size: int | None = None) -> EmbedBatchResult:
        """Decode and embed files or bytes in batches; a source that fails to decode is reported, not raised.

        A background thread decodes the next images while the model runs (Pillow releases the GIL while
        decoding). The model takes whatever is decoded when it becomes free (at least MIN_BATCH_SIZE, at most
        batch_size images), so it starts early and the decoder never waits for a full batch.
        """
        vectors: list[np.ndarray] = []
        ok_indices: list[int] = []
        errors: dict[int, str] = {}
        batches = _decoded_batches(sources, self.input_size, max_batch=batch_size or self.batch_size)
        for batch, decoder_behind in batches:
            good = [(index, decoded) for index, decoded in batch if not isinstance(decoded, str)]
            errors.update((index, decoded) for index, decoded in batch if isinstance(decoded, str))
            if good:
                # While the decoder works it has a core of its own; once it's idle the model takes them all.
                threads = (
                    max(1, self.num_threads - DECODE_THREADS)
                    if decoder_behind and ADAPTIVE_THREADS
                    else self.num_threads
                )
                vectors.append(self.embed_pixels(np.stack([pixels for _, pixels in good]), threads=threads))
                ok_indices.extend(index for index, _ in good)
        stacked = np.concatenate(vectors) if vectors else np.zeros((0, self.dim), np.float32)
        return EmbedBatchResult(vectors=stacked, ok_indices=ok_indices, errors=errors)


def _decoded_batches(
    sources: Sequence[ImageSource], size: int, *, max_batch: int
) -> Iterator[tuple[list[tuple[int, np.ndarray | str]], bool]]:
    """Batches of (index, pixels or error) in input order, decoded in background threads.

    A batch is closed once it has MIN_BATCH_SIZE items and the next one isn't decoded yet, or at max_batch.
    At most 2 * max_batch items are decoded ahead, so memory stays bounded.
    """
    min_batch = min(MIN_BATCH_SIZE, max_batch)
    pool = ThreadPoolExecutor(max_workers=DECODE_THREADS, thread_name_prefix="imgsim-decode")
    queued: deque[tuple[int, Future[np.ndarray | str]]] = deque()
    next_to_submit = 0

    def top_up() -> None:
        nonlocal next_to_submit
        while next_to_submit < len(sources) and len(queued) < 2 * max_batch:
            queued.append((next_to_submit, pool.submit(_decode_for_model, sources[next_to_submit], size)))
            next_to_submit += 1

    try:
        top_up()
        while queued:
            batch: list[tuple[int, np.ndarray | str]] = []
            while queued and len(batch) < max_batch and (len(batch) < min_batch or queued[0][1].done()):
                index, future = queued.popleft()
                batch.append((index, future.result()))
                top_up()
            ready = next((i for i, (_, future) in enumerate(queued) if not future.done()), len(queued))
            yield batch, ready < min(max_batch, len(queued))
    finally:  # also when the consumer fails: don't decode what nobody will embed
        pool.shutdown(wait=True, cancel_futures=True)


# ------------------------------------------------------------------------------------------ building models


def _build_architecture(spec: BackboneSpec) -> torch.nn.Module:
    """The torchvision network with random weights and its classifier still attached."""
    import torchvision

    return getattr(torchvision.models, spec.name)(weights=None)


def _remove_head(spec: BackboneSpec, model: torch.nn.Module) -> torch.nn.Module:
    import torch

    setattr(model, spec.head, torch.nn.Identity())
    return model.eval()


def _optimized_for_inference(model: torch.nn.Module) -> torch.nn.Module:
    """Batch-norm folded into the convolutions, weights channels-last: same fp32 maths, fewer passes.

    Measured on this project's 2-core machine (bench/ingest.py): eager ResNet-18 ~50 img/s, folded +
    channels-last ~75 img/s at batch 16, embeddings equal to eager fp32 (cosine >= 0.9999).
    """
    import torch
    from torch.fx.experimental.optimization import fuse

    folded = fuse(model.eval())
    return folded.to(memory_format=torch.channels_last).eval()


def _finish(spec: BackboneSpec, model: torch.nn.Module, *, optimize: bool, num_threads: int | None) -> Embedder:
    import torch

    threads = num_threads or available_cpu_count()
    torch.set_num_threads(threads)
    model = _remove_head(spec, model)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return Embedder(spec=spec, model=_optimized_for_inference(model) if optimize else model, num_threads=threads)


def seeded_embedder(
    *, model_name: str = "resnet18", seed: int = 0, optimize: bool = True, num_threads: int | None = None
) -> Embedder:
    """Deterministic random weights: for architecture, shape, determinism and speed checks ONLY.

    Batch-norm statistics are randomised too, so that folding them into the convolutions is really tested.
    Never a fallback for missing real weights: its vectors say nothing about what the images show.
    """
    import torch

    spec = _backbone_spec(model_name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _build_architecture(spec)
        generator = torch.Generator().manual_seed(seed)
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                n = module.num_features
                module.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(n, generator=generator) * 1.5 + 0.5)
                module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
                module.bias.data.copy_(torch.randn(n, generator=generator) * 0.1)
    return _finish(spec, model, optimize=optimize, num_threads=num_threads)


def _state_dict_from_checkpoint(checkpoint: object, path: str) -> dict[str, torch.Tensor]:
    """The tensors of a plain state dict, or of a training checkpoint's "state_dict"/"model" entry."""
    if isinstance(checkpoint, dict):
        for key in ("state_dict", "model"):
            if isinstance(checkpoint.get(key), dict):
                checkpoint = checkpoint[key]
                break
    if not isinstance(checkpoint, dict) or not checkpoint:
        got = type(checkpoint).__name__
        raise WeightsUnavailableError(f"Weights file {path} does not hold a state dict (it holds a {got}).")
    prefix = "module."  # saved from DataParallel
    if all(str(key).startswith(prefix) for key in checkpoint):
        checkpoint = {key[len(prefix) :]: value for key, value in checkpoint.items()}
    return checkpoint


def _guess_backbone(state_dict: dict[str, torch.Tensor]) -> str:
    matches = [spec.name for spec in BACKBONES.values() if spec.signature_key in state_dict]
    return f" They look like weights for {' or '.join(matches)}." if matches else ""


def _load_weights(spec: BackboneSpec, model: torch.nn.Module, state_dict: dict, path: str) -> None:
    """load_state_dict(strict=False), then insist that only the classifier (which we drop) was missing.

    The file's own classifier is ignored, so a checkpoint fine-tuned to other classes loads too.
    """
    head = spec.head + "."
    backbone_only = {key: value for key, value in state_dict.items() if not key.startswith(head)}
    try:
        result = model.load_state_dict(backbone_only, strict=False)
    except RuntimeError as exc:  # shape mismatches raise even when strict=False
        first_line = str(exc).strip().splitlines()[-1].strip()
        raise WeightsUnavailableError(
            f"Weights file {path} does not fit {spec.name}: {first_line}.{_guess_backbone(state_dict)}"
        ) from exc
    missing = [key for key in result.missing_keys if not key.startswith(head)]
    missing = [key for key in missing if not key.endswith("num_batches_tracked")]  # unused in eval
    if missing or result.unexpected_keys:
        raise WeightsUnavailableError(
            f"Weights file {path} does not hold {spec.name} weights: {len(missing)} of the backbone's "
            f"tensors are missing (e.g. {missing[:3]}) and {len(result.unexpected_keys)} keys are unknown "
            f"to it (e.g. {result.unexpected_keys[:3]}).{_guess_backbone(state_dict)}"
        )


def _imagenet_weights_instructions(spec: BackboneSpec, url: str, cached_file: str, reason: str) -> str:
    return (
        f"The ImageNet weights for {spec.name} are not available: {reason}\n"
        f"This machine could not download them. Do one of:\n"
        f"  1. On a machine with internet access, download {url}\n"
        f"     and copy it to {cached_file}\n"
        f"  2. Put the file anywhere and set IMGSIM_WEIGHTS=/path/to/{Path(cached_file).name}\n"
        f"  3. Use another backbone whose weights you have offline, e.g. IMGSIM_MODEL=mobilenet_v2 with "
        f"IMGSIM_WEIGHTS=/path/to/mobilenet_v2_imagenet_features.pth (the file the project keeps in "
        f"shared/models/). Vectors of different backbones are not comparable: re-embed the library after "
        f"switching."
    )


def _imagenet_state_dict(spec: BackboneSpec) -> dict[str, torch.Tensor]:
    """torchvision's IMAGENET1K_V1 weights from the torch hub cache, downloading them if possible."""
    import torch
    import torchvision

    weights = getattr(torchvision.models, spec.weights_enum).IMAGENET1K_V1
    cached_file = os.path.join(torch.hub.get_dir(), "checkpoints", Path(weights.url).name)
    try:
        return weights.get_state_dict(progress=False, check_hash=True, weights_only=True, map_location="cpu")
    except Exception as exc:  # no network, proxy refusal, disk full, hash mismatch, corrupt cache...
        message = _imagenet_weights_instructions(spec, weights.url, cached_file, f"{type(exc).__name__}: {exc}")
        raise WeightsUnavailableError(message) from exc


def load_embedder(
    *,
    model_name: str = "resnet18",
    weights_path: str | os.PathLike[str] | None = None,
    num_threads: int | None = None,
    optimize: bool = True,
) -> Embedder:
    """A new Embedder with real weights; not cached (application code uses get_embedder).

    optimize=False keeps the eager, unfolded fp32 model: the reference the optimised one is checked against.
    """
    import torch

    spec = _backbone_spec(model_name)
    model = _build_architecture(spec)
    if not weights_path:  # None, or an unset IMGSIM_WEIGHTS passed through as ""
        state_dict = _imagenet_state_dict(spec)
        source = f"torchvision's {spec.weights_enum}.IMAGENET1K_V1"
    else:
        source = str(weights_path)
        if not Path(weights_path).is_file():
            raise WeightsUnavailableError(
                f"Weights file {source} does not exist. Set IMGSIM_WEIGHTS to the path of a {spec.name} "
                f"state dict (.pth), or leave it unset to use torchvision's ImageNet weights."
            )
        try:
            checkpoint = torch.load(source, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise WeightsUnavailableError(
                f"Weights file {source} cannot be read as torch weights ({type(exc).__name__}: {exc})."
            ) from exc
        state_dict = _state_dict_from_checkpoint(checkpoint, source)
    _load_weights(spec, model, state_dict, source)
    return _finish(spec, model, optimize=optimize, num_threads=num_threads)


_embedders: dict[tuple[str, str | None], Embedder] = {}
_embedders_lock = threading.Lock()


def get_embedder(
    *,
    model_name: str = "resnet18",
    weights_path: str | os.PathLike[str] | None = None,
    num_threads: int | None = None,
) -> Embedder:
    """The process's Embedder for this backbone and weights, loaded on first use and kept.

    Workers call this per task; loading costs a second or more, so it happens once per process.
    """
    key = (model_name, os.fspath(weights_path) if weights_path else None)
    with _embedders_lock:
        embedder = _embedders.get(key)
        if embedder is None:
            embedder = load_embedder(model_name=model_name, weights_path=weights_path, num_threads=num_threads)
            _embedders[key] = embedder
        elif num_threads:
            embedder.num_threads = num_threads
        return embedder


def forget_embedders() -> None:
    """Drop the cached embedders (tests; a settings change in a long-lived process)."""
    with _embedders_lock:
        _embedders.clear()


__all__ = [
    "BACKBONES",
    "DEFAULT_BATCH_SIZE",
    "BackboneSpec",
    "EmbedBatchResult",
    "Embedder",
    "WeightsUnavailableError",
    "available_cpu_count",
    "backbone_names",
    "forget_embedders",
    "get_embedder",
    "load_embedder",
    "seeded_embedder",
]
