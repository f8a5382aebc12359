"""manage.py import_images: a real folder in, a summary out; re-running imports nothing twice."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from PIL import Image as PILImage

from duplicates.models import DetectionCheck, DuplicatePair
from duplicates.services.trash import images_trash
from gallery.models import Image
from pipeline.management.commands import import_images
from search.models import LibraryChange
from tests.images import encode, photo_jpeg, photo_like_image

pytestmark = pytest.mark.django_db


def make_folder(root):
    (root / "trip" / "day1").mkdir(parents=True)
    (root / "trip" / "day1" / "a.jpg").write_bytes(photo_jpeg(50))
    (root / "trip" / "b.JPG").write_bytes(photo_jpeg(51))
    (root / "trip" / "copy-of-a.jpg").write_bytes(photo_jpeg(50))
    (root / "black.png").write_bytes(encode(PILImage.new("RGB", (300, 300), "black"), "PNG"))
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    (root / "notes.txt").write_text("not an image")
    return root


def run(*args) -> str:
    out = io.StringIO()
    call_command("import_images", *args, stdout=out)
    return out.getvalue()


@pytest.mark.ml
def test_import_summarises_each_outcome(tmp_path, committed):
    folder = make_folder(tmp_path / "photos")
    output = committed(run, str(folder), "--embed-now", "--no-progress")
    assert "5 image files: 2 accepted, 1 already in the library, 1 rejected for quality, 1 refused" in output
    assert "1 other files ignored" in output
    assert "broken.jpg: corrupt_image" in output
    assert Image.objects.filter(status="indexed").count() == 2
    assert Image.objects.filter(status="rejected").count() == 1


@pytest.mark.ml
def test_import_gives_the_planner_statistics_of_the_tables_it_filled(tmp_path, committed):
    """On PostgreSQL the tables are analysed at once (the pair list was 7.8 s a request on a fresh bulk load
    before autovacuum got to it); SQLite is left with its built-in estimates (core/planner_statistics.py)."""
    folder = make_folder(tmp_path / "photos")
    (folder / "trip" / "a-smaller.jpg").write_bytes(encode(photo_like_image(50).resize((240, 180)), quality=80))
    output = committed(run, str(folder), "--embed-now", "--no-progress")
    assert DuplicatePair.objects.exists()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            assert "Planner statistics updated (ANALYZE): gallery_image, search_librarychange, " in output
            estimated = {}
            for model in [Image, DetectionCheck, DuplicatePair, LibraryChange]:
                cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [model._meta.db_table])
                estimated[model] = cursor.fetchone()[0]  # -1 for a table never analysed
            assert estimated[Image] == Image.objects.count()
            assert estimated[DetectionCheck] == DetectionCheck.objects.count()
            assert estimated[DuplicatePair] == DuplicatePair.objects.count()
            assert estimated[LibraryChange] > 0  # (the index build queued after the import logs one more row)
        else:
            assert "Planner statistics" not in output
            cursor.execute("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'")
            assert cursor.fetchone()[0] == 0


@pytest.mark.ml
def test_import_is_safe_to_rerun(tmp_path, committed):
    folder = make_folder(tmp_path / "photos")
    committed(run, str(folder), "--no-progress")
    output = committed(run, str(folder), "--no-progress")
    assert "0 accepted, 4 already in the library" in output
    assert Image.objects.count() == 3


def test_import_names_the_library_image_each_exact_copy_matched_in_a_bounded_list(tmp_path, monkeypatch):
    folder = make_folder(tmp_path / "photos")
    first = run(str(folder), "--no-progress")
    kept = Image.objects.get(original_name="copy-of-a.jpg")  # imported before its copy trip/day1/a.jpg
    assert f"  trip/day1/a.jpg -> #{kept.pk} (copy-of-a.jpg)" in first.splitlines()
    # given that photo is in the trash and the summary names two copies at most
    images_trash(images=[kept], user=None)
    monkeypatch.setattr(import_images, "COPIES_SHOWN", 2)
    # when the folder is imported again, then the first two are named and the rest counted
    again = run(str(folder), "--no-progress")
    black, b = Image.objects.get(original_name="black.png"), Image.objects.get(original_name="b.JPG")
    assert again.splitlines()[1:5] == [
        "Exact copies of library images (4), file -> image:",
        f"  black.png -> #{black.pk} (black.png)",
        f"  trip/b.JPG -> #{b.pk} (b.JPG)",
        "  ... and 2 more (--verbosity 2 lists them; --summary-file FILE writes them all).",
    ]
    assert "0 accepted, 2 already in the library, 2 already in the trash (restore them from the Trash page)" in again
    # and --verbosity 2 names them all, --summary-file writes every file's outcome
    summary = tmp_path / "summary.csv"
    everything = run(str(folder), "--no-progress", "--verbosity", "2", "--summary-file", str(summary))
    assert f"  trip/copy-of-a.jpg -> #{kept.pk} (copy-of-a.jpg) (in the trash)" in everything.splitlines()
    assert f"Every file's outcome: {summary}" in everything
    with summary.open(newline="") as handle:
        rows = {row["path"]: row for row in csv.DictReader(handle)}
    assert rows["trip/day1/a.jpg"]["outcome"] == "exact_duplicate_in_trash"
    assert rows["trip/day1/a.jpg"]["image_id"] == str(kept.pk)
    assert (rows["broken.jpg"]["outcome"], rows["broken.jpg"]["reason"]) == ("refused", "corrupt_image")
    assert len(rows) == 5


def test_import_of_a_missing_folder_fails_clearly(tmp_path):
    with pytest.raises(CommandError, match="is not a folder"):
        run(str(tmp_path / "nope"))
