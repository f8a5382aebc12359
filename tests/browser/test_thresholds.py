"""Applying a calibration's thresholds with the mouse (confirmation old -> new), seeing them on the review page
with their origin, and undoing them; on a desktop and a phone-sized window."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from duplicates.services import calibration as calibration_services
from pipeline.services import image_ingest
from search.models import ThresholdSetting
from tests.browser.conftest import PHONE
from tests.browser.photos import distinct_photos, variants

pytestmark = pytest.mark.browser


def add(paths):
    return [image_ingest(data=path.read_bytes(), original_name=path.name).image for path in paths]


def test_apply_thresholds_after_confirming_see_them_on_the_review_page_and_undo(session):
    add([*variants("g07", 3), *distinct_photos(10)])
    run = calibration_services.calibration_run_create(sample_size=10, target_precision=0.99, schedule=False)
    run = calibration_services.calibration_run_execute(run=run)
    page = session.page
    session.go("/duplicates/calibration/")
    expect(page.locator("#thresholds-in-force")).to_contain_text("measured default for mobilenet_v2")
    session.shot("thresholds-calibration", full_page=True)
    page.get_by_role("button", name="Apply these thresholds…").click()
    expect(page.locator("#thresholds-confirm")).to_be_visible()
    expect(page.locator("#old-near")).to_have_text("0.880")
    expect(page.locator("#new-near")).to_have_text(f"{run.suggested_near_duplicate:.3f}")
    session.shot("thresholds-confirm")
    page.set_viewport_size(PHONE)
    session.shot("thresholds-confirm")
    page.set_viewport_size({"width": 1440, "height": 900})
    assert not ThresholdSetting.objects.exists()
    page.get_by_role("button", name="Apply", exact=True).click()
    expect(page.locator("#thresholds-in-force")).to_contain_text(re.compile(r"calibrated on this library on .* by bea"))
    expect(page.locator("#threshold-history")).to_contain_text("(in force)")
    session.shot("thresholds-applied", full_page=True)
    session.go("/duplicates/")
    expect(page.locator("#threshold-near")).to_have_text(f"{run.suggested_near_duplicate:.3f}")
    session.shot("thresholds-review")
    page.set_viewport_size(PHONE)
    session.shot("thresholds-review", full_page=True)
    page.set_viewport_size({"width": 1440, "height": 900})
    session.go("/duplicates/calibration/")
    page.get_by_role("button", name="Undo these thresholds").click()
    expect(page.locator("#thresholds-in-force")).to_contain_text("measured default for mobilenet_v2")
    assert ThresholdSetting.objects.get().undone_at is not None
