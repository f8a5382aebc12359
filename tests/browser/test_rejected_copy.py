"""A blurred copy of a library photo in a real browser: the upload row says "rejected: blurry", then (once the
copy check has run) names the photo it copies with its thumbnail; the image page says so too."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from gallery.models import Image
from tests.browser.conftest import DESKTOP, PHONE
from tests.browser.photos import distinct_photos
from tests.images import blurred_jpeg, shared_path

pytestmark = pytest.mark.browser


def test_blurred_copy_is_named_on_the_upload_page_and_the_image_page(session):
    page = session.page
    photos = distinct_photos(6)[-2:]  # 105019.jpg, whose blurred copy scores 0.88 against it
    session.go("/upload/")
    page.locator("#id_files").set_input_files(
        [{"name": path.name, "mimeType": "image/jpeg", "buffer": path.read_bytes()} for path in photos]
    )
    rows = page.locator("#uploads li")
    for index in range(2):
        expect(rows.nth(index).locator(".badge")).to_have_text("indexed", timeout=60_000)

    stranger = sorted(shared_path("data", "distractors-dev", "val").glob("*.jpg"))[0]
    page.locator("#id_files").set_input_files(
        [
            {"name": "blurred-copy.jpg", "mimeType": "image/jpeg", "buffer": blurred_jpeg(photos[-1])},
            {"name": "blurred-stranger.jpg", "mimeType": "image/jpeg", "buffer": blurred_jpeg(stranger)},
        ]
    )
    original = Image.objects.get(original_name=photos[-1].name)
    copy_row, stranger_row = rows.nth(2), rows.nth(3)
    expect(copy_row.locator(".badge")).to_have_text("rejected: blurry", timeout=60_000)
    expect(copy_row.locator(".copy-of")).to_have_text(
        re.compile(rf"^It looks like a blurred copy of #{original.pk} \(similarity 0\.\d{{3}}\)\.$"), timeout=30_000
    )
    expect(copy_row.locator(".copy-of a")).to_have_attribute("href", re.compile(rf"/images/{original.pk}/$"))
    expect(copy_row.locator(".copy-of img")).to_have_attribute("src", re.compile(rf"/images/{original.pk}/thumbnail/$"))
    expect(stranger_row.locator(".badge")).to_have_text("rejected: blurry", timeout=60_000)
    expect(stranger_row.locator(".copy-of")).to_have_count(0, timeout=30_000)  # checked: a copy of nothing here
    expect(page.locator("#summary")).to_have_text("4 of 4 done · 2 stored (2 indexed) · 2 rejected for quality")
    session.shot("upload-blurred-copy")
    page.set_viewport_size(PHONE)
    expect(copy_row.locator(".copy-of img")).to_be_visible()
    session.shot("upload-blurred-copy", full_page=True)
    page.set_viewport_size(DESKTOP)

    copy = Image.objects.get(original_name="blurred-copy.jpg")
    session.go(f"/images/{copy.pk}/")
    notice = page.locator("#copy-of")
    expect(notice).to_contain_text(f"It looks like a blurred copy of #{original.pk} {original.original_name}")
    expect(notice.locator("img")).to_be_visible()
    session.shot("image-blurred-copy")
    page.set_viewport_size(PHONE)
    expect(notice.locator("img")).to_be_visible()
    session.shot("image-blurred-copy")
    notice.locator("a").last.click()
    expect(page).to_have_url(re.compile(rf"/images/{original.pk}/$"))
