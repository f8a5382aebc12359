"""The copy check of rejected images: is this blurred upload a copy of a library photo? If so, say which.

A rejected image keeps its status (never searchable, indexed, detected or grouped); search embeds it for this
check only (search.services.embed_rejected_pending), and here its nearest library image is looked up. At or
above the threshold the image records `copy_of` and the similarity; either way `copy_checked_at` is set, so
each image is checked once. The record lives on the gallery's Image, so the gallery's pages and API show it
without importing this app.
"""

from __future__ import annotations

import logging

import numpy as np
from django.conf import settings
from django.utils import timezone

from duplicates.selectors import rejected_copy_threshold
from gallery.models import Image
from search.selectors import LibrarySearch

logger = logging.getLogger(__name__)

# Rejected images compared per library search (one batched k-NN query).
CHECK_CHUNK = 256


def rejected_copies_check() -> int:
    """Compare every embedded rejected image awaiting the check with the library; how many were checked."""
    model_name = settings.IMGSIM_MODEL
    threshold = rejected_copy_threshold(model_name=model_name)
    checked = 0
    while True:
        pending = Image.objects.awaiting_copy_check().filter(embedding__isnull=False).order_by("id")
        rows = list(pending.values_list("id", "embedding", "embedding_model")[:CHECK_CHUNK])
        if not rows:
            return checked
        now = timezone.now()
        comparable = [(pk, vector) for pk, vector, model in rows if model == model_name]
        other_model = [pk for pk, _, model in rows if model != model_name]
        if other_model:  # embedded before a model change: its vector cannot be compared with this library
            Image.objects.filter(id__in=other_model).update(copy_checked_at=now)
        if comparable:
            library = LibrarySearch(model_name=model_name)
            queries = np.stack([np.frombuffer(bytes(vector), dtype=np.float32) for _, vector in comparable])
            if library.size:
                scores, ids = library.search(queries, k=1)
            else:
                scores, ids = np.full((len(comparable), 1), -np.inf), np.full((len(comparable), 1), -1)
            for (pk, _), score, nearest in zip(comparable, scores[:, 0], ids[:, 0], strict=True):
                found = int(nearest) >= 0 and float(score) >= threshold
                Image.objects.filter(id=pk, copy_checked_at__isnull=True).update(
                    copy_of_id=int(nearest) if found else None,
                    copy_similarity=round(float(score), 6) if found else None,
                    copy_checked_at=now,
                )
                if found:
                    logger.info("rejected image %s looks like a copy of image %s (%.3f)", pk, nearest, score)
        checked += len(rows)
