"""Camera, capture time, orientation and star rating from EXIF and XMP; never blocks an upload.

Cameras and editors write these in many half-broken ways (values padded with NULs or spaces, text after
the terminating NUL, ISO dates where EXIF wants "YYYY:MM:DD HH:MM:SS", IFD offsets pointing nowhere). Each
field is read on its own and a value that cannot be understood becomes "absent", logged at debug level,
so one bad tag never loses the others and never fails the upload.
"""

from __future__ import annotations

import datetime
import logging
import math
import re
import warnings
from dataclasses import dataclass, replace

from PIL import Image

logger = logging.getLogger(__name__)

MAX_TEXT_LENGTH = 100
# Generous for real packets (a few KB, up to ~64 KB in one JPEG segment) while bounding the regex work.
MAX_XMP_CHARS = 1_000_000

TAG_MAKE = 0x010F
TAG_MODEL = 0x0110
TAG_ORIENTATION = 0x0112
TAG_DATETIME = 0x0132
TAG_XMP = 0x02BC
TAG_RATING = 0x4746
TAG_RATING_PERCENT = 0x4749
TAG_EXIF_IFD = 0x8769
TAG_DATETIME_ORIGINAL = 0x9003
TAG_DATETIME_DIGITIZED = 0x9004
TAG_OFFSET_TIME = 0x9010
TAG_OFFSET_TIME_ORIGINAL = 0x9011
TAG_OFFSET_TIME_DIGITIZED = 0x9012
TAG_SUBSEC_TIME = 0x9290
TAG_SUBSEC_TIME_ORIGINAL = 0x9291
TAG_SUBSEC_TIME_DIGITIZED = 0x9292

# (date tag, where it lives, its offset tag in the Exif IFD, name kept as taken_at_source), best first.
_DATE_SOURCES = (
    (TAG_DATETIME_ORIGINAL, "exif_ifd", TAG_OFFSET_TIME_ORIGINAL, "DateTimeOriginal"),
    (TAG_DATETIME_DIGITIZED, "exif_ifd", TAG_OFFSET_TIME_DIGITIZED, "DateTimeDigitized"),
    (TAG_DATETIME, "ifd0", TAG_OFFSET_TIME, "DateTime"),
)
# Fractions of a second of each date tag (in the Exif IFD): two shots of a burst or bracket often share the
# second, and only these tell them apart from two copies of one shot.
_SUBSEC_TAGS = {
    TAG_DATETIME_ORIGINAL: TAG_SUBSEC_TIME_ORIGINAL,
    TAG_DATETIME_DIGITIZED: TAG_SUBSEC_TIME_DIGITIZED,
    TAG_DATETIME: TAG_SUBSEC_TIME,
}
_SUBSEC = re.compile(r"\s*(\d{1,9})\s*$")
_XMP_APP1_PREFIX = b"http://ns.adobe.com/xap/1.0/\x00"
# "xmp" is the usual prefix of the namespace http://ns.adobe.com/xap/1.0/ and "xap" its old name.
# Other prefixes are deliberately not matched: MicrosoftPhoto:Rating holds a 0-99 percentage.
_XMP_RATING_PATTERNS = (
    re.compile(r"""\b(?:xmp|xap):Rating\s*=\s*(["'])\s*([^"'<>]{0,32}?)\s*\1"""),
    re.compile(r"<(?:xmp|xap):Rating(?:\s[^<>]{0,200})?>\s*([^<]{0,32}?)\s*</(?:xmp|xap):Rating\s*>"),
)
_EXIF_DATE = re.compile(
    r"(\d{4})[:\-/](\d{1,2})[:\-/](\d{1,2})[ T]+(\d{1,2}):(\d{2})(?::(\d{2}))?(?:[.,]\d+)?"
    r"\s*(Z|[+\-]\d{2}:?\d{2})?$"
)
_OFFSET = re.compile(r"([+\-])(\d{2}):?(\d{2})$")


@dataclass(frozen=True)
class ExifData:
    """The metadata the library keeps; absent values are "" or None, never an exception."""

    camera_make: str
    camera_model: str
    taken_at: datetime.datetime | None
    orientation: int | None
    rating: int | None
    rating_source: str
    taken_at_source: str = ""  # "DateTimeOriginal", "DateTimeDigitized", "DateTime" or ""


NO_EXIF = ExifData(camera_make="", camera_model="", taken_at=None, orientation=None, rating=None, rating_source="")


def read_exif(image: Image.Image) -> ExifData:
    """Read an opened image's metadata; malformed EXIF or XMP yields empty fields, never an error."""
    try:
        return _read_exif(image)
    except Exception as error:  # last resort: metadata must never block an upload
        logger.debug("Unreadable metadata in %s: %r", _describe(image), error)
        return NO_EXIF


def xmp_rating(xmp_packet: bytes | str) -> int | None:
    """The xmp:Rating stars (0-5) in an XMP packet, in attribute or element form; None if absent or invalid.

    Lightroom writes -1 for "rejected": that is not a star count, so it reads as unrated (None).
    """
    text = _xmp_text(xmp_packet)
    for pattern in _XMP_RATING_PATTERNS:
        for match in pattern.finditer(text):
            stars = _stars(match.group(match.lastindex or 1))
            if stars is not None:
                return stars
    return None


def rating_from_percent(percent: object) -> int | None:
    """Stars for Windows' RatingPercent (EXIF 0x4749), with the mapping Windows Explorer uses."""
    value = _number(percent)
    if value is None or not 0 <= value <= 100:
        return None
    for upper, stars in ((0, 0), (24, 1), (49, 2), (74, 3), (98, 4)):
        if value <= upper:
            return stars
    return 5


def _read_exif(image: Image.Image) -> ExifData:
    # Pillow warns (UserWarning) about corrupt EXIF it skips: that is expected here, so it goes to the log.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ifd0 = image.getexif()
        except Exception as error:  # Pillow raises many types on broken EXIF
            logger.debug("Unreadable EXIF in %s: %r", _describe(image), error)
            ifd0 = Image.Exif()
        try:
            exif_ifd: dict[int, object] = dict(ifd0.get_ifd(TAG_EXIF_IFD))
        except Exception as error:
            logger.debug("Unreadable Exif IFD in %s: %r", _describe(image), error)
            exif_ifd = {}
    for warning in caught:
        logger.debug("EXIF in %s: %s", _describe(image), warning.message)
    taken_at, taken_at_source = _taken_at(dict(ifd0), exif_ifd)
    found = ExifData(
        camera_make=_text(ifd0.get(TAG_MAKE)),
        camera_model=_text(ifd0.get(TAG_MODEL)),
        taken_at=taken_at,
        orientation=_orientation(ifd0.get(TAG_ORIENTATION)),
        rating=None,
        rating_source="",
        taken_at_source=taken_at_source,
    )
    return _with_rating(found, image, ifd0=dict(ifd0))


def _with_rating(found: ExifData, image: Image.Image, *, ifd0: dict[int, object]) -> ExifData:
    """Rating precedence: EXIF Rating, then RatingPercent, then XMP xmp:Rating."""
    stars = _stars(ifd0.get(TAG_RATING))
    if stars is not None:
        return _replace_rating(found, stars, "exif")
    stars = rating_from_percent(ifd0.get(TAG_RATING_PERCENT))
    if stars is not None:
        return _replace_rating(found, stars, "exif_percent")
    for packet in _xmp_packets(image, ifd0=ifd0):
        try:
            stars = xmp_rating(packet)
        except Exception as error:
            logger.debug("Unreadable XMP in %s: %r", _describe(image), error)
            continue
        if stars is not None:
            return _replace_rating(found, stars, "xmp")
    return found


def _replace_rating(found: ExifData, stars: int, source: str) -> ExifData:
    return replace(found, rating=stars, rating_source=source)


def _xmp_packets(image: Image.Image, *, ifd0: dict[int, object]) -> list[bytes | str]:
    """XMP packets where Pillow leaves them (info, PNG iTXt, the TIFF tag) and in raw APP1 segments."""
    packets: list[bytes | str] = []
    for key in ("xmp", "XML:com.adobe.xmp"):
        value = image.info.get(key)
        if isinstance(value, bytes | str) and value:
            packets.append(value)
    tiff_xmp = ifd0.get(TAG_XMP)
    if isinstance(tiff_xmp, bytes | str) and tiff_xmp:
        packets.append(tiff_xmp)
    for marker, segment in getattr(image, "applist", []) or []:
        if marker == "APP1" and isinstance(segment, bytes) and segment.startswith(_XMP_APP1_PREFIX):
            packets.append(segment[len(_XMP_APP1_PREFIX) :])
    return packets


def _xmp_text(packet: bytes | str) -> str:
    """The packet as text, UTF-16 when it says so by its byte-order mark, else UTF-8 (bad bytes replaced)."""
    if isinstance(packet, str):
        return packet[:MAX_XMP_CHARS]
    head = packet[: MAX_XMP_CHARS * 2]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return head.decode("utf-16", errors="replace")[:MAX_XMP_CHARS]
    return head[:MAX_XMP_CHARS].decode("utf-8", errors="replace")


def _stars(value: object) -> int | None:
    """A 0-5 star count from an int, a float or text such as "3" or "3.0"; anything else is None."""
    number = _number(value)
    if number is None or number != int(number) or not 0 <= number <= 5:
        return None
    return int(number)


def _number(value: object) -> float | None:
    """A finite number from an EXIF/XMP value (int, float, IFDRational, text, one-item tuple) or None."""
    if isinstance(value, tuple | list) and len(value) == 1:
        value = value[0]
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value.strip(" \x00") if isinstance(value, str) else value)  # type: ignore[arg-type]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return number if math.isfinite(number) else None


def _text(value: object) -> str:
    """EXIF ASCII as clean text: up to the terminating NUL, trimmed, at most MAX_TEXT_LENGTH characters."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        return ""
    # EXIF ASCII ends at the first NUL; some writers pad or lead with NULs, so take the first non-empty part.
    parts = [part.strip() for part in value.split("\x00")]
    text = next((part for part in parts if part), "")
    text = "".join(char for char in text if char.isprintable())
    return text[:MAX_TEXT_LENGTH]


def _orientation(value: object) -> int | None:
    number = _number(value)
    if number is None or number != int(number) or not 1 <= number <= 8:
        return None
    return int(number)


def _taken_at(ifd0: dict[int, object], exif_ifd: dict[int, object]) -> tuple[datetime.datetime | None, str]:
    """The first readable of DateTimeOriginal, DateTimeDigitized, DateTime, aware if an offset is given."""
    for tag, where, offset_tag, name in _DATE_SOURCES:
        raw = (exif_ifd if where == "exif_ifd" else ifd0).get(tag)
        moment = _parse_datetime(_text(raw), _text(exif_ifd.get(offset_tag)))
        if moment is not None:
            return moment + _fraction(exif_ifd.get(_SUBSEC_TAGS[tag])), name
        if raw not in (None, "", b""):
            logger.debug("Unreadable EXIF date %s=%r", name, raw)
    return None, ""


def _parse_datetime(text: str, offset_text: str) -> datetime.datetime | None:
    """'YYYY:MM:DD HH:MM:SS' (or ISO 8601, as some editors write) with an optional offset; None if invalid.

    Cameras without a set clock write "0000:00:00 00:00:00" or blanks: those are absent, not errors.
    """
    match = _EXIF_DATE.match(text)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(part) if part else 0 for part in match.groups()[:6])
    try:
        moment = datetime.datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None
    zone = _timezone(match.group(7) or offset_text)
    return moment.replace(tzinfo=zone) if zone is not None else moment


def _fraction(value: object) -> datetime.timedelta:
    """A SubSecTime value ("25" = 0.25 s) as a duration; nothing when absent or unreadable."""
    match = _SUBSEC.match(_text(value))
    if match is None:
        return datetime.timedelta(0)
    digits = match.group(1)
    return datetime.timedelta(microseconds=int(digits[:6].ljust(6, "0")))


def _timezone(text: str) -> datetime.timezone | None:
    if text == "Z":
        return datetime.UTC
    match = _OFFSET.match(text.strip())
    if match is None:
        return None
    sign = -1 if match.group(1) == "-" else 1
    hours, minutes = int(match.group(2)), int(match.group(3))
    if hours > 23 or minutes > 59:
        return None
    return datetime.timezone(sign * datetime.timedelta(hours=hours, minutes=minutes))


def _describe(image: Image.Image) -> str:
    name = getattr(image, "filename", "")
    return str(name) if name else f"{getattr(image, 'format', None)} image {getattr(image, 'size', None)}"
