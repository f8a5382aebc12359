"""Test set-up: files in a temporary media root, tasks run inline, the offline ImageNet backbone."""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.db import connections
from django.test import Client
from rest_framework.test import APIClient

from tests.images import OFFLINE_WEIGHTS, shared_path

# The clock rate windows are cut from (core.rate_limit), stopped in tests so that none straddles a window's end.
STOPPED_CLOCK = 1_750_032_000.0


def pytest_configure(config: pytest.Config) -> None:
    """No persistent connections; SQLite tests use a database file (in /dev/shm where there is one).

    An in-memory test database is one connection that the live server's request threads share with the
    test; two uploads at once then interleave their transactions on it and fail. A file gives each thread
    its own connection, with SQLite's locking, as in production.
    """
    from django.conf import settings

    database = settings.DATABASES["default"]
    # Live-server request threads close their connection after each request (no persistent connections
    # left open on PostgreSQL when the test database is dropped).
    database["CONN_MAX_AGE"] = 0
    if database["ENGINE"] == "django.db.backends.sqlite3":
        folder = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
        database.setdefault("TEST", {})["NAME"] = str(folder / f"imgsim-test-{os.getpid()}.sqlite3")


@pytest.fixture(autouse=True)
def _isolated_settings(settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.IMGSIM_INDEX_DIR = tmp_path / "index"
    settings.VAR_DIR = tmp_path / "var"
    settings.IMGSIM_MODEL = "mobilenet_v2"
    settings.IMGSIM_WEIGHTS = str(OFFLINE_WEIGHTS)
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"upload": "10000/hour", "search": "10000/hour"},
    }
    from django_q.conf import Conf

    from core import rate_limit
    from gallery.source_reach import source_reach_forget_process_state
    from search.library_view import LibraryView, forget_served_indexes

    monkeypatch.setattr(rate_limit, "clock", lambda: STOPPED_CLOCK)
    monkeypatch.setattr(Conf, "SYNC", True)
    monkeypatch.setattr(LibraryView, "switch_in_background", False)  # a rebuild is seen by the next search
    forget_served_indexes()
    settings.IMGSIM_MACHINE_NAME = "test-machine"
    source_reach_forget_process_state()  # which source roots this process looked at lately: per test


@pytest.fixture(autouse=True)
def _model_only_where_marked(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test that builds a network must say so (marker ml): `make quick` leaves those out and must stay
    quick, so an unmarked test that builds one fails here instead of slowing the quick check down."""
    if request.node.get_closest_marker("ml") or request.node.get_closest_marker("browser"):
        return
    import search.embedding

    def refuse(*args: Any, **kwargs: Any) -> None:
        pytest.fail("this test builds a neural network: mark it @pytest.mark.ml (make quick leaves those out)")

    monkeypatch.setattr(search.embedding, "_build_architecture", refuse)


@pytest.fixture(scope="session")
def offline_weights() -> Path:
    return shared_path("models", "mobilenet_v2_imagenet_features.pth")


@pytest.fixture
def user(db: None) -> Any:
    return get_user_model().objects.create_user(username="ana", password="pw-ana-12345")


@pytest.fixture
def staff(db: None) -> Any:
    return get_user_model().objects.create_user(
        username="sam", password="pw-sam-12345", is_staff=True, is_superuser=True
    )


@pytest.fixture
def web(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def staff_web(staff: Any) -> Client:
    client = Client()
    client.force_login(staff)
    return client


@pytest.fixture
def api(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def staff_api(staff: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(staff)
    return client


@pytest.fixture
def committed(django_capture_on_commit_callbacks: Callable[..., Any]) -> Iterator[Callable[..., Any]]:
    """Run on_commit callbacks (the background embedding) as they would run after a real commit."""

    def run(action: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return action(*args, **kwargs)

    return run


@pytest.fixture
def at_once() -> Callable[..., list[Any]]:
    """Run action(i) for i in range(count) in `count` threads released together (races need real overlap);
    each thread closes its own database connection when done."""

    def run(count: int, action: Callable[[int], Any]) -> list[Any]:
        start = threading.Barrier(count, timeout=30)

        def one(index: int) -> Any:
            try:
                start.wait()
                return action(index)
            finally:
                connections.close_all()

        with ThreadPoolExecutor(max_workers=count) as pool:
            return list(pool.map(one, range(count)))

    return run


@pytest.fixture
def searchable_upload(db: None) -> Callable[[bytes, str], Any]:
    """An uploaded image made searchable with a stored vector (no model), its change log cleared: what a
    search can return, for tests of what happens to it next."""
    from gallery.models import Image
    from gallery.services import image_create
    from search.models import LibraryChange

    def make(data: bytes, name: str) -> Any:
        image = image_create(data=data, original_name=name).image
        vector = np.full(8, 8**-0.5, dtype=np.float32)
        Image.objects.filter(pk=image.pk).update(
            status=Image.Status.INDEXED, embedding=vector.tobytes(), embedding_model="searchable-upload"
        )
        LibraryChange.objects.all().delete()
        image.refresh_from_db()
        return image

    return make


@pytest.fixture
def photo_with_vector(db: None, settings: Any) -> Callable[..., Any]:
    """A real photo (distractors-dev, the `number`th) indexed with a stored vector under the configured
    model, no network: searches return it at exactly the cosine the test chose (unit vectors)."""
    from django.utils import timezone

    from gallery.models import Image
    from gallery.services import image_create

    # 135037.jpg is the one real photo the blur check rejects.
    paths = [
        path for path in sorted(shared_path("data", "distractors-dev", "train").glob("*.jpg")) if path.stem != "135037"
    ]

    def make(vector: np.ndarray, number: int, *, rating: int | None = None) -> Any:
        path = paths[number]
        image = image_create(data=path.read_bytes(), original_name=path.name).image
        unit = np.asarray(vector, dtype=np.float32) / np.linalg.norm(vector)
        Image.objects.filter(pk=image.pk).update(
            status=Image.Status.INDEXED,
            embedding=unit.tobytes(),
            embedding_model=settings.IMGSIM_MODEL,
            embedded_at=timezone.now(),
            rating=rating,
        )
        image.refresh_from_db()
        return image

    return make
