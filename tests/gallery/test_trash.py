"""The trash at the library level: out of the grid, the list API and search; restore; purge after the period."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.utils import timezone

from gallery import services
from gallery.models import Image
from gallery.tasks import purge_expired_trash
from tests.duplicates.conftest import distractor_files
from tests.search.test_library_view import DIM, MODEL

pytestmark = pytest.mark.django_db


@pytest.fixture
def photos(settings) -> list[Image]:
    settings.IMGSIM_TRASH_DAYS = 30
    return [
        services.image_create(data=path.read_bytes(), original_name=path.name).image for path in distractor_files(3)
    ]


def test_a_trashed_image_leaves_the_grid_the_api_and_search_but_keeps_its_file(photos, web, api, user):
    first, second, third = photos
    Image.objects.filter(pk__in=[p.pk for p in photos]).update(status=Image.Status.INDEXED, embedding=b"\0" * 8)
    services.image_trash(image=second, user=user)
    assert second.trashed_at is not None
    assert second.trashed_by == user
    assert default_storage.exists(second.file.name)
    assert set(Image.objects.searchable().values_list("id", flat=True)) == {first.pk, third.pk}
    grid = web.get("/").content.decode()
    assert f"/images/{first.pk}/" in grid
    assert f"/images/{second.pk}/" not in grid
    listed = {item["id"] for item in api.get("/api/images/").json()["results"]}
    assert listed == {first.pk, third.pk}
    assert "All 2" in grid  # the counts leave it out too
    again = services.image_trash(image=second)  # trashing twice changes nothing
    assert again.trashed_by == user

    services.image_restore(image=second)
    second.refresh_from_db()
    assert second.trashed_at is None
    assert second.restored_at is not None
    assert Image.objects.searchable().filter(pk=second.pk).exists()


def test_a_trashed_image_is_for_staff_only_at_every_url(photos, web, staff_web):
    # given embedded images (stored vectors: similar reads no model), one of them moved to the trash
    vectors = np.random.default_rng(5).normal(size=(len(photos), DIM)).astype(np.float32)
    for photo, vector in zip(photos, vectors / np.linalg.norm(vectors, axis=1, keepdims=True), strict=True):
        Image.objects.filter(pk=photo.pk).update(
            status=Image.Status.INDEXED, embedding=vector.tobytes(), embedding_model=MODEL, embedded_at=timezone.now()
        )
    trashed = services.image_trash(image=photos[0])
    urls = [
        f"/images/{trashed.pk}/{tail}"
        for tail in ("", "file/", "thumbnail/", "preview/large/", "preview/full/", "similar/")
    ] + [f"/api/images/{trashed.pk}/similar/"]
    # then every URL of it is a 404 for anyone but staff (as the list API leaves it out), and staff open it all
    assert {url: web.get(url).status_code for url in urls} == dict.fromkeys(urls, 404)
    assert {url: staff_web.get(url).status_code for url in urls} == dict.fromkeys(urls, 200)


def test_purge_after_the_trash_period_deletes_rows_and_files(photos, committed):
    old, recent, kept = photos
    Image.objects.filter(pk=old.pk).update(trashed_at=timezone.now() - timedelta(days=31))
    Image.objects.filter(pk=recent.pk).update(trashed_at=timezone.now() - timedelta(days=29))
    names = [old.file.name, old.thumbnail.name]
    assert committed(purge_expired_trash) == {"purged": 1}
    assert not Image.objects.filter(pk=old.pk).exists()
    assert not any(default_storage.exists(name) for name in names)
    assert Image.objects.filter(pk__in=[recent.pk, kept.pk]).count() == 2
