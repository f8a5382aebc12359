"""Registering, scanning and removing a library source from each entry point: the sources page, the admin, the
management command, and the rescan schedule; the folder is checked the same way everywhere."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from gallery.models import Image, LibrarySource, SourceFile, SourceScan
from pipeline import tasks
from tests.pipeline.sources_tree import photo_tree, stub_backbone_install

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def stub_backbone(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    stub_backbone_install(monkeypatch, settings)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "nas" / "photos"
    photo_tree(folder)
    return folder


def test_the_sources_page_adds_a_folder_scans_it_and_shows_the_scan(
    staff_web: Any, root: Path, committed: Callable[..., Any]
):
    response = committed(staff_web.post, "/sources/", {"name": "Studio", "root": str(root)})
    assert response.status_code == 302
    page = staff_web.get("/sources/").content.decode()
    assert "Studio" in page
    assert str(root) in page
    assert "3 files" in page
    assert "Finished" in page
    assert Image.objects.filter(status="indexed").count() == 3

    (root / "2024" / "a.jpg").unlink()
    assert committed(staff_web.post, f"/sources/{LibrarySource.objects.get().pk}/scan/").status_code == 302
    page = staff_web.get("/sources/").content.decode()
    assert "1 missing" in page


def test_the_sources_page_says_why_a_folder_is_refused(staff_web: Any, root: Path, committed: Callable[..., Any]):
    committed(staff_web.post, "/sources/", {"name": "Studio", "root": str(root)})
    nested = staff_web.post("/sources/", {"name": "Inner", "root": str(root / "2024")})
    assert nested.status_code == 409
    assert "is inside the source Studio" in nested.content.decode()
    missing = staff_web.post("/sources/", {"name": "Nowhere", "root": str(root / "nope")})
    assert missing.status_code == 400
    assert "is not a folder this machine can see" in missing.content.decode()
    relative = staff_web.post("/sources/", {"name": "Relative", "root": "photos"})
    assert "is not an absolute path" in relative.content.decode()
    assert LibrarySource.objects.count() == 1


def test_the_admin_registers_a_folder_and_refuses_an_overlapping_one(
    staff_web: Any, root: Path, committed: Callable[..., Any]
):
    response = committed(staff_web.post, "/admin/gallery/librarysource/add/", {"name": "Studio", "root": str(root)})
    assert response.status_code == 302
    source = LibrarySource.objects.get()
    assert source.root == str(root.resolve())
    assert source.scans.get().status == "finished"
    refused = staff_web.post("/admin/gallery/librarysource/add/", {"name": "Outer", "root": str(root.parent)})
    assert refused.status_code == 200
    assert "holds the source Studio" in refused.content.decode()
    assert staff_web.get(f"/admin/gallery/librarysource/{source.pk}/change/").status_code == 200
    assert staff_web.get("/admin/gallery/sourcefile/").status_code == 200


def test_the_command_adds_lists_scans_and_removes_a_source(root: Path, committed: Callable[..., Any]):
    out = io.StringIO()
    committed(call_command, "library_sources", "add", "Studio", str(root), "--scan-now", stdout=out)
    assert "finished: 3/3 files seen, 3 new" in out.getvalue()
    out = io.StringIO()
    call_command("library_sources", "list", stdout=out)
    assert f"Studio  {root.resolve()}  Online  3 files" in out.getvalue()
    (root / "2024" / "b.jpg").rename(root / "b-moved.jpg")
    out = io.StringIO()
    committed(call_command, "library_sources", "scan", "Studio", stdout=out)
    assert "1 moved" in out.getvalue()
    with pytest.raises(CommandError, match="sources cannot overlap"):
        call_command("library_sources", "add", "Inner", str(root / "2025"))
    out = io.StringIO()
    call_command("library_sources", "remove", "Studio", stdout=out)
    assert "3 images only it held left the library" in out.getvalue()
    assert not Image.objects.exists()
    assert root.joinpath("b-moved.jpg").exists()  # the folder is never touched


def test_the_schedule_rescans_sources_whose_last_scan_is_old(root: Path, committed: Callable[..., Any], settings: Any):
    committed(call_command, "library_sources", "add", "Studio", str(root), "--scan-now", stdout=io.StringIO())
    assert committed(tasks.sources_rescan) == 0  # scanned just now
    LibrarySource.objects.update(
        last_scanned_at=timezone.now() - timedelta(minutes=settings.IMGSIM_SOURCE_RESCAN_MINUTES + 1)
    )
    assert committed(tasks.sources_rescan) == 1
    assert SourceScan.objects.filter(status="finished").count() == 2
    settings.IMGSIM_SOURCE_RESCAN_MINUTES = 0
    LibrarySource.objects.update(last_scanned_at=timezone.now() - timedelta(days=1))
    assert committed(tasks.sources_rescan) == 0


def test_removing_a_source_keeps_images_an_upload_also_holds(root: Path, staff_api: Any, committed: Callable[..., Any]):
    committed(call_command, "library_sources", "add", "Studio", str(root), "--scan-now", stdout=io.StringIO())
    held = SourceFile.objects.get(relative_path="2024/a.jpg").image
    Image.objects.filter(pk=held.pk).update(file="originals/kept.jpg")  # as if uploaded before the folder was added
    response = staff_api.delete(f"/api/sources/{LibrarySource.objects.get().pk}/")
    assert response.status_code == 204
    assert list(Image.objects.values_list("pk", flat=True)) == [held.pk]
