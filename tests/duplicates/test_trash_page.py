"""The Trash page and API for staff: in the main menu, restore a selection, empty the trash after a confirmation
(rows and files purged), each write logged for every process's search view."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.utils import timezone

from duplicates.services.trash import images_trash
from gallery import services
from gallery.models import Image
from search.models import LibraryChange
from tests.images import photo_jpeg

pytestmark = pytest.mark.django_db


@pytest.fixture
def trashed(staff, searchable_upload) -> list[Image]:
    """Four searchable photos in the trash, trashed a minute ago (stored vectors: the trash needs no model)."""
    images = [searchable_upload(photo_jpeg(700 + n), f"t{n}.jpg") for n in range(4)]
    images_trash(images=images, user=staff)
    Image.objects.filter(pk__in=[image.pk for image in images]).update(trashed_at=timezone.now() - timedelta(minutes=1))
    return images


def logged(ids: list[int]) -> set[int]:
    """The ids among these that have a library change logged after the fixture's."""
    return set(LibraryChange.objects.filter(image_id__in=ids).values_list("image_id", flat=True))


def test_staff_restore_a_selection_from_the_trash_page_in_the_main_menu(trashed, staff_web, web):
    assert '<a href="/trash/"' not in web.get("/").content.decode()  # not in the menu of non-staff
    page = staff_web.get("/trash/").content.decode()
    assert '<a href="/trash/" class="active">Trash</a>' in page
    for image in trashed:
        assert f'name="images" value="{image.pk}" form="trash-selection"' in page
    chosen = [trashed[0].pk, trashed[2].pk]
    LibraryChange.objects.all().delete()

    response = staff_web.post("/trash/restore/", {"images": chosen, "page": "1"}, follow=True)

    assert response.redirect_chain[-1][0] == "/trash/?page=1"
    assert "Restored 2 images" in response.content.decode()
    assert set(Image.objects.in_library().values_list("id", flat=True)) == set(chosen)
    assert logged([image.pk for image in trashed]) == set(chosen)  # searches find them again
    nothing = staff_web.post("/trash/restore/", {"images": []}, follow=True).content.decode()
    assert "Tick the images to restore first." in nothing


def test_emptying_the_trash_asks_first_then_purges_rows_and_files_but_not_images_trashed_since(
    trashed, staff_web, committed
):
    confirm = staff_web.get("/trash/empty/").content.decode()
    assert "Delete <strong>4 images</strong>" in confirm
    assert Image.objects.trashed().count() == 4  # asking deletes nothing
    late = services.image_create(data=photo_jpeg(799), original_name="late.jpg").image
    images_trash(images=[late], user=None)  # trashed after the confirmation was shown
    until = confirm.split('name="until" value="')[1].split('"')[0]
    files = [name for image in trashed for name in (image.file.name, image.thumbnail.name)]
    LibraryChange.objects.all().delete()

    response = committed(staff_web.post, "/trash/empty/", {"until": until}, follow=True)  # the worker runs

    assert "Emptying the trash: 4 images" in response.content.decode()
    assert list(Image.objects.values_list("id", flat=True)) == [late.pk]
    assert not any(default_storage.exists(name) for name in files)
    assert default_storage.exists(late.file.name)
    assert logged([image.pk for image in trashed]) == {image.pk for image in trashed}
    assert "Confirm emptying" in staff_web.post("/trash/empty/", follow=True).content.decode()
    assert Image.objects.filter(pk=late.pk).exists()  # a POST without the confirmation purges nothing


def test_the_trash_api_restores_many_and_empties_the_trash(trashed, staff_api, api, committed):
    ids = [image.pk for image in trashed]
    assert api.post("/api/trash/restore/", {"ids": ids[:1]}, format="json").status_code == 403
    assert api.post("/api/trash/empty/").status_code == 403
    LibraryChange.objects.all().delete()

    restored = staff_api.post("/api/trash/restore/", {"ids": [ids[1], ids[0], 999_999]}, format="json")

    assert restored.status_code == 200
    assert restored.json() == {"restored": [ids[1], ids[0]], "not_in_trash": [999_999]}
    assert logged(ids) == {ids[0], ids[1]}
    emptied = committed(staff_api.post, "/api/trash/empty/", {}, format="json")  # the worker runs
    assert emptied.status_code == 202
    assert (emptied.json()["count"], emptied.json()["bytes"]) == (2, trashed[2].file_size + trashed[3].file_size)
    assert set(Image.objects.values_list("id", flat=True)) == {ids[0], ids[1]}
    assert logged(ids) == set(ids)
