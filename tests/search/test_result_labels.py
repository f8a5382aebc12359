"""Search results that explain themselves: every result labelled same photo / same scene / looks alike / weak
by the thresholds in force, a plain statement when nothing is the same photo or scene, the rating fallback.

Real photos with stored vectors placed at chosen cosines to the query (no model), except the upload of an
unrelated real photo, which runs the offline backbone (marked ml).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from duplicates.models import CalibrationRun
from pipeline.services import image_ingest
from search.result_labels import LabelLines, label_lines
from search.thresholds import thresholds_in_force
from tests.images import shared_path

pytestmark = pytest.mark.django_db

DIMENSION = 16


def at_cosine(cosine: float, direction: int) -> np.ndarray:
    """A unit vector at exactly `cosine` to the query (axis 0), off along its own axis."""
    vector = np.zeros(DIMENSION, dtype=np.float32)
    vector[0], vector[direction] = cosine, np.sqrt(1 - cosine**2)
    return vector


def lines_in_force() -> LabelLines:
    return label_lines(thresholds_in_force(model_name=settings.IMGSIM_MODEL))


def one_per_band(lines: LabelLines) -> dict[str, float]:
    """A score inside each label's band (the bands in force)."""
    return {
        "same_photo": (lines.same_photo + 1) / 2,
        "same_scene": (lines.same_scene + lines.same_photo) / 2,
        "looks_alike": (lines.looks_alike + lines.same_scene) / 2,
        "weak": lines.looks_alike - 0.2,
    }


@pytest.fixture
def query(photo_with_vector):
    return photo_with_vector(at_cosine(1.0, 1), 0)


def labels_by_id(body: dict) -> dict[int, str]:
    return {item["image"]["id"]: item["label"] for item in body["results"]}


def test_each_result_is_labelled_by_the_band_its_score_is_in(api, query, photo_with_vector):
    lines = lines_in_force()
    expected = {
        photo_with_vector(at_cosine(score, n + 2), n + 1).pk: label
        for n, (label, score) in enumerate(one_per_band(lines).items())
    }
    body = api.get(f"/api/images/{query.pk}/similar/?k=10").json()
    assert labels_by_id(body) == expected
    assert [item["match"] for item in body["results"]] == [True, True, False, False]
    assert (body["matched"], body["fallback"]) == (True, False)
    assert body["summary"] == "1 result is the same photo and 1 the same scene."
    assert [(entry["label"], entry["at_least"]) for entry in body["labels"]] == [
        ("same_photo", lines.same_photo),
        ("same_scene", lines.same_scene),
        ("looks_alike", lines.looks_alike),
        ("weak", None),
    ]


def test_find_similar_page_labels_every_result_and_explains_the_labels(web, query, photo_with_vector):
    lines = lines_in_force()
    for n, score in enumerate(one_per_band(lines).values()):
        photo_with_vector(at_cosine(score, n + 2), n + 1)
    html = web.get(f"/images/{query.pk}/similar/?k=10").content.decode()
    cards = re.findall(r'data-label="(\w+)".*?class="badge result-label \1">([a-z ]+)<', html, re.S)
    assert cards == [
        ("same_photo", "same photo"),
        ("same_scene", "same scene"),
        ("looks_alike", "looks alike"),
        ("weak", "weak"),
    ]
    legend = html[html.index('id="label-legend"') :]
    for title, line in (("same photo", lines.same_photo), ("same scene", lines.same_scene)):
        assert f"{title}</span> ≥ {line:.3f}" in legend
    assert "another exposure or frame of a burst" in legend
    assert "1 result is the same photo and 1 the same scene." in html


def test_no_real_match_says_so_and_still_shows_the_nearest_labelled(web, api, query, photo_with_vector):
    lines = lines_in_force()
    bands = one_per_band(lines)
    closest = photo_with_vector(at_cosine(bands["looks_alike"], 2), 1)
    photo_with_vector(at_cosine(bands["weak"], 3), 2)
    photo_with_vector(at_cosine(bands["weak"] - 0.1, 4), 3)
    statement = (
        "No photo in the library is the same photo or scene; the closest look alike: "
        f"{closest.original_name} ({bands['looks_alike']:.3f})."
    )
    body = api.get(f"/api/images/{query.pk}/similar/?k=10").json()
    assert (body["matched"], body["fallback"], body["summary"]) == (False, False, statement)
    assert [item["label"] for item in body["results"]] == ["looks_alike", "weak", "weak"]
    assert not any(item["match"] for item in body["results"])
    html = web.get(f"/images/{query.pk}/similar/?k=10").content.decode()
    assert f"<strong>No real match.</strong> {statement}" in html
    assert html.count('data-label="weak"') == 2


def test_rating_fallback_when_the_closest_only_looks_alike(api, query, photo_with_vector):
    bands = one_per_band(lines_in_force())
    closest = photo_with_vector(at_cosine(bands["looks_alike"], 2), 1, rating=1)
    photo_with_vector(at_cosine(bands["weak"], 3), 2, rating=4)
    photo_with_vector(at_cosine(bands["weak"] - 0.1, 4), 3, rating=4)
    body = api.get(f"/api/images/{query.pk}/similar/?k=2&rating=4").json()
    assert (body["matched"], body["fallback"]) == (False, True)
    assert [item["image"]["rating"] for item in body["results"]] == [4, 4]
    assert [item["label"] for item in body["results"]] == ["weak", "weak"]
    assert body["summary"] == (
        f"No photo in the library is the same photo or scene; the closest look alike: {closest.original_name} "
        f"({bands['looks_alike']:.3f}). Shown: the images whose rating is closest to 4 ★, most similar first."
    )


def test_labels_move_with_a_calibration_applied_and_undone(api, staff_api, query, photo_with_vector):
    before = lines_in_force()
    bands = one_per_band(before)
    photo = photo_with_vector(at_cosine(bands["same_photo"], 2), 1)
    scene = photo_with_vector(at_cosine(bands["same_scene"], 3), 2)
    assert labels_by_id(api.get(f"/api/images/{query.pk}/similar/").json()) == {
        photo.pk: "same_photo",
        scene.pk: "same_scene",
    }
    # A calibration of this library suggests every line above both scores; its "same scene" line is the run's
    # suggested match, not its similar threshold.
    near = round(bands["same_photo"] + 0.02, 3)
    run = CalibrationRun.objects.create(
        model_name=settings.IMGSIM_MODEL,
        sample_size=10,
        target_precision=0.999,
        status=CalibrationRun.Status.DONE,
        suggested_near_duplicate=near,
        suggested_similar=0.92,
        result={"sampled": 10, "library_size": 16, "suggested_match": 0.935},
        finished_at=timezone.now(),
    )
    applied = staff_api.post("/api/thresholds/apply/", {"calibration_run": run.pk}, format="json")
    assert applied.status_code == 200, applied.content
    body = api.get(f"/api/images/{query.pk}/similar/").json()
    assert [entry["at_least"] for entry in body["labels"]] == [near, 0.935, 0.92, None]
    assert labels_by_id(body) == {photo.pk: "same_scene", scene.pk: "weak"}
    undone = staff_api.post("/api/thresholds/undo/", {"setting": applied.json()["setting"]["id"]}, format="json")
    assert undone.status_code == 200, undone.content
    assert labels_by_id(api.get(f"/api/images/{query.pk}/similar/").json()) == {
        photo.pk: "same_photo",
        scene.pk: "same_scene",
    }


@pytest.mark.ml
def test_an_unrelated_photo_uploaded_is_told_plainly_that_nothing_matches(api, web, committed):
    """Real photos, the real backbone: unrelated places score up to the mid 0.7s, none of them a match."""
    library = [
        path for path in sorted(shared_path("data", "distractors-dev", "train").glob("*.jpg")) if path.stem != "135037"
    ][:24]
    for path in library[1:]:
        committed(image_ingest, data=path.read_bytes(), original_name=path.name)
    upload = library[0]
    body = api.post("/api/search/", {"file": SimpleUploadedFile(upload.name, upload.read_bytes()), "k": 5}).json()
    assert (body["matched"], body["fallback"]) == (False, False)
    assert body["summary"].startswith("No photo in the library is the same photo or scene")
    assert {item["label"] for item in body["results"]} <= {"looks_alike", "weak"}
    assert len(body["results"]) == 5
    html = web.post("/search/", {"file": SimpleUploadedFile(upload.name, upload.read_bytes()), "k": 5}).content
    assert "<strong>No real match.</strong> No photo in the library is the same photo or scene" in html.decode()
