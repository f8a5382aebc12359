"""Calibration logic: edited copies, precision/recall per threshold, suggestions, set-aside copies, plot."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from duplicates.threshold_measurement import (
    TRANSFORMS,
    CalibrationSet,
    calibrate,
    copy_suspects,
    edited_copies,
    plot_png,
)
from tests.images import photo_like_image


def test_every_edit_makes_a_different_picture_of_a_sensible_size():
    photo = photo_like_image(5, (1600, 1200))
    copies = edited_copies(photo, rng=np.random.default_rng(0))
    assert [name for name, _ in copies] == list(TRANSFORMS)
    working = np.asarray(photo.resize((1024, 768)), dtype=np.float32)
    for name, copy in copies:
        assert copy.mode == "RGB", name
        assert min(copy.size) >= 64, (name, copy.size)
        assert max(copy.size) <= 1024, (name, copy.size)
        if copy.size == (1024, 768):
            assert np.abs(np.asarray(copy, dtype=np.float32) - working).mean() > 1.0, name


def synthetic_set(*, look_alike: float | None = None, hidden_copy: bool = False) -> CalibrationSet:
    """20 sources x 5 copies: copies score 0.90-0.99 with their original, other images ~0.0-0.6."""
    rng = np.random.default_rng(3)
    dim = 32
    sources = rng.normal(size=(20, dim))
    sources /= np.linalg.norm(sources, axis=1, keepdims=True)
    pool = np.vstack([sources, rng.normal(size=(80, dim))]).astype(np.float32)
    pool /= np.linalg.norm(pool, axis=1, keepdims=True)
    pool_ids = np.arange(1000, 1100)
    copies, copy_source = [], []
    for index in range(20):
        for step in range(5):
            target = 0.90 + 0.02 * step
            noise = rng.normal(size=dim)
            noise -= (noise @ pool[index]) * pool[index]
            noise /= np.linalg.norm(noise)
            copies.append(target * pool[index] + np.sqrt(1 - target**2) * noise)
            copy_source.append(1000 + index)
    if look_alike is not None:  # another photo that scores `look_alike` with source 0's copies
        pool[20] = look_alike * pool[0] + np.sqrt(1 - look_alike**2) * pool[21]
    if hidden_copy:  # the library already holds a copy of source 1
        pool[22] = pool[1]
    return CalibrationSet(
        copy_vectors=np.array(copies, dtype=np.float32),
        copy_source=np.array(copy_source),
        copy_transform=[name for _ in range(20) for name in ("a", "b", "c", "d", "e")],
        source_vectors={1000 + i: pool[i] for i in range(20)},
        pool_ids=pool_ids,
        pool_vectors=pool,
    )


def test_clean_library_suggests_a_threshold_below_every_copy():
    result = calibrate(synthetic_set(), target_precision=0.999)
    assert result.positives == 100
    assert result.negatives == 100 * 99
    assert result.suggested_near_duplicate is not None
    assert 0.6 <= result.suggested_near_duplicate <= 0.90
    assert result.recall_at_suggested == 1.0
    assert result.suggested_similar <= result.suggested_near_duplicate
    assert set(result.per_transform) == {"a", "b", "c", "d", "e"}


def test_match_suggestion_is_the_lowest_line_almost_no_different_photo_reaches():
    # 20 sources x 5 copies scoring 0.55-0.98 with their original, against 2,000 library images: 200,000
    # pairs of different photos (random directions in 24 dimensions)
    rng = np.random.default_rng(5)
    dim = 24
    pool = rng.normal(size=(2000, dim))
    pool /= np.linalg.norm(pool, axis=1, keepdims=True)
    copies, copy_source = [], []
    for index in range(20):
        for target in (0.55, 0.70, 0.80, 0.90, 0.98):
            noise = rng.normal(size=dim)
            noise -= (noise @ pool[index]) * pool[index]
            copies.append(target * pool[index] + np.sqrt(1 - target**2) * noise / np.linalg.norm(noise))
            copy_source.append(index)
    data = CalibrationSet(
        copy_vectors=np.array(copies, dtype=np.float32),
        copy_source=np.array(copy_source),
        copy_transform=["edit"] * 100,
        source_vectors={index: pool[index] for index in range(20)},
        pool_ids=np.arange(2000),
        pool_vectors=pool.astype(np.float32),
    )
    result = calibrate(data, target_precision=0.999)
    scores = data.copy_vectors @ data.pool_vectors.T
    different = scores[data.pool_ids[None, :] != data.copy_source[:, None]]
    assert (different >= result.suggested_match).mean() <= 1e-4 < (different >= result.suggested_match - 0.005).mean()
    assert result.suggested_similar < result.suggested_match < result.suggested_near_duplicate


def test_a_look_alike_pushes_the_threshold_above_it():
    result = calibrate(synthetic_set(look_alike=0.93), target_precision=0.999)
    assert result.suggested_near_duplicate is not None
    assert result.suggested_near_duplicate > 0.90
    assert result.top_negatives[0]["sample_id"] == 1000
    assert result.top_negatives[0]["library_id"] == 1020


def test_existing_copies_set_aside_do_not_count_as_negatives():
    data = synthetic_set(hidden_copy=True)
    contaminated = calibrate(data, target_precision=0.999)
    assert contaminated.suggested_near_duplicate is None or contaminated.suggested_near_duplicate > 0.95
    own = np.vstack([data.source_vectors[1001], data.copy_vectors[data.copy_source == 1001]])
    suspects = copy_suspects(
        source_id=1001, vectors=own, floor=0.9, pool_ids=data.pool_ids, pool_vectors=data.pool_vectors
    )
    assert suspects == [1022]
    cleaned = calibrate(
        CalibrationSet(**{**data.__dict__, "probable_copies": {1001: set(suspects)}}), target_precision=0.999
    )
    assert cleaned.suggested_near_duplicate is not None
    assert cleaned.suggested_near_duplicate <= 0.90
    assert cleaned.probable_copies == [[1001, 1022]]


def test_plot_is_a_png_and_bad_targets_are_refused():
    result = calibrate(synthetic_set(), target_precision=0.99)
    png = plot_png(result, title="test")
    assert png.startswith(b"\x89PNG")
    assert Image.open(io.BytesIO(png)).size[0] >= 800
    with pytest.raises(ValueError, match="target precision"):
        calibrate(synthetic_set(), target_precision=1.0)
