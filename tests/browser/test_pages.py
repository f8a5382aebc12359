"""Signing in, the library's filters and pagination, the image page, error pages, and the phone layout."""

from __future__ import annotations

import re

import pytest
from django_q.conf import Conf
from playwright.sync_api import expect

from pipeline.services import image_ingest
from tests.browser.conftest import PASSWORD, PHONE
from tests.browser.photos import distinct_photos, rated_photo, variants

pytestmark = pytest.mark.browser


def add(paths):
    """Store and embed photos (inline, as the worker would) and return their images."""
    return [image_ingest(data=path.read_bytes(), original_name=path.name).image for path in paths]


def test_sign_in_with_the_form(anonymous):
    page = anonymous.page
    anonymous.go("/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))
    page.get_by_label("User name").fill("bea")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".notice.bad")).to_contain_text("didn't match")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(anonymous.base + "/")
    expect(page.get_by_role("heading", name="Library")).to_be_visible()
    expect(page.locator("#empty-library")).to_contain_text("No images yet")


def test_library_filters_sorting_and_pagination(session, monkeypatch):
    monkeypatch.setattr("gallery.views.GALLERY_PAGE_SIZE", 12)
    add(distinct_photos(13))
    rated = add([rated_photo()])[0]
    assert rated.rating == 3
    page = session.page
    session.go("/")
    expect(page.locator(".pagination")).to_contain_text("Page 1 of 2 · 14 images")
    expect(page.locator(".grid .card")).to_have_count(12)
    # Thumbnails carry their size, so the grid never jumps, and all of them arrive.
    first = page.locator(".grid .card img").first
    expect(first).to_have_attribute("width", re.compile(r"\d+"))
    page.wait_for_function(
        "[...document.querySelectorAll('.grid img')].every((img) => img.complete && img.naturalWidth > 0)"
    )
    session.shot("library")
    page.get_by_role("link", name=re.compile("^Next")).click()
    expect(page.locator(".pagination")).to_contain_text("Page 2 of 2")
    expect(page.locator(".grid .card")).to_have_count(2)

    page.get_by_label("Rating").select_option("3+")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator(".grid .card")).to_have_count(1)
    expect(page.locator(".grid .card .name")).to_have_text("mongolels.jpg")
    expect(page.locator(".tabs a.active")).to_have_text("All 1")
    expect(page.locator(".tabs a", has_text="Indexed")).to_have_text("Indexed 1")

    page.get_by_label("Name or camera").fill("no-such-photo")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#empty-filter")).to_contain_text("No image matches these filters")
    page.get_by_role("link", name="Show all images").click()
    expect(page.locator(".pagination")).to_contain_text("14 images")

    page.get_by_label("Sort by").select_option("rating")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator(".grid .card .name").first).to_have_text("mongolels.jpg")


def test_image_page_zoom_camera_and_duplicates_apart_from_similar(session):
    images = add(variants("g01", 3))
    page = session.page
    session.go(f"/images/{images[0].pk}/")
    expect(page.locator("#near-duplicates")).to_be_visible()
    near = page.locator('.mini-pairs[data-kind="near_duplicate"] li')
    expect(near.first).to_be_visible()
    shown = {
        int(href.split("/")[2])
        for href in near.locator("a.name").evaluate_all("(a) => a.map((x) => x.getAttribute('href'))")
    }
    assert shown <= {image.pk for image in images[1:]}  # variants of the same photo, shown with thumbnails
    expect(page.locator('.mini-pairs[data-kind="near_duplicate"] img').first).to_have_js_property("complete", True)
    page.locator("#zoom-open").click()
    zoomed = page.locator("#zoom-image")
    expect(page.locator("#zoom")).to_be_visible()
    page.wait_for_function("document.getElementById('zoom-image').naturalWidth > 0")
    assert zoomed.evaluate("img => img.naturalWidth") == images[0].width  # the original, full resolution
    zoomed.click()
    expect(page.locator("#zoom")).to_have_class(re.compile("actual"))
    page.keyboard.press("Escape")
    expect(page.locator("#zoom")).to_be_hidden()

    camera = add([rated_photo()])[0]
    session.go(f"/images/{camera.pk}/")
    expect(page.locator("#camera")).to_have_text("Canon EOS 500D")
    page.wait_for_function("document.getElementById('preview').naturalWidth > 0")
    session.shot("image")


def test_missing_page_is_styled_and_every_page_has_a_favicon(session):
    session.problems.expect(r"/images/999999/$", 404)
    page = session.page
    response = session.go("/images/999999/")
    assert response.status == 404
    expect(page.locator("#error-404")).to_contain_text("Page not found")
    page.get_by_role("link", name="Go to the library").click()
    expect(page.get_by_role("heading", name="Library")).to_be_visible()
    icon = page.locator('link[rel="icon"]').get_attribute("href")
    assert page.request.get(session.base + icon).status == 200


def test_stars_contrast_and_focus_ring(session):
    add([rated_photo()])
    page = session.page
    session.go("/")
    ratio = page.evaluate(
        """() => {
          const channel = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
          const luminance = (rgb) => { const [r, g, b] = rgb.match(/\\d+/g).map(Number);
            return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b); };
          const stars = document.querySelector('.stars');
          const fg = luminance(getComputedStyle(stars).color);
          const bg = luminance(getComputedStyle(stars.closest('.card')).backgroundColor);
          return (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
        }"""
    )
    assert ratio >= 4.5
    page.keyboard.press("Tab")
    outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineWidth")
    assert float(outline.rstrip("px")) >= 2


def test_phone_layout_of_the_main_pages(session):
    images = add(distinct_photos(3))
    page = session.page
    page.set_viewport_size(PHONE)
    for path, name in [
        ("/", "library"),
        ("/upload/", "upload"),
        ("/search/", "search"),
        (f"/images/{images[0].pk}/", "image"),
        ("/duplicates/calibration/", "calibration"),
    ]:
        session.go(path)
        header = page.locator("header.top").bounding_box()
        assert header["height"] <= 110, f"{path}: the nav takes {header['height']} px"
        overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} scrolls sideways by {overflow} px"
        session.shot(f"phone-{name}", full_page=True)
    session.go("/upload/")
    expect(page.locator("#dropzone-title .phone-only")).to_have_text("Choose photos")
    expect(page.locator("#dropzone-title .phone-only")).to_be_visible()
    expect(page.locator("#dropzone-title .desktop-only")).to_be_hidden()


def test_phone_menu_shows_every_item_with_room_for_one_more(session):
    page = session.page
    page.set_viewport_size(PHONE)
    session.go("/")
    items = page.locator("header.top nav a")
    assert items.all_inner_texts() == ["Library", "Upload", "Search", "Duplicates", "Trash", "Sources", "Admin", "API"]
    page.evaluate(  # one more item, as long as the longest, still fits
        """() => { const nav = document.querySelector('header.top nav'); const extra = nav.lastElementChild.cloneNode();
                   extra.textContent = 'Duplicates'; nav.append(extra); }"""
    )
    for item in items.all():
        expect(item).to_be_visible()
        box = item.bounding_box()
        assert 0 <= box["x"] < box["x"] + box["width"] <= PHONE["width"], f"{item.inner_text()} is cut: {box}"
    assert page.locator("header.top").bounding_box()["height"] <= 110
    session.shot("phone-menu")


def test_worker_banner_shows_commands_as_code_also_after_it_refreshes(session, monkeypatch):
    monkeypatch.setattr(Conf, "SYNC", False)  # tasks go to a worker, and none has been seen: the banner shows
    page = session.page
    page.clock.install()
    session.go("/")
    action = page.locator('#worker-health [data-health="action"]')
    expect(action.locator("code").first).to_have_text("python manage.py qcluster")
    action.evaluate("(element) => { element.textContent = ''; }")
    with page.expect_response("**/api/health/"):
        page.clock.run_for(16_000)  # the banner asks the API again every 15 s
    expect(action.locator("code").first).to_have_text("python manage.py qcluster")
    assert "`" not in action.inner_text()
    session.shot("worker-banner")
