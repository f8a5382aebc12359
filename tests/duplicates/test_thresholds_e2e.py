"""Thresholds applied from a calibration (staff, web page and API), undone, shown where they come from, and
calibrated by themselves for a model without measured defaults; stored pairs are re-banded, decisions never
touched."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from duplicates import geometry
from duplicates.candidate_pairs import Bands, band_of
from duplicates.models import CalibrationRun, DuplicateDecision, DuplicateGroup, DuplicatePair
from duplicates.services import thresholds as thresholds_services
from duplicates.services.calibration import calibration_run_create, calibration_run_execute
from duplicates.services.groups import duplicate_groups_rebuild
from duplicates.services.thresholds import auto_calibration_run
from duplicates.tasks import detect_pending
from search.models import LibraryChange, ThresholdSetting
from search.thresholds import MODEL_THRESHOLDS, measured_defaults
from tests.duplicates.conftest import distractor_files, group_files

MODEL = "mobilenet_v2"


def pair_state() -> dict[tuple[int, int], tuple[str, str, float]]:
    return {
        # a re-detection recomputes the cosine: equal to float32 precision
        (pair.image_a_id, pair.image_b_id): (pair.kind, pair.review_status, round(pair.similarity, 5))
        for pair in DuplicatePair.objects.all()
    }


def decision_state() -> list[tuple[Any, ...]]:
    return list(
        DuplicateDecision.objects.order_by("id").values_list("id", "pair_id", "action", "new_status", "undone_at")
    )


def group_state() -> set[tuple[str, frozenset[int]]]:
    """Pending groups by kind and members (ids change on a rebuild; membership must not)."""
    return {
        (group.kind, frozenset(group.members.values_list("image_id", flat=True)))
        for group in DuplicateGroup.objects.pending()
    }


def finished_run(**fields: Any) -> CalibrationRun:
    """A finished calibration as the page would show it (the measuring itself is tested elsewhere)."""
    values = {
        "model_name": MODEL,
        "sample_size": 10,
        "target_precision": 0.999,
        "status": CalibrationRun.Status.DONE,
        "suggested_near_duplicate": 0.9,
        "suggested_similar": 0.72,
        "result": {"sampled": 10, "library_size": 16, "recall_at_suggested": 0.97},
        "finished_at": timezone.now(),
        **fields,
    }
    return CalibrationRun.objects.create(**values)


@pytest.fixture
def library(ingest: Any, settings: Any) -> dict[int, str]:
    # Bands by cosine alone, so that the band each pair should get follows from its stored similarity.
    settings.IMGSIM_DUPLICATE_GEOMETRY = False
    return ingest({"g02": group_files("g02", 4), "g05": group_files("g05", 3), "d": distractor_files(9)})


@pytest.mark.django_db
@pytest.mark.ml
def test_apply_rebands_pairs_keeps_decisions_and_undo_brings_the_bands_back(staff, staff_api, library, committed):
    # given a library with near-duplicate and similar pairs, a finished calibration of it, and two decisions:
    # the weakest similar pair confirmed, the weakest near-duplicate pair dismissed as "not a duplicate"
    run = calibration_run_create(sample_size=10, target_precision=0.99, requested_by=staff, schedule=False)
    run = calibration_run_execute(run=run)
    assert run.status == CalibrationRun.Status.DONE
    near_pairs = sorted(DuplicatePair.objects.filter(kind="near_duplicate"), key=lambda p: p.similarity)
    similar_pairs = sorted(DuplicatePair.objects.filter(kind="similar"), key=lambda p: p.similarity)
    assert len(near_pairs) >= 4
    assert len(similar_pairs) >= 3
    confirmed, dismissed = similar_pairs[0], near_pairs[0]
    for pair, action in ((confirmed, "confirm"), (dismissed, "not_duplicate")):
        decided = staff_api.post(f"/api/duplicates/{pair.pk}/resolve/", {"action": action}, format="json")
        assert decided.status_code == 200, decided.content
    before, decisions = pair_state(), decision_state()
    # when staff apply thresholds that move the weaker near-duplicates down to similar and the weaker similar
    # pairs out (values between stored similarities, so each pair's new band is known)
    near = round((near_pairs[len(near_pairs) // 2].similarity + near_pairs[len(near_pairs) // 2 - 1].similarity) / 2, 4)
    similar = round((similar_pairs[1].similarity + similar_pairs[2].similarity) / 2, 4)
    response = committed(
        staff_api.post,
        "/api/thresholds/apply/",
        {"calibration_run": run.pk, "near_duplicate": near, "similar": similar},
        format="json",
    )
    # then they are in force, logged with who and when
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["in_force"]["near_duplicate"], body["in_force"]["similar"]) == (near, similar)
    assert body["setting"]["applied_by"] == "sam"
    assert body["setting"]["calibration_run_id"] == run.pk
    assert body["setting"]["sample"]["sampled"] == run.result["sampled"]
    # and every pair is in its new band: pending pairs below similar are gone, decided pairs stay decided
    bands = Bands(near_duplicate=near, similar=similar)
    after = pair_state()
    for key, (kind, status, similarity) in before.items():
        expected = band_of(similarity, bands=bands)
        if expected is None and status == "pending":
            assert key not in after, f"pending pair {key} ({similarity:.4f}) should be dropped below {similar}"
        elif expected is None:
            assert after[key] == (kind, status, similarity), "a decided pair stays as it was"
        else:
            assert after[key] == (expected, status, similarity)
    assert after[(confirmed.image_a_id, confirmed.image_b_id)][1] == "confirmed"
    assert after[(dismissed.image_a_id, dismissed.image_b_id)][:2] == ("similar", "not_duplicate")
    assert decision_state() == decisions
    # and the groups follow the pairs (the same as rebuilding them from scratch)
    refreshed = group_state()
    duplicate_groups_rebuild()
    assert group_state() == refreshed
    # and /api/index/ and the review page say where the thresholds come from
    index = staff_api.get("/api/index/").json()["thresholds"]
    assert index["near_duplicate"] == near
    assert index["sources"]["near_duplicate"]["origin"] == "calibrated"
    assert index["sources"]["near_duplicate"]["description"].endswith("by sam")
    assert index["sources"]["match"]["description"] == index["sources"]["similar"]["description"]

    # when staff undo them
    setting_id = body["setting"]["id"]
    undone = committed(staff_api.post, "/api/thresholds/undo/", {"setting": setting_id}, format="json")
    # then the measured defaults are back and the pairs are in their old bands again (detection re-checks
    # the library under the restored thresholds and finds the dropped pairs), decisions still untouched
    assert undone.status_code == 200, undone.content
    assert undone.json()["in_force"]["sources"]["near_duplicate"]["origin"] == "measured_default"
    assert undone.json()["setting"]["undone_by"] == "sam"
    assert pair_state() == before
    assert decision_state() == decisions
    # and undoing again is refused, with nothing changed
    again = staff_api.post("/api/thresholds/undo/", {"setting": setting_id}, format="json")
    assert (again.status_code, again.json()["error"]["code"]) == (400, "nothing_to_undo")
    assert ThresholdSetting.objects.in_force().count() == 0


@pytest.mark.django_db
@pytest.mark.ml
def test_the_calibration_page_applies_after_a_confirmation_and_undoes(staff_web, library, committed):
    run = finished_run()
    page = staff_web.get("/duplicates/calibration/").content.decode()
    assert 'id="thresholds-apply"' in page
    assert 'id="thresholds-undo"' not in page
    assert "measured default for mobilenet_v2" in page
    # the first POST only shows old -> new, and changes nothing
    confirm = staff_web.post(f"/duplicates/calibration/{run.pk}/apply/", {"near_duplicate": "0.9", "similar": "0.72"})
    html = confirm.content.decode()
    assert confirm.status_code == 200
    assert 'id="old-near">0.880<' in html
    assert 'id="new-near">0.900<' in html
    assert 'id="old-similar">0.700<' in html
    assert 'id="new-similar">0.720<' in html
    assert not ThresholdSetting.objects.exists()
    # confirming applies them, and the page and the review pages show them with their origin
    done = committed(
        staff_web.post,
        f"/duplicates/calibration/{run.pk}/apply/",
        {"near_duplicate": "0.9", "similar": "0.72", "match": "0.72", "confirm": "on"},
    )
    assert (done.status_code, done["Location"]) == (302, "/duplicates/calibration/")
    setting = ThresholdSetting.objects.get()
    assert (setting.near_duplicate, setting.similar, setting.applied_by.username) == (0.9, 0.72, "sam")
    page = staff_web.get("/duplicates/calibration/").content.decode()
    assert 'id="thresholds-undo"' in page
    assert 'id="threshold-history"' in page
    assert "(in force)" in page
    for review_page in ("/duplicates/", "/duplicates/pairs/"):
        html = staff_web.get(review_page).content.decode()
        assert 'id="threshold-near">0.900<' in html
        assert f"calibrated on this library on {timezone.localdate(setting.applied_at):%Y-%m-%d} by sam" in html
    # the admin lists the log, read-only
    admin_list = staff_web.get("/admin/search/thresholdsetting/")
    assert admin_list.status_code == 200
    assert staff_web.get(f"/admin/search/thresholdsetting/{setting.pk}/change/").status_code == 200
    # undo puts the measured defaults back
    undone = committed(staff_web.post, "/duplicates/thresholds/undo/", {"setting": setting.pk})
    assert undone.status_code == 302
    assert 'id="threshold-near">0.880<' in staff_web.get("/duplicates/").content.decode()


@pytest.mark.django_db
def test_environment_variable_wins_over_applied_thresholds_and_the_pages_say_so(settings, staff_api, staff_web):
    settings.IMGSIM_NEAR_DUPLICATE_THRESHOLD = 0.95
    run = finished_run()
    response = staff_api.post("/api/thresholds/apply/", {"calibration_run": run.pk}, format="json")
    assert response.status_code == 200, response.content
    in_force = staff_api.get("/api/index/").json()["thresholds"]
    assert (in_force["near_duplicate"], in_force["similar"]) == (0.95, 0.72)
    assert in_force["sources"]["near_duplicate"]["origin"] == "environment"
    assert in_force["sources"]["similar"]["origin"] == "calibrated"
    html = staff_web.get("/duplicates/").content.decode()
    assert "environment variable IMGSIM_NEAR_DUPLICATE_THRESHOLD" in html
    # the confirmation of a later calibration warns that the variable keeps winning
    newer = finished_run(suggested_near_duplicate=0.91)
    confirm = staff_web.post(f"/duplicates/calibration/{newer.pk}/apply/", {}).content.decode()
    assert "set by an environment variable, which wins" in confirm


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"near_duplicate": 1.5}, "threshold_out_of_range"),
        ({"similar": -3}, "threshold_out_of_range"),
        ({"near_duplicate": 0.8, "similar": 0.85}, "similar_above_near_duplicate"),
        ({"calibration_run": 999999}, "calibration_not_found"),
        ({"calibration_run": "stale"}, "calibration_stale"),
        ({"calibration_run": "other_model"}, "calibration_stale"),
        ({"calibration_run": "failed"}, "calibration_not_done"),
        ({"calibration_run": "no_suggestion"}, "no_suggestion"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message_and_nothing_changes(staff_api, staff_web, payload, code):
    runs = {
        "stale": finished_run(),
        "other_model": finished_run(model_name="resnet18"),
        "failed": finished_run(status=CalibrationRun.Status.FAILED),
    }
    runs["no_suggestion"] = finished_run(suggested_near_duplicate=None)  # the newest of the model
    latest = runs["no_suggestion"]
    if "calibration_run" not in payload:
        latest.suggested_near_duplicate = 0.9
        latest.save()
    body = {**payload}
    target = body.pop("calibration_run", latest.pk)
    run_id = runs[target].pk if isinstance(target, str) else target
    response = staff_api.post("/api/thresholds/apply/", {"calibration_run": run_id, **body}, format="json")
    assert (response.status_code, response.json()["error"]["code"]) == (400, code)
    assert response.json()["error"]["message"]
    # the web page refuses the same, saying so, whether asked to confirm or not
    if CalibrationRun.objects.filter(pk=run_id).exists():
        for confirm in ("", "on"):
            page = staff_web.post(f"/duplicates/calibration/{run_id}/apply/", {**body, "confirm": confirm})
            assert page.status_code == 400
            assert "Nothing was changed." in page.content.decode()
    assert not ThresholdSetting.objects.exists()
    assert not LibraryChange.objects.filter(kind=LibraryChange.Kind.THRESHOLDS).exists()


@pytest.mark.django_db
def test_thresholds_are_staff_only(api, web, client, staff_api):
    run = finished_run()
    for caller in (api, client):
        assert caller.get("/api/thresholds/").status_code == 403
        assert caller.post("/api/thresholds/apply/", {"calibration_run": run.pk}).status_code == 403
        assert caller.post("/api/thresholds/undo/").status_code == 403
    assert web.post(f"/duplicates/calibration/{run.pk}/apply/", {"confirm": "on"}).status_code == 403  # not staff
    assert web.post("/duplicates/thresholds/undo/").status_code == 403
    assert not ThresholdSetting.objects.exists()
    # staff see the thresholds in force, where they come from, and the log
    body = staff_api.get("/api/thresholds/").json()
    assert body["in_force"]["sources"]["near_duplicate"]["origin"] == "measured_default"
    assert body["history"] == []
    assert body["auto_calibration"]["has_measured_defaults"] is True


@pytest.mark.django_db
def test_undo_with_nothing_applied_or_a_stale_setting_is_refused(staff_api):
    response = staff_api.post("/api/thresholds/undo/")
    assert (response.status_code, response.json()["error"]["code"]) == (400, "nothing_to_undo")
    first = staff_api.post("/api/thresholds/apply/", {"calibration_run": finished_run().pk}, format="json").json()
    second = staff_api.post("/api/thresholds/apply/", {"calibration_run": finished_run().pk}, format="json").json()
    stale = staff_api.post("/api/thresholds/undo/", {"setting": first["setting"]["id"]}, format="json")
    assert (stale.status_code, stale.json()["error"]["code"]) == (409, "thresholds_changed")
    assert ThresholdSetting.objects.in_force().count() == 2
    assert (
        staff_api.post("/api/thresholds/undo/", {"setting": second["setting"]["id"]}, format="json").status_code == 200
    )


# --- auto-calibration ------------------------------------------------------------------------------------


@pytest.fixture
def model_without_defaults(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    """mobilenet_v2 as a model nobody measured: the generic fallback until it calibrates itself."""
    monkeypatch.delitem(MODEL_THRESHOLDS, MODEL)
    settings.IMGSIM_AUTO_CALIBRATE_MIN_IMAGES = 12


@pytest.mark.django_db
@pytest.mark.ml
def test_a_model_without_measured_defaults_calibrates_itself_once_the_library_is_large_enough(
    model_without_defaults, ingest, staff_web, staff_api
):
    # given 8 indexed images, below the 12 auto-calibration waits for: generic thresholds, and the page says so
    ingest({"g02": group_files("g02", 3), "d": distractor_files(5)})
    assert not CalibrationRun.objects.exists()
    html = staff_web.get("/duplicates/").content.decode()
    assert 'id="auto-calibration-waits"' in html
    assert "holds 12 indexed images (now 8)" in html
    assert staff_api.get("/api/index/").json()["thresholds"]["sources"]["similar"]["origin"] == "generic"
    # when more photos arrive and the library passes 12
    ingest({"g05": group_files("g05", 3), "d": distractor_files(11)[5:]})
    # then calibration ran by itself and its thresholds are in force, applied by nobody
    run = CalibrationRun.objects.get()
    assert (run.automatic, run.status, run.requested_by) == (True, "done", None)
    setting = ThresholdSetting.objects.get()
    assert (setting.origin, setting.applied_by, setting.calibration_run_id) == ("auto_calibrated", None, run.pk)
    assert (setting.near_duplicate, setting.similar) == (run.suggested_near_duplicate, run.suggested_similar)
    index = staff_api.get("/api/index/").json()["thresholds"]
    assert index["sources"]["near_duplicate"]["origin"] == "auto_calibrated"
    assert index["sources"]["near_duplicate"]["description"].startswith("auto-calibrated on this library on ")
    html = staff_web.get("/duplicates/").content.decode()
    assert 'id="auto-calibrated-note"' in html
    assert 'id="auto-calibration-waits"' not in html
    # and every stored pair is in the band these thresholds give it
    bands = Bands(near_duplicate=setting.near_duplicate, similar=setting.similar)
    pairs = list(DuplicatePair.objects.all())
    assert pairs
    for pair in pairs:
        inliers = pair.evidence.get("geometric_inliers")
        assert pair.kind == band_of(pair.similarity, bands=bands, inliers=inliers, min_inliers=geometry.MIN_INLIERS)
    # and it runs once: asking again does nothing
    assert auto_calibration_run() is None
    assert (CalibrationRun.objects.count(), ThresholdSetting.objects.count()) == (1, 1)


@pytest.mark.ml
@pytest.mark.django_db
def test_a_model_whose_defaults_nobody_measured_runs_on_provisional_thresholds_until_it_calibrates_itself(
    monkeypatch, settings, staff_web, staff_api, committed
):
    from tests.search.test_library_view import synthetic_library

    # given the default model, resnet18, has no measured defaults (only the prototype's, never re-measured),
    # and mobilenet_v2's entry marked unmeasured like it (no weights needed: the library has stored vectors)
    assert measured_defaults("resnet18") is None
    entry = replace(MODEL_THRESHOLDS[MODEL], measured=False)
    monkeypatch.setitem(MODEL_THRESHOLDS, MODEL, entry)
    settings.IMGSIM_AUTO_CALIBRATE_MIN_IMAGES = 10
    synthetic_library(8)
    # then its entry's values are in force, and the API and the Duplicates page say they are provisional
    index = staff_api.get("/api/index/").json()["thresholds"]
    assert (index["near_duplicate"], index["similar"]) == (entry.near_duplicate, entry.similar)
    assert {source["origin"] for source in index["sources"].values()} == {"provisional"}
    waits = staff_api.get("/api/thresholds/").json()["auto_calibration"]
    assert waits == {"has_measured_defaults": False, "waits_for": 10, "indexed": 8}
    html = staff_web.get("/duplicates/").content.decode()
    assert "has no measured defaults: these are provisional until the library holds 10 indexed images (now 8)" in html
    # when the library reaches the size to calibrate and detection runs, then it starts calibrating itself
    # (the measuring, which embeds edited copies of the photos, is tested with real photos above)
    monkeypatch.setattr(thresholds_services, "calibration_run_execute", lambda *, run: run)
    synthetic_library(4, start=8)
    committed(detect_pending)
    run = CalibrationRun.objects.get()
    assert (run.model_name, run.automatic) == (MODEL, True)


@pytest.mark.ml
@pytest.mark.django_db
def test_auto_calibration_is_claimed_by_one_worker_and_a_killed_one_frees_the_claim(model_without_defaults, settings):
    from tests.search.test_library_view import synthetic_library

    settings.IMGSIM_AUTO_CALIBRATE_MIN_IMAGES = 10
    synthetic_library(12)  # vectors without files: a calibration that runs fails reading them
    # given another worker is calibrating the model
    other = CalibrationRun.objects.create(
        model_name=MODEL, sample_size=100, target_precision=0.999, automatic=True, status="running"
    )
    # then this worker leaves it alone
    assert auto_calibration_run() is None
    assert CalibrationRun.objects.count() == 1
    # when that worker died long ago, its claim is retired and this one calibrates
    CalibrationRun.objects.filter(pk=other.pk).update(created_at=timezone.now() - timedelta(days=1))
    run = auto_calibration_run()
    assert run is not None
    assert run.pk != other.pk
    assert run.automatic
    other.refresh_from_db()
    assert other.status == "failed"
    assert "interrupted" in other.error
    # (these images have no files, so this run failed too and applied nothing: it is tried again an hour later,
    # not at every detection run)
    assert run.status == "failed"
    assert not ThresholdSetting.objects.exists()
    assert auto_calibration_run() is None
    CalibrationRun.objects.update(finished_at=timezone.now() - timedelta(hours=2))
    again = auto_calibration_run()
    assert again is not None
    assert again.pk not in (run.pk, other.pk)
