"""Geometric verification on real photos: crops, turns and mirror images of one photo match, other photos don't."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

from duplicates import geometry
from duplicates.geometry import (
    MIN_AGREEMENT,
    MIN_INLIERS,
    RATIO_TEST,
    LocalFeatures,
    best_match,
    count_inliers,
    load_for_matching,
    local_features,
    ratio_matches,
    similarity_inliers,
)
from tests.images import shared_path


def _jpeg(image: Image.Image) -> io.BytesIO:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    buffer.seek(0)
    return buffer


def _features(image: Image.Image, quality: int = 85) -> LocalFeatures:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    return local_features(load_for_matching(buffer))


def _captioned(image: Image.Image, text: str = "Best day ever!") -> Image.Image:
    """A white caption with a dark outline across the lower part, as sharing apps add (bench/edited_families.py)."""
    captioned = image.copy()
    font = ImageFont.truetype("DejaVuSans-Bold.ttf", image.height // 9)
    position = (10, image.height - image.height // 9 - 20)
    ImageDraw.Draw(captioned).text(position, text, font=font, fill="white", stroke_width=2, stroke_fill="black")
    return captioned


def _colour_cast(image: Image.Image) -> Image.Image:
    red, green, blue = ImageEnhance.Color(image).enhance(1.8).split()
    return Image.merge("RGB", (red.point(lambda v: min(255, int(v * 1.15))), green, blue.point(lambda v: int(v * 0.8))))


def test_crops_rotations_and_rescales_of_one_photo_match_unrelated_photos_do_not():
    photo = Image.open(shared_path("data", "distractors-dev", "train", "100075.jpg")).convert("RGB")
    original = _features(photo)
    width, height = photo.size
    copies = {
        "strip crop": photo.crop((0, height // 3, width, height // 3 + height // 4)),
        "quarter turn": photo.rotate(90, expand=True),
        "half size": photo.resize((width // 2, height // 2)),
    }
    for name, copy in copies.items():
        assert count_inliers(original, _features(copy)) >= MIN_INLIERS, name
    others = sorted(shared_path("data", "distractors-dev", "val").glob("*.jpg"))[:12]
    assert max(count_inliers(original, _features(Image.open(path).convert("RGB"))) for path in others) < MIN_INLIERS


def test_labelled_variants_of_a_dev_photo_match():
    root = shared_path("data", "neardup-dev")
    with (root / "labels.csv").open() as handle:
        files = [root / row["file"] for row in csv.DictReader(handle) if row["group_id"] == "g02"][:6]
    features = [local_features(load_for_matching(str(path))) for path in files]
    assert all(count_inliers(features[0], other) >= MIN_INLIERS for other in features[1:])


def test_featureless_pictures_never_match():
    flat = local_features(Image.new("L", (300, 200), 128))
    assert len(flat) == 0
    assert count_inliers(flat, flat) == 0


def test_quarter_turns_and_small_rotations_match_directly_a_mirror_image_does_not():
    """The similarity model covers every rotation (ORB keypoints carry their orientation); a mirror image
    is a reflection, which no rotation + scale + shift maps onto the original."""
    photo = Image.open(shared_path("data", "distractors-dev", "train", "100075.jpg")).convert("RGB")
    original = local_features(load_for_matching(_jpeg(photo)), mirrored=False)
    for angle in (90, 180, 270, 4, -7):
        turned = _features(photo.rotate(angle, expand=angle % 90 == 0, resample=Image.Resampling.BICUBIC))
        assert similarity_inliers(original, turned) >= MIN_INLIERS, angle
    assert similarity_inliers(original, _features(ImageOps.mirror(photo))) < MIN_INLIERS


def test_a_photo_matches_its_mirrored_copies_through_its_mirror_image():
    photo = Image.open(shared_path("data", "distractors-dev", "val", "101085.jpg")).convert("RGB")
    original = _features(photo)
    assert original.mirrored is not None
    width, height = photo.size
    copies = {
        "mirror": ImageOps.mirror(photo),
        "mirror, half size": ImageOps.mirror(photo).resize((width // 2, height // 2)),
        "mirror, turned 5 degrees": ImageOps.mirror(photo).rotate(5, resample=Image.Resampling.BICUBIC),
        "mirror, cropped": ImageOps.mirror(photo).crop((width // 6, 0, width, height * 5 // 6)),
        "upside down (mirror + half turn)": ImageOps.flip(photo),
    }
    for name, copy in copies.items():
        mirrored = _features(copy)
        assert count_inliers(original, mirrored) >= MIN_INLIERS, name
        assert count_inliers(mirrored, original) >= MIN_INLIERS, name  # either side's mirror image will do
        # features computed without their mirror image on one side: the other side's is used
        assert count_inliers(original, local_features(load_for_matching(_jpeg(copy)), mirrored=False)) >= MIN_INLIERS


def test_mirror_images_of_other_photos_do_not_match():
    photo = Image.open(shared_path("data", "distractors-dev", "val", "101085.jpg")).convert("RGB")
    original = _features(photo)
    others = sorted(shared_path("data", "distractors-dev", "train").glob("*.jpg"))[:15]
    for path in others:
        mirrored = _features(ImageOps.mirror(Image.open(path).convert("RGB")))
        assert count_inliers(original, mirrored) < MIN_INLIERS, path.name


def test_without_mirror_images_only_the_direct_match_counts():
    photo = Image.open(shared_path("data", "distractors-dev", "val", "101085.jpg")).convert("RGB")
    plain = local_features(load_for_matching(_jpeg(photo)), mirrored=False)
    mirrored = local_features(load_for_matching(_jpeg(ImageOps.mirror(photo))), mirrored=False)
    assert plain.mirrored is None
    assert count_inliers(plain, mirrored) == similarity_inliers(plain, mirrored) < MIN_INLIERS


def test_a_blurred_copy_with_few_keypoints_does_not_match_an_unrelated_photo():
    """RANSAC can collapse every match onto one spot (scale ~0) where many-to-one matches all fit: a
    blurred crop with ~30 keypoints once "matched" 42 points of an unrelated photo that way."""
    photo = Image.open(shared_path("data", "distractors-dev", "train", "227040.jpg")).convert("RGB")
    width, height = photo.size
    blurred = photo.crop((width // 4, height // 5, width, height)).filter(ImageFilter.GaussianBlur(2.5))
    features = _features(blurred)
    assert len(features) < 100
    unrelated = local_features(load_for_matching(str(shared_path("data", "neardup-dev", "images", "000139.jpg"))))
    assert count_inliers(unrelated, features) < MIN_INLIERS
    assert count_inliers(features, unrelated) < MIN_INLIERS
    assert count_inliers(_features(photo), features) >= MIN_INLIERS  # its own original still matches


def test_the_match_of_a_mirrored_copy_maps_the_first_picture_onto_the_second_either_way():
    """Whichever side's mirror image matched, the transform takes the first's keypoints to the second's, the
    reflection included: x on the photo is (width - 1 - x) on its mirror image."""
    photo = Image.open(shared_path("data", "distractors-dev", "val", "101085.jpg")).convert("RGB")
    width = photo.width
    points = np.array([[20.0, 30.0, 1.0], [240.0, 150.0, 1.0], [400.0, 300.0, 1.0]])
    expected = np.column_stack([width - 1 - points[:, 0], points[:, 1]])
    original, mirrored = _features(photo), _features(ImageOps.mirror(photo))
    plain = local_features(load_for_matching(_jpeg(photo)), mirrored=False)
    for first, second in ((original, mirrored), (plain, mirrored)):  # the first's mirror image, then the second's
        match = best_match(first, second)
        assert match.mirrored
        assert match.inliers == count_inliers(first, second) >= MIN_INLIERS
        assert match.transform is not None
        assert np.abs((points @ match.transform.T)[:, :2] - expected).max() < 1.5


def test_a_mirror_image_of_a_picture_with_mirror_symmetric_parts_matches_through_its_mirror_image():
    """The Elephants painting's side panels are mirror images of each other: its own mirror image passes the
    direct match on the panels alone, with a transform that shifts them (the pictures do agree where it lays
    one panel over the other, so the structure check lets it through); trying the mirror image as well
    (`both`, for whoever needs the transform) finds the match of the whole picture."""
    photo = Image.open(shared_path("data", "large-photos", "Elephants.jpg")).convert("RGB")
    original = local_features(load_for_matching(_jpeg(photo)), mirrored=False)
    mirrored = _features(ImageOps.mirror(photo))
    direct = best_match(mirrored, original)
    assert MIN_INLIERS <= direct.inliers < 50
    assert not direct.mirrored
    whole = best_match(mirrored, original, both=True)
    assert whole.mirrored
    assert whole.inliers > 10 * direct.inliers
    assert whole.transform is not None
    assert np.allclose(whole.transform[:2, :2], [[-1, 0], [0, 1]], atol=0.01)


def test_two_photos_of_one_tiger_whose_stripes_match_are_not_a_match(monkeypatch):
    """Distractors 108041 (a tiger in water) and 108082 (a tiger lying in a forest) are different photos: the
    stripes of the face give RANSAC 30-35 inliers, but the rest of the pictures disagree where that transform
    lays one over the other."""
    in_water = local_features(load_for_matching(str(shared_path("data", "distractors-dev", "train", "108041.jpg"))))
    lying = local_features(load_for_matching(str(shared_path("data", "distractors-dev", "val", "108082.jpg"))))
    assert count_inliers(in_water, lying) < MIN_INLIERS
    assert count_inliers(lying, in_water) < MIN_INLIERS
    monkeypatch.setattr(geometry, "MIN_AGREEMENT", -1.0)  # without the structure check, the stripes pass
    stripes = best_match(in_water, lying)
    assert stripes.inliers >= MIN_INLIERS
    assert stripes.agreement is not None
    assert stripes.agreement < MIN_AGREEMENT / 2


def test_the_same_caption_on_two_different_photos_is_not_a_match(monkeypatch):
    """Identical letters at the same place are dozens of consistent inliers: the rest of the pictures differ."""
    root = shared_path("data", "distractors-dev", "train")
    first = _features(_captioned(Image.open(root / "100075.jpg").convert("RGB")))
    second = _features(_captioned(Image.open(root / "105053.jpg").convert("RGB")))
    assert count_inliers(first, second) < MIN_INLIERS
    monkeypatch.setattr(geometry, "MIN_AGREEMENT", -1.0)
    assert count_inliers(first, second) >= 2 * MIN_INLIERS


@pytest.mark.parametrize(
    "edit",
    [
        "crop, mirror, colour cast",
        "greyscale, caption",
        "brighter, blurred",
        "darker, half size, turned 6 degrees",
        "quarter turn, JPEG quality 30",
    ],
)
def test_strongly_edited_copies_of_a_photo_agree_with_it_over_the_whole_overlap(edit: str):
    """Gradients compared on small thumbnails ignore exposure, colour, greyscale, blur and compression: a copy's
    agreement stays far above MIN_AGREEMENT, whichever picture is matched onto the other."""
    photo = Image.open(shared_path("data", "distractors-dev", "train", "108041.jpg")).convert("RGB")
    width, height = photo.size
    copies = {
        "crop, mirror, colour cast": lambda: _colour_cast(
            ImageOps.mirror(photo.crop((width // 8, height // 6, width * 7 // 8, height * 5 // 6)))
        ),
        "greyscale, caption": lambda: _captioned(photo.convert("L").convert("RGB")),
        "brighter, blurred": lambda: ImageEnhance.Brightness(photo).enhance(1.4).filter(ImageFilter.GaussianBlur(2.5)),
        "darker, half size, turned 6 degrees": lambda: (
            ImageEnhance.Brightness(photo)
            .enhance(0.65)
            .resize((width // 2, height // 2))
            .rotate(6, resample=Image.Resampling.BICUBIC)
        ),
        "quarter turn, JPEG quality 30": lambda: photo.rotate(90, expand=True),
    }
    original = _features(photo)
    copy = _features(copies[edit](), quality=30 if "JPEG" in edit else 85)
    for match in (best_match(original, copy), best_match(copy, original)):
        assert match.inliers >= MIN_INLIERS
        assert match.agreement is not None
        assert match.agreement > 0.9


def test_ratio_matches_are_those_of_opencvs_brute_force_matcher():
    import cv2

    root = shared_path("data", "neardup-dev", "images")
    paths = sorted(root.glob("*.jpg"))[:48:4] + sorted(shared_path("data", "distractors-dev", "val").glob("*.jpg"))[:4]
    features = [local_features(load_for_matching(str(path))) for path in paths]
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
    compared = 0
    for first in features:
        for second in features:
            for query in (first, first.mirrored):
                assert query is not None
                assert query.descriptors is not None
                assert second.descriptors is not None
                expected = [
                    (pair[0].queryIdx, pair[0].trainIdx)
                    for pair in matcher.knnMatch(query.descriptors, second.descriptors, k=2)
                    if len(pair) == 2 and pair[0].distance < RATIO_TEST * pair[1].distance
                ]
                queries, trains = ratio_matches(query.descriptors, second.descriptors)
                assert list(zip(queries.tolist(), trains.tolist(), strict=True)) == expected
                compared += 1
    assert compared == 2 * len(features) ** 2
