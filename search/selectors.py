"""Reads of the search side: k-nearest-neighbour search over the library as this process serves it.

A search runs: query vector -> served index (PCA + HNSW, or exact for small libraries) -> exact re-rank on
the full vectors the index file carries -> merged with a search over the in-memory tail (vectors embedded or
changed since the build) -> rating-aware ordering -> labels (search.result_labels) -> the rating fallback
when no result is the same photo or the same scene. The index and the tail are the process's LibraryView
(search.library_view). A search runs on the view as it is and reads one query, whatever the library and tail
sizes: the k result rows, with whether the change log has rows the view has not applied (then they are
applied and the search runs again).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import IO

import numpy as np
from django.conf import settings
from django.db import connections
from django.db.models import Count
from django_q.models import Schedule

from gallery.image_file import decode_upload
from gallery.models import Image
from gallery.services import read_upload_bytes
from search.library_view import LibrarySearch, LibraryState, library_view
from search.models import IndexBuild, LibraryChange
from search.result_labels import LOOKS_ALIKE, MATCHING, SAME_PHOTO, SAME_SCENE, TITLES, LabelLines, label_lines
from search.services.embedding_queue import embedder_get
from search.services.index_lifecycle import REPAIR_RETRY_SCHEDULE
from search.thresholds import thresholds_for, thresholds_in_force

# The rating fallback ranks at most this many images per rating step by visual similarity.
FALLBACK_SCAN_LIMIT = 5000


@dataclass(frozen=True)
class SimilarImage:
    image: Image
    similarity: float  # exact cosine of the full vectors: what users see
    score: float  # similarity plus the rating term: what results are ordered by
    label: str = ""  # what the similarity means (search.result_labels): same_photo, same_scene, looks_alike, weak

    @property
    def label_title(self) -> str:
        return TITLES.get(self.label, "")


@dataclass(frozen=True)
class SearchResult:
    results: list[SimilarImage]
    matched: bool  # some result is the same photo or the same scene
    fallback: bool  # results are the rating fallback
    threshold: float  # the lowest score of a match (the "same scene" line)
    query_rating: int | None
    k: int
    index_version: int | None
    searched: int  # how many vectors the search covered (index + tail)
    lines: LabelLines  # the label lines in force for this search
    closest: SimilarImage | None  # the most similar image found visually (also when the fallback replaced it)
    notes: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str:
        """What the results say, in one plain sentence or two (the page's notice and the API's `summary`)."""
        if self.closest is None:
            return "The library has no searchable images yet."
        if self.matched:
            counts = Counter(result.label for result in self.results)
            parts = [f"{counts[label]} the {TITLES[label]}" for label in MATCHING if counts[label]]
            first = counts[SAME_PHOTO] or counts[SAME_SCENE]
            parts[0] = f"{first} result{' is' if first == 1 else 's are'} {parts[0].split(' ', 1)[1]}"
            return f"{' and '.join(parts)}."
        closest = self.closest
        name = closest.image.original_name or f"#{closest.image.pk}"
        text = "No photo in the library is the same photo or scene"
        if closest.label == LOOKS_ALIKE:
            text += f"; the closest look alike: {name} ({closest.similarity:.3f})."
        else:
            text += f", nor looks alike; the closest: {name} ({closest.similarity:.3f}, weak)."
        if self.fallback:
            text += f" Shown: the images whose rating is closest to {self.query_rating} ★, most similar first."
        return text


def similar_images(
    *, vector: np.ndarray, k: int, rating: int | None = None, exclude_ids: tuple[int, ...] = ()
) -> SearchResult:
    """The k library images most similar to a vector, rating-aware, with the fallback when nothing matches.

    One database query in the common case: the result rows, read together with whether the library changed
    since the state searched (then the changes are applied and the search runs again)."""
    model_name = settings.IMGSIM_MODEL
    query = np.asarray(vector, dtype=np.float32).reshape(1, -1)
    view = library_view(model_name=model_name)
    state, checking = view.published(), True
    while True:
        library = LibrarySearch(model_name=model_name, state=state)
        scores, ids = library.search(
            query,
            k=k,
            query_ratings=[None if rating is None else float(rating)],
            weight=settings.IMGSIM_RATING_WEIGHT,
            exclude_ids=exclude_ids,
        )
        ranked = [(int(pk), float(score)) for pk, score in zip(ids[0], scores[0], strict=True) if pk >= 0]
        asked_at = time.monotonic()
        results, changed = _with_images(library, query[0], ranked, check=state if checking else None)
        if not changed:
            if checking:
                view.confirmed(state, at=asked_at)
            break
        state, checking = view.current(), False  # apply what changed, search again, and trust that state
    lines = label_lines(thresholds_for(model_name))
    results = _labelled(results, lines)
    closest = max(results, key=lambda item: item.similarity, default=None)
    matched = closest is not None and closest.label in MATCHING
    found = (lines.same_scene, rating, k, library.version, library.size, lines, closest)
    if matched or rating is None:
        return SearchResult(results, matched, False, *found)
    fallback = _labelled(_rating_fallback(library, query[0], rating=rating, k=k, exclude_ids=exclude_ids), lines)
    return SearchResult(fallback, False, True, *found)


def _labelled(results: list[SimilarImage], lines: LabelLines) -> list[SimilarImage]:
    return [replace(result, label=lines.label(result.similarity)) for result in results]


def _with_images(
    library: LibrarySearch, query: np.ndarray, ranked: list[tuple[int, float]], *, check: LibraryState | None
) -> tuple[list[SimilarImage], bool]:
    """Result rows with their Image (without the embedding: the cosine comes from the searched vectors), and
    whether the change log has rows `check` has not applied, read in the same query (same snapshot)."""
    rows = Image.objects.defer("embedding").filter(pk__in=[pk for pk, _ in ranked])
    if check is not None:
        rows = rows.annotate(library_changed=check.has_unseen_changes())
    images = {image.pk: image for image in rows} if ranked else {}
    if check is not None:
        # No row to carry the answer (no results, or all deleted meanwhile): ask on its own.
        changed = any(image.library_changed for image in images.values()) if images else _log_moved(check)
        if changed:
            return [], True
    similarity = library.similarities(query, list(images))
    results = [
        SimilarImage(image=images[pk], similarity=similarity[pk], score=score)
        for pk, score in ranked
        if pk in images and pk in similarity  # deleted between the search and now
    ]
    return results, False


def _log_moved(state: LibraryState) -> bool:
    """state.has_unseen_changes() on its own, for a search with no result row to read it with."""
    condition = state.has_unseen_changes()
    with connections[LibraryChange.objects.db].cursor() as cursor:
        cursor.execute(f"SELECT {condition.sql}", condition.params)
        return bool(cursor.fetchone()[0])


def _rating_fallback(
    library: LibrarySearch, query: np.ndarray, *, rating: int, k: int, exclude_ids: tuple[int, ...]
) -> list[SimilarImage]:
    """Images ranked by closeness of rating first and visual similarity second (unrated ones are not used).

    Per rating step it reads the ids of at most FALLBACK_SCAN_LIMIT images (the newest); their vectors come
    from the library state the search used, and only the k chosen rows are read, without their embeddings.
    """
    rated = Image.objects.searchable(model_name=library.model_name).filter(rating__isnull=False)
    rated = rated.exclude(id__in=exclude_ids)
    chosen: list[tuple[int, float]] = []
    for distance in range(6):
        stars = {value for value in (rating - distance, rating + distance) if 0 <= value <= 5}
        if not stars:
            continue
        group = list(rated.filter(rating__in=stars).order_by("-id").values_list("id", flat=True)[:FALLBACK_SCAN_LIMIT])
        similarity = library.similarities(query, group)
        ranked = sorted(similarity.items(), key=lambda item: (-item[1], item[0]))
        chosen.extend(ranked[: k - len(chosen)])
        if len(chosen) >= k:
            break
    images = Image.objects.defer("embedding").in_bulk([pk for pk, _ in chosen])
    return [SimilarImage(image=images[pk], similarity=value, score=value) for pk, value in chosen if pk in images]


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
    embedder = embedder_get()
    vector = embedder.embed_images([decoded.preview])[0]
    return QueryImage(vector=vector, rating=decoded.exif.rating, width=decoded.width, height=decoded.height)


def similar_to_upload(*, upload: IO[bytes], k: int, rating: int | None = None) -> SearchResult:
    """Search by an uploaded photo (web page and API alike): validated like an upload, never stored here.

    The query's rating is the chosen one, else the photo's own EXIF rating.
    """
    data = read_upload_bytes(upload, max_bytes=settings.IMGSIM_MAX_UPLOAD_BYTES)
    query = query_image_from_upload(data=data)
    return similar_images(vector=query.vector, k=k, rating=query.rating if rating is None else rating)


def library_counts(*, model_name: str) -> dict[str, int]:
    """The library's images (the trash left out) by what search does with them; the parts add up to `images`:
    searchable, waiting for embedding, rejected, failed, and indexed by another model (not searchable with
    this one). The library page's tabs count the same rows."""
    in_library = Image.objects.in_library().order_by()
    by_status = dict(in_library.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    searchable = Image.objects.searchable(model_name=model_name).count()
    return {
        "images": sum(by_status.values()),
        "searchable": searchable,
        "waiting": by_status.get(Image.Status.QUEUED, 0),
        "rejected": by_status.get(Image.Status.REJECTED, 0),
        "failed": by_status.get(Image.Status.FAILED, 0),
        "other_model": by_status.get(Image.Status.INDEXED, 0) - searchable,
    }


def index_status() -> dict[str, object]:
    """What the index serves: model, version, kind, the vectors it was built from, the searchable images it
    covers and the newer ones searched exactly until the next build, the library's counts, the last build."""
    model_name = settings.IMGSIM_MODEL
    build = IndexBuild.objects.latest_ready(model_name=model_name)
    library = library_counts(model_name=model_name)
    searchable = library["searchable"]
    # Images embedded after the build are searched exactly; some of the images the build was made from may
    # have been deleted or trashed since, so it can have been built from more images than it now covers.
    if build is None:
        pending = searchable
    elif build.max_embedded_at is None:
        pending = max(0, searchable - build.vector_count)
    else:
        newer = Image.objects.searchable(model_name=model_name).filter(embedded_at__gt=build.max_embedded_at)
        pending = newer.count()
    last = IndexBuild.objects.order_by("-id").first()
    by_status = dict(Image.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    return {
        "model": model_name,
        "version": build.pk if build else None,
        "kind": build.kind if build else "",
        "indexed": build.vector_count if build else 0,
        "searchable": searchable,
        "pending": pending,
        "covered": searchable - pending,
        "library": library,
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
        "thresholds": thresholds_in_force(model_name=model_name).as_dict(),
        "repair": _repair_status(model_name),
    }


def _repair_status(model_name: str) -> dict[str, object] | None:
    """Failed automatic builds since the last good one and when the next attempt runs; None when healthy."""
    failures = list(IndexBuild.objects.automatic_failures_since_ready(model_name=model_name).order_by("-id"))
    if not failures:
        return None
    retry = Schedule.objects.filter(name=REPAIR_RETRY_SCHEDULE).values_list("next_run", flat=True).first()
    return {"failures": len(failures), "last_error": failures[0].error, "next_attempt_at": retry}
