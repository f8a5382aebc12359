"""Search by upload and "Find similar", one duplicate decision with the mouse, calibration to its plot."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from duplicates.models import CalibrationRun, DuplicatePair
from duplicates.services import calibration as calibration_services
from pipeline.services import image_ingest
from tests.browser.conftest import PHONE
from tests.browser.photos import distinct_photos, variants

pytestmark = pytest.mark.browser


def add(paths):
    return [image_ingest(data=path.read_bytes(), original_name=path.name).image for path in paths]


def test_search_by_upload_keeps_the_file_and_shows_the_query(session):
    same = variants("g04", 4)
    add([*same[1:], *distinct_photos(5)])
    page = session.page
    session.go("/search/")
    page.get_by_label("Query image").set_input_files(str(same[0]))
    page.get_by_label("Results").fill("3")
    button = page.locator("#search-button")
    # While the request runs the button is disabled with a spinner (held at the network layer meanwhile).
    held = []
    page.route("**/search/", lambda route: held.append(route) if route.request.method == "POST" else route.continue_())
    button.click()
    expect(button).to_be_disabled()
    expect(button.locator(".spinner")).to_be_visible()
    expect(button).to_have_text(re.compile("Searching"))
    for _ in range(200):
        if held:
            break
        page.wait_for_timeout(50)
    held[0].continue_()
    page.unroute("**/search/")
    expect(page.locator("#results .card:not(.query-card)")).to_have_count(3, timeout=60_000)
    expect(button).to_be_enabled()
    expect(page.locator("#query-photo img")).to_have_js_property("complete", True)
    expect(page.locator("#query-photo")).to_contain_text(same[0].name)
    expect(page.locator("#results .badge.result-label.same_photo")).to_have_count(3)  # the three other variants
    expect(page.locator("#search-summary")).to_have_text("3 results are the same photo.")
    session.shot("search")
    # The chosen file is still chosen: ask for more results without choosing it again.
    assert page.get_by_label("Query image").evaluate("input => input.files.length") == 1
    page.get_by_label("Results").fill("6")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#results .card:not(.query-card)")).to_have_count(6, timeout=60_000)
    unrelated = page.locator("#results .card:not(.query-card)").nth(5)
    expect(unrelated.locator(".badge.result-label")).to_have_text(re.compile("^(looks alike|weak)$"))

    session.problems.expect(r"/search/$", 415)
    page.get_by_label("Query image").set_input_files(
        files=[{"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": b"<svg></svg>"}]
    )
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#search-errors")).to_contain_text("not a photo")


def test_search_results_say_what_each_score_means(session):
    """An unrelated photo: told plainly that nothing is the same photo or scene, the nearest results still
    labelled, the legend beside them; on a desktop and on a phone."""
    photos = distinct_photos(13)
    add(photos[1:])
    page = session.page
    session.go("/search/")
    page.get_by_label("Query image").set_input_files(str(photos[0]))
    page.get_by_role("button", name="Search").click()
    summary = page.locator("#search-summary")
    expect(summary).to_contain_text("No real match. No photo in the library is the same photo or scene", timeout=60_000)
    cards = page.locator("#results .card:not(.query-card)")
    expect(cards).to_have_count(10)
    expect(cards.locator(".badge.result-label")).to_have_count(10)
    expect(
        page.locator("#results .badge.result-label.same_photo, #results .badge.result-label.same_scene")
    ).to_have_count(0)
    legend = page.locator("#label-legend")
    expect(legend).to_contain_text("same scene")
    expect(legend).to_contain_text("another exposure or frame of a burst")
    session.shot("search-no-match", full_page=True)
    page.set_viewport_size(PHONE)
    expect(legend).to_be_visible()
    session.shot("search-no-match", full_page=True)


def test_find_similar_from_the_image_page(session):
    same = add(variants("g05", 3))
    add(distinct_photos(3))
    page = session.page
    session.go(f"/images/{same[0].pk}/")
    page.get_by_role("link", name="Find similar").click()
    expect(page).to_have_url(re.compile(rf"/images/{same[0].pk}/similar/"))
    expect(page.locator("#results .card")).to_have_count(5)
    first = page.locator("#results .card").first
    expect(first).to_have_attribute("href", re.compile(rf"/images/({same[1].pk}|{same[2].pk})/$"))
    page.get_by_label("Results").fill("2")
    page.get_by_role("button", name="Update").click()
    expect(page.locator("#results .card")).to_have_count(2)
    session.shot("similar")


def test_duplicate_review_one_decision_with_the_mouse(session):
    add(variants("g06", 2))
    add(distinct_photos(2))
    pair = DuplicatePair.objects.get(kind="near_duplicate")
    page = session.page
    session.go("/duplicates/pairs/")  # the pair page; /duplicates/ reviews groups
    card = page.locator(f"#pair-{pair.pk}")
    expect(card).to_be_visible()
    expect(card.locator("img").first).to_have_js_property("complete", True)
    session.shot("duplicates")
    card.get_by_role("button", name="Confirm duplicate").click()
    expect(page.locator(".messages")).to_be_visible()
    pair.refresh_from_db()
    assert pair.review_status == "confirmed"


def test_calibration_runs_and_the_page_refreshes_itself_when_done(session):
    add([*variants("g07", 2), *distinct_photos(10)])
    page = session.page
    session.go("/duplicates/calibration/")
    page.get_by_label("Sample size").fill("10")
    page.get_by_role("button", name="Run calibration").click()  # runs inline here (sync tasks)
    expect(page.locator(".calibration-plot")).to_be_visible(timeout=120_000)
    page.wait_for_function("document.querySelector('.calibration-plot').naturalWidth > 0")
    expect(page.locator("#calibration-sample")).to_contain_text("Sampled 10 of the 12 embedded images")
    session.shot("calibration", full_page=True)

    # A run queued for a worker: the open page notices when it finishes and shows the new result.
    run = calibration_services.calibration_run_create(sample_size=12, target_precision=0.99, schedule=False)
    session.go("/duplicates/calibration/")
    expect(page.locator("#calibration-progress")).to_be_visible()
    calibration_services.calibration_run_execute(run=CalibrationRun.objects.get(pk=run.pk))
    expect(page.locator("#calibration-progress")).to_be_hidden(timeout=30_000)
    expect(page.get_by_role("heading", name=re.compile(rf"^Run #{run.pk}:"))).to_be_visible()
    expect(page.locator("#calibration-sample")).to_contain_text("Sampled all 12 embedded images")
