"""Families of edited copies of real photos, made with a fixed seed: the copies users actually upload.

Each source photo (../shared/data/distractors-dev) gets `copies` edited copies; each copy gets two different
edits drawn from EDITS, a caption on some, and is saved as a JPEG of quality 35-85. Everything random comes
from a generator seeded with (seed, the photo's name), so a photo's copies do not depend on which other
photos are generated, and the same seed gives byte-identical files (tests/bench/test_edited_families.py).
Exposure brackets (one scene at -2, -1, +1, +2 EV) are made the same way: photos of one scene that are not
copies, which detection should put at least in the similar band.

    .venv/bin/python bench/edited_families.py [--out DIR] [--copies N] [--limit N] [--seed S]

bench/duplicates.py calls `ensure_families` and writes them under bench/out/ (gitignored): never commit them.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import hashlib
import io
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps, TiffImagePlugin

if __name__ == "__main__":
    # Run as a script, bench/ is sys.path[0] and bench/duplicates.py would shadow the `duplicates` package.
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from duplicates.threshold_measurement import rotated_without_corners

REPO = Path(__file__).resolve().parents[1]
SOURCES = REPO.parent / "shared" / "data" / "distractors-dev"
DEFAULT_SEED = 20261130
DEFAULT_COPIES = 4
CAPTION_SHARE = 0.3  # share of copies that get a caption
QUALITY = (35, 85)  # JPEG quality, inclusive
BRACKET_EV = (-2.0, -1.0, 1.0, 2.0)
GENERATOR_VERSION = "1"  # part of the cache folder's name: change it when the edits change
LABELS = "labels.csv"
FIELDS = ("file", "family", "source", "kind", "edits", "caption", "quality")
CAPTIONS = ("Holiday 2019", "best day ever!", "IMG_2041 (copy)", "summer with friends", "#throwback", "do not share")

Edit = Callable[[Image.Image, np.random.Generator], Image.Image]


def _crop(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Keeps 60-85 % of each side, anywhere in the picture."""
    keep_w, keep_h = rng.uniform(0.60, 0.85, size=2)
    width, height = max(16, round(image.width * keep_w)), max(16, round(image.height * keep_h))
    left = int(rng.integers(0, image.width - width + 1))
    top = int(rng.integers(0, image.height - height + 1))
    return image.crop((left, top, left + width, top + height))


def _half_size(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return image.resize((max(16, image.width // 2), max(16, image.height // 2)), Image.Resampling.LANCZOS)


def _brightness(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    factor = rng.uniform(1.25, 1.5) if rng.random() < 0.5 else rng.uniform(0.6, 0.8)
    return ImageEnhance.Brightness(image).enhance(factor)


def _colour(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Saturation up or down, then a warm or cool cast (per-channel gains), like a phone filter."""
    saturation = rng.uniform(1.4, 1.9) if rng.random() < 0.5 else rng.uniform(0.3, 0.6)
    saturated = ImageEnhance.Color(image).enhance(saturation)
    gains = np.array([1.12, 1.0, 0.85]) if rng.random() < 0.5 else np.array([0.85, 1.0, 1.12])
    pixels = np.asarray(saturated, dtype=np.float32) * gains
    return Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8))


def _rotation(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Rotated 2-8 degrees either way, cropped to the largest upright rectangle without empty corners."""
    return rotated_without_corners(image, rng.uniform(2, 8) * (1 if rng.random() < 0.5 else -1))


def _mirror(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return ImageOps.mirror(image)


def _blur(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(1.0, 2.5))))


def _greyscale(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return image.convert("L").convert("RGB")


EDITS: dict[str, Edit] = {
    "crop": _crop,
    "half_size": _half_size,
    "brightness": _brightness,
    "colour": _colour,
    "rotation": _rotation,
    "mirror": _mirror,
    "blur": _blur,
    "greyscale": _greyscale,
}


def _caption(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A white caption with a dark outline across the lower part, as sharing apps and memes add."""
    text = CAPTIONS[int(rng.integers(len(CAPTIONS)))]
    size = max(10, image.height // 9)
    font = ImageFont.truetype("DejaVuSans-Bold.ttf", size) if _has_dejavu() else ImageFont.load_default()
    captioned = image.copy()
    draw = ImageDraw.Draw(captioned)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font, stroke_width=2)
    x = max(0, (image.width - (right - left)) // 2 + int(rng.integers(-image.width // 10, image.width // 10 + 1)))
    y = max(0, image.height - (bottom - top) - image.height // 12)
    draw.text((x, y), text, font=font, fill=(255, 255, 255), stroke_width=2, stroke_fill=(0, 0, 0))
    return captioned


def _has_dejavu() -> bool:
    try:
        ImageFont.truetype("DejaVuSans-Bold.ttf", 10)
    except OSError:
        return False
    return True


def _jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def _rng(seed: int, name: str, purpose: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}/{purpose}/{name}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


@dataclass(frozen=True)
class FamilyMember:
    """One generated file and how it was made."""

    file: str  # relative to the output folder
    family: str  # the source's group label in bench/duplicates.py: distractor-<stem>
    source: str  # the source photo's path relative to the sources folder
    kind: str  # "copy" or "bracket"
    edits: tuple[str, ...]  # for a copy: the two edits in the order applied; for a bracket: ("ev+1.0",)
    caption: bool
    quality: int


def edited_copies(photo: Image.Image, *, name: str, copies: int, seed: int) -> list[tuple[FamilyMember, bytes]]:
    """`copies` edited copies of one photo, each with two different edits, as JPEG bytes."""
    rng = _rng(seed, name, "copies")
    stem = Path(name).stem
    made = []
    for number in range(copies):
        chosen = tuple(str(edit) for edit in rng.choice(sorted(EDITS), size=2, replace=False))
        picture = photo
        for edit in chosen:
            picture = EDITS[edit](picture, rng)
        caption = bool(rng.random() < CAPTION_SHARE)
        if caption:
            picture = _caption(picture, rng)
        quality = int(rng.integers(QUALITY[0], QUALITY[1] + 1))
        member = FamilyMember(
            file=f"copies/{stem}-{number}.jpg",
            family=f"distractor-{stem}",
            source=name,
            kind="copy",
            edits=chosen,
            caption=caption,
            quality=quality,
        )
        made.append((member, _jpeg(picture, quality)))
    return made


def exposure_brackets(photo: Image.Image, *, name: str, seed: int) -> list[tuple[FamilyMember, bytes]]:
    """The same scene at each of BRACKET_EV stops: linear light scaled by 2**ev (sRGB-ish gamma 2.2)."""
    rng = _rng(seed, name, "brackets")
    stem = Path(name).stem
    linear = (np.asarray(photo, dtype=np.float32) / 255.0) ** 2.2
    made = []
    for ev in BRACKET_EV:
        pixels = np.clip(linear * 2.0**ev, 0, 1) ** (1 / 2.2) * 255
        quality = int(rng.integers(QUALITY[0], QUALITY[1] + 1))
        member = FamilyMember(
            file=f"brackets/{stem}-ev{ev:+.0f}.jpg",
            family=f"bracket-{stem}",
            source=name,
            kind="bracket",
            edits=(f"ev{ev:+.0f}",),
            caption=False,
            quality=quality,
        )
        made.append((member, _jpeg(Image.fromarray(pixels.round().astype(np.uint8)), quality)))
    return made


CAMERA = ("Bench", "AEB-5")
CAMERA_BRACKET_EV = (-2.0, -1.0, 0.0, 1.0, 2.0)
CAMERA_BRACKET_INTERVAL_S = 0.2  # automatic exposure bracketing in continuous drive: 5 frames a second
CAMERA_BRACKETS_VERSION = "2"  # part of the cache folder's name: change it when the frames change
_TAG_MAKE, _TAG_MODEL, _TAG_EXIF_IFD = 0x010F, 0x0110, 0x8769
_TAG_DATETIME_ORIGINAL, _TAG_SUBSEC_ORIGINAL, _TAG_EXPOSURE_BIAS = 0x9003, 0x9291, 0x9204


def _camera_exif(moment: datetime.datetime, ev: float) -> bytes:
    """EXIF as a camera writes it for one frame: make, model, capture time to the hundredth, exposure bias."""
    exif = Image.Exif()
    exif[_TAG_MAKE], exif[_TAG_MODEL] = CAMERA
    shot = exif.get_ifd(_TAG_EXIF_IFD)
    shot[_TAG_DATETIME_ORIGINAL] = moment.strftime("%Y:%m:%d %H:%M:%S")
    shot[_TAG_SUBSEC_ORIGINAL] = f"{moment.microsecond // 10000:02d}"
    shot[_TAG_EXPOSURE_BIAS] = TiffImagePlugin.IFDRational(round(ev * 3), 3)
    return exif.tobytes()


def camera_brackets(photo: Image.Image, *, name: str, seed: int) -> list[tuple[FamilyMember, bytes]]:
    """One scene shot as a camera brackets it: frames at CAMERA_BRACKET_EV stops (linear light scaled by
    2**ev, sRGB-ish gamma 2.2), 0.2 s apart, each with the camera's EXIF. Unlike `exposure_brackets` (the
    photo plus four edits of it), every frame is a shot of its own, the 0 EV one included."""
    rng = _rng(seed, name, "camera-brackets")
    stem = Path(name).stem
    # scenes minutes apart (never within one burst), the same scene's frames a fifth of a second apart
    start = datetime.datetime(2026, 6, 1, 9, 0, 0) + datetime.timedelta(
        minutes=int(rng.integers(0, 100_000)), milliseconds=10 * int(rng.integers(1, 20))
    )
    linear = (np.asarray(photo, dtype=np.float32) / 255.0) ** 2.2
    made = []
    for frame, ev in enumerate(CAMERA_BRACKET_EV):
        pixels = np.clip(linear * 2.0**ev, 0, 1) ** (1 / 2.2) * 255
        quality = int(rng.integers(QUALITY[0], QUALITY[1] + 1))
        moment = start + datetime.timedelta(seconds=frame * CAMERA_BRACKET_INTERVAL_S)
        member = FamilyMember(
            file=f"camera-brackets/{stem}-ev{ev:+.0f}.jpg",
            family=f"distractor-{stem}",
            source=name,
            kind="camera-bracket",
            edits=(f"ev{ev:+.0f}",),
            caption=False,
            quality=quality,
        )
        buffer = io.BytesIO()
        Image.fromarray(pixels.round().astype(np.uint8)).save(
            buffer, "JPEG", quality=quality, exif=_camera_exif(moment, ev)
        )
        made.append((member, buffer.getvalue()))
    return made


def ensure_camera_brackets(*, cache: Path, seed: int, scenes: int) -> Path:
    """camera_brackets of the first `scenes` source photos under `cache`, made once, with labels.csv."""
    sources = source_photos()[:scenes]
    folder = cache / f"camera-brackets-v{CAMERA_BRACKETS_VERSION}-s{seed}-n{len(sources)}"
    if (folder / LABELS).exists():
        return folder
    print(f"generating camera brackets of {len(sources)} scenes in {folder}...", flush=True)
    members = []
    for path in sources:
        name = path.relative_to(SOURCES).as_posix()
        with Image.open(path) as opened:
            photo = ImageOps.exif_transpose(opened).convert("RGB")
        for member, data in camera_brackets(photo, name=name, seed=seed):
            target = folder / member.file
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            members.append(member)
    _write_labels(folder, members)
    return folder


def source_photos(root: Path = SOURCES) -> list[Path]:
    if not root.exists():
        sys.exit(f"Missing {root}: the generator reads ../shared/data/distractors-dev (beside the repository).")
    return sorted(root.glob("*/*.jpg"))


def generate(
    *, out: Path, sources: list[Path], root: Path = SOURCES, copies: int, seed: int, brackets: int = 0
) -> list[FamilyMember]:
    """Write every family's copies (and exposure brackets of the first `brackets` sources) with labels.csv."""
    members: list[FamilyMember] = []
    for position, path in enumerate(sources):
        name = path.relative_to(root).as_posix()
        with Image.open(path) as opened:
            photo = ImageOps.exif_transpose(opened).convert("RGB")
        made = edited_copies(photo, name=name, copies=copies, seed=seed)
        if position < brackets:
            made += exposure_brackets(photo, name=name, seed=seed)
        for member, data in made:
            target = out / member.file
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            members.append(member)
    _write_labels(out, members)
    return members


def _write_labels(out: Path, members: list[FamilyMember]) -> None:
    with (out / LABELS).open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(FIELDS)
        for member in members:
            writer.writerow(
                [
                    member.file,
                    member.family,
                    member.source,
                    member.kind,
                    "+".join(member.edits),
                    int(member.caption),
                    member.quality,
                ]
            )


def read_labels(folder: Path) -> list[FamilyMember]:
    with (folder / LABELS).open() as handle:
        return [
            FamilyMember(
                file=row["file"],
                family=row["family"],
                source=row["source"],
                kind=row["kind"],
                edits=tuple(row["edits"].split("+")),
                caption=row["caption"] == "1",
                quality=int(row["quality"]),
            )
            for row in csv.DictReader(handle)
        ]


def ensure_families(*, cache: Path, copies: int, seed: int, limit: int | None, brackets: int) -> Path:
    """The generated folder for these parameters under `cache`, made once (a complete folder has labels.csv)."""
    sources = source_photos()[:limit]
    folder = cache / f"edited-families-v{GENERATOR_VERSION}-s{seed}-c{copies}-n{len(sources)}-b{brackets}"
    if not (folder / LABELS).exists():
        print(f"generating {len(sources)} families x {copies} edited copies in {folder}...", flush=True)
        generate(out=folder, sources=sources, copies=copies, seed=seed, brackets=brackets)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out")
    parser.add_argument("--copies", type=int, default=DEFAULT_COPIES)
    parser.add_argument("--limit", type=int, default=None, help="only the first N source photos")
    parser.add_argument("--brackets", type=int, default=20, help="exposure brackets of the first N photos")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args()
    folder = ensure_families(
        cache=args.out, copies=args.copies, seed=args.seed, limit=args.limit, brackets=args.brackets
    )
    members = read_labels(folder)
    print(f"{len(members)} files in {folder}")


if __name__ == "__main__":
    main()
