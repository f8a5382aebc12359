"""Background embedding: batches, leases that survive a killed worker, failures visible with their reason."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from gallery.models import Image
from search import services
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


def test_batches_embed_every_queued_image(api, settings):
    settings.IMGSIM_EMBED_BATCH_SIZE = 2
    queue_images(api, range(60, 65))
    summary = services.embed_pending()
    assert summary.embedded == 5
    assert Image.objects.filter(status="indexed", embedding__isnull=False).count() == 5


def test_a_killed_worker_loses_no_image(api):
    (image_id,) = queue_images(api, [66])
    _token, claimed = services._claim_batch(size=10)  # a worker takes the image ... and dies here
    assert [image.id for image in claimed] == [image_id]
    assert services.embed_pending().embedded == 0  # still leased to the dead worker

    expire_leases()
    assert services.embed_pending().embedded == 1
    image = Image.objects.get(pk=image_id)
    assert image.status == Image.Status.INDEXED
    assert image.embed_attempts == 2


def test_after_max_attempts_the_image_is_failed_with_the_reason(api, settings):
    settings.IMGSIM_EMBED_MAX_ATTEMPTS = 2
    (image_id,) = queue_images(api, [67])
    for _ in range(2):
        services._claim_batch(size=10)
        expire_leases()
    services.embed_pending()
    image = Image.objects.get(pk=image_id)
    assert image.status == Image.Status.FAILED
    assert image.reason_code == "embedding_interrupted"
    shown = api.get(f"/api/images/{image_id}/").json()
    assert shown["status"] == "failed"
    assert "2 attempts" in shown["status_message"]


def test_missing_weights_fail_visibly_and_retry_works_once_fixed(api, staff_api, settings, tmp_path, committed):
    settings.IMGSIM_WEIGHTS = str(tmp_path / "missing.pth")
    (image_id,) = queue_images(api, [68])
    services.embed_pending()
    image = Image.objects.get(pk=image_id)
    assert image.status == Image.Status.FAILED
    assert image.reason_code == "model_unavailable"
    assert "missing.pth" in image.status_message

    from tests.images import OFFLINE_WEIGHTS

    settings.IMGSIM_WEIGHTS = str(OFFLINE_WEIGHTS)
    response = committed(staff_api.post, f"/api/images/{image_id}/retry/")
    assert response.status_code == 200
    assert Image.objects.get(pk=image_id).status == Image.Status.INDEXED


def test_an_unreadable_stored_file_fails_that_image_only(api):
    first, second = queue_images(api, [69, 70])
    Image.objects.get(pk=first).file.storage.delete(Image.objects.get(pk=first).file.name)
    services.embed_pending()
    assert Image.objects.get(pk=first).status == Image.Status.FAILED
    assert Image.objects.get(pk=first).reason_code == "file_missing"
    assert Image.objects.get(pk=second).status == Image.Status.INDEXED


def test_library_page_explains_a_missing_model(api, web, staff_web, settings, tmp_path):
    settings.IMGSIM_WEIGHTS = str(tmp_path / "missing.pth")
    queue_images(api, [71])
    services.embed_pending()
    page = web.get("/").content.decode()
    assert 'id="model-problem"' in page
    assert "missing.pth" in page
    assert "/admin/gallery/image/?status__exact=failed" in staff_web.get("/").content.decode()
