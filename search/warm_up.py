"""Web workers load what the first search would otherwise wait for, in a background thread at start.

Without it the first query upload in each gunicorn worker waits for the model to load (many seconds:
bench/first_search.py, figures in bench/README.md) and the first search for the index. imgsim_site/wsgi.py
starts it in every web worker (gunicorn imports the WSGI module in each worker, after the fork);
IMGSIM_WARM_MODEL=0 turns it off. Importing this module does not import torch: the thread does.
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.db import connections
from PIL import Image as PILImage

from search.library_view import library_view
from search.services.embedding_queue import embedder_get

logger = logging.getLogger(__name__)

_thread: threading.Thread | None = None


def warm_up() -> float:
    """Load the embedding model and run one inference, and load the library view; seconds taken."""
    started = time.perf_counter()
    try:
        embedder = embedder_get()
        # One real inference: the first forward pass also pays for thread pools and memory planning.
        embedder.embed_images([PILImage.new("RGB", (224, 224), (127, 127, 127))])
    except Exception:
        logger.warning("warm-up: the embedding model could not be loaded; query uploads will try again", exc_info=True)
    try:
        library_view(model_name=settings.IMGSIM_MODEL).current()
    except Exception:
        logger.warning("warm-up: the search index could not be loaded; the first search will try again", exc_info=True)
    finally:
        connections.close_all()  # this thread's connections only
    seconds = time.perf_counter() - started
    logger.info("warm-up done in %.1fs", seconds)
    return seconds


def warm_up_in_background() -> threading.Thread:
    """Start warm_up() once per process in a daemon thread (requests are served meanwhile)."""
    global _thread
    if _thread is None:
        _thread = threading.Thread(target=warm_up, name="imgsim-warm-up", daemon=True)
        _thread.start()
    return _thread
