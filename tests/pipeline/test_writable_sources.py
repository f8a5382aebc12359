"""A writable library source's files follow their images through the trash: trashing moves the file into the
source's quarantine folder, restoring moves it back, purging deletes it; every move is logged and undoable, and
a collision, a permission problem, a read-only mount or a full disk leaves the file where it was and says why."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gallery import source_moves
from gallery.models import Image, LibrarySource, SourceFile, SourceFileMove
from pipeline.sources import library_source_scan_request
from tests.images import photo_jpeg
from tests.pipeline.sources_tree import photo_tree, stub_backbone_install

pytestmark = pytest.mark.django_db


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Any) -> tuple[Path, dict[str, bytes]]:
    stub_backbone_install(monkeypatch, settings)
    root = tmp_path / "nas" / "photos"
    return root, photo_tree(root)


def register(staff_api: Any, committed: Callable[..., Any], root: Path, *, writable: bool) -> LibrarySource:
    payload = {"name": "NAS", "root": str(root), "writable": writable}
    response = committed(staff_api.post, "/api/sources/", payload, format="json")
    assert response.status_code == 201, response.content
    return LibrarySource.objects.get(pk=response.json()["id"])


def image_at(path: str) -> Image:
    return SourceFile.objects.get(relative_path=path).image


def trash(staff_web: Any, committed: Callable[..., Any], image: Image) -> None:
    assert committed(staff_web.post, f"/images/{image.pk}/delete/").status_code == 302


def restore(staff_web: Any, committed: Callable[..., Any], image: Image) -> None:
    assert committed(staff_web.post, f"/trash/{image.pk}/restore/").status_code == 302


def test_trash_restore_and_purge_move_the_file_in_a_writable_source(
    tree: Any, staff_api: Any, staff_web: Any, committed: Callable[..., Any]
):
    root, files = tree
    source = register(staff_api, committed, root, writable=True)
    image = image_at("2024/a.jpg")
    quarantined = root / ".imgsim-trash" / "2024" / "a.jpg"

    trash(staff_web, committed, image)
    assert not (root / "2024" / "a.jpg").exists()
    assert quarantined.read_bytes() == files["2024/a.jpg"]
    assert staff_web.get(f"/images/{image.pk}/preview/large/").get("X-Imgsim-Original") is None  # still readable
    scan = committed(library_source_scan_request, source=source)
    scan.refresh_from_db()
    assert (scan.unchanged, scan.missing, scan.accepted) == (2, 0, 0)  # the quarantine folder is not scanned

    restore(staff_web, committed, image)
    assert (root / "2024" / "a.jpg").read_bytes() == files["2024/a.jpg"]
    assert not quarantined.exists()
    assert SourceFile.objects.get(image=image).state == "present"

    trash(staff_web, committed, image)
    assert committed(staff_web.post, f"/trash/{image.pk}/purge/").status_code == 302
    assert not quarantined.exists()
    assert not (root / "2024" / "a.jpg").exists()
    assert not Image.objects.filter(pk=image.pk).exists()
    log = list(SourceFileMove.objects.order_by("id").values_list("action", "status", "from_path", "to_path"))
    assert log == [
        ("quarantine", "done", "2024/a.jpg", ".imgsim-trash/2024/a.jpg"),
        ("restore", "done", ".imgsim-trash/2024/a.jpg", "2024/a.jpg"),
        ("quarantine", "done", "2024/a.jpg", ".imgsim-trash/2024/a.jpg"),
        ("purge", "done", ".imgsim-trash/2024/a.jpg", ""),
    ]
    assert {path.name for path in root.rglob("*.jpg")} == {"b.jpg", "c.jpg"}


def test_a_read_only_source_never_moves_a_file(
    tree: Any, staff_api: Any, staff_web: Any, committed: Callable[..., Any]
):
    root, files = tree
    register(staff_api, committed, root, writable=False)
    image = image_at("2024/a.jpg")
    trash(staff_web, committed, image)
    assert committed(staff_web.post, f"/trash/{image.pk}/purge/").status_code == 302
    assert (root / "2024" / "a.jpg").read_bytes() == files["2024/a.jpg"]
    assert not (root / ".imgsim-trash").exists()
    assert not SourceFileMove.objects.exists()


def test_a_restore_never_overwrites_a_file_now_at_the_original_path(
    tree: Any, staff_api: Any, staff_web: Any, committed: Callable[..., Any]
):
    root, files = tree
    register(staff_api, committed, root, writable=True)
    image = image_at("2024/a.jpg")
    trash(staff_web, committed, image)
    newcomer = photo_jpeg(999)
    (root / "2024" / "a.jpg").write_bytes(newcomer)  # someone saved another photo under that name meanwhile
    restore(staff_web, committed, image)
    assert (root / "2024" / "a.jpg").read_bytes() == newcomer
    assert (root / ".imgsim-trash" / "2024" / "a.jpg").read_bytes() == files["2024/a.jpg"]
    failed = SourceFileMove.objects.get(action="restore")
    assert (failed.status, failed.code) == ("failed", "collision")
    assert "move or rename it, then restore again" in failed.message
    page = staff_web.get("/sources/").content.decode()
    assert "1 file move failed recently" in page
    assert "Nothing was overwritten" in page


def test_a_name_taken_in_the_quarantine_folder_gets_a_free_name(
    tree: Any, staff_api: Any, staff_web: Any, committed: Callable[..., Any]
):
    root, files = tree
    register(staff_api, committed, root, writable=True)
    (root / ".imgsim-trash" / "2024").mkdir(parents=True)
    (root / ".imgsim-trash" / "2024" / "a.jpg").write_bytes(b"already there")
    trash(staff_web, committed, image_at("2024/a.jpg"))
    assert (root / ".imgsim-trash" / "2024" / "a.jpg").read_bytes() == b"already there"
    assert (root / ".imgsim-trash" / "2024" / "a (2).jpg").read_bytes() == files["2024/a.jpg"]


@pytest.mark.parametrize(
    ("number", "code", "words"),
    [
        (errno.EACCES, "permission_denied", "permission denied"),
        (errno.EROFS, "read_only_mount", "read-only mount"),
        (errno.ENOSPC, "disk_full", "the disk is full"),
    ],
)
def test_a_move_the_file_system_refuses_leaves_the_file_and_says_why(
    tree: Any,
    staff_api: Any,
    staff_web: Any,
    committed: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    number: int,
    code: str,
    words: str,
):
    """The file system's refusals are simulated (as root, mode bits deny nothing; a full disk cannot be made)."""
    root, files = tree
    register(staff_api, committed, root, writable=True)

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise OSError(number, os.strerror(number))

    monkeypatch.setattr(source_moves.os, "link", refuse)
    monkeypatch.setattr(source_moves.os, "rename", refuse)
    image = image_at("2024/a.jpg")
    trash(staff_web, committed, image)
    assert (root / "2024" / "a.jpg").read_bytes() == files["2024/a.jpg"]
    failed = SourceFileMove.objects.get()
    assert (failed.status, failed.code) == ("failed", code)
    assert words in failed.message
    assert "The file was left where it was" in failed.message
    assert SourceFile.objects.get(image=image).state == "present"
    listed = staff_api.get(f"/api/sources/{failed.source_id}/moves/").json()
    assert listed[0]["code"] == code


def test_a_move_is_undone_and_a_purge_cannot_be(
    tree: Any, staff_api: Any, staff_web: Any, committed: Callable[..., Any]
):
    root, files = tree
    source = register(staff_api, committed, root, writable=True)
    trash(staff_web, committed, image_at("2024/a.jpg"))
    move = SourceFileMove.objects.get()
    response = staff_api.post(f"/api/sources/{source.pk}/moves/{move.pk}/undo/")
    assert response.status_code == 200
    assert response.json()["status"] == "undone"
    assert (root / "2024" / "a.jpg").read_bytes() == files["2024/a.jpg"]

    image = image_at("2024/b.jpg")
    trash(staff_web, committed, image)
    committed(staff_web.post, f"/trash/{image.pk}/purge/")
    purge = SourceFileMove.objects.get(action="purge")
    refused = staff_api.post(f"/api/sources/{source.pk}/moves/{purge.pk}/undo/")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "not_undoable"
