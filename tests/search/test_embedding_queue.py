"""Background embedding: batches, leases that survive a killed worker, attempts counted only once embedding
really starts, claims released on errors, failures visible with their reason."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import OperationalError
from django.utils import timezone

from gallery.models import Image
from search.services import embedding_queue
from tests.images import photo_jpeg

pytestmark = pytest.mark.django_db


def queue_images(api, seeds) -> list[int]:
    """Upload without running the on-commit hook: the images stay queued, as if no worker were running."""
    ids = []
    for seed in seeds:
        response = api.post("/api/images/", {"file": SimpleUploadedFile(f"{seed}.jpg", photo_jpeg(seed))})
        ids.append(response.json()["image"]["id"])
    assert Image.objects.filter(status="queued").count() == len(ids)
    return ids


def expire_leases() -> None:
    Image.objects.filter(claimed_until__isnull=False).update(claimed_until=timezone.now() - timedelta(seconds=1))


@pytest.mark.ml
def test_batches_embed_every_queued_image(api, settings):
    settings.IMGSIM_EMBED_BATCH_SIZE = 2
    queue_images(api, range(60, 65))
    summary = embedding_queue.embed_pending()
    assert summary.embedded == 5
    assert Image.objects.filter(status="indexed", embedding__isnull=False).count() == 5


def start_and_die() -> None:
    """A worker claims a batch, loads the model, starts embedding ... and is killed."""
    token, claimed = embedding_queue._claim_batch(size=10)
    embedding_queue._count_attempt(token=token, images=claimed)
    expire_leases()


@pytest.mark.ml
def test_a_killed_worker_loses_no_image(api):
    (image_id,) = queue_images(api, [66])
    token, claimed = embedding_queue._claim_batch(size=10)
    embedding_queue._count_attempt(token=token, images=claimed)  # embedding started ... and the worker dies here
    assert [image.id for image in claimed] == [image_id]
    assert embedding_queue.embed_pending().embedded == 0  # still leased to the dead worker

    expire_leases()
    assert embedding_queue.embed_pending().embedded == 1
    image = Image.objects.get(pk=image_id)
    assert image.status == Image.Status.INDEXED
    assert image.embed_attempts == 2


@pytest.mark.ml
def test_kills_while_the_model_loads_do_not_count_as_attempts(api, settings):
    settings.IMGSIM_EMBED_MAX_ATTEMPTS = 2
    (image_id,) = queue_images(api, [72])
    for _ in range(5):  # claimed, then killed before the model was ready: the image was never tried
        embedding_queue._claim_batch(size=10)
        expire_leases()
    assert embedding_queue.embed_pending().embedded == 1
    image = Image.objects.get(pk=image_id)
    assert (image.status, image.embed_attempts) == (Image.Status.INDEXED, 1)


def test_a_model_that_fails_to_load_releases_the_claims_uncounted(api, monkeypatch):
    ids = queue_images(api, [73, 74])

    def out_of_memory():
        raise MemoryError("no room for the model")

    monkeypatch.setattr(embedding_queue, "embedder_get", out_of_memory)
    with pytest.raises(MemoryError):
        embedding_queue.embed_pending()
    assert list(Image.objects.filter(pk__in=ids).values_list("status", "embed_attempts", "claim_token")) == [
        ("queued", 0, ""),
        ("queued", 0, ""),
    ]
    assert not Image.objects.filter(claimed_until__isnull=False).exists()


@pytest.mark.ml
def test_a_database_error_mid_batch_releases_the_claims_at_once(api, monkeypatch):
    ids = queue_images(api, [75, 76])
    real = embedding_queue.embedder_get()

    class DroppedConnection:
        model_name = real.model_name

        def embed_sources(self, sources):
            raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(embedding_queue, "embedder_get", DroppedConnection)
    with pytest.raises(OperationalError):
        embedding_queue.embed_pending()
    assert not Image.objects.filter(pk__in=ids, claimed_until__isnull=False).exists()  # no lease to wait out
    assert list(Image.objects.filter(pk__in=ids).values_list("embed_attempts", flat=True)) == [1, 1]

    monkeypatch.setattr(embedding_queue, "embedder_get", lambda: real)
    assert embedding_queue.embed_pending().embedded == 2  # at once, no lease expiry needed
    assert api.get(f"/api/images/{ids[0]}/").json()["status"] == "indexed"


def test_after_max_attempts_the_image_is_failed_with_the_reason(api, settings):
    settings.IMGSIM_EMBED_MAX_ATTEMPTS = 2
    (image_id,) = queue_images(api, [67])
    for _ in range(2):
        start_and_die()
    embedding_queue.embed_pending()
    image = Image.objects.get(pk=image_id)
    assert image.status == Image.Status.FAILED
    assert image.reason_code == "embedding_interrupted"
    shown = api.get(f"/api/images/{image_id}/").json()
    assert shown["status"] == "failed"
    assert "2 attempts" in shown["status_message"]


@pytest.mark.ml
def test_missing_weights_fail_visibly_and_retry_works_once_fixed(api, staff_api, settings, tmp_path, committed):
    settings.IMGSIM_WEIGHTS = str(tmp_path / "missing.pth")
    (image_id,) = queue_images(api, [68])
    embedding_queue.embed_pending()
    image = Image.objects.get(pk=image_id)
    assert image.status == Image.Status.FAILED
    assert image.reason_code == "model_unavailable"
    assert "missing.pth" in image.status_message

    from tests.images import OFFLINE_WEIGHTS

    settings.IMGSIM_WEIGHTS = str(OFFLINE_WEIGHTS)
    response = committed(staff_api.post, f"/api/images/{image_id}/retry/")
    assert response.status_code == 200
    assert Image.objects.get(pk=image_id).status == Image.Status.INDEXED


@pytest.mark.ml
def test_an_unreadable_stored_file_fails_that_image_only(api):
    first, second = queue_images(api, [69, 70])
    Image.objects.get(pk=first).file.storage.delete(Image.objects.get(pk=first).file.name)
    embedding_queue.embed_pending()
    assert Image.objects.get(pk=first).status == Image.Status.FAILED
    assert Image.objects.get(pk=first).reason_code == "file_missing"
    assert Image.objects.get(pk=second).status == Image.Status.INDEXED


@pytest.mark.ml
def test_library_page_explains_a_missing_model(api, web, staff_web, settings, tmp_path):
    settings.IMGSIM_WEIGHTS = str(tmp_path / "missing.pth")
    queue_images(api, [71])
    embedding_queue.embed_pending()
    page = web.get("/").content.decode()
    assert 'id="model-problem"' in page
    assert "missing.pth" in page
    assert "/admin/gallery/image/?status__exact=failed" in staff_web.get("/").content.decode()


def test_attempts_ended_by_released_claims_count_towards_the_limit(api, monkeypatch, settings):
    settings.IMGSIM_EMBED_MAX_ATTEMPTS = 3
    (image_id,) = queue_images(api, [77])
    tries: list[int] = []

    class DroppedConnection:
        model_name = settings.IMGSIM_MODEL

        def embed_sources(self, sources):
            tries.append(len(sources))
            raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(embedding_queue, "embedder_get", DroppedConnection)
    for _ in range(3):  # each attempt ends in an error that releases the claim at once
        with pytest.raises(OperationalError):
            embedding_queue.embed_pending()
    assert embedding_queue.embed_pending().failed == 0  # nothing claimed: the image is failed before a 4th try
    image = Image.objects.get(pk=image_id)
    assert len(tries) == 3
    assert (image.status, image.reason_code, image.embed_attempts) == ("failed", "embedding_interrupted", 3)
