"""One pending run per kind: however many uploads queue an embedding run, one waits in the queue (the ORM
broker's rows), and an upload arriving while that run works queues the next one, so nothing waits unseen."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from django_q.conf import Conf
from django_q.models import OrmQ

from pipeline import services, tasks
from search.embedding import EmbedBatchResult
from search.services import embedding_queue
from tests.images import photo_jpeg

pytestmark = pytest.mark.django_db


def queued_runs() -> Counter[str]:
    """The tasks waiting in the ORM broker's queue, by function."""
    return Counter(row.func() for row in OrmQ.objects.all())


def unit_vectors(count: int) -> EmbedBatchResult:
    """What a fake backbone returns for `count` pictures: random unit vectors of mobilenet_v2's size."""
    vectors = np.random.default_rng(0).normal(size=(count, 1280)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return EmbedBatchResult(vectors=vectors, ok_indices=list(range(count)))


def test_a_hundred_uploads_leave_one_embedding_run_pending_and_an_upload_during_it_queues_the_next(
    committed: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, settings: Any
):
    monkeypatch.setattr(Conf, "SYNC", False)  # the runs wait in the queue instead of running inline

    def upload(seed: int) -> None:
        committed(services.image_ingest, data=photo_jpeg(seed), original_name=f"{seed}.jpg")

    for seed in range(100):
        upload(seed)
    assert queued_runs()[services.EMBED_TASK] == 1

    class UploadArrivesMeanwhile:
        """A fake backbone: while it embeds, one more upload comes in."""

        model_name = settings.IMGSIM_MODEL

        def embed_sources(self, sources: list[bytes]) -> EmbedBatchResult:
            if not arrived:
                arrived.append(True)
                upload(1000)
            return unit_vectors(len(sources))

    arrived: list[bool] = []
    monkeypatch.setattr(embedding_queue, "embedder_get", UploadArrivesMeanwhile)
    OrmQ.objects.all().delete()  # a worker fetched the pending run
    tasks.embed_pending()
    assert queued_runs()[services.EMBED_TASK] == 1


@pytest.fixture
def five_queued(committed: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    """Five uploads waiting in the queue (runs not executed inline), batches of 2, a fake backbone."""
    monkeypatch.setattr(Conf, "SYNC", False)
    settings.IMGSIM_EMBED_BATCH_SIZE = 2
    for seed in range(5):
        committed(services.image_ingest, data=photo_jpeg(seed), original_name=f"{seed}.jpg")

    class FakeBackbone:
        model_name = settings.IMGSIM_MODEL

        def embed_sources(self, sources: list[bytes]) -> EmbedBatchResult:
            return unit_vectors(len(sources))

    monkeypatch.setattr(embedding_queue, "embedder_get", FakeBackbone)
    OrmQ.objects.all().delete()  # a worker fetched the pending run


def detection_then_embedding_queued() -> bool:
    runs = ["duplicates.tasks.detect_pending", services.EMBED_TASK]
    return [row.func() for row in OrmQ.objects.order_by("id") if row.func() in runs] == runs


def test_an_embedding_run_over_its_budget_queues_the_next_one_behind_detection(
    five_queued: None, committed: Callable[..., Any], settings: Any
):
    """A worker alternates: the run stops after a batch once IMGSIM_EMBED_RUN_SECONDS is spent, and the
    detection run its batch queued is ahead of the follow-up embedding run in the queue."""
    settings.IMGSIM_EMBED_RUN_SECONDS = 0
    summary = committed(tasks.embed_pending)
    assert summary["embedded"] == 2
    assert summary["more_left"] is True
    assert detection_then_embedding_queued()


def test_an_embedding_run_yields_to_detection_once_what_it_embedded_waits_unchecked(
    five_queued: None, committed: Callable[..., Any], settings: Any
):
    """Detection stays level: with time left, the run stops once more than IMGSIM_EMBED_AHEAD_OF_DETECTION
    recently embedded images await detection (here after the second batch: 4 > 3), and detection runs next."""
    settings.IMGSIM_EMBED_AHEAD_OF_DETECTION = 3
    summary = committed(tasks.embed_pending)
    assert summary["embedded"] == 4
    assert summary["more_left"] is True
    assert detection_then_embedding_queued()
