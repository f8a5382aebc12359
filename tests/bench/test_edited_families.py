"""The edited-families generator (bench/edited_families.py): same seed, same bytes; labels say what was done."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from bench.edited_families import EDITS, QUALITY, generate, read_labels
from tests.images import shared_path


def _sources(count: int) -> tuple[Path, list[Path]]:
    root = shared_path("data", "distractors-dev")
    return root, sorted(root.glob("*/*.jpg"))[:count]


def _hashes(folder: Path) -> dict[str, str]:
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_same_seed_gives_byte_identical_files_and_labels(tmp_path):
    # given a few real photos
    root, sources = _sources(6)
    # when the families are generated twice into two folders with one seed, and once with another
    first = generate(out=tmp_path / "a", sources=sources, root=root, copies=3, seed=7, brackets=1)
    second = generate(out=tmp_path / "b", sources=sources, root=root, copies=3, seed=7, brackets=1)
    generate(out=tmp_path / "c", sources=sources, root=root, copies=3, seed=8, brackets=1)
    # then the two folders hold byte-identical files, labels.csv included; another seed makes other files
    hashes = _hashes(tmp_path / "a")
    assert len(hashes) == 6 * 3 + 4 + 1  # copies, one photo's four brackets, labels.csv
    assert hashes == _hashes(tmp_path / "b")
    assert first == second
    other = _hashes(tmp_path / "c")
    assert other.keys() == hashes.keys()
    assert sum(other[name] != hashes[name] for name in hashes) >= 6 * 3


def test_a_photos_copies_do_not_depend_on_the_other_photos(tmp_path):
    root, sources = _sources(4)
    generate(out=tmp_path / "all", sources=sources, root=root, copies=2, seed=7)
    generate(out=tmp_path / "one", sources=sources[2:3], root=root, copies=2, seed=7)
    alone = _hashes(tmp_path / "one")
    alone.pop("labels.csv")
    assert alone.items() <= _hashes(tmp_path / "all").items()


def test_labels_match_the_files(tmp_path):
    # given families generated from real photos
    root, sources = _sources(12)
    made = generate(out=tmp_path, sources=sources, root=root, copies=4, seed=3)
    labels = read_labels(tmp_path)
    # then labels.csv lists every file written, with two different known edits per copy and its quality
    assert labels == made
    assert {member.file for member in labels} == {
        path.relative_to(tmp_path).as_posix() for path in tmp_path.rglob("*.jpg")
    }
    assert all(len(set(member.edits)) == 2 and set(member.edits) <= set(EDITS) for member in labels)
    assert all(QUALITY[0] <= member.quality <= QUALITY[1] for member in labels)
    assert set(Counter(edit for member in labels for edit in member.edits)) == set(EDITS)
    assert 0 < sum(member.caption for member in labels) < len(labels)
    aligned: list[tuple[bool, bool]] = []
    originals = {member.source: Image.open(root / member.source).convert("RGB") for member in labels}
    for member in labels:
        copy = Image.open(tmp_path / member.file)
        original = originals[member.source]
        edits = set(member.edits)
        if edits <= {"half_size", "brightness", "colour", "mirror", "blur", "greyscale"}:
            expected = (original.width // 2, original.height // 2) if "half_size" in edits else original.size
            assert copy.size == expected, member
        if member.edits[-1] == "greyscale":
            channels = np.asarray(copy.convert("RGB"), dtype=np.int16)
            grey_enough = np.abs(channels[..., 0] - channels[..., 2]).mean() < 3
            assert grey_enough, member
        if edits <= {"half_size", "brightness", "colour", "mirror", "blur", "greyscale"}:
            # pixel for pixel, a copy correlates with the mirrored original if and only if "mirror" was applied
            small = original.resize(copy.size)
            straight, mirrored = _correlation(copy, small), _correlation(copy, ImageOps.mirror(small))
            right, wrong = (mirrored, straight) if "mirror" in edits else (straight, mirrored)
            aligned.append(("mirror" in edits, right > max(0.6, wrong)))
    assert all(ok for _, ok in aligned), aligned
    assert {was_mirrored for was_mirrored, _ in aligned} == {True, False}


def _correlation(first: Image.Image, second: Image.Image) -> float:
    a = np.asarray(first.convert("L"), dtype=np.float64).ravel()
    b = np.asarray(second.convert("L"), dtype=np.float64).ravel()
    return float(np.corrcoef(a, b)[0, 1])
