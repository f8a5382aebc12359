"""Mirrored copies end to end: uploaded through the API, embedded with the offline backbone, detected.

A mirrored copy that was also cropped scores in the grey zone (cosine ~0.83 here), where only geometric
verification can make it a near-duplicate; its local features match the original's mirror image. Two
different photos of one kind of scene, one of them mirrored, score in the grey zone too and must not.
"""

from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image as PILImage
from PIL import ImageOps

from duplicates import geometry
from duplicates.models import DetectionCheck, DuplicatePair
from duplicates.selectors.detection import detection_settings_key
from duplicates.selectors.thresholds import duplicate_bands
from duplicates.services.detection import duplicate_detection_run
from gallery.models import Image
from tests.images import shared_path

pytestmark = [pytest.mark.django_db, pytest.mark.ml]


def _mirrored(path, *, crop: tuple[int, int, int, int] | None = None) -> bytes:
    picture = PILImage.open(path).convert("RGB")
    if crop is not None:
        picture = picture.crop(crop)
    buffer = io.BytesIO()
    ImageOps.mirror(picture).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _upload(api, committed, name: str, data: bytes) -> int:
    response = committed(api.post, "/api/images/", {"file": SimpleUploadedFile(name, data)}, format="multipart")
    assert response.status_code == 201, response.json()
    assert response.json()["outcome"] == "accepted"
    return response.json()["image"]["id"]


def _pairs(staff_api) -> dict[frozenset[int], dict]:
    body = staff_api.get("/api/duplicates/?status=all").json()
    return {frozenset((item["image_a"]["id"], item["image_b"]["id"])): item for item in body["results"]}


def test_a_photo_and_its_mirrored_copies_are_near_duplicates(api, staff_api, committed):
    # given a real photo in the library
    root = shared_path("data", "neardup-dev", "images")
    original = _upload(api, committed, "holiday.jpg", (root / "000000.jpg").read_bytes())
    # when its mirror image and a mirrored copy of a cropped variant of it are uploaded
    mirror = _upload(api, committed, "holiday-mirror.jpg", _mirrored(root / "000000.jpg"))
    cropped = _upload(api, committed, "holiday-crop-mirror.jpg", _mirrored(root / "000128.jpg"))
    assert Image.objects.filter(status=Image.Status.INDEXED).count() == 3
    # then detection stored both as near-duplicates of the photo, the cropped one on mirrored local features
    pairs = _pairs(staff_api)
    assert pairs[frozenset((original, mirror))]["kind"] == "near_duplicate"
    grey = pairs[frozenset((original, cropped))]
    assert grey["kind"] == "near_duplicate"
    assert duplicate_bands().similar <= grey["similarity"] < duplicate_bands().near_duplicate
    assert grey["evidence"]["geometric_inliers"] >= 20
    assert DuplicatePair.objects.filter(kind="near_duplicate").count() == 3


def test_a_mirrored_photo_of_a_look_alike_scene_is_not_a_near_duplicate(api, staff_api, committed):
    # given a real photo in the library
    root = shared_path("data", "distractors-dev", "train")
    photo = _upload(api, committed, "photo.jpg", (root / "134008.jpg").read_bytes())
    # when a different photo of the same kind of scene is uploaded mirrored
    other = _upload(api, committed, "other-mirrored.jpg", _mirrored(root / "134052.jpg"))
    # then the pair is at most similar: it scores in the grey zone, and neither it nor its mirror image matches
    pair = _pairs(staff_api).get(frozenset((photo, other)))
    assert pair is not None, "the two look-alikes score in the grey zone, so they are checked"
    assert duplicate_bands().similar <= pair["similarity"] < duplicate_bands().near_duplicate
    assert pair["kind"] == "similar"
    assert pair["evidence"]["geometric_inliers"] < 20
    assert not DuplicatePair.objects.filter(kind="near_duplicate").exists()


def test_a_library_checked_before_mirror_matching_gets_its_mirrored_copies_found(api, staff_api, committed):
    # given a photo and a mirrored, cropped copy of it, detected by the check that ignored mirror images
    # (its settings key, and a grey-zone pair stored as similar with the inliers that check found)
    root = shared_path("data", "neardup-dev", "images")
    original = _upload(api, committed, "holiday.jpg", (root / "000000.jpg").read_bytes())
    cropped = _upload(api, committed, "holiday-crop-mirror.jpg", _mirrored(root / "000128.jpg"))
    current = detection_settings_key()
    DetectionCheck.objects.update(settings_key=current.replace(f":geo:{geometry.CHECK}", ":geo"))
    pair = DuplicatePair.objects.get()
    evidence = {key: value for key, value in pair.evidence.items() if key != "geometric_check"}
    DuplicatePair.objects.filter(pk=pair.pk).update(kind="similar", evidence={**evidence, "geometric_inliers": 4})
    # when the next detection run comes
    summary = duplicate_detection_run()
    # then both images were checked again, the pair verified again and found a near-duplicate, still pending
    assert summary.detection.queried == 2
    assert summary.detection.verified == 1
    pair.refresh_from_db()
    assert (pair.kind, pair.review_status) == ("near_duplicate", "pending")
    assert pair.evidence["geometric_inliers"] >= 20
    assert pair.evidence["geometric_check"] == geometry.CHECK
    assert set(DetectionCheck.objects.values_list("settings_key", flat=True)) == {current}
    assert frozenset((original, cropped)) in _pairs(staff_api)


def test_a_match_stored_by_the_older_check_is_verified_again(api, staff_api, committed):
    # given two look-alike photos (one mirrored) stored as near-duplicates by the older check, which let
    # degenerate many-to-one matches through
    root = shared_path("data", "distractors-dev", "train")
    _upload(api, committed, "photo.jpg", (root / "134008.jpg").read_bytes())
    _upload(api, committed, "other-mirrored.jpg", _mirrored(root / "134052.jpg"))
    DetectionCheck.objects.update(settings_key=detection_settings_key().replace(f":geo:{geometry.CHECK}", ":geo"))
    pair = DuplicatePair.objects.get()
    evidence = {key: value for key, value in pair.evidence.items() if key != "geometric_check"}
    DuplicatePair.objects.filter(pk=pair.pk).update(
        kind="near_duplicate", evidence={**evidence, "geometric_inliers": 42}
    )
    # when the next detection run comes
    summary = duplicate_detection_run()
    # then the pair was verified again and is only similar, still pending review
    assert summary.detection.verified == 1
    pair.refresh_from_db()
    assert (pair.kind, pair.review_status) == ("similar", "pending")
    assert pair.evidence["geometric_inliers"] < 20
    assert pair.evidence["geometric_check"] == geometry.CHECK
