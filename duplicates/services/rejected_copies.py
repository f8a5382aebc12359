"""The copy check of rejected images: is this blurred upload a copy of a library photo? If so, say which.

A rejected image keeps its status (never searchable, indexed, detected or grouped); search embeds it for this
check only (search.services.embedding_queue). Here its CANDIDATES nearest library images are found by
the plain k-NN, then compared again after blurring both alike (duplicates.blur_match): blur lowers the plain
cosine of a copy too much to name it safely. At or above rejected_copy_threshold the image records `copy_of`
and that cosine; either way `copy_checked_at` is set, so each image is checked once. The record lives on the
gallery's Image, so the gallery's pages and API show it without importing this app.
"""

from __future__ import annotations

import logging

import numpy as np
from django.conf import settings
from django.utils import timezone

from duplicates.blur_match import reblurred
from duplicates.selectors.thresholds import rejected_copy_threshold
from gallery.models import Image
from gallery.originals import original_read
from search.embedding import Embedder
from search.library_view import LibrarySearch
from search.model_input import ImageDecodeError, load_rgb_for_embedding, model_input_pixels
from search.services.embedding_queue import embedder_get

logger = logging.getLogger(__name__)

# Rejected images compared per library search (one batched k-NN query).
CHECK_CHUNK = 64
# Nearest library images compared after blurring alike (one more embedding each, for rejected images only):
# a blurred copy's original is not always the nearest by the plain cosine, but nearly always among the first
# ten, and more candidates name no wrong photo (bench/blurred_copies.py, figures in bench/README.md).
CANDIDATES = 10


def rejected_copies_check() -> int:
    """Compare every embedded rejected image awaiting the check with the library; how many were checked."""
    model_name = settings.IMGSIM_MODEL
    threshold = rejected_copy_threshold(model_name=model_name)
    checked = 0
    while True:
        pending = Image.objects.awaiting_copy_check().filter(embedding__isnull=False).order_by("id")
        images = list(pending[:CHECK_CHUNK])
        if not images:
            return checked
        now = timezone.now()
        comparable = [image for image in images if image.embedding_model == model_name]
        other_model = [image.pk for image in images if image.embedding_model != model_name]
        if other_model:  # embedded before a model change: its vector cannot be compared with this library
            Image.objects.filter(id__in=other_model).update(copy_checked_at=now)
        if comparable:
            library = LibrarySearch(model_name=model_name)
            queries = np.stack([image.vector for image in comparable])
            if library.size:
                _, ids = library.search(queries, k=CANDIDATES)
            else:
                ids = np.full((len(comparable), 1), -1)
            embedder = embedder_get() if library.size else None
            for image, candidate_ids in zip(comparable, ids, strict=True):
                match = None
                if embedder is not None:
                    match = _best_blurred_alike(image, [int(pk) for pk in candidate_ids if pk >= 0], embedder)
                found = match is not None and match[1] >= threshold
                Image.objects.filter(id=image.pk, copy_checked_at__isnull=True).update(
                    copy_of_id=match[0] if found else None,
                    copy_similarity=round(match[1], 6) if found else None,
                    copy_checked_at=now,
                )
                if found:
                    logger.info("rejected image %s looks like a copy of image %s (%.3f)", image.pk, *match)
        checked += len(images)


def _best_blurred_alike(image: Image, candidate_ids: list[int], embedder: Embedder) -> tuple[int, float] | None:
    """(candidate id, cosine) of the candidate closest to the image once both are blurred alike."""
    query = _model_pixels(image)
    if query is None or not candidate_ids:
        return None
    candidates = Image.objects.only("id", "file").in_bulk(candidate_ids)
    pixels = [(pk, _model_pixels(candidates[pk])) for pk in candidate_ids if pk in candidates]
    usable = [(pk, px) for pk, px in pixels if px is not None]
    if not usable:
        return None
    vectors = embedder.embed_pixels(np.stack([reblurred(query)] + [reblurred(px) for _, px in usable]))
    scores = vectors[1:] @ vectors[0]
    best = int(np.argmax(scores))
    return usable[best][0], float(scores[best])


def _model_pixels(image: Image) -> np.ndarray | None:
    """The stored file as the model's input pixels; None when it cannot be read (the check goes on without)."""
    try:
        return model_input_pixels(load_rgb_for_embedding(original_read(image)))
    except (OSError, ValueError, ImageDecodeError):
        logger.warning("image %s could not be read for the copy check", image.pk, exc_info=True)
        return None
