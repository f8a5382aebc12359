"""Perceptual hashes on real photos, the keep suggestion, and the evidence stored on a pair."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from PIL import Image, ImageEnhance

from duplicates.evidence import ImageFacts, dhash, hamming, pair_evidence, phash, suggest_keep
from tests.images import photo_like_image, shared_path


def _distractor(name: str) -> Image.Image:
    return Image.open(shared_path("data", "distractors-dev", "train", name)).convert("RGB")


def _recompressed(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


@pytest.mark.parametrize("hash_function", [phash, dhash])
def test_hashes_survive_rescaling_recompression_and_brightness_but_tell_photos_apart(hash_function):
    photo = _distractor("100075.jpg")
    same = [
        photo.resize((photo.width // 3, photo.height // 3), Image.Resampling.LANCZOS),
        _recompressed(photo, 30),
        ImageEnhance.Brightness(photo).enhance(1.15),
    ]
    original = hash_function(photo)
    assert max(hamming(original, hash_function(copy)) for copy in same) <= 6
    others = sorted(shared_path("data", "distractors-dev", "train").glob("*.jpg"))[1:21]
    distances = [hamming(original, hash_function(Image.open(path).convert("RGB"))) for path in others]
    assert min(distances) >= 14, distances


def test_hashes_are_64_bit_and_deterministic():
    image = photo_like_image(3)
    assert phash(image) == phash(image.copy())
    assert 0 < phash(image) < 2**64
    assert 0 < dhash(image) < 2**64
    assert hamming(0, 2**64 - 1) == 64


def facts(pk: int, **overrides: object) -> ImageFacts:
    values = {"id": pk, "width": 1000, "height": 800, "file_size": 500_000, "sharpness": 0.7, "rating": None}
    values.update(overrides)
    return ImageFacts(**values)


@pytest.mark.parametrize(
    ("a", "b", "keep", "reason"),
    [
        (facts(1, width=2000, height=1600), facts(2, sharpness=0.9, rating=5), 1, "higher resolution"),
        (facts(1, sharpness=0.60), facts(2, sharpness=0.75), 2, "sharper"),
        # 0.015 apart: within the measurement noise of the sharpness score, so the rating decides
        (facts(1, sharpness=0.700, rating=2), facts(2, sharpness=0.715, rating=1), 1, "higher rating"),
        (facts(1, rating=None), facts(2, rating=0), 2, "higher rating"),
        (facts(1, file_size=400_000), facts(2, file_size=900_000), 2, "larger file"),
        (facts(7), facts(3), 3, "uploaded first"),
    ],
)
def test_keep_suggestion_order(a, b, keep, reason):
    advice = suggest_keep(a, b)
    assert (advice.keep.id, advice.reason) == (keep, reason)
    assert advice.remove.id == ({a.id, b.id} - {keep}).pop()
    assert suggest_keep(b, a).keep.id == keep  # the order of the pair doesn't matter


def test_pair_evidence_has_time_gap_cameras_and_both_sides():
    a = facts(1, taken_at=datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC), camera="Canon EOS R6")
    b = facts(2, taken_at=datetime(2024, 5, 1, 12, 0, 3, tzinfo=UTC), camera="canon eos r6")
    evidence = pair_evidence(cosine=0.93, a=a, b=b, phash_distance=4, dhash_distance=6, geometric_inliers=None)
    assert evidence["time_gap_seconds"] == 3.0
    assert evidence["same_camera"] is True
    assert (evidence["a"]["width"], evidence["b"]["file_size"]) == (1000, 500_000)
    unknown = pair_evidence(
        cosine=0.9, a=facts(1), b=facts(2), phash_distance=None, dhash_distance=None, geometric_inliers=25
    )
    assert (unknown["time_gap_seconds"], unknown["same_camera"], unknown["geometric_inliers"]) == (None, None, 25)
