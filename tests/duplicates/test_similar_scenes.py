"""Similar groups are one scene: brackets and bursts grouped, look-alike photos not, stacks only of verified shots.

Real pictures (a dev photo bracketed in the test, an iPhone's two frames of one HDR shot, unrelated dev photos)
with stored vectors at chosen cosines, so no model runs; detection, grouping and the review API are the
product's.
"""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from django.utils import timezone
from PIL import Image as PILImage
from PIL import ImageOps, TiffImagePlugin

from duplicates.evidence import ImageFacts
from duplicates.models import DuplicateGroup, DuplicatePair
from duplicates.scene_match import distinct_shots
from duplicates.services.detection import duplicate_pairs_detect
from duplicates.services.thresholds import duplicate_pairs_reband
from gallery.models import Image
from gallery.services import image_create
from tests.duplicates.conftest import distractor_files, make_groups
from tests.images import shared_path

pytestmark = pytest.mark.django_db

DIM = 64
NEAR_DUPLICATE_COSINE = 0.93  # above mobilenet_v2's near-duplicate threshold (0.88)
LOOK_ALIKE_COSINE = 0.87  # in its similar band (0.70-0.88)


def vectors_at(cosine: float, count: int, *, seed: int) -> np.ndarray:
    """`count` unit vectors, every two of them at this cosine."""
    basis, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(DIM, count + 1)))
    return (np.sqrt(cosine) * basis[:, 0] + np.sqrt(1 - cosine) * basis[:, 1:].T).astype(np.float32)


def library_image(data: bytes, name: str, vector: np.ndarray) -> Image:
    """An uploaded picture, embedded as `vector` (stored: no model)."""
    image = image_create(data=data, original_name=name).image
    Image.objects.filter(pk=image.pk).update(
        status=Image.Status.INDEXED,
        embedding=vector.tobytes(),
        embedding_model="mobilenet_v2",
        embedded_at=timezone.now(),
    )
    image.refresh_from_db()
    return image


def camera_brackets(path: Path) -> list[bytes]:
    """The photo shot as a camera brackets it: -2, -1, 0, +1, +2 EV (linear light scaled by 2**ev), 0.2 s
    apart, each frame with the camera's make, model and capture time to the hundredth of a second."""
    with PILImage.open(path) as opened:
        linear = (np.asarray(ImageOps.exif_transpose(opened).convert("RGB"), dtype=np.float32) / 255) ** 2.2
    frames = []
    for number, ev in enumerate((-2, -1, 0, 1, 2)):
        exif = PILImage.Exif()
        exif[0x010F], exif[0x0110] = "Bench", "AEB-5"
        shot = exif.get_ifd(0x8769)
        shot[0x9003], shot[0x9291] = "2026:06:01 09:00:00", f"{5 + 20 * number:02d}"
        shot[0x9204] = TiffImagePlugin.IFDRational(ev, 1)
        pixels = (np.clip(linear * 2.0**ev, 0, 1) ** (1 / 2.2) * 255).round().astype(np.uint8)
        buffer = io.BytesIO()
        PILImage.fromarray(pixels).save(buffer, "JPEG", quality=90, exif=exif.tobytes())
        frames.append(buffer.getvalue())
    return frames


def groups_of(staff_api, kind: str) -> list[set[int]]:
    """The pending groups of one band, as the review API lists them."""
    response = staff_api.get("/api/duplicate-groups/", {"kind": kind, "member_limit": 0})
    assert response.status_code == 200, response.content
    return [{member["image"]["id"] for member in group["members"]} for group in response.json()["results"]]


def test_a_cameras_exposure_bracket_is_one_similar_group(staff_api):
    # given a real photo shot as a five-frame bracket, the frames as alike as copies to the embedding
    frames = camera_brackets(distractor_files(1)[0])
    vectors = vectors_at(NEAR_DUPLICATE_COSINE, len(frames), seed=1)
    images = [library_image(data, f"frame{n}.jpg", vectors[n]) for n, data in enumerate(frames)]
    # when detection checks them
    duplicate_pairs_detect(image_ids=[image.pk for image in images])
    # then the frames are one scene in the similar band (five shots to keep or stack), not copies to trash
    pairs = DuplicatePair.objects.all()
    assert pairs.count() == 10
    assert {pair.kind for pair in pairs} == {DuplicatePair.Kind.SIMILAR}
    assert all(pair.evidence["same_scene"] for pair in pairs)
    assert groups_of(staff_api, "similar") == [{image.pk for image in images}]
    assert groups_of(staff_api, "near_duplicate") == []


def test_a_similar_card_says_why_each_member_is_one_scene(staff_api, client, django_user_model):
    # given a camera's bracket detected as one similar group
    frames = camera_brackets(distractor_files(1)[0])
    vectors = vectors_at(NEAR_DUPLICATE_COSINE, len(frames), seed=1)
    images = [library_image(data, f"frame{n}.jpg", vectors[n]) for n, data in enumerate(frames)]
    duplicate_pairs_detect(image_ids=[image.pk for image in images])
    # then the API gives each member's reason with the compared copy, and the card says it in words
    group = staff_api.get("/api/duplicate-groups/", {"kind": "similar"}).json()["results"][0]
    reasons = [member["evidence"]["scene_reason"] for member in group["members"] if member["evidence"]]
    assert reasons == ["exposure"] * (len(frames) - 1)  # as alike as copies: no geometric check was needed
    client.force_login(django_user_model.objects.create_user("reviewer", is_staff=True))
    page = client.get("/duplicates/", {"kind": "similar"}).content.decode()
    assert page.count("same scene, another exposure</span>") == len(frames) - 1


def test_re_banding_the_pairs_keeps_a_bracket_in_the_similar_band(staff_api):
    # given a camera's bracket detected as one similar group
    frames = camera_brackets(distractor_files(1)[0])
    vectors = vectors_at(NEAR_DUPLICATE_COSINE, len(frames), seed=4)
    images = [library_image(data, f"frame{n}.jpg", vectors[n]) for n, data in enumerate(frames)]
    duplicate_pairs_detect(image_ids=[image.pk for image in images])
    # when the stored pairs are put in the bands of the thresholds in force (as after a threshold change)
    summary = duplicate_pairs_reband()
    # then the frames stay similar, one group
    assert summary.to_near_duplicate == 0
    assert set(DuplicatePair.objects.values_list("kind", flat=True)) == {DuplicatePair.Kind.SIMILAR}
    assert groups_of(staff_api, "similar") == [{image.pk for image in images}]


def test_an_iphones_two_frames_of_one_hdr_shot_are_one_similar_group(staff_api):
    # given the normal and the HDR frame an iPhone wrote 0.534 s apart (real files, real EXIF)
    folder = shared_path("data", "exif", "exif-samples", "files", "jpg", "hdr")
    vectors = vectors_at(NEAR_DUPLICATE_COSINE, 2, seed=2)
    images = [
        library_image((folder / name).read_bytes(), name, vectors[n])
        for n, name in enumerate(("iphone_hdr_NO.jpg", "iphone_hdr_YES.jpg"))
    ]
    duplicate_pairs_detect(image_ids=[image.pk for image in images])
    # then they are two shots of one scene, not a copy of one another
    pair = DuplicatePair.objects.get()
    assert (pair.kind, pair.evidence["same_scene"]) == (DuplicatePair.Kind.SIMILAR, True)
    assert pair.evidence["time_gap_seconds"] == pytest.approx(0.534)
    assert groups_of(staff_api, "similar") == [{image.pk for image in images}]


def test_look_alike_photos_linked_only_by_the_embedding_make_no_similar_group(staff_api):
    # given a cheetah and a leopard on dry grass, at the cosine MobileNet-V2 gives them (0.87: similar band)
    folder = shared_path("data", "distractors-dev", "train")
    paths = [folder / "134008.jpg", folder / "134052.jpg"]
    vectors = vectors_at(LOOK_ALIKE_COSINE, 2, seed=3)
    images = [library_image(path.read_bytes(), path.name, vectors[n]) for n, path in enumerate(paths)]
    duplicate_pairs_detect(image_ids=[image.pk for image in images])
    # then their pair is stored for the pair list, but nothing else says one scene: no group to review or stack
    pair = DuplicatePair.objects.get()
    assert pair.kind == DuplicatePair.Kind.SIMILAR
    assert (pair.evidence["same_scene"], pair.evidence["scene_reason"]) == (False, "")
    assert pair.evidence["geometric_inliers"] < 10
    assert groups_of(staff_api, "similar") == []


def test_stacking_leaves_out_a_member_not_verified_as_the_same_scene(staff_api, committed):
    # given a similar group whose member's pairs were never verified as one scene (grouped by an older version)
    (group,) = make_groups([4], seed=930, kind=DuplicatePair.Kind.SIMILAR)
    members = sorted(group.members.values_list("image_id", flat=True))
    stranger = next(pk for pk in members if pk != group.suggested_keep_id)
    for pair in DuplicatePair.objects.filter(image_a_id=stranger) | DuplicatePair.objects.filter(image_b_id=stranger):
        pair.evidence = {**pair.evidence, "same_scene": False}
        pair.save(update_fields=["evidence"])
    # when the reviewer stacks the group
    response = committed(
        staff_api.post,
        f"/api/duplicate-groups/{group.pk}/resolve/",
        {"action": "stack", "members": members},
        format="json",
    )
    # then the verified shots are stacked under the cover and the unverified one stays visible in the library
    assert response.status_code == 200, response.content
    assert sorted(response.json()["decision"]["member_ids"]) == sorted(set(members) - {stranger})
    stacked = set(Image.objects.filter(stack_cover=group.suggested_keep_id).values_list("pk", flat=True))
    assert stacked == set(members) - {stranger, group.suggested_keep_id}
    assert Image.objects.get(pk=stranger).stack_cover_id is None
    group.refresh_from_db()
    assert group.status == DuplicateGroup.Status.STACKED
    assert stranger not in set(group.members.values_list("image_id", flat=True))


def test_stacking_is_refused_when_no_member_is_verified_as_the_same_scene(staff_api):
    (group,) = make_groups([3], seed=940, kind=DuplicatePair.Kind.SIMILAR)
    for pair in DuplicatePair.objects.all():
        pair.evidence = {**pair.evidence, "same_scene": False}
        pair.save(update_fields=["evidence"])
    response = staff_api.post(f"/api/duplicate-groups/{group.pk}/resolve/", {"action": "stack"}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "not_verified"
    assert not Image.objects.filter(stack_cover__isnull=False).exists()
    group.refresh_from_db()
    assert group.status == DuplicateGroup.Status.PENDING


def test_a_copy_that_lost_the_fraction_of_a_second_is_not_another_shot():
    shot = ImageFacts(id=1, width=640, height=480, file_size=1, taken_at=datetime(2015, 4, 10, 20, 12, 23, 550000))
    shot = replace(shot, camera="Apple iPhone 6")
    copy = replace(shot, id=2, taken_at=datetime(2015, 4, 10, 20, 12, 23))  # an editor dropped SubSecTime
    assert not distinct_shots(shot, copy)
    assert distinct_shots(shot, replace(shot, id=3, taken_at=datetime(2015, 4, 10, 20, 12, 23, 16000)))
    assert distinct_shots(copy, replace(copy, id=4, taken_at=datetime(2015, 4, 10, 20, 12, 25)))
    assert not distinct_shots(shot, replace(shot, id=5, camera="Canon EOS 5D"))
