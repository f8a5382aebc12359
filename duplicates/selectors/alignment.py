"""How one image registers onto another (the compare view's alignment), cached in the shared cache by the
two files' content.

Stored files never change, so an alignment computed once holds for good: it is kept by both sha256 (one
entry for either order) under ALIGNMENT_VERSION. Computing one decodes two pictures at the check's small
size (bounded memory, like detection's check) and takes a fraction of a second of one core; a web process
computes at most ALIGNMENT_CONCURRENCY at once, so a reviewer paging quickly through a group cannot take
over the server's cores.
"""

from __future__ import annotations

import logging
import threading

from django.core.cache import cache
from PIL import Image as PILImage

from core.errors import ServiceError
from duplicates.alignment import ALIGNMENT_VERSION, Alignment, picture_alignment
from gallery.models import Image
from gallery.originals import original_open

logger = logging.getLogger(__name__)

ALIGNMENT_CONCURRENCY = 1
# How long a request waits for another's computation before it is refused (503, try again).
ALIGNMENT_WAIT_SECONDS = 20.0
ALIGNMENT_CACHE_SECONDS = 90 * 86400

_computing = threading.BoundedSemaphore(ALIGNMENT_CONCURRENCY)


def image_alignment(*, image: Image, onto: Image) -> Alignment | None:
    """How `image` registers onto `onto` (the homography maps its pixels into `onto`'s); None when either
    file cannot be read. Refused (503) when the process is busy computing others for too long."""
    first, second = sorted((onto, image), key=lambda each: (each.sha256, each.pk))
    key = f"duplicates:alignment:{ALIGNMENT_VERSION}:{first.sha256}:{second.sha256}"
    stored = cache.get(key)
    if stored is not None:
        alignment = Alignment.from_dict(stored)
    else:
        computed = _computed(second=second, onto=first)
        if computed is None:
            return None
        cache.set(key, computed.as_dict(), ALIGNMENT_CACHE_SECONDS)
        alignment = computed
    return alignment if first is onto else alignment.inverse()


def _computed(*, second: Image, onto: Image) -> Alignment | None:
    if not _computing.acquire(timeout=ALIGNMENT_WAIT_SECONDS):
        raise ServiceError(
            "alignment_busy", "The server is busy aligning other pictures; try again in a moment.", status=503
        )
    try:
        with original_open(onto) as first_file, original_open(second) as second_file:
            return picture_alignment(
                first_file,
                second_file,
                first_size=(onto.width, onto.height),
                second_size=(second.width, second.height),
            )
    except (OSError, ValueError, PILImage.DecompressionBombError) as error:
        logger.warning("no alignment of images %s and %s: %s", second.pk, onto.pk, error)
        return None
    finally:
        _computing.release()
