"""EXIF/XMP reading: agreement with an independent reader on real camera files, ratings, broken metadata."""

from __future__ import annotations

import datetime
import io
import json
import logging
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from gallery.exif import NO_EXIF, rating_from_percent, read_exif, xmp_rating
from tests.images import encode, jpeg_with_rating, photo_jpeg, photo_like_image, shared_path

SCANNED_SOURCES = ("exif-samples", "immich-test-assets")

# Where our reading differs from exif_scan.json on purpose.
SCAN_OVERRIDES = {
    # The Model value is "ION230\0F": EXIF ASCII ends at the first NUL and the "F" after it is leftover
    # buffer. The scan printed the raw bytes; exiftool, like us, reads "ION230".
    "exif-samples/files/jpg/WWL_(Polaroid)_ION230.jpg": {"model": "ION230"},
}

# The scan's "datetime" is IFD0 DateTime (0x0132), the time the file was last changed: the exif-samples
# were re-saved on 2008-07-31 and the immich albums on 2023-09-27, long after the photos were taken.
# taken_at prefers DateTimeOriginal (0x9003). These values were read with exiftool 12 (-EXIF:all), an
# independent reader, for files that cover each way the tag is written.
DATE_TIME_ORIGINAL = {
    "exif-samples/files/jpg/Nikon_D70.jpg": datetime.datetime(2008, 3, 15, 9, 52, 1),
    "exif-samples/files/jpg/tests/45-gps_ifd.jpg": datetime.datetime(2012, 6, 23, 6, 55, 49),
    # A camera clock set to the future is still what the camera says.
    "exif-samples/files/jpg/WWL_(Polaroid)_ION230.jpg": datetime.datetime(2026, 11, 24, 14, 41, 16),
    # No DateTime at all, only DateTimeOriginal.
    "exif-samples/files/jpg/exif-org/kodak-dc210.jpg": datetime.datetime(2000, 10, 26, 16, 46, 51),
    # OffsetTimeOriginal +03:00 makes it aware.
    "exif-samples/files/jpg/mobile/HMD_Nokia_8.3_5G.jpg": datetime.datetime(
        2022, 8, 14, 14, 12, 31, tzinfo=datetime.timezone(datetime.timedelta(hours=3))
    ),
    # SubSecTimeOriginal "17" adds 0.17 s (exiftool's SubSecDateTimeOriginal).
    "immich-test-assets/files/metadata/rating/mongolels.jpg": datetime.datetime(2009, 8, 29, 13, 18, 8, 170000),
    # DateTimeDigitized says 2023-04-04 04:00:00: DateTimeOriginal wins.
    "immich-test-assets/files/metadata/dates/date-priority-test.jpg": datetime.datetime(2023, 2, 2, 2, 0, 0),
    "immich-test-assets/files/metadata/dates/datetimeoriginal-gps.jpg": datetime.datetime(2025, 12, 1, 11, 30),
    # Written NUL-terminated ("2012:08:05 11:39:59\0"), next to an ISO-8601 DateTime.
    "immich-test-assets/files/formats/jpg/el_torcal_rocks.jpg": datetime.datetime(2012, 8, 5, 11, 39, 59),
    "immich-test-assets/files/albums/nature/notocactus_minimus.jpg": datetime.datetime(2008, 5, 23, 15, 54, 59),
    "immich-test-assets/files/formats/webp/denali.webp": datetime.datetime(2010, 8, 13, 21, 0, 1, 850000),
}


def normalised(text: str | None) -> str:
    return " ".join((text or "").split())


def scan_datetime(text: str | None) -> datetime.datetime | None:
    if text is None:
        return None
    if "T" in text:
        return datetime.datetime.fromisoformat(text)
    return datetime.datetime.strptime(text, "%Y:%m:%d %H:%M:%S")


def scanned_files() -> list[tuple[str, dict]]:
    entries = []
    for source in SCANNED_SOURCES:
        scan = json.loads(shared_path("data", "exif", source, "exif_scan.json").read_text())
        entries += [(f"{source}/{entry['path']}", entry) for entry in scan]
    return entries


def test_make_model_date_and_rating_agree_with_the_independent_scan():
    mismatches, unopenable, compared, dates_checked = [], [], 0, set()
    for key, entry in scanned_files():
        path = shared_path("data", "exif", key)
        try:
            image = Image.open(path)
        except Exception:
            unopenable.append(key)
            continue
        with image:
            found = read_exif(image)
        compared += 1
        expected = {
            "make": normalised(entry["make"]),
            "model": normalised(entry["model"]),
            "rating": entry["exif_rating"] if entry["exif_rating"] is not None else entry["xmp_rating"],
        }
        expected["rating"] = None if expected["rating"] is None else int(expected["rating"])
        expected.update(SCAN_OVERRIDES.get(key, {}))
        actual = {"make": found.camera_make, "model": found.camera_model, "rating": found.rating}
        for field, value in expected.items():
            if actual[field] != value:
                mismatches.append(f"{key}: {field} {actual[field]!r}, scan says {value!r}")

        modified = scan_datetime(entry["datetime"])
        if modified is not None and found.taken_at is None:
            mismatches.append(f"{key}: no taken_at, scan found DateTime {modified}")
        if found.taken_at_source == "DateTime" and found.taken_at != modified:
            mismatches.append(f"{key}: taken_at {found.taken_at} from DateTime, scan says {modified}")
        if key in DATE_TIME_ORIGINAL:
            dates_checked.add(key)
            if (found.taken_at, found.taken_at_source) != (DATE_TIME_ORIGINAL[key], "DateTimeOriginal"):
                mismatches.append(f"{key}: taken_at {found.taken_at} ({found.taken_at_source})")

    assert mismatches == []
    assert all(key.lower().endswith((".heic", ".xmp")) for key in unopenable), unopenable
    assert compared == 122
    assert dates_checked == set(DATE_TIME_ORIGINAL)


def test_every_scanned_file_with_a_make_has_make_and_model():
    """56 exif-samples files carry a camera Make (SOURCE.txt); none may be lost to a parsing problem."""
    with_make = 0
    for key, entry in scanned_files():
        if key.startswith("exif-samples/") and entry["make"]:
            with Image.open(shared_path("data", "exif", key)) as image:
                with_make += bool(read_exif(image).camera_make)
    assert with_make == 56


def test_mongolels_has_three_stars_from_exif_and_from_its_xmp():
    with Image.open(shared_path("data", "exif", "immich-test-assets", "files/metadata/rating/mongolels.jpg")) as image:
        found = read_exif(image)
        xmp = image.info["xmp"]

    assert (found.rating, found.rating_source) == (3, "exif")
    assert xmp_rating(xmp) == 3
    assert (found.camera_make, found.camera_model) == ("Canon", "Canon EOS 500D")


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("shape", ["landscape", "portrait"])
def test_orientation_test_images_give_the_orientation_in_their_name(shape, orientation):
    path = shared_path("data", "exif", "exif-samples", f"files/jpg/orientation/{shape}_{orientation}.jpg")
    with Image.open(path) as image:
        assert read_exif(image).orientation == orientation


# Files that crashed other EXIF parsers (exif-samples/files/jpg/tests): what each still yields. read_exif's
# last-resort catch would turn any crash into empty fields, so the test checks the fields, not "no raise".
RECOVERED_FROM_BROKEN_FILES = {
    "11-tests.jpg": ("Canon", "Canon DIGITAL IXUS 40", "2007-09-03 16:03:45"),
    "22-canon_tags.jpg": ("Canon", "Canon PowerShot SD300", "2007-11-29 16:16:21"),
    "28-hex_value.jpg": ("Canon", "Canon DIGITAL IXUS 40", "2008-08-21 14:53:03"),
    "30-type_error.jpg": ("", "", "2013-07-07 17:20:59"),
    "32-lens_data.jpeg": ("NIKON CORPORATION", "NIKON D300", "2012-07-14 16:30:12"),
    "33-type_error.jpg": ("Canon", "Canon PowerShot G9", "2008-05-25 19:31:26"),
    "35-empty.jpg": ("CASIO COMPUTER CO.,LTD", "EX-Z750", "2005-07-19 18:25:29"),
    "36-memory_error.jpg": ("CASIO COMPUTER CO.,LTD.", "EX-M2", "2002-04-21 00:30:33"),
    "42_IndexError.jpg": ("OLYMPUS IMAGING CORP.", "E-P3", "2014-08-23 13:05:43"),
    "45-gps_ifd.jpg": ("Polyphony Digital Inc.", "Gran Turismo 5", "2012-06-23 06:55:49"),
    "67-0_length_string.jpg": ("samsung", "SM-G930F", "2016-09-12 10:05:31"),
    "87_OSError.jpg": ("NIKON CORPORATION", "NIKON D70s", "2005-12-14 14:39:47"),
}


def broken_exif_files() -> list[Path]:
    folder = shared_path("data", "exif", "exif-samples", "files", "jpg")
    return sorted((folder / "invalid").glob("*.jpg")) + sorted((folder / "tests").glob("*"))


def test_files_that_crashed_other_exif_parsers_keep_every_readable_field(caplog):
    # given the files that crashed other EXIF parsers
    broken = broken_exif_files()
    assert len(broken) >= 15
    # when each is read
    with caplog.at_level(logging.DEBUG, logger="gallery.exif"):
        found = {}
        for path in broken:
            with Image.open(path) as image:
                found[path.name] = read_exif(image)
    # then no file needed the last-resort catch: each bad field was handled on its own ...
    assert not [r for r in caplog.records if r.getMessage().startswith("Unreadable metadata")]
    # ... so the fields that can be read were read
    recovered = {
        name: (data.camera_make, data.camera_model, data.taken_at.strftime("%Y-%m-%d %H:%M:%S"))
        for name, data in found.items()
        if name in RECOVERED_FROM_BROKEN_FILES
    }
    assert recovered == RECOVERED_FROM_BROKEN_FILES
    for name, data in found.items():
        assert data.rating is None or 0 <= data.rating <= 5, name
        assert data.orientation is None or 1 <= data.orientation <= 8, name


# --- generated JPEGs ----------------------------------------------------------------------------------


def jpeg(exif: Image.Exif | bytes | None = None, **save_kwargs: object) -> Image.Image:
    if exif is not None:
        save_kwargs["exif"] = exif.tobytes() if isinstance(exif, Image.Exif) else exif
    return Image.open(io.BytesIO(photo_jpeg(1, (160, 120), **save_kwargs)))


def exif_with(tags: dict[int, object], exif_ifd: dict[int, object] | None = None) -> Image.Exif:
    exif = Image.Exif()
    for tag, value in tags.items():
        exif[tag] = value
    if exif_ifd:
        exif.get_ifd(0x8769).update(exif_ifd)
    return exif


def xmp_packet(body: str) -> bytes:
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f'<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/">{body}</rdf:Description>'
        '</rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    ).encode()


def test_exif_rating_tag():
    found = read_exif(Image.open(io.BytesIO(jpeg_with_rating(1, 4))))

    assert (found.rating, found.rating_source) == (4, "exif")
    assert (found.camera_make, found.camera_model) == ("TestCam", "Model 1")


def test_rating_percent_is_mapped_to_stars():
    found = read_exif(jpeg(exif_with({0x4749: 50})))

    assert (found.rating, found.rating_source) == (3, "exif_percent")


def test_xmp_only_rating():
    found = read_exif(jpeg(xmp=xmp_packet("<xmp:Rating>2</xmp:Rating>")))

    assert (found.rating, found.rating_source) == (2, "xmp")


def test_garbage_xmp_gives_no_rating():
    found = read_exif(jpeg(xmp=b"\xff\xfe\x00<x:xmpmeta <<< xmp:Rating= >>>\x00\x01 not xml"))

    assert (found.rating, found.rating_source) == (None, "")


def test_out_of_range_exif_rating_is_unrated():
    found = read_exif(Image.open(io.BytesIO(jpeg_with_rating(1, 7))))

    assert (found.rating, found.rating_source) == (None, "")


def test_exif_rating_wins_over_percent_and_xmp():
    found = read_exif(jpeg(exif_with({0x4746: 4, 0x4749: 1}), xmp=xmp_packet("<xmp:Rating>1</xmp:Rating>")))

    assert (found.rating, found.rating_source) == (4, "exif")


def test_invalid_exif_rating_falls_back_to_xmp():
    found = read_exif(jpeg(exif_with({0x4746: 7}), xmp=xmp_packet("<xmp:Rating>5</xmp:Rating>")))

    assert (found.rating, found.rating_source) == (5, "xmp")


def test_xmp_rating_is_found_in_the_raw_app1_segment_when_info_lacks_it():
    image = jpeg(xmp=xmp_packet("<xmp:Rating>3</xmp:Rating>"))
    image.info.pop("xmp")

    assert read_exif(image).rating == 3


def test_png_xmp_rating():
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", xmp_packet("<xmp:Rating>4</xmp:Rating>").decode())
    image = Image.open(io.BytesIO(encode(photo_like_image(2, (96, 96)), "PNG", pnginfo=info)))

    assert (read_exif(image).rating, read_exif(image).rating_source) == (4, "xmp")


@pytest.mark.parametrize(
    ("percent", "stars"),
    [
        (0, 0),
        (1, 1),
        (24, 1),
        (25, 2),
        (49, 2),
        (50, 3),
        (74, 3),
        (75, 4),
        (98, 4),
        (99, 5),
        (100, 5),
        (101, None),
        (-1, None),
        ("50", 3),
        (None, None),
        ("many", None),
    ],
)
def test_rating_percent_mapping(percent, stars):
    assert rating_from_percent(percent) == stars


@pytest.mark.parametrize(
    ("packet", "stars"),
    [
        ('<rdf:Description xmp:Rating="3"/>', 3),
        ("<rdf:Description xmp:Rating='5' xmp:Label='Red'/>", 5),
        ("<xmp:Rating>4</xmp:Rating>", 4),
        ("<xmp:Rating> 2 </xmp:Rating>", 2),
        ('<rdf:Description xmp:Rating="3.0"/>', 3),
        ('<rdf:Description xap:Rating="1"/>', 1),
        ('<rdf:Description xmp:Rating="0"/>', 0),
        # Lightroom's "rejected" is not a star count.
        ('<rdf:Description xmp:Rating="-1"/>', None),
        ('<rdf:Description xmp:Rating="6"/>', None),
        ('<rdf:Description xmp:Rating="2.5"/>', None),
        ('<rdf:Description xmp:Rating="three"/>', None),
        ('<rdf:Description xmp:Rating=""/>', None),
        # A percentage under another namespace must not be read as stars.
        ('<rdf:Description MicrosoftPhoto:Rating="75"/>', None),
        ('<rdf:Description xmp:CreatorTool="Rating 3"/>', None),
        ("<xmp:Rating>4", None),
        ("", None),
    ],
)
def test_xmp_rating_forms(packet, stars):
    assert xmp_rating(packet) == stars
    assert xmp_rating(packet.encode()) == stars


def test_xmp_rating_reads_utf16_packets_and_survives_huge_garbage():
    assert xmp_rating('<x xmp:Rating="2"/>'.encode("utf-16")) == 2
    assert xmp_rating(b"\x00\xff" * 3_000_000 + b'xmp:Rating="2"') is None  # beyond the size limit


# --- dates, text and malformed values ------------------------------------------------------------------


def test_taken_at_is_naive_without_an_offset_and_aware_with_one():
    naive = read_exif(jpeg(exif_with({}, {0x9003: "2021:05:06 07:08:09"})))
    aware = read_exif(jpeg(exif_with({}, {0x9003: "2021:05:06 07:08:09", 0x9011: "-04:30"})))

    assert naive.taken_at == datetime.datetime(2021, 5, 6, 7, 8, 9)
    assert naive.taken_at.tzinfo is None
    assert aware.taken_at == datetime.datetime(
        2021, 5, 6, 7, 8, 9, tzinfo=datetime.timezone(-datetime.timedelta(hours=4, minutes=30))
    )


def test_sub_second_capture_times_tell_two_frames_of_one_second_apart():
    """An iPhone's HDR shot and its normal exposure, written in the same second: SubSecTimeOriginal (".016",
    ".550") tells the two frames apart (duplicates/scene_match.py treats them as two shots, not copies)."""
    folder = shared_path("data", "exif", "exif-samples", "files", "jpg", "hdr")
    normal, hdr = (read_exif(Image.open(folder / name)) for name in ("iphone_hdr_NO.jpg", "iphone_hdr_YES.jpg"))

    assert normal.taken_at == datetime.datetime(2015, 4, 10, 20, 12, 23, 16000)
    assert hdr.taken_at == datetime.datetime(2015, 4, 10, 20, 12, 23, 550000)
    assert read_exif(jpeg(exif_with({}, {0x9003: "2021:05:06 07:08:09", 0x9291: "x"}))).taken_at == (
        datetime.datetime(2021, 5, 6, 7, 8, 9)
    )  # an unreadable fraction is left out, the date kept


def test_unset_camera_clock_falls_back_to_the_next_date():
    found = read_exif(
        jpeg(exif_with({0x0132: "2019:01:02 03:04:05"}, {0x9003: "0000:00:00 00:00:00", 0x9004: "    :  :     "}))
    )

    assert (found.taken_at, found.taken_at_source) == (datetime.datetime(2019, 1, 2, 3, 4, 5), "DateTime")


def test_iso_datetime_as_some_editors_write_it():
    found = read_exif(jpeg(exif_with({0x0132: "2023-09-27T14:35:33+02:00"})))

    assert found.taken_at == datetime.datetime(
        2023, 9, 27, 14, 35, 33, tzinfo=datetime.timezone(datetime.timedelta(hours=2))
    )


def test_text_is_cut_at_nul_trimmed_and_truncated():
    found = read_exif(jpeg(exif_with({0x010F: "  NIKON CORPORATION \x00\x00junk", 0x0110: "X" * 300})))

    assert found.camera_make == "NIKON CORPORATION"
    assert found.camera_model == "X" * 100


def test_nonsense_values_become_absent_but_keep_the_other_fields():
    found = read_exif(jpeg(exif_with({0x010F: "Canon", 0x0112: 42, 0x4746: "lots"}, {0x9003: "yesterday"})))

    assert found.camera_make == "Canon"
    assert (found.orientation, found.rating, found.taken_at) == (None, None, None)


@pytest.mark.parametrize(
    "payload",
    [
        b"Exif\x00\x00garbage that is not TIFF",
        b"Exif\x00\x00II*\x00\xff\xff\xff\x7f",  # first IFD far beyond the end
        # Make with a count of 4 GB
        b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x05\x01\x0f\x00\x02\xff\xff\xff\xff\x00\x00\x00\x00",
        b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x01\x00",  # truncated entry table
    ],
)
def test_malformed_exif_never_raises_or_warns(payload, recwarn):
    image = jpeg(payload)
    recwarn.clear()  # Pillow may warn while opening; read_exif itself must stay quiet

    found = read_exif(image)

    assert [str(warning.message) for warning in recwarn] == []
    assert found.camera_make == ""
    assert found.rating is None


def test_a_reader_that_raises_gives_empty_metadata():
    class Exploding:
        info: dict = {}
        format = "JPEG"
        size = (1, 1)

        def getexif(self):
            raise RuntimeError("broken")

    assert read_exif(Exploding()) == NO_EXIF
