"""Reads of the stored vectors (the source of truth every index is derived from) as arrays of ids, vectors and
ratings, the form every search and build works on: the library view, the selectors and detection read them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from gallery.models import Image

# Ids per IN (...) list: well under SQLite's bound-parameter limit, and short lists plan well on PostgreSQL.
IDS_PER_QUERY = 2000

VectorRows = tuple[np.ndarray, np.ndarray, np.ndarray]  # ids (int64), vectors (float32 rows), ratings (nan = unrated)


def vectors_from_rows(rows: list[tuple[int, bytes, int | None]]) -> VectorRows:
    """(id, embedding bytes, rating) rows as arrays, the form every search and build works on."""
    if not rows:
        return np.zeros(0, np.int64), np.zeros((0, 1), np.float32), np.zeros(0, np.float32)
    ids = np.array([row[0] for row in rows], dtype=np.int64)
    vectors = np.frombuffer(b"".join(bytes(row[1]) for row in rows), dtype=np.float32).reshape(len(rows), -1)
    ratings = np.array([np.nan if row[2] is None else row[2] for row in rows], dtype=np.float32)
    return ids, vectors, ratings


def stored_vectors(*, model_name: str, ids: Iterable[int]) -> VectorRows:
    """Stored vectors of the searchable images among `ids`, in id order (deleted or re-embedded ones drop out)."""
    wanted = sorted({int(pk) for pk in ids})
    rows: list[tuple[int, bytes, int | None]] = []
    for start in range(0, len(wanted), IDS_PER_QUERY):
        chunk = Image.objects.searchable(model_name=model_name).filter(id__in=wanted[start : start + IDS_PER_QUERY])
        rows.extend(chunk.order_by("id").values_list("id", "embedding", "rating"))
    return vectors_from_rows(rows)


@dataclass(frozen=True)
class LibraryVectors:
    ids: np.ndarray
    vectors: np.ndarray
    ratings: np.ndarray
    max_embedded_at: datetime | None


def library_vectors(*, model_name: str) -> LibraryVectors:
    """Every searchable vector of one model, streamed from the database in chunks."""
    rows = Image.objects.searchable(model_name=model_name).order_by("id")
    parts: list[VectorRows] = []
    latest: datetime | None = None
    chunk: list[tuple[int, bytes, int | None]] = []
    for pk, embedding, rating, embedded_at in rows.values_list("id", "embedding", "rating", "embedded_at").iterator(
        chunk_size=2000
    ):
        chunk.append((pk, embedding, rating))
        if embedded_at is not None and (latest is None or embedded_at > latest):
            latest = embedded_at
        if len(chunk) >= 8192:
            parts.append(vectors_from_rows(chunk))
            chunk = []
    if chunk:
        parts.append(vectors_from_rows(chunk))
    if not parts:
        return LibraryVectors(np.zeros(0, np.int64), np.zeros((0, 0), np.float32), np.zeros(0, np.float32), None)
    ids, vectors, ratings = zip(*parts, strict=True)
    return LibraryVectors(np.concatenate(ids), np.vstack(vectors), np.concatenate(ratings), latest)
