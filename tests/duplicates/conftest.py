"""Real photos for the duplicates tests: variants of a few dev photos and unrelated distractors."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from duplicates.models import DuplicateGroup, DuplicatePair
from duplicates.services.groups import duplicate_groups_refresh
from gallery.models import Image
from gallery.services import image_create
from pipeline.services import image_ingest
from tests.images import photo_jpeg, shared_path


def group_files(group: str, count: int, *, skip: int = 0) -> list[Path]:
    """Distinct files (by content) of one neardup-dev group, in label order."""
    root = shared_path("data", "neardup-dev")
    with (root / "labels.csv").open() as handle:
        files = [root / row["file"] for row in csv.DictReader(handle) if row["group_id"] == group]
    distinct: dict[bytes, Path] = {}
    for path in files:
        distinct.setdefault(path.read_bytes(), path)
    return list(distinct.values())[skip : skip + count]


def distractor_files(count: int) -> list[Path]:
    # 135037.jpg (an eagle against a defocused sky) is the one real photo the blur check rejects.
    paths = sorted(shared_path("data", "distractors-dev", "train").glob("*.jpg"))
    return [path for path in paths if path.stem != "135037"][:count]


@pytest.fixture
def ingest(committed: Callable[..., Any]) -> Callable[[dict[str, list[Path]]], dict[int, str]]:
    """Upload files through the pipeline: embedding, then detection, each its own task; id -> label."""

    def run(labelled: dict[str, list[Path]]) -> dict[int, str]:
        ids: dict[int, str] = {}

        def upload() -> None:
            for label, paths in labelled.items():
                for path in paths:
                    ids[image_ingest(data=path.read_bytes(), original_name=path.name).image.pk] = label

        committed(upload)
        assert Image.objects.filter(pk__in=ids, status=Image.Status.INDEXED).count() == len(ids)
        return ids

    return run


def make_groups(sizes: list[int], *, seed: int, kind: str = DuplicatePair.Kind.NEAR_DUPLICATE) -> list[DuplicateGroup]:
    """Families of real (made) photos, every two of a family paired as near-duplicates (or as similar photos of
    one scene), grouped by the refresh the detection step runs."""
    groups = []
    for number, size in enumerate(sizes):
        images = [
            image_create(data=photo_jpeg(seed + number * 100 + k, size=(96 + k, 72)), original_name=f"f{k}.jpg").image
            for k in range(size)
        ]
        for x, first in enumerate(images):
            for second in images[x + 1 :]:
                DuplicatePair.objects.create(
                    image_a=first,
                    image_b=second,
                    kind=kind,
                    similarity=0.95 if kind == DuplicatePair.Kind.NEAR_DUPLICATE else 0.8,
                    evidence={
                        "cosine": 0.95,
                        "phash_distance": 4,
                        "geometric_inliers": None,
                        "same_camera": True,
                        **({"same_scene": True} if kind == DuplicatePair.Kind.SIMILAR else {}),
                    },
                )
        duplicate_groups_refresh(image_ids=[image.pk for image in images])
        groups.append(DuplicateGroup.objects.get(kind=kind, members__image_id=images[0].pk))
    return groups
