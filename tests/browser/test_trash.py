"""The trash in a real browser: an upload of a trashed photo's bytes offers to restore it, and the Trash page
restores a selection made with "Select all on this page"."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from duplicates.services.trash import images_trash
from gallery import services
from gallery.models import Image
from tests.browser.photos import distinct_photos

pytestmark = pytest.mark.browser


def test_an_upload_of_a_trashed_photo_restores_it_and_the_trash_page_restores_a_selection(session):
    page = session.page
    photos = distinct_photos(3)
    images = [services.image_create(data=path.read_bytes(), original_name=path.name).image for path in photos]
    images_trash(images=images, user=session.user)
    # when the first photo is uploaded again, then its row says it is in the trash and offers to restore it
    session.go("/upload/")
    page.locator("#id_files").set_input_files(
        [{"name": "again.jpg", "mimeType": "image/jpeg", "buffer": photos[0].read_bytes()}]
    )
    row = page.locator("#uploads li").first
    expect(row.locator(".badge")).to_have_text("in the trash")
    expect(row.locator(".note")).to_have_text(
        re.compile(rf"^In the trash as #{images[0].pk}\. Not in the library until it is restored\.$")
    )
    expect(page.locator("#summary")).to_have_text("1 of 1 done · 1 in the trash")
    row.get_by_role("button", name="Restore").click()
    expect(row.locator(".badge")).to_have_text("restored")
    expect(row.locator(".note")).to_have_text(f"Restored from the trash: in the library as #{images[0].pk}.")
    assert Image.objects.get(pk=images[0].pk).trashed_at is None
    # when staff open the Trash page from the menu and select all, then both others are restored
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Trash").click()
    expect(page.locator("#trash .card")).to_have_count(2)
    page.get_by_label("Select all on this page").check()
    page.get_by_role("button", name="Restore 2 selected").click()
    expect(page.locator(".messages")).to_contain_text("Restored 2 images")
    expect(page.locator(".empty")).to_have_text("The trash is empty.")
    assert not Image.objects.trashed().exists()
