"""manage.py import_images: a real folder in, a summary out; re-running imports nothing twice."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from PIL import Image as PILImage

from duplicates.models import DetectionCheck, DuplicatePair
from gallery.models import Image
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


def test_import_of_a_missing_folder_fails_clearly(tmp_path):
    with pytest.raises(CommandError, match="is not a folder"):
        run(str(tmp_path / "nope"))
