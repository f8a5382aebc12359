"""Library sources end to end on a generated tree of real JPEGs: registered through the API, scanned by the task,
embedded by a stub backbone (no model), served in place; rescans after adds, edits, moves, deletes, an unmount."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from gallery.models import Image, LibrarySource, SourceFile, SourceScan
from pipeline import source_scan
from pipeline.source_scan import source_scan_run
from pipeline.sources import library_source_scan_request
from search.services import embedding_queue
from tests.images import photo_jpeg
from tests.pipeline.sources_tree import StubEmbedder, photo_tree, touch_later

pytestmark = pytest.mark.django_db


@pytest.fixture
def stub_backbone(monkeypatch: pytest.MonkeyPatch, settings: Any) -> list[bytes]:
    """The embedding step with a stub backbone; returns the bytes it was given, in order."""
    read: list[bytes] = []

    class Recording(StubEmbedder):
        model_name = settings.IMGSIM_MODEL

        def embed_sources(self, sources: list[bytes]) -> Any:
            read.extend(sources)
            return super().embed_sources(sources)

    monkeypatch.setattr(embedding_queue, "embedder_get", Recording)
    return read


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    root = tmp_path / "nas" / "photos"
    return root, photo_tree(root)


@pytest.fixture
def source(
    tree: tuple[Path, dict[str, bytes]], staff_api: Any, committed: Callable[..., Any], stub_backbone: Any
) -> Any:
    """The tree registered through the API; its first scan has run (the task, inline)."""
    root, _ = tree
    response = committed(staff_api.post, "/api/sources/", {"name": "NAS", "root": str(root)}, format="json")
    assert response.status_code == 201, response.content
    return LibrarySource.objects.get(pk=response.json()["id"])


def rescan(source: LibrarySource, committed: Callable[..., Any]) -> SourceScan:
    scan = committed(library_source_scan_request, source=source)
    scan.refresh_from_db()
    return scan


def image_at(source: LibrarySource, path: str) -> Image:
    return SourceFile.objects.get(source=source, relative_path=path).image


def test_a_registered_folder_is_read_in_place_embedded_and_served_like_an_upload(
    source: Any, tree: Any, staff_api: Any, staff_web: Any, stub_backbone: list[bytes], settings: Any
):
    _root, files = tree
    scan = source.scans.get()
    assert (scan.status, scan.files_total, scan.files_seen, scan.accepted) == ("finished", 3, 3, 3)
    assert SourceFile.objects.filter(source=source).count() == 3  # notes.txt is not an image file
    assert sorted(stub_backbone) == sorted(files.values())  # embedded from the files where they are
    assert set(Image.objects.values_list("status", "file")) == {("indexed", "")}
    assert not (Path(settings.MEDIA_ROOT) / "originals").exists()  # no copy: only renditions in media
    image = image_at(source, "2024/a.jpg")
    assert image.thumbnail

    served = staff_api.get(f"/images/{image.pk}/file/")
    upload = staff_api.post("/api/images/", {"file": _named(photo_jpeg(7), "up.jpg")}, format="multipart")
    uploaded = staff_api.get(f"/images/{upload.json()['image']['id']}/file/")
    assert b"".join(served.streaming_content) == files["2024/a.jpg"]
    for header in ("Content-Type", "X-Content-Type-Options", "Content-Security-Policy", "Cache-Control"):
        assert served[header] == uploaded[header], header
    assert served["Content-Disposition"] == 'attachment; filename="a.jpg"'
    preview = staff_web.get(f"/images/{image.pk}/preview/large/")
    assert preview.status_code == 200
    assert preview["Content-Type"] == "image/webp"
    assert "X-Imgsim-Original" not in preview

    listed = staff_api.get(f"/api/sources/{source.pk}/").json()
    assert listed["state"] == "online"
    assert listed["files_present"] == 3
    assert listed["latest_scan"]["accepted"] == 3
    assert listed["latest_scan"]["percent"] == 100


def _named(data: bytes, name: str) -> Any:
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data, content_type="image/jpeg")


def test_an_unchanged_rescan_stats_files_and_opens_none(
    source: Any, committed: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
):
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an unchanged file was opened")

    monkeypatch.setattr(source_scan, "_read_and_hash", refuse)
    monkeypatch.setattr(source_scan, "image_create", refuse)
    scan = rescan(source, committed)
    assert (scan.status, scan.files_seen, scan.unchanged, scan.accepted, scan.missing) == ("finished", 3, 3, 0, 0)


def test_a_rescan_finds_new_changed_moved_and_deleted_files(source: Any, tree: Any, committed: Callable[..., Any]):
    root, _files = tree
    moved, edited, deleted = (
        image_at(source, "2024/a.jpg"),
        image_at(source, "2024/b.jpg"),
        image_at(source, "2025/trip/c.jpg"),
    )
    Image.objects.filter(pk=moved.pk).update(rating=4)  # a decision made on the image before it moved
    (root / "2023").mkdir()
    (root / "2024" / "a.jpg").rename(root / "2023" / "renamed.jpg")
    (root / "2024" / "b.jpg").write_bytes(photo_jpeg(202))
    touch_later(root / "2024" / "b.jpg")
    (root / "2025" / "trip" / "c.jpg").unlink()
    (root / "2025" / "new.jpg").write_bytes(photo_jpeg(204))

    scan = rescan(source, committed)
    assert (scan.moved, scan.changed, scan.missing, scan.accepted, scan.unchanged) == (1, 1, 1, 2, 0)
    after_move = image_at(source, "2023/renamed.jpg")
    assert after_move.pk == moved.pk
    assert after_move.rating == 4
    assert after_move.status == "indexed"
    assert not SourceFile.objects.filter(relative_path="2024/a.jpg").exists()
    assert image_at(source, "2024/b.jpg").pk != edited.pk  # other bytes: another image ...
    assert not Image.objects.filter(pk=edited.pk).exists()  # ... and the old content is held by no file
    gone = SourceFile.objects.get(relative_path="2025/trip/c.jpg")
    assert gone.state == "missing"
    assert gone.missing_since is not None
    assert Image.objects.in_library().filter(pk=deleted.pk).exists()  # in the library until the grace ends
    assert image_at(source, "2025/new.jpg").status == "indexed"


def test_an_edit_that_keeps_the_bytes_is_only_a_new_mtime(source: Any, tree: Any, committed: Callable[..., Any]):
    root, _ = tree
    before = image_at(source, "2024/a.jpg")
    touch_later(root / "2024" / "a.jpg")
    scan = rescan(source, committed)
    assert (scan.changed, scan.unchanged, scan.accepted) == (0, 3, 0)
    assert image_at(source, "2024/a.jpg").pk == before.pk


def test_a_missing_file_comes_back_with_its_history_and_leaves_after_the_grace_period(
    source: Any, tree: Any, committed: Callable[..., Any], settings: Any
):
    root, _files = tree
    path = root / "2025" / "trip" / "c.jpg"
    image = image_at(source, "2025/trip/c.jpg")
    Image.objects.filter(pk=image.pk).update(rating=5)
    saved = path.read_bytes(), path.stat().st_mtime_ns
    path.unlink()
    assert rescan(source, committed).missing == 1

    path.write_bytes(saved[0])
    os.utime(path, ns=(saved[1], saved[1]))
    scan = rescan(source, committed)
    assert (scan.returned, scan.missing, scan.accepted) == (1, 0, 0)
    back = SourceFile.objects.get(relative_path="2025/trip/c.jpg")
    assert back.state == "present"
    assert back.image.pk == image.pk
    assert back.image.rating == 5

    path.unlink()
    rescan(source, committed)
    SourceFile.objects.filter(pk=back.pk).update(
        missing_since=timezone.now() - timedelta(days=settings.IMGSIM_SOURCE_MISSING_GRACE_DAYS, minutes=1)
    )
    assert rescan(source, committed).removed == 1
    assert not Image.objects.filter(pk=image.pk).exists()
    assert not SourceFile.objects.filter(pk=back.pk).exists()


def test_an_unmounted_root_makes_the_source_offline_and_nothing_leaves_the_library(
    source: Any, tree: Any, committed: Callable[..., Any], staff_web: Any, staff_api: Any
):
    root, _ = tree
    image = image_at(source, "2024/a.jpg")
    away = root.with_name("photos-unmounted")
    root.rename(away)
    scan = rescan(source, committed)
    source.refresh_from_db()
    assert scan.status == "offline"
    assert source.state == "offline"
    assert SourceFile.objects.filter(state="present").count() == 3
    assert Image.objects.in_library().count() == 3

    page = staff_web.get(f"/images/{image.pk}/")
    assert "is offline" in page.content.decode()
    preview = staff_web.get(f"/images/{image.pk}/preview/large/")  # served from its rendition
    assert preview.status_code == 200
    assert preview["X-Imgsim-Original"] == "offline"
    assert staff_api.get(f"/images/{image.pk}/file/").status_code == 404
    assert "Offline" in staff_web.get("/sources/").content.decode()
    grid = staff_web.get("/").content.decode()  # every card says where its photo lives, and that it is offline
    assert grid.count('<span class="badge folder offline"') == 3

    away.rename(root)
    scan = rescan(source, committed)
    source.refresh_from_db()
    assert (source.state, scan.status, scan.unchanged, scan.missing) == ("online", "finished", 3, 0)
    assert (
        staff_web.get("/")
        .content.decode()
        .count(f'<span class="badge folder" title="read in place from the folder of the source {source.name}"')
        == 3
    )
    assert staff_web.get(f"/images/{image.pk}/preview/large/").get("X-Imgsim-Original") is None


def test_an_empty_mount_point_is_taken_as_unmounted(source: Any, tree: Any, committed: Callable[..., Any]):
    root, _ = tree
    shutil.move(root, root.with_name("elsewhere"))
    root.mkdir()  # what an unmounted share's mount point looks like
    scan = rescan(source, committed)
    assert scan.status == "offline"
    assert "empty" in scan.message
    assert not SourceFile.objects.filter(state="missing").exists()


def _deny(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Make `folder` unlistable: chmod where that denies, a patched os.scandir when running as root (root reads
    through any mode bits)."""
    if os.geteuid() != 0:
        folder.chmod(0)
        return
    real_scandir = os.scandir

    def scandir(path: Any = ".") -> Any:
        if os.path.realpath(path) == os.path.realpath(folder):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)


def test_a_root_without_permission_is_offline(
    source: Any, tree: Any, committed: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
):
    root, _ = tree
    _deny(monkeypatch, root)
    try:
        scan = rescan(source, committed)
    finally:
        root.chmod(0o755)
    assert scan.status == "offline"
    assert "Permission denied" in scan.message
    assert not SourceFile.objects.filter(state="missing").exists()


def test_a_subfolder_without_permission_is_reported_and_its_files_are_not_called_deleted(
    source: Any, tree: Any, committed: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
):
    root, _ = tree
    _deny(monkeypatch, root / "2025")
    try:
        scan = rescan(source, committed)
    finally:
        (root / "2025").chmod(0o755)
    assert scan.status == "finished"
    assert scan.reasons == {"unreadable_folder": 1}
    assert scan.problems[0]["path"] == "2025"
    assert SourceFile.objects.get(relative_path="2025/trip/c.jpg").state == "present"


def test_a_symlink_out_of_the_root_is_skipped_and_reported(
    source: Any, tree: Any, tmp_path: Path, committed: Callable[..., Any]
):
    root, _ = tree
    outside = tmp_path / "private"
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(photo_jpeg(301))
    (root / "linked-folder").symlink_to(outside, target_is_directory=True)
    (root / "linked.jpg").symlink_to(outside / "secret.jpg")
    scan = rescan(source, committed)
    assert scan.reasons == {"symlink_outside_root": 2}
    assert scan.skipped == 2
    assert {problem["path"] for problem in scan.problems} == {"linked-folder", "linked.jpg"}
    assert Image.objects.count() == 3


def test_a_source_file_is_never_opened_through_a_path_leaving_its_root(source: Any, tree: Any, tmp_path: Path):
    from gallery.originals import OriginalUnavailable, original_read

    root, _ = tree
    row = SourceFile.objects.get(relative_path="2024/a.jpg")
    outside = tmp_path / "elsewhere.jpg"
    outside.write_bytes((root / "2024" / "a.jpg").read_bytes())
    (root / "2024" / "a.jpg").unlink()
    (root / "2024" / "a.jpg").symlink_to(outside)  # swapped for a symlink out of the root after the scan
    with pytest.raises(OriginalUnavailable, match="leads outside the source's root"):
        original_read(row.image)
    SourceFile.objects.filter(pk=row.pk).update(relative_path="../elsewhere.jpg")
    with pytest.raises(OriginalUnavailable, match="is not a path below"):
        original_read(row.image)


def test_a_byte_identical_copy_in_the_folder_is_one_image_with_two_files(
    source: Any, tree: Any, committed: Callable[..., Any], staff_web: Any
):
    root, files = tree
    (root / "copies").mkdir()
    (root / "copies" / "a-copy.jpg").write_bytes(files["2024/a.jpg"])
    scan = rescan(source, committed)
    assert (scan.known_content, scan.accepted) == (1, 0)
    original, copy = image_at(source, "2024/a.jpg"), image_at(source, "copies/a-copy.jpg")
    assert original.pk == copy.pk
    assert Image.objects.count() == 3
    page = staff_web.get(f"/images/{original.pk}/").content.decode()
    assert "2024/a.jpg" in page
    assert "copies/a-copy.jpg" in page


@pytest.mark.parametrize("relation", ["same", "inside", "around", "media"])
def test_overlapping_folders_are_refused(
    source: Any, tree: Any, staff_api: Any, settings: Any, relation: str, tmp_path: Path
):
    root, _ = tree
    settings.MEDIA_ROOT = tmp_path / "media"
    Path(settings.MEDIA_ROOT).mkdir(exist_ok=True)
    folder = {"same": root, "inside": root / "2024", "around": root.parent, "media": Path(settings.MEDIA_ROOT)}[
        relation
    ]
    response = staff_api.post("/api/sources/", {"name": relation, "root": str(folder)}, format="json")
    assert response.status_code in (400, 409)
    code = response.json()["error"]["code"]
    assert code == ("overlaps_media" if relation == "media" else "overlapping_source")
    assert LibrarySource.objects.count() == 1


def test_only_staff_manage_sources(source: Any, tree: Any, api: Any, web: Any, client: Any):
    root, _ = tree
    assert api.get("/api/sources/").status_code == 403
    assert api.post("/api/sources/", {"name": "x", "root": str(root.parent)}, format="json").status_code == 403
    assert api.post(f"/api/sources/{source.pk}/scan/").status_code == 403
    assert api.delete(f"/api/sources/{source.pk}/").status_code == 403
    assert web.get("/sources/").status_code == 403
    assert web.post("/sources/", {"name": "x", "root": str(root.parent)}).status_code == 403
    assert client.get("/sources/").status_code == 302
    assert LibrarySource.objects.count() == 1
    assert SourceScan.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_scans_at_once_import_each_file_once(
    tree: Any, at_once: Callable[..., list[Any]], stub_backbone: Any, monkeypatch: pytest.MonkeyPatch
):
    root, _ = tree
    source = LibrarySource.objects.create(name="NAS", root=str(root.resolve()))
    scans = [SourceScan.objects.create(source=source) for _ in range(2)]
    other_returned = threading.Event()
    real_read = source_scan._read_and_hash

    def read_once_the_other_returned(*args: Any, **kwargs: Any) -> Any:
        """The first scan to read a file waits (outside any transaction) until the other has returned: the two
        surely overlap."""
        other_returned.wait(timeout=10)
        return real_read(*args, **kwargs)

    def scan(index: int) -> str:
        try:
            return source_scan_run(scan_id=scans[index].pk).status
        finally:
            other_returned.set()

    monkeypatch.setattr(source_scan, "_read_and_hash", read_once_the_other_returned)
    results = at_once(2, scan)
    assert sorted(results) == ["finished", "skipped"]
    assert Image.objects.count() == 3
    assert SourceFile.objects.count() == 3


def test_a_scan_that_lost_its_claim_stops(tree: Any, stub_backbone: Any, monkeypatch: pytest.MonkeyPatch):
    """A worker whose lease ran out and was taken over stops before reading another file."""
    root, _ = tree
    source = LibrarySource.objects.create(name="NAS", root=str(root.resolve()))
    scan = SourceScan.objects.create(source=source)
    monkeypatch.setattr(source_scan, "PROGRESS_EVERY_SECONDS", 0.0)
    real_store = source_scan._Scan._store

    def taken_over(self: Any, *args: Any, **kwargs: Any) -> None:
        real_store(self, *args, **kwargs)
        LibrarySource.objects.filter(pk=source.pk).update(scan_claim_token="someone-else")

    monkeypatch.setattr(source_scan._Scan, "_store", taken_over)
    finished = source_scan_run(scan_id=scan.pk)
    assert finished.status == "failed"
    assert "lost its claim" in finished.message
    assert SourceFile.objects.count() == 1


def test_an_upload_of_a_source_files_bytes_is_that_image_and_keeps_it_when_the_file_goes(
    source: Any, tree: Any, staff_api: Any, committed: Callable[..., Any], settings: Any
):
    root, files = tree
    response = staff_api.post("/api/images/", {"file": _named(files["2024/b.jpg"], "b.jpg")}, format="multipart")
    assert response.status_code == 200
    assert response.json()["outcome"] == "exact_duplicate"
    assert response.json()["image"]["id"] == image_at(source, "2024/b.jpg").pk
    image = image_at(source, "2024/b.jpg")
    assert image.file  # the upload's bytes are kept: the image no longer depends on the folder
    (root / "2024" / "b.jpg").unlink()
    rescan(source, committed)
    SourceFile.objects.filter(relative_path="2024/b.jpg").update(missing_since=timezone.now() - timedelta(days=365))
    assert rescan(source, committed).removed == 1
    assert Image.objects.in_library().filter(pk=image.pk).exists()
    served = staff_api.get(f"/images/{image.pk}/file/")
    assert b"".join(served.streaming_content) == files["2024/b.jpg"]


def test_an_image_whose_folder_was_offline_when_it_was_embedded_is_embedded_once_the_folder_is_back(
    source: Any, tree: Any, committed: Callable[..., Any]
):
    from pipeline import tasks

    root, _ = tree
    image = image_at(source, "2024/a.jpg")
    Image.objects.filter(pk=image.pk).update(status="queued", embedding=None, embedded_at=None)
    away = root.with_name("photos-unmounted")
    root.rename(away)
    rescan(source, committed)
    committed(tasks.embed_pending)
    image.refresh_from_db()
    assert (image.status, image.reason_code) == ("failed", "file_missing")
    assert "offline" in image.status_message

    away.rename(root)
    rescan(source, committed)
    image.refresh_from_db()
    assert image.status == "indexed"


def test_hidden_files_and_nas_thumbnail_folders_are_not_read(source: Any, tree: Any, committed: Callable[..., Any]):
    root, _ = tree
    for folder in ("@eaDir/a.jpg", ".thumbnails", "#recycle"):
        (root / folder).mkdir(parents=True)
        (root / folder / "thumb.jpg").write_bytes(photo_jpeg(401))
    (root / "2024" / "._a.jpg").write_bytes(b"resource fork")  # what macOS leaves on network shares
    scan = rescan(source, committed)
    assert (scan.files_total, scan.unchanged, scan.accepted, scan.rejected) == (3, 3, 0, 0)


def test_a_running_scan_reports_its_progress_through_the_api(
    tree: Any, staff_api: Any, stub_backbone: Any, monkeypatch: pytest.MonkeyPatch
):
    root, _ = tree
    source = LibrarySource.objects.create(name="NAS", root=str(root.resolve()))
    scan = SourceScan.objects.create(source=source)
    monkeypatch.setattr(source_scan, "PROGRESS_EVERY_SECONDS", 0.0)
    seen_mid_scan: list[dict[str, Any]] = []
    real_read = source_scan._read_and_hash

    def read_and_look(*args: Any, **kwargs: Any) -> Any:
        seen_mid_scan.append(staff_api.get(f"/api/sources/{source.pk}/").json()["latest_scan"])
        return real_read(*args, **kwargs)

    monkeypatch.setattr(source_scan, "_read_and_hash", read_and_look)
    source_scan_run(scan_id=scan.pk)
    assert [(s["status"], s["files_total"], s["files_seen"]) for s in seen_mid_scan] == [
        ("running", 3, 0),
        ("running", 3, 1),
        ("running", 3, 2),
    ]
    assert seen_mid_scan[-1]["accepted"] == 2
    assert seen_mid_scan[-1]["eta_seconds"] is not None
