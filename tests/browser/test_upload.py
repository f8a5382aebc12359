"""The upload page in a real browser: many files by the file input and by a dropped DataTransfer, with bad
files among them; each row's live outcome, then its embedding status until "indexed"."""

from __future__ import annotations

import base64
import contextlib
import io
import re

import pytest
from PIL import Image as PILImage
from playwright.sync_api import expect

from gallery.models import Image
from tests.browser.photos import distinct_photos, variants

pytestmark = pytest.mark.browser


def grey_png() -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (400, 300), (128, 128, 128)).save(buffer, "PNG")
    return buffer.getvalue()


def batch():
    """(name, mime type, bytes, what the row must say) in the order the user gives them."""
    photos = distinct_photos(4)
    first = photos[0].read_bytes()
    return [
        (photos[0].name, "image/jpeg", first, "indexed"),
        (photos[1].name, "image/jpeg", photos[1].read_bytes(), "indexed"),
        ("cut-short.jpg", "image/jpeg", photos[2].read_bytes()[:6000], "refused"),
        ("grey.png", "image/png", grey_png(), "rejected: solid colour"),
        ("again.jpg", "image/jpeg", first, "already in library"),
        ("drawing.jpg", "image/jpeg", b'<svg xmlns="http://www.w3.org/2000/svg"></svg>', "refused"),
        (photos[3].name, "image/jpeg", photos[3].read_bytes(), "indexed"),
    ]


def expect_refusals(session):
    session.problems.expect(r"/api/images/$", 400)
    session.problems.expect(r"/api/images/$", 415)


def check_rows(page, files):
    rows = page.locator("#uploads li")
    expect(rows).to_have_count(len(files))
    for index, (name, _, _, outcome) in enumerate(files):
        row = rows.nth(index)
        expect(row.locator(".file-name")).to_have_text(name)  # the order the files were given
        expect(row.locator(".badge")).to_have_text(outcome, timeout=60_000)


def test_upload_many_files_with_the_file_input(session):
    expect_refusals(session)
    files = batch()
    page = session.page
    session.go("/upload/")
    page.locator("#id_files").set_input_files(
        [{"name": name, "mimeType": mime, "buffer": data} for name, mime, data, _ in files]
    )
    check_rows(page, files)
    rows = page.locator("#uploads li")
    expect(rows.nth(4).locator(".note")).to_have_text(re.compile(r"^Already in the library as #\d+\.$"))
    first_id = Image.objects.get(original_name=files[0][0]).pk
    expect(rows.nth(4).locator(".note a")).to_have_attribute("href", re.compile(rf"/images/{first_id}/$"))
    truncated = rows.nth(2)
    expect(truncated.locator(".note")).to_contain_text("damaged or incomplete")
    expect(truncated.locator(".note")).not_to_contain_text("truncated (")  # no raw decoder text
    expect(truncated.locator("img")).not_to_have_attribute("src", re.compile("."))  # no partial preview
    expect(truncated.locator("img")).to_be_hidden()
    expect(truncated.locator(".no-preview")).to_be_visible()
    expect(truncated.get_by_role("button")).to_be_hidden()  # a refused file is not worth retrying
    expect(page.locator("#uploads button:visible")).to_have_count(0)  # all done: nothing to cancel or retry
    expect(page.locator("#retry-all")).to_be_hidden()
    expect(page.locator("#cancel-all")).to_be_hidden()
    expect(rows.nth(0).locator(".note")).to_contain_text("Indexed and searchable")
    expect(page.locator("#summary")).to_have_text(
        "7 of 7 done · 3 stored (3 indexed) · 1 already in the library · 1 rejected for quality · 2 refused"
    )
    assert page.locator("#overall").evaluate("bar => bar.value === bar.max")
    session.shot("upload")

    page.get_by_label("Problems only").check()
    expect(page.locator("#uploads li:visible")).to_have_count(3)  # truncated, grey, svg
    page.get_by_label("Problems only").uncheck()
    expect(page.locator("#uploads li:visible")).to_have_count(7)

    assert Image.objects.count() == 4  # three photos and the grey one (kept, rejected); nothing else stored
    assert Image.objects.filter(status=Image.Status.INDEXED).count() == 3


def test_upload_by_drop_shows_the_hover_and_keeps_the_drop_order(session):
    expect_refusals(session)
    files = [
        *((path.name, "image/jpeg", path.read_bytes(), "indexed") for path in variants("g03", 2)),
        ("empty.jpg", "image/jpeg", b"", "refused"),
        *((path.name, "image/jpeg", path.read_bytes(), "indexed") for path in distinct_photos(7)[5:7]),
    ]
    page = session.page
    session.go("/upload/")
    zone = page.locator("#dropzone")
    payload = [{"name": name, "type": mime, "data": base64.b64encode(data).decode()} for name, mime, data, _ in files]
    page.evaluate(
        """(files) => {
          window.testDrop = new DataTransfer();
          for (const f of files) {
            const bytes = Uint8Array.from(atob(f.data), (c) => c.charCodeAt(0));
            window.testDrop.items.add(new File([bytes], f.name, {type: f.type}));
          }
          const zone = document.getElementById("dropzone");
          const init = {dataTransfer: window.testDrop, bubbles: true, cancelable: true};
          zone.dispatchEvent(new DragEvent("dragenter", init));
          zone.dispatchEvent(new DragEvent("dragover", init));
        }""",
        payload,
    )
    expect(zone).to_have_class(re.compile(r"\bover\b"))
    expect(page.locator("#dropzone-title")).to_have_text("Release to upload")
    # A clearly visible hover: a 3 px accent border (reached after the zone's short CSS transition).
    page.wait_for_function("() => getComputedStyle(document.getElementById('dropzone')).borderTopWidth === '3px'")
    session.shot("upload-drag-hover")
    page.evaluate(
        """() => document.getElementById("dropzone").dispatchEvent(
             new DragEvent("drop", {dataTransfer: window.testDrop, bubbles: true, cancelable: true}))"""
    )
    expect(zone).not_to_have_class(re.compile(r"\bover\b"))
    check_rows(page, files)
    expect(page.locator("#uploads li").nth(2).locator(".note")).to_have_text(
        "This file is empty (0 bytes). Nothing was stored."
    )
    assert Image.objects.filter(status=Image.Status.INDEXED).count() == 4


def test_drop_zone_is_reachable_by_keyboard(session):
    page = session.page
    choosers = []
    page.on("filechooser", lambda chooser: choosers.append(chooser))  # intercepts the native dialog from now on
    session.go("/upload/")
    for _ in range(12):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.id") == "id_files":
            break
    assert page.evaluate("() => document.activeElement.id") == "id_files"
    outline = page.locator("#dropzone").evaluate("z => getComputedStyle(z).outlineStyle")
    assert outline == "solid"  # the whole zone shows the focus
    page.keyboard.press("Enter")
    for _ in range(200):  # the event is delivered while Playwright waits
        if choosers:
            break
        page.wait_for_timeout(50)
    assert choosers, "Enter on the focused drop zone did not open the file chooser"
    photo = distinct_photos(1)[0]
    choosers[0].set_files([{"name": "one.jpg", "mimeType": "image/jpeg", "buffer": photo.read_bytes()}])
    expect(page.locator("#uploads li .badge")).to_have_text("indexed", timeout=60_000)


def test_cancel_running_and_waiting_uploads_then_retry(session):
    photos = distinct_photos(5)
    page = session.page
    held = []
    # Hold the first two uploads at the network layer, so the test decides what is running and waiting.
    page.route(
        "**/api/images/", lambda route: held.append(route) if route.request.method == "POST" else route.continue_()
    )
    session.go("/upload/")
    page.locator("#id_files").set_input_files(
        [{"name": p.name, "mimeType": "image/jpeg", "buffer": p.read_bytes()} for p in photos]
    )
    rows = page.locator("#uploads li")
    expect(rows.nth(0).locator(".badge")).to_have_text("uploading")
    expect(rows.nth(4).locator(".badge")).to_have_text("waiting")
    expect(page.locator("#cancel-all")).to_be_visible()
    session.problems.expect_aborted(r"/api/images/$")
    rows.nth(0).get_by_role("button", name="Cancel").click()  # running: the request is aborted
    rows.nth(4).get_by_role("button", name="Cancel").click()  # waiting: never sent
    for index in (0, 4):
        expect(rows.nth(index).locator(".badge")).to_have_text("cancelled")
        expect(rows.nth(index).get_by_role("button", name="Retry")).to_be_visible()
    # Held: the cancelled one, the second, and the third (started in the slot the cancelled one freed).
    expect(rows.nth(2).locator(".badge")).to_have_text("uploading")
    for _ in range(200):  # the route handler runs while Playwright waits
        if len(held) == 3:
            break
        page.wait_for_timeout(50)
    assert len(held) == 3
    expect(rows.nth(3).locator(".badge")).to_have_text("waiting")
    for route in held:
        with contextlib.suppress(Exception):  # the aborted one has nothing left to continue
            route.continue_()
    page.unroute("**/api/images/")
    for index in (1, 2, 3):
        expect(rows.nth(index).locator(".badge")).to_have_text("indexed", timeout=60_000)
    expect(page.locator("#summary")).to_contain_text("2 cancelled")
    page.get_by_role("button", name="Retry failed uploads").click()
    for index in range(5):
        expect(rows.nth(index).locator(".badge")).to_have_text("indexed", timeout=60_000)
    assert Image.objects.filter(status=Image.Status.INDEXED).count() == 5
