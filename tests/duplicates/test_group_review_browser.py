"""The group review page in a real browser (Playwright + Debian's chromium) against a live server with real
photos: the card fits 1440x900, the keyboard decides and undoes without reloading, no console errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from duplicates.groups import duplicate_groups_refresh
from duplicates.models import DuplicateGroup
from gallery.models import Image
from pipeline.services import image_ingest
from tests.duplicates.conftest import distractor_files, group_files

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.ml]


@pytest.fixture
def browser_page(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, list[str]]]:
    """A 1440x900 page that records console errors, page errors and failed requests."""
    # Playwright's sync API runs an event loop in this thread; the test's own ORM checks are synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium) for browser tests")
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.route("**/favicon.ico", lambda route: route.fulfill(status=204))
        page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on("requestfailed", lambda request: problems.append(f"failed: {request.url}"))
        page.on(
            "response",
            lambda response: problems.append(f"{response.status} {response.url}") if response.status >= 400 else None,
        )
        yield page, problems
        browser.close()


def test_review_groups_with_the_keyboard_without_reloading(live_server, browser_page, settings):
    settings.IMGSIM_TASKS_SYNC = True
    ids = {}
    for label, paths in {"g02": group_files("g02", 3), "g05": group_files("g05", 2), "d": distractor_files(1)}.items():
        for path in paths:
            ids[image_ingest(data=path.read_bytes(), original_name=path.name).image.pk] = label
    assert Image.objects.filter(status=Image.Status.INDEXED).count() == len(ids)
    duplicate_groups_refresh(image_ids=list(ids))
    first, second = DuplicateGroup.objects.filter(kind="near_duplicate").order_by("-size", "-max_similarity", "id")
    get_user_model().objects.create_user(username="rev", password="rev-pass-12345", is_staff=True)
    page, problems = browser_page

    page.goto(f"{live_server.url}/accounts/login/?next=/duplicates/")
    page.fill("input[name=username]", "rev")
    page.fill("input[name=password]", "rev-pass-12345")
    page.locator("form [type=submit]").click()
    page.wait_for_url("**/duplicates/")
    card = page.locator(f"#group-{first.pk}")
    assert page.locator("article.group").count() == 2
    actions = card.locator(".group-actions").bounding_box()
    assert actions["y"] + actions["height"] <= 900  # the card and its actions fit the screen
    page.wait_for_function(f"document.activeElement.id === 'group-{first.pk}'")
    assert card.locator("input[name=keep]:checked").count() == 1  # the suggestion, pre-selected
    page.evaluate("window.notReloaded = true")

    unticked = card.locator("input[name=keep]").evaluate_all("boxes => boxes.findIndex(box => !box.checked)")
    page.keyboard.press(str(unticked + 1))  # keep a second copy too
    assert card.locator("input[name=keep]:checked").count() == 2
    page.keyboard.press("Enter")
    page.wait_for_function(f"document.querySelector('#group-{first.pk}').dataset.status === 'resolved'")
    assert "moved 1 to the trash" in card.locator(".group-status").inner_text()
    assert Image.objects.trashed().count() == 1
    page.wait_for_function(f"document.activeElement.id === 'group-{second.pk}'")  # the next pending group
    assert page.evaluate("window.notReloaded") is True

    page.keyboard.press("k")
    page.keyboard.press("u")
    page.wait_for_function(f"document.querySelector('#group-{first.pk}').dataset.status === 'pending'")
    assert not Image.objects.trashed().exists()
    page.keyboard.press("j")
    page.keyboard.press("a")  # keep all: not duplicates
    page.wait_for_function(f"document.querySelector('#group-{second.pk}').dataset.status === 'resolved'")
    second.refresh_from_db()
    assert second.status == "resolved"
    page.keyboard.press("?")
    assert page.evaluate("document.getElementById('shortcuts').open") is True
    assert page.evaluate("window.notReloaded") is True
    assert problems == []
