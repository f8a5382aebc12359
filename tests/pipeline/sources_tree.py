"""A generated folder tree of real small JPEGs for the library source tests, and a backbone stub (no model)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from search.embedding import EmbedBatchResult
from search.services import embedding_queue
from tests.images import photo_jpeg


class StubEmbedder:
    """Stands in for the backbone: one deterministic unit vector per source, from its bytes."""

    model_name = "stub-sources"

    def embed_sources(self, sources: list[bytes]) -> EmbedBatchResult:
        rows = []
        for data in sources:
            rng = np.random.default_rng(len(data))
            rows.append(rng.normal(size=16))
        vectors = np.asarray(rows, dtype=np.float32).reshape(len(sources), 16)
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return EmbedBatchResult(vectors=vectors, ok_indices=list(range(len(sources))))


def stub_backbone_install(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    """Embedding runs on StubEmbedder under the configured model's name (no model loads; sources are the subject)."""

    class Stub(StubEmbedder):
        model_name = settings.IMGSIM_MODEL

    monkeypatch.setattr(embedding_queue, "embedder_get", Stub)


def photo_tree(root: Path) -> dict[str, bytes]:
    """root/{2024/a.jpg, 2024/b.jpg, 2025/trip/c.jpg, notes.txt}: three distinct photos; returns path -> bytes."""
    files = {"2024/a.jpg": photo_jpeg(101), "2024/b.jpg": photo_jpeg(102), "2025/trip/c.jpg": photo_jpeg(103)}
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (root / "notes.txt").write_text("not an image")
    return files


def touch_later(path: Path, seconds: int = 10) -> None:
    """Move a file's mtime forward, as an edit would (same-second writes keep it otherwise)."""
    info = path.stat()
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + seconds * 1_000_000_000))
