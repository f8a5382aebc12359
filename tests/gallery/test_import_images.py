"""manage.py import_images: a real folder in, a summary out; re-running imports nothing twice."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from PIL import Image as PILImage

from gallery.models import Image
from tests.images import encode, photo_jpeg

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


def test_import_summarises_each_outcome(tmp_path, committed):
    folder = make_folder(tmp_path / "photos")
    output = committed(run, str(folder), "--embed-now", "--no-progress")
    assert "5 image files: 2 accepted, 1 already in the library, 1 rejected for quality, 1 refused" in output
    assert "1 other files ignored" in output
    assert "broken.jpg: corrupt_image" in output
    assert Image.objects.filter(status="indexed").count() == 2
    assert Image.objects.filter(status="rejected").count() == 1


def test_import_is_safe_to_rerun(tmp_path, committed):
    folder = make_folder(tmp_path / "photos")
    committed(run, str(folder), "--no-progress")
    output = committed(run, str(folder), "--no-progress")
    assert "0 accepted, 4 already in the library" in output
    assert Image.objects.count() == 3


def test_import_of_a_missing_folder_fails_clearly(tmp_path):
    with pytest.raises(CommandError, match="is not a folder"):
        run(str(tmp_path / "nope"))
