"""The review pages on a phone (375 px wide) and a desktop (1280): the thresholds confirmation (old -> new),
the group review, the pair list and the 403 page a non-staff user gets fit the width (no sideways scrolling
of the page or of a table) and their texts do not overlap. IMGSIM_SCREENSHOT_DIR=/some/dir keeps a PNG of
each."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import Page, expect

from duplicates.models import DuplicatePair
from duplicates.services import calibration as calibration_services
from duplicates.services.groups import duplicate_groups_refresh
from pipeline.services import image_ingest
from tests.browser.conftest import PASSWORD, _sign_in
from tests.browser.photos import distinct_photos, variants

pytestmark = pytest.mark.browser

PHONE_375 = {"width": 375, "height": 812}
DESKTOP_1280 = {"width": 1280, "height": 800}

# Every element whose content is wider than its box and that can scroll it sideways (a table in a
# scroller, a long word in an overflow:auto box), and the page itself.
SIDEWAYS = """() => {
  const found = [];
  if (document.documentElement.scrollWidth > window.innerWidth) found.push('page');
  for (const el of document.querySelectorAll('main *')) {
    const style = getComputedStyle(el);
    if (['auto', 'scroll'].includes(style.overflowX) && el.scrollWidth > el.clientWidth + 1)
      found.push(el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + '.' + el.className);
  }
  return found;
}"""

# Pairs of text-bearing elements in the same row that overlap each other on screen.
OVERLAPS = """(selector) => {
  const boxes = [...document.querySelectorAll(selector)].filter(el => el.offsetParent !== null)
    .map(el => [el, el.getBoundingClientRect()]);
  const found = [];
  for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
    const [a, ra] = boxes[i], [b, rb] = boxes[j];
    if (a.contains(b) || b.contains(a)) continue;
    const x = Math.min(ra.right, rb.right) - Math.max(ra.left, rb.left);
    const y = Math.min(ra.bottom, rb.bottom) - Math.max(ra.top, rb.top);
    if (x > 1 && y > 1) found.push(a.textContent.trim().slice(0, 30) + ' / ' + b.textContent.trim().slice(0, 30));
  }
  return found;
}"""


# Badges cut across two lines (an inline pill whose text wraps breaks into two half-pills).
SPLIT_BADGES = """() => [...document.querySelectorAll('main .badge')]
  .filter(el => el.offsetParent !== null && el.getClientRects().length > 1)
  .map(el => el.textContent.trim())"""


def add(paths):
    return [image_ingest(data=path.read_bytes(), original_name=path.name).image for path in paths]


def fits(page: Page, what: str) -> None:
    sideways = page.evaluate(SIDEWAYS)
    assert not sideways, f"{what} at {page.viewport_size['width']} px scrolls sideways: {sideways}"


def test_thresholds_confirmation_fits_a_phone(session):
    add([*variants("g07", 3), *distinct_photos(10)])
    run = calibration_services.calibration_run_create(sample_size=10, target_precision=0.99, schedule=False)
    run = calibration_services.calibration_run_execute(run=run)
    page = session.page
    page.set_viewport_size(PHONE_375)
    session.go("/duplicates/calibration/")
    session.shot("calibration", full_page=True)
    page.set_viewport_size(DESKTOP_1280)
    page.get_by_role("button", name="Apply these thresholds…").click()
    expect(page.locator("#thresholds-confirm")).to_be_visible()
    session.shot("thresholds-confirm", full_page=True)
    fits(page, "the confirmation")
    page.set_viewport_size(PHONE_375)
    session.shot("thresholds-confirm", full_page=True)
    fits(page, "the confirmation")
    for row in page.locator("#thresholds-confirm tbody tr").all():
        assert page.evaluate(OVERLAPS, "#thresholds-confirm tbody td") == []
        expect(row).to_be_visible()
    expect(page.locator("#old-near")).to_be_in_viewport()
    expect(page.locator("#new-near")).to_be_in_viewport()
    expect(page.locator("#new-near")).to_have_text(f"{run.suggested_near_duplicate:.3f}")


def test_group_review_and_pair_list_fit_a_phone(session):
    ids = [image.pk for image in add([*variants("g02", 3), *variants("g05", 2), *distinct_photos(1)])]
    duplicate_groups_refresh(image_ids=ids)
    assert DuplicatePair.objects.filter(kind="near_duplicate").exists()
    page = session.page
    for viewport in (DESKTOP_1280, PHONE_375):
        page.set_viewport_size(viewport)
        for path, name, texts in [
            (
                "/duplicates/",
                "group-review",
                "article.group h2, article.group .badge, article.group .muted, "
                "article.group button, article.group label, article.group a",
            ),
            ("/duplicates/pairs/", "pair-list", ".pair-head > *, .pair-actions > *, .evidence > *"),
        ]:
            session.go(path)
            page.wait_for_load_state("networkidle")
            session.shot(name)  # what the reviewer sees first (the page scrolls to the first card)
            session.shot(f"{name}-full", full_page=True)
            fits(page, path)
            assert page.evaluate(OVERLAPS, texts) == [], path
            assert page.evaluate(SPLIT_BADGES) == [], path


def test_a_non_staff_user_gets_the_403_page_and_a_way_back(session, browser_context, live_server):
    ana = get_user_model().objects.create_user(username="ana", password=PASSWORD)
    _sign_in(browser_context, live_server, ana)
    session.problems.expect(r"/duplicates/$", 403)
    page = session.page
    page.set_viewport_size(PHONE_375)
    response = session.go("/duplicates/")
    assert response is not None
    assert response.status == 403
    expect(page.locator("#error-403 h1")).to_have_text("Staff access is needed")
    expect(page.locator("#error-403")).to_contain_text("signed in as ana")
    fits(page, "the 403 page")
    session.shot("forbidden")
    page.get_by_role("link", name="Go to the library").click()
    expect(page.get_by_role("heading", name="Library")).to_be_visible()
