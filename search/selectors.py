"""Reads of the search side: k-nearest-neighbour search over the served index plus the not-yet-indexed tail.

A search runs: query vector -> served index (PCA + HNSW, or exact for small libraries) -> exact re-rank on
the stored full vectors -> merged with an exact search over vectors embedded since the build -> rating-aware
ordering -> the rating fallback when nothing reaches the match threshold. Deleted images drop out at the
re-rank, because only rows still in the database have vectors to re-rank with.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import IO

import numpy as np
from django.conf import settings
from django.db.models import Count, Q
from django_q.models import Schedule

from gallery.image_file import decode_upload
from gallery.models import Image
from gallery.services import read_upload_bytes
from search import services
from search.index import IndexFileError, VectorIndex, exact_search, merge_results, rerank
from search.models import IndexBuild
from search.services import VectorRows, vectors_from_rows
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
    build = IndexBuild.objects.latest_ready(model_name=model_name)
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


# Ids per IN (...) list: well under SQLite's bound-parameter limit, and short lists plan well on PostgreSQL.
IDS_PER_QUERY = 2000


def stored_vectors(*, model_name: str, ids: Iterable[int]) -> VectorRows:
    """Stored vectors of the searchable images among `ids`, in id order (deleted or re-embedded ones drop out)."""
    wanted = sorted({int(pk) for pk in ids})
    rows: list[tuple[int, bytes, int | None]] = []
    for start in range(0, len(wanted), IDS_PER_QUERY):
        chunk = Image.objects.searchable(model_name=model_name).filter(id__in=wanted[start : start + IDS_PER_QUERY])
        rows.extend(chunk.order_by("id").values_list("id", "embedding", "rating"))
    return vectors_from_rows(rows)


class LibrarySearch:
    """k-NN over the whole library: the served index's candidates re-ranked by exact cosine on the stored
    vectors, merged with an exact search over the vectors embedded since the build (the tail).

    The tail is read once per instance, so a batch of queries (duplicate detection) reads it once.
    Scores are exact cosine plus `weight` times the rating term (0: purely visual).
    """

    def __init__(self, *, model_name: str) -> None:
        self.model_name = model_name
        self.build, self.index = served_index(model_name=model_name)
        tail = Image.objects.searchable(model_name=model_name)
        if self.index is not None:
            cutoff = self.build.max_embedded_at if self.build is not None else None
            # Restored from the trash after the build: possibly left out of it, so searched in the tail too.
            tail = (
                tail.filter(Q(embedded_at__gte=cutoff - TAIL_MARGIN) | Q(restored_at__gte=cutoff - TAIL_MARGIN))
                if cutoff is not None
                else tail.none()
            )
        self.tail = vectors_from_rows(list(tail.values_list("id", "embedding", "rating")))
        if self.index is not None and self.tail[0].shape[0]:
            fresh = ~np.isin(self.tail[0], self.index.ids)
            self.tail = (self.tail[0][fresh], self.tail[1][fresh], self.tail[2][fresh])

    @property
    def size(self) -> int:
        """How many vectors a search covers (index + tail)."""
        return (len(self.index) if self.index is not None else 0) + int(self.tail[0].shape[0])

    @property
    def version(self) -> int | None:
        return self.build.pk if self.build is not None and self.index is not None else None

    def search(
        self,
        queries: np.ndarray,
        *,
        k: int,
        query_ratings: list[float | None] | None = None,
        weight: float = 0.0,
        exclude_ids: tuple[int, ...] = (),
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of each query's k nearest images, best first, padded with -inf / -1."""
        queries = np.asarray(queries, dtype=np.float32).reshape(-1, np.asarray(queries).shape[-1])
        partials = []
        if self.index is not None and len(self.index):
            candidates, (ids, vectors, ratings) = self._index_candidates(queries, query_ratings, k, exclude_ids)
            if ids.shape[0]:
                partials.append(
                    rerank(
                        query_vectors=queries,
                        query_ratings=query_ratings,
                        candidate_ids=candidates,
                        ids=ids,
                        vectors=vectors,
                        ratings=ratings,
                        k=k,
                        weight=weight,
                    )
                )
        tail_ids, tail_vectors, tail_ratings = self.tail
        if tail_ids.shape[0]:
            partials.append(
                exact_search(
                    query_vectors=queries,
                    query_ratings=query_ratings,
                    ids=tail_ids,
                    vectors=tail_vectors,
                    ratings=tail_ratings,
                    k=k,
                    weight=weight,
                    exclude_ids=exclude_ids,
                )
            )
        if not partials:
            return np.full((queries.shape[0], k), -np.inf, np.float32), np.full((queries.shape[0], k), -1, np.int64)
        return merge_results(*partials, k=k)

    def _index_candidates(
        self,
        queries: np.ndarray,
        query_ratings: list[float | None] | None,
        k: int,
        exclude_ids: tuple[int, ...],
    ) -> tuple[np.ndarray, VectorRows]:
        """Candidates with their stored vectors. Images deleted since the build have none, so fetch more
        until every query has k live candidates (or the index is exhausted)."""
        assert self.index is not None
        want = self.index.candidate_count(k)
        while True:
            fetch = min(want, len(self.index))
            _, candidates = self.index.search(queries, k=fetch, query_ratings=query_ratings, exclude_ids=exclude_ids)
            known = stored_vectors(model_name=self.model_name, ids=candidates[candidates >= 0].tolist())
            live = np.isin(candidates, known[0]).sum(axis=1)
            if fetch >= len(self.index) or int(live.min(initial=k)) >= k:
                return candidates, known
            want = fetch * 4


def similar_images(
    *, vector: np.ndarray, k: int, rating: int | None = None, exclude_ids: tuple[int, ...] = ()
) -> SearchResult:
    """The k library images most similar to a vector, rating-aware, with the fallback when nothing matches."""
    model_name = settings.IMGSIM_MODEL
    query = np.asarray(vector, dtype=np.float32).reshape(1, -1)
    library = LibrarySearch(model_name=model_name)
    scores, ids = library.search(
        query,
        k=k,
        query_ratings=[None if rating is None else float(rating)],
        weight=settings.IMGSIM_RATING_WEIGHT,
        exclude_ids=exclude_ids,
    )
    ranked = [(int(pk), float(score)) for pk, score in zip(ids[0], scores[0], strict=True) if pk >= 0]
    results = _with_images(query[0], ranked)
    threshold = thresholds_for(model_name).match
    matched = any(result.similarity >= threshold for result in results)
    if matched or rating is None:
        return SearchResult(results, matched, False, threshold, rating, k, library.version, library.size)
    fallback = _rating_fallback(query[0], rating=rating, k=k, exclude_ids=exclude_ids, model_name=model_name)
    return SearchResult(fallback, False, True, threshold, rating, k, library.version, library.size)


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
    rated = Image.objects.searchable(model_name=model_name).filter(rating__isnull=False).exclude(id__in=exclude_ids)
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
    """Validate and embed an uploaded query image without storing it (the model loads once per process).

    The file is decoded once: the validated, upright, reduced preview is what the model sees.
    """
    decoded = decode_upload(data, max_pixels=settings.IMGSIM_MAX_PIXELS)
    embedder = services.embedder_get()
    vector = embedder.embed_images([decoded.preview])[0]
    return QueryImage(vector=vector, rating=decoded.exif.rating, width=decoded.width, height=decoded.height)


def similar_to_upload(*, upload: IO[bytes], k: int, rating: int | None = None) -> SearchResult:
    """Search by an uploaded photo (web page and API alike): validated like an upload, never stored here.

    The query's rating is the chosen one, else the photo's own EXIF rating.
    """
    data = read_upload_bytes(upload, max_bytes=settings.IMGSIM_MAX_UPLOAD_BYTES)
    query = query_image_from_upload(data=data)
    return similar_images(vector=query.vector, k=k, rating=query.rating if rating is None else rating)


def index_status() -> dict[str, object]:
    """What the index serves: model, version, kind, count, vectors waiting for the next build, last build."""
    model_name = settings.IMGSIM_MODEL
    build = IndexBuild.objects.latest_ready(model_name=model_name)
    searchable = Image.objects.searchable(model_name=model_name).count()
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
        "repair": _repair_status(model_name),
    }


def _repair_status(model_name: str) -> dict[str, object] | None:
    """Failed automatic builds since the last good one and when the next attempt runs; None when healthy."""
    failures = list(IndexBuild.objects.automatic_failures_since_ready(model_name=model_name).order_by("-id"))
    if not failures:
        return None
    retry = Schedule.objects.filter(name=services.REPAIR_RETRY_SCHEDULE).values_list("next_run", flat=True).first()
    return {"failures": len(failures), "last_error": failures[0].error, "next_attempt_at": retry}
