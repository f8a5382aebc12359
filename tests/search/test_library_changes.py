"""The library change log is written by the database for every image write a search can see: each write path
of the product leaves its row in the write's own transaction, and so does a write no service knows about."""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from duplicates.services.trash import images_purge, images_restore, images_trash
from gallery import services as gallery_services
from gallery.models import Image
from gallery.services import image_delete
from search.models import LibraryChange
from tests.search.test_library_view import MODEL, synthetic_library

pytestmark = pytest.mark.django_db

triggers = importlib.import_module("search.migrations.0008_library_change_triggers")


def _trash(image: Image) -> None:
    images_trash(images=[image], user=None)


def _restore(image: Image) -> None:
    images_trash(images=[image], user=None)
    LibraryChange.objects.all().delete()
    images_restore(images=[image])


def _purge(image: Image) -> None:
    images_trash(images=[image], user=None)
    LibraryChange.objects.all().delete()
    images_purge(images=[image])


def _purge_expired(image: Image) -> None:
    Image.objects.filter(pk=image.pk).update(trashed_at=timezone.now() - timedelta(days=365))
    LibraryChange.objects.all().delete()
    gallery_services.trash_purge_expired(days=30)


def _embedded_again(image: Image) -> None:
    Image.objects.filter(pk=image.pk).update(embedding=b"\0" * 16, embedded_at=timezone.now())


def _failed(image: Image) -> None:
    Image.objects.filter(pk=image.pk).update(status=Image.Status.FAILED)


def _raw_sql(image: Image) -> None:
    with connection.cursor() as cursor:
        cursor.execute("UPDATE gallery_image SET rating = 5 WHERE id = %s", [image.pk])


WRITE_PATHS: dict[str, Callable[[Image], None]] = {
    "trash": _trash,
    "restore": _restore,
    "purge from the trash": _purge,
    "purge expired trash": _purge_expired,
    "delete for good": lambda image: image_delete(image=image),
    "delete many": lambda image: gallery_services.images_delete(images=[image]),
    "re-embedded": _embedded_again,
    "failed": _failed,
    "a write no service knows (raw SQL)": _raw_sql,
}


@pytest.mark.parametrize("write", WRITE_PATHS.values(), ids=WRITE_PATHS.keys())
def test_every_write_a_search_can_see_logs_its_image_in_the_same_transaction(write):
    image = Image.objects.get(pk=next(iter(synthetic_library(2))))
    LibraryChange.objects.all().delete()
    with transaction.atomic():
        write(image)
        logged = set(LibraryChange.objects.filter(kind=LibraryChange.Kind.IMAGE).values_list("image_id", flat=True))
    assert logged == {image.pk}


def test_writes_a_search_cannot_see_log_nothing():
    image = Image.objects.get(pk=next(iter(synthetic_library(1))))
    rejected = Image.objects.get(pk=next(iter(synthetic_library(1, start=500))))
    Image.objects.filter(pk=rejected.pk).update(status=Image.Status.REJECTED)
    LibraryChange.objects.all().delete()
    Image.objects.filter(pk=image.pk).update(status=Image.Status.INDEXED, original_name="renamed.jpg")
    # a rejected image's vector for the copy check, its rating, its deletion: never searchable, nothing to log
    Image.objects.filter(pk=rejected.pk).update(embedding=b"\0" * 16, rating=2, status=Image.Status.QUEUED)
    Image.objects.filter(pk=rejected.pk).delete()
    assert not LibraryChange.objects.exists()


def test_the_triggers_watch_every_column_a_search_reads():
    """A search reads the searchable rows' vectors and ratings: a new column in that read must be watched too."""
    query = str(Image.objects.searchable(model_name=MODEL).order_by().values_list("id", "embedding", "rating").query)
    read = set(re.findall(r'"gallery_image"\."(\w+)"', query)) - {"id"}
    assert read <= set(triggers.WATCHED), f"the change-log triggers do not watch {read - set(triggers.WATCHED)}"
