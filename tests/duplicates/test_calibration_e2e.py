"""Calibrating the thresholds on the library: the command, the staff page, the admin."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from duplicates.models import CalibrationRun
from tests.duplicates.conftest import distractor_files, group_files

pytestmark = [pytest.mark.django_db, pytest.mark.ml]


@pytest.fixture
def small_library(ingest):
    return ingest({"g02": group_files("g02", 3), "d": distractor_files(9)})


def test_calibrate_command_reports_precision_recall_suggestion_and_plot(small_library, tmp_path):
    out = StringIO()
    plot = tmp_path / "calibration.png"
    call_command("calibrate_duplicates", "--sample", "8", "--plot", str(plot), stdout=out)
    text = out.getvalue()
    run = CalibrationRun.objects.get()
    assert run.status == "done"
    assert run.result["sampled"] == 8
    assert run.result["positives"] == 8 * 7
    assert run.result["pool_size"] == 12
    assert "threshold  precision   recall" in text
    assert "resize_50" in text
    assert "mirror" in text
    assert plot.read_bytes().startswith(b"\x89PNG")
    assert run.plot.name.startswith("calibration/")
    # These photos and edits reach the default target precision, so a threshold is suggested and printed.
    assert run.suggested_near_duplicate is not None
    assert f"IMGSIM_NEAR_DUPLICATE_THRESHOLD={run.suggested_near_duplicate:.3f}" in text
    assert 0.5 <= run.suggested_similar <= run.result["suggested_match"] <= run.suggested_near_duplicate <= 1.0
    assert f"IMGSIM_MATCH_THRESHOLD={run.result['suggested_match']:.3f}" in text


def test_calibration_sets_existing_copies_aside_instead_of_counting_them_as_negatives(small_library):
    # given a library holding three variants of one photo (g02) among nine unrelated photos
    g02 = {pk for pk, label in small_library.items() if label == "g02"}
    # when calibration samples 8 of the 12 images (seed 0: at least one g02 variant is among them)
    call_command("calibrate_duplicates", "--sample", "8", stdout=StringIO())
    result = CalibrationRun.objects.get().result
    # then each sampled g02 variant has both of its siblings set aside as probable copies, and nothing else
    aside = {tuple(pair) for pair in result["probable_copies"]}
    sampled_g02 = {source for source, _ in aside}
    assert sampled_g02, "nothing set aside, though seed 0 samples at least one g02 variant"
    assert sampled_g02 <= g02
    assert aside == {(source, other) for source in sampled_g02 for other in g02 - {source}}
    # and so no g02 sibling appears among the top negatives
    assert not [n for n in result["top_negatives"] if {n["sample_id"], n["library_id"]} <= g02]


def test_calibrate_command_refuses_a_library_too_small_and_bad_arguments(ingest):
    ingest({"d": distractor_files(3)})
    with pytest.raises(CommandError, match="at least 10 embedded images"):
        call_command("calibrate_duplicates", stdout=StringIO())
    with pytest.raises(CommandError, match="between 0 and 1"):
        call_command("calibrate_duplicates", "--target-precision", "1.5", stdout=StringIO())


def test_calibration_page_runs_in_the_background_and_shows_the_result(staff_web, web, small_library, committed):
    assert web.get("/duplicates/calibration/").status_code == 403  # signed in, not staff
    page = staff_web.get("/duplicates/calibration/")
    assert page.status_code == 200
    assert 'id="threshold-near"' in page.content.decode()
    assert staff_web.post("/duplicates/calibration/", {"sample_size": 1, "target_precision": 0.999}).status_code == 400
    response = committed(staff_web.post, "/duplicates/calibration/", {"sample_size": 10, "target_precision": 0.99})
    assert response.status_code == 302
    run = CalibrationRun.objects.get()
    assert (run.status, run.requested_by.username, run.sample_size) == ("done", "sam", 10)
    html = staff_web.get("/duplicates/calibration/").content.decode()
    assert 'id="latest-run"' in html
    assert f"/duplicates/calibration/{run.pk}/plot.png" in html
    assert f'id="suggested-match">{run.result["suggested_match"]:.3f}<' in html
    plot = staff_web.get(f"/duplicates/calibration/{run.pk}/plot.png")
    assert (plot.status_code, plot["Content-Type"]) == (200, "image/png")
    assert staff_web.get("/admin/duplicates/calibrationrun/").status_code == 200
    assert staff_web.get(f"/admin/duplicates/calibrationrun/{run.pk}/change/").status_code == 200
    assert staff_web.get("/admin/duplicates/calibrationrun/add/")["Location"] == "/duplicates/calibration/"
