"""Real photos for the browser tests (from ../shared/data) and the bad files a user really drops."""

from __future__ import annotations

import csv
from pathlib import Path

from tests.images import shared_path


def variants(group: str, count: int) -> list[Path]:
    """Distinct files (by content) of one neardup-dev group: the same photo cropped, rescaled, recompressed."""
    root = shared_path("data", "neardup-dev")
    with (root / "labels.csv").open() as handle:
        files = [root / row["file"] for row in csv.DictReader(handle) if row["group_id"] == group]
    distinct: dict[bytes, Path] = {}
    for path in files:
        distinct.setdefault(path.read_bytes(), path)
    return list(distinct.values())[:count]


def distinct_photos(count: int) -> list[Path]:
    """Unrelated real photos (BSDS500), none of them a near-duplicate of another."""
    paths = sorted(shared_path("data", "distractors-dev", "train").glob("*.jpg"))
    return [path for path in paths if path.stem != "135037"][:count]  # 135037: a real photo the blur check rejects


def rated_photo() -> Path:
    """A camera JPEG (Canon EOS 500D) with EXIF Rating 3."""
    return shared_path("data", "exif", "immich-test-assets", "files", "metadata", "rating", "mongolels.jpg")
