"""Trash and restore through duplicate review reach a long-lived search view in the same commit."""

from __future__ import annotations

import pytest

from duplicates.trash import images_purge, images_restore, images_trash
from gallery.models import Image
from search.library_view import library_view
from search.services.index_lifecycle import index_rebuild
from tests.search.test_library_view import synthetic_library, top_ids


@pytest.mark.django_db
def test_trashed_images_leave_a_long_lived_view_and_restored_ones_come_back(staff):
    # given an indexed library and a process whose view has loaded it
    library = synthetic_library(200)
    index_rebuild()
    view = library_view(model_name="mobilenet_v2")
    ids = list(library)
    target = ids[7]
    assert top_ids(library[target], k=1) == [target]
    loads = view.loads

    # when the image is moved to the trash, then searches no longer return it, and k results still come back
    images_trash(images=[Image.objects.get(pk=target)], user=staff)
    found = top_ids(library[target], k=10)
    assert target not in found
    assert len(found) == 10

    # when it is restored, then it is the best match for its own vector again
    images_restore(images=[Image.objects.get(pk=target)])
    assert top_ids(library[target], k=1) == [target]

    # when it is trashed and purged, then it stays out; all of it without reloading the index
    images_trash(images=[Image.objects.get(pk=target)], user=staff)
    assert images_purge(images=[Image.objects.get(pk=target)]) == 1
    assert target not in top_ids(library[target], k=10)
    assert view.loads == loads
