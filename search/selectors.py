"""Reads of the search side: k-nearest-neighbour search over the served index plus the not-yet-indexed tail.

A search runs: query vector -> served index (PCA + HNSW, or exact for small libraries) -> exact re-rank on
the stored full vectors -> merged with an exact search over vectors embedded since the build -> rating-aware
ordering -> the rating fallback when nothing reaches the match threshold. Deleted images drop out at the
re-rank, because only rows still in the database have vectors to re-rank with.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.db.models import Count

from gallery.exif import read_exif
from gallery.image_file import UploadRejected, decode_upload
from gallery.models import Image
from search import services
from search.index import IndexFileError, VectorIndex, exact_search, merge_results, rerank
from search.models import IndexBuild
from search.thresholds import thresholds_for

logger = logging.getLogger(__name__)

# Vectors embedded up to this long before the build's newest one are checked against the index's ids, so
# a row committed late (or stamped by a worker whose clock is behind) is still searched.
TAIL_MARGIN = timedelta(minutes=10)
# The rating fallback ranks at most this many images per rating step by visual similarity.
FALLBACK_SCAN_LIMIT = 5000

# model name -> (file name of the build, its loaded index); file names are unique per build.
_served: dict[str, tuple[str, VectorIndex]] = {}
_served_lock = threading.Lock()


@dataclass(frozen=True)
class SimilarImage:
    image: Image
    similarity: float  # exact cosine of the full vectors: what users see
    score: float  # similarity plus the rating term: what results are ordered by


@dataclass(frozen=True)
class SearchResult:
    results: list[SimilarImage]
    matched: bool  # some result reaches the match threshold
    fallback: bool  # results are the rating fallback
    threshold: float
    query_rating: int | None
    k: int
    index_version: int | None
    searched: int  # how many vectors the search covered (index + tail)
    notes: list[str] = field(default_factory=list)


def served_index(*, model_name: str) -> tuple[IndexBuild | None, VectorIndex | None]:
    """The newest ready index of the model, loaded once per process per version (read-only)."""
    build = IndexBuild.objects.ready().filter(model_name=model_name).order_by("-id").first()
    if build is None:
        return None, None
    cached = _served.get(model_name)
    if cached is not None and cached[0] == build.file_name:
        return build, cached[1]
    with _served_lock:
        cached = _served.get(model_name)
        if cached is not None and cached[0] == build.file_name:
            return build, cached[1]
        try:
            index = VectorIndex.load(services.index_path(build))
        except IndexFileError as error:
            services.index_mark_broken(build=build, error=str(error))
            return None, None
        _served[model_name] = (build.file_name, index)
    return build, index


def forget_served_indexes() -> None:
    """Drop this process's loaded indexes (tests; a new process starts like this)."""
    with _served_lock:
        _served.clear()


def _vectors_of(rows: list[tuple[int, bytes, int | None]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not rows:
        return np.zeros(0, np.int64), np.zeros((0, 1), np.float32), np.zeros(0, np.float32)
    ids = np.array([row[0] for row in rows], dtype=np.int64)
    vectors = np.frombuffer(b"".join(bytes(row[1]) for row in rows), dtype=np.float32).reshape(len(rows), -1)
    ratings = np.array([np.nan if row[2] is None else row[2] for row in rows], dtype=np.float32)
    return ids, vectors, ratings


def _searchable(model_name: str):  # noqa: ANN202 - a QuerySet of Image
    return Image.objects.searchable().filter(embedding_model=model_name)


def similar_images(
    *, vector: np.ndarray, k: int, rating: int | None = None, exclude_ids: tuple[int, ...] = ()
) -> SearchResult:
    """The k library images most similar to a vector, rating-aware, with the fallback when nothing matches."""
    model_name = settings.IMGSIM_MODEL
    weight = settings.IMGSIM_RATING_WEIGHT
    query = np.asarray(vector, dtype=np.float32).reshape(1, -1)
    query_ratings = [None if rating is None else float(rating)]
    build, index = served_index(model_name=model_name)
    partials = []
    searched = 0

    tail_rows = _searchable(model_name)
    if build is not None and index is not None and build.max_embedded_at is not None:
        tail_rows = tail_rows.filter(embedded_at__gte=build.max_embedded_at - TAIL_MARGIN)
    tail_ids, tail_vectors, tail_ratings = _vectors_of(list(tail_rows.values_list("id", "embedding", "rating")))
    if index is not None and tail_ids.shape[0]:
        fresh = ~np.isin(tail_ids, index.ids)
        tail_ids, tail_vectors, tail_ratings = tail_ids[fresh], tail_vectors[fresh], tail_ratings[fresh]

    if index is not None and len(index):
        candidates, rows = _index_candidates(index, query, query_ratings, k, exclude_ids, model_name)
        ids, vectors, ratings = _vectors_of(rows)
        if ids.shape[0]:
            partials.append(
                rerank(
                    query_vectors=query,
                    query_ratings=query_ratings,
                    candidate_ids=candidates,
                    ids=ids,
                    vectors=vectors,
                    ratings=ratings,
                    k=k,
                    weight=weight,
                )
            )
        searched += len(index)
    if tail_ids.shape[0]:
        partials.append(
            exact_search(
                query_vectors=query,
                query_ratings=query_ratings,
                ids=tail_ids,
                vectors=tail_vectors,
                ratings=tail_ratings,
                k=k,
                weight=weight,
                exclude_ids=exclude_ids,
            )
        )
        searched += int(tail_ids.shape[0])

    threshold = thresholds_for(model_name).match
    ranked: list[tuple[int, float]] = []
    if partials:
        scores, ids = merge_results(*partials, k=k)
        ranked = [(int(pk), float(score)) for pk, score in zip(ids[0], scores[0], strict=True) if pk >= 0]
    results = _with_images(query[0], ranked)
    matched = any(result.similarity >= threshold for result in results)
    version = build.pk if build is not None and index is not None else None
    if matched or rating is None:
        return SearchResult(results, matched, False, threshold, rating, k, version, searched)
    fallback = _rating_fallback(query[0], rating=rating, k=k, exclude_ids=exclude_ids, model_name=model_name)
    return SearchResult(fallback, False, True, threshold, rating, k, version, searched)


def _index_candidates(
    index: VectorIndex,
    query: np.ndarray,
    query_ratings: list[float | None],
    k: int,
    exclude_ids: tuple[int, ...],
    model_name: str,
) -> tuple[np.ndarray, list[tuple[int, bytes, int | None]]]:
    """Candidates from the index with their stored vectors; images deleted since the build have none, so
    fetch more until k live candidates are found (or the index is exhausted)."""
    want = index.candidate_count(k)
    while True:
        fetch = min(want, len(index))
        _, candidates = index.search(query, k=fetch, query_ratings=query_ratings, exclude_ids=exclude_ids)
        wanted = [int(pk) for pk in candidates[0] if pk >= 0]
        rows = list(_searchable(model_name).filter(id__in=wanted).values_list("id", "embedding", "rating"))
        if len(rows) >= k or fetch >= len(index):
            return candidates, rows
        want = fetch * 4


def _with_images(query: np.ndarray, ranked: list[tuple[int, float]]) -> list[SimilarImage]:
    """Result rows with their Image and the exact visual cosine (the ranking score may include the rating)."""
    if not ranked:
        return []
    images = Image.objects.in_bulk([pk for pk, _ in ranked])
    results = []
    for pk, score in ranked:
        image = images.get(pk)
        if image is None or image.vector is None:
            continue  # deleted between the search and now
        results.append(SimilarImage(image=image, similarity=float(image.vector @ query), score=score))
    return results


def _rating_fallback(
    query: np.ndarray, *, rating: int, k: int, exclude_ids: tuple[int, ...], model_name: str
) -> list[SimilarImage]:
    """Images ranked by closeness of rating first and visual similarity second (unrated ones are not used)."""
    rated = _searchable(model_name).filter(rating__isnull=False).exclude(id__in=exclude_ids)
    results: list[SimilarImage] = []
    for distance in range(6):
        stars = {value for value in (rating - distance, rating + distance) if 0 <= value <= 5}
        if not stars:
            continue
        group = list(rated.filter(rating__in=stars).order_by("-id")[:FALLBACK_SCAN_LIMIT])
        scored = sorted(
            (
                SimilarImage(image=image, similarity=float(image.vector @ query), score=float(image.vector @ query))
                for image in group
            ),
            key=lambda result: (-result.similarity, result.image.pk),
        )
        results.extend(scored[: k - len(results)])
        if len(results) >= k:
            break
    return results


def similar_to_image(*, image: Image, k: int, rating: int | None = None) -> SearchResult:
    """ "Find similar" for a library image: its own vector and rating, itself excluded."""
    vector = image.vector
    if vector is None:
        raise ValueError("This image has no embedding yet.")
    return similar_images(
        vector=vector, k=k, rating=image.rating if rating is None else rating, exclude_ids=(image.pk,)
    )


@dataclass(frozen=True)
class QueryImage:
    vector: np.ndarray
    rating: int | None
    width: int
    height: int


def query_image_from_upload(*, data: bytes) -> QueryImage:
    """Validate and embed an uploaded query image without storing it (the model loads once per process)."""
    decoded = decode_upload(data, max_pixels=settings.IMGSIM_MAX_PIXELS)
    exif = read_exif(decoded.source)
    embedder = services.embedder_get()
    result = embedder.embed_sources([data])
    if not result.ok_indices:
        raise UploadRejected("corrupt_image", f"The image could not be decoded: {next(iter(result.errors.values()))}")
    return QueryImage(vector=result.vectors[0], rating=exif.rating, width=decoded.width, height=decoded.height)


def index_status() -> dict[str, object]:
    """What the index serves: model, version, kind, count, vectors waiting for the next build, last build."""
    model_name = settings.IMGSIM_MODEL
    build = IndexBuild.objects.ready().filter(model_name=model_name).order_by("-id").first()
    searchable = _searchable(model_name).count()
    last = IndexBuild.objects.order_by("-id").first()
    by_status = dict(Image.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    return {
        "model": model_name,
        "version": build.pk if build else None,
        "kind": build.kind if build else "",
        "indexed": build.vector_count if build else 0,
        "searchable": searchable,
        "pending": max(0, searchable - (build.vector_count if build else 0)),
        "queued_for_embedding": by_status.get(Image.Status.QUEUED, 0),
        "built_at": build.finished_at if build else None,
        "build_seconds": build.build_seconds if build else None,
        "rebuilding": IndexBuild.objects.filter(status=IndexBuild.Status.BUILDING).exists(),
        "last_build": {
            "version": last.pk,
            "status": last.status,
            "error": last.error,
            "created_at": last.created_at,
        }
        if last
        else None,
        "thresholds": thresholds_for(model_name).__dict__,
    }
