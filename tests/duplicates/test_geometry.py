"""Geometric verification on real photos: crops and quarter turns of one photo match, other photos don't."""

from __future__ import annotations

import csv
import io

from PIL import Image

from duplicates.geometry import MIN_INLIERS, count_inliers, load_for_matching, local_features
from tests.images import shared_path


def _features(image: Image.Image):
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return local_features(load_for_matching(io.BytesIO(buffer.getvalue())))


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
