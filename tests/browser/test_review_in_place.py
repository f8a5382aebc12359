"""The review page continues in place (live server, real made photos, fails on console errors and axe
violations): deciding a card with the keyboard brings in the next pending group without a page load (the
page's frame never navigates), undo re-renders the card ready to decide again, `n` loads the next batch, a
refused decision shows the group as it stands, and the detection backlog line updates while the page is
open and says so when detection is done."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from duplicates.models import DetectionCheck, DuplicateGroup
from duplicates.selectors import detection as detection_selectors
from duplicates.selectors.detection import detection_settings_key
from duplicates.services.group_review import GroupAction, duplicate_group_resolve
from duplicates.views import groups as group_views
from tests.browser.conftest import PHONE
from tests.duplicates.conftest import make_groups
from tests.search.test_library_view import synthetic_library


def count_navigations(page: Page) -> list[str]:
    """The URLs the page's main frame navigates to from now on (a reload or a form post would be one)."""
    seen: list[str] = []
    page.on("framenavigated", lambda frame: seen.append(frame.url) if frame == page.main_frame else None)
    return seen


@pytest.fixture(autouse=True)
def _backlog_counted_each_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(detection_selectors, "BACKLOG_CACHE_SECONDS", 0)


def pending_order() -> list[int]:
    pending = DuplicateGroup.objects.filter(kind="near_duplicate", status="pending")
    return list(pending.order_by("-size", "-max_similarity", "id").values_list("id", flat=True))


def test_decide_undo_and_load_the_next_groups_without_a_page_load(session, monkeypatch):
    monkeypatch.setattr(group_views, "GROUPS_PER_PAGE", 3)
    make_groups([3, 3, 2, 2, 2, 2], seed=21)
    order = pending_order()
    page = session.page
    session.go("/duplicates/")
    expect(page.locator("article.group")).to_have_count(3)
    expect(page.locator("#groups-remaining")).to_have_text("3 more groups after these")
    page.wait_for_function(f"document.activeElement.id === 'group-{order[0]}'")
    page.evaluate("window.sameDocument = true")
    navigations = count_navigations(page)

    page.keyboard.press("a")  # keep all: the card is decided, the next group comes in below
    expect(page.locator(f"#group-{order[0]}")).to_have_attribute("data-status", "resolved")
    page.wait_for_function(f"document.activeElement.id === 'group-{order[1]}'")
    expect(page.locator(f"#group-{order[3]}")).to_have_attribute("data-status", "pending")
    expect(page.locator("article.group[data-status=pending]")).to_have_count(3)
    expect(page.locator("#groups-remaining")).to_have_text("2 more groups after these")

    page.keyboard.press("k")
    page.keyboard.press("u")  # undo: the card is rendered again by the server, pending, with its actions
    card = page.locator(f"#group-{order[0]}")
    expect(card).to_have_attribute("data-status", "pending")
    expect(card.locator(".group-actions")).to_be_visible()
    expect(page.locator("#review-status")).to_have_text(f"Group #{order[0]}: undone, decide again.")
    page.wait_for_function(f"document.activeElement.id === 'group-{order[0]}'")
    page.keyboard.press("Enter")  # ... and decided again: the suggestion this time
    expect(card).to_have_attribute("data-status", "resolved")
    assert DuplicateGroup.objects.get(pk=order[0]).status == "resolved"

    page.keyboard.press("n")  # the next batch: the two groups left, the first of them focused
    expect(page.locator("article.group")).to_have_count(6)
    page.wait_for_function(f"document.activeElement.id === 'group-{order[4]}'")
    expect(page.locator("#review-status")).to_have_text("Loaded 2 more groups.")
    expect(page.locator("[data-next-groups]")).to_be_hidden()
    assert [
        int(pk) for pk in page.locator("article.group").evaluate_all("cards => cards.map(c => c.dataset.group)")
    ] == order
    assert page.evaluate("window.sameDocument") is True
    assert navigations == []
    session.shot("group-review-in-place")

    # Decided by a colleague meanwhile: the refused decision (409) shows the card as it stands now.
    duplicate_group_resolve(group=DuplicateGroup.objects.get(pk=order[5]), action=GroupAction.STACK, user=session.user)
    session.problems.expect(rf"/api/duplicate-groups/{order[5]}/resolve/$", 409)
    page.keyboard.press("j")
    page.keyboard.press("a")
    stacked = page.locator(f"#group-{order[5]}")
    expect(stacked).to_have_attribute("data-status", "stacked")
    expect(stacked.locator(".group-status")).to_contain_text("This is the group as it stands now.")
    assert navigations == []


def test_detection_backlog_updates_while_the_page_is_open(session, monkeypatch):
    monkeypatch.setattr(group_views, "DETECTION_POLL_MS", 300)
    make_groups([3, 2], seed=22)
    waiting = sorted(synthetic_library(1180 + 40, seed=23))
    key, now = detection_settings_key(), timezone.now()
    DetectionCheck.objects.bulk_create(  # 40 checked in the last two minutes: 20 a minute
        DetectionCheck(image_id=pk, settings_key=key, checked_at=now - timedelta(seconds=120 - 3 * n))
        for n, pk in enumerate(waiting[:40])
    )
    page = session.page
    session.go("/duplicates/")
    line = page.locator("#detection-progress")
    expect(line).to_contain_text("Still checking 1,180 photos for duplicates, about an hour left.")
    page.evaluate("window.sameDocument = true")
    session.shot("group-review-progress")
    page.set_viewport_size(PHONE)
    session.shot("group-review-progress", full_page=True)

    DetectionCheck.objects.bulk_create(
        DetectionCheck(image_id=pk, settings_key=key, checked_at=timezone.now()) for pk in waiting[40:]
    )
    expect(line).to_have_text("Every photo has been checked for duplicates.")
    expect(page.locator("#review-status")).to_have_text("Duplicate detection has checked every photo.")
    assert page.evaluate("window.sameDocument") is True


def test_an_empty_page_fills_in_as_detection_finds_groups(session, monkeypatch):
    monkeypatch.setattr(group_views, "DETECTION_POLL_MS", 300)
    waiting = sorted(synthetic_library(3, seed=24))
    page = session.page
    session.go("/duplicates/")
    navigations = count_navigations(page)
    expect(page.locator("#no-groups")).to_contain_text("No pending groups yet: duplicate detection is still")
    expect(page.locator("#detection-progress")).to_have_text(
        "Still checking 3 photos for duplicates. New groups appear here as they are found."
    )
    (group,) = make_groups([2], seed=25)  # found meanwhile
    expect(page.locator(f"#group-{group.pk}")).to_be_visible()
    expect(page.locator("#no-groups")).to_have_count(0)
    key = detection_settings_key()
    DetectionCheck.objects.bulk_create(
        DetectionCheck(image_id=pk, settings_key=key, checked_at=timezone.now()) for pk in waiting
    )
    expect(page.locator("#detection-progress")).to_have_text("Every photo has been checked for duplicates.")
    page.keyboard.press("a")
    expect(page.locator("#no-groups")).to_have_text("Every group on this list is decided.")
    assert navigations == []
