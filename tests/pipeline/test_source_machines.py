"""Library sources seen from several machines: each machine (IMGSIM_MACHINE_NAME, overridden per step here) records
whether it can read a source's root; one that cannot (a share not mounted there: its paths do not exist for it)
neither makes the source offline nor marks files missing, and the Sources page, the API and the admin name it.
When no machine can read the root, the source is offline as before."""

from __future__ import annotations

import ast
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_q.models import Schedule

from gallery import source_reach
from gallery.models import Image, LibrarySource, SourceFile, SourceReach, SourceScan
from gallery.source_reach import source_reach_check_due
from pipeline import tasks
from pipeline.services import embedding_run
from pipeline.sources import HAND_ON_ATTEMPTS, HAND_ON_TASK, library_source_scan_hand_on, library_source_scan_request
from tests.pipeline.sources_tree import photo_tree, stub_backbone_install

pytestmark = pytest.mark.django_db


class Machines:
    """Which machine this test process is, step by step, and the machines the folder's share is not mounted on:
    for those, every path below the root does not exist (os.scandir and os.open fail as on a bare host)."""

    def __init__(self, settings: Any, monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
        self.settings = settings
        self.root = str(root)
        self.blind: set[str] = set()
        real_scandir, real_open = os.scandir, os.open

        def hidden(path: Any) -> bool:
            if settings.IMGSIM_MACHINE_NAME not in self.blind or isinstance(path, int):
                return False
            text = os.fsdecode(path)
            return text == self.root or text.startswith(self.root + "/")

        def scandir(path: Any = ".") -> Any:
            if hidden(path):
                raise FileNotFoundError(2, "No such file or directory", os.fsdecode(path))
            return real_scandir(path)

        def open_(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
            if hidden(path):
                raise FileNotFoundError(2, "No such file or directory", os.fsdecode(path))
            return real_open(path, flags, *args, **kwargs)

        monkeypatch.setattr(os, "scandir", scandir)
        monkeypatch.setattr(os, "open", open_)

    @contextmanager
    def on(self, machine: str) -> Iterator[None]:
        previous = self.settings.IMGSIM_MACHINE_NAME
        self.settings.IMGSIM_MACHINE_NAME = machine
        try:
            yield
        finally:
            self.settings.IMGSIM_MACHINE_NAME = previous


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Any) -> Path:
    """A generated tree of three photos; embedding by a stub backbone (no model)."""

    stub_backbone_install(monkeypatch, settings)
    folder = tmp_path / "mnt" / "nas"
    photo_tree(folder)
    return folder


@pytest.fixture
def machines(root: Path, settings: Any, monkeypatch: pytest.MonkeyPatch) -> Machines:
    return Machines(settings, monkeypatch, root)


@pytest.fixture
def source(root: Path, machines: Machines, staff_api: Any, committed: Callable[..., Any]) -> LibrarySource:
    """Registered through the API; its first scan ran on worker-a, which has the share mounted."""
    with machines.on("worker-a"):
        response = committed(staff_api.post, "/api/sources/", {"name": "NAS", "root": str(root)}, format="json")
    assert response.status_code == 201, response.content
    source = LibrarySource.objects.get(pk=response.json()["id"])
    assert source.scans.get().status == "finished"
    return source


def scan_on(machine: str, machines: Machines, source: LibrarySource, committed: Callable[..., Any]) -> SourceScan:
    with machines.on(machine):
        scan = committed(library_source_scan_request, source=source)
    scan.refresh_from_db()
    source.refresh_from_db()
    return scan


def reach(source: LibrarySource) -> dict[tuple[str, str], SourceReach]:
    return {(row.machine, row.role): row for row in SourceReach.objects.filter(source=source)}


def test_a_worker_without_the_share_leaves_the_source_online_and_the_page_api_and_admin_name_it(
    source: LibrarySource,
    root: Path,
    machines: Machines,
    committed: Callable[..., Any],
    staff_web: Any,
    staff_api: Any,
):
    # given worker-a read the folder (its scan), when worker-b, without the share mounted, scans it
    machines.blind.add("worker-b")
    scan = scan_on("worker-b", machines, source, committed)
    # then worker-b records that it cannot read it and leaves; the source stays online, no file is missing
    assert scan.status == "unreadable"
    assert "worker-b cannot read" in scan.message
    assert "worker-a (worker) read it" in scan.message
    assert source.state == "online"
    assert SourceFile.objects.filter(source=source, state="present").count() == 3
    assert not SourceFile.objects.filter(state="missing").exists()
    assert Image.objects.in_library().count() == 3
    rows = reach(source)
    assert rows["worker-a", "worker"].readable
    assert (rows["worker-b", "worker"].readable, rows["worker-b", "worker"].error) == (
        False,
        "No such file or directory",
    )

    # when staff open the Sources page (served by web-1, which reads the folder), then it names worker-b and why
    with machines.on("web-1"):
        page = staff_web.get("/sources/").content.decode()
    assert ">Online<" in page
    assert "1 machine cannot read this folder." in page
    assert (
        f"<strong>worker-b</strong> (worker) cannot read <code>{root}</code> (No such file or directory), "
        "checked 0\xa0minutes ago"
    ) in page
    assert "web-1 (web): reads it" in page
    assert "worker-a (worker): reads it" in page
    assert reach(source)["web-1", "web"].readable  # the page's own look from this web machine

    # and GET /api/sources/{id}/ says the same
    with machines.on("web-1"):
        body = staff_api.get(f"/api/sources/{source.pk}/").json()
    assert body["state"] == "online"
    listed = {(row["machine"], row["role"]): row for row in body["machines"]}
    assert listed["worker-b", "worker"] | {"checked_at": None} == {
        "machine": "worker-b",
        "role": "worker",
        "readable": False,
        "error": "No such file or directory",
        "checked_at": None,
        "stale": False,
    }
    assert listed["worker-a", "worker"]["readable"]
    assert listed["web-1", "web"]["readable"]

    # and the admin's list and the source's own page too
    changelist = staff_web.get("/admin/gallery/librarysource/").content.decode()
    assert "worker-b (worker): No such file or directory, checked 0\xa0minutes ago" in changelist
    change = staff_web.get(f"/admin/gallery/librarysource/{source.pk}/change/").content.decode()
    assert "Machines that looked at the folder in the last 6 hours" in change
    assert "worker-b" in change

    # when worker-a scans again, then it scans as usual
    assert scan_on("worker-a", machines, source, committed).status == "finished"


def test_a_web_machine_without_the_share_shows_thumbnails_and_is_named(
    source: LibrarySource, machines: Machines, staff_web: Any, staff_api: Any
):
    image = SourceFile.objects.get(source=source, relative_path="2024/a.jpg").image
    machines.blind.add("web-2")
    # when web-2, without the share, is asked for the image's preview, then it serves the thumbnail and says why
    with machines.on("web-2"):
        preview = staff_web.get(f"/images/{image.pk}/preview/large/")
    assert preview.status_code == 200
    assert preview["X-Imgsim-Original"] == "unreachable"
    rows = reach(source)
    assert (rows["web-2", "web"].readable, rows["web-2", "web"].error) == (False, "No such file or directory")
    # while web-1 serves the original, and the source stays online
    with machines.on("web-1"):
        assert staff_api.get(f"/images/{image.pk}/file/").status_code == 200
        body = staff_api.get(f"/api/sources/{source.pk}/").json()
    assert body["state"] == "online"
    assert [(row["machine"], row["readable"]) for row in body["machines"] if row["machine"].startswith("web-")] == [
        ("web-1", True),
        ("web-2", False),
    ]


def test_when_no_machine_can_read_the_folder_it_is_offline_as_before(
    source: LibrarySource, root: Path, machines: Machines, committed: Callable[..., Any], staff_web: Any
):
    # given the share unmounted everywhere (the mount point left empty)
    for path in sorted(root.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    # when worker-b scans while worker-a read the folder minutes ago, then it leaves the source to worker-a
    assert scan_on("worker-b", machines, source, committed).status == "unreadable"
    assert source.state == "online"
    assert reach(source)["worker-b", "worker"].error == "empty, while it held 3 files: not mounted?"
    # when worker-a scans too, then nobody can read it: offline, and nothing else changes
    scan = scan_on("worker-a", machines, source, committed)
    assert (scan.status, source.state) == ("offline", "offline")
    assert "is empty but held 3 files" in scan.message
    assert SourceFile.objects.filter(source=source, state="present").count() == 3
    assert Image.objects.in_library().count() == 3
    with machines.on("web-1"):
        page = staff_web.get("/sources/").content.decode()
    assert "<strong>Offline.</strong>" in page
    assert "machine cannot read this folder" not in page  # said once, in the offline notice, with the machines
    for machine in ("worker-a", "worker-b", "web-1"):
        assert f"<strong>{machine}</strong>" in page


def test_a_reading_from_another_machine_counts_only_while_recent(
    source: LibrarySource, root: Path, machines: Machines, committed: Callable[..., Any], staff_api: Any
):
    # given worker-a read the folder longer ago than SourceReach.RECENT (it may have lost it since)
    SourceReach.objects.filter(machine="worker-a").update(
        checked_at=timezone.now() - SourceReach.RECENT - timedelta(minutes=1)
    )
    machines.blind.add("worker-b")
    # when worker-b cannot read it, then nobody is known to: offline
    scan = scan_on("worker-b", machines, source, committed)
    assert (scan.status, source.state) == ("offline", "offline")
    assert "No such file or directory" in scan.message
    # and the API shows worker-a's reading as stale; one older than SourceReach.KEPT is dropped
    with machines.on("web-1"):
        listed = {row["machine"]: row for row in staff_api.get(f"/api/sources/{source.pk}/").json()["machines"]}
    assert listed["worker-a"]["stale"]
    assert listed["worker-a"]["readable"]
    SourceReach.objects.filter(machine="worker-a").update(checked_at=timezone.now() - SourceReach.KEPT)
    with machines.on("web-1"):
        listed = {row["machine"]: row for row in staff_api.get(f"/api/sources/{source.pk}/").json()["machines"]}
    assert "worker-a" not in listed
    assert not listed["worker-b"]["readable"]
    # when the worker's periodic check runs, then it forgets that row
    with machines.on("worker-b"):
        assert source_reach_check_due(role="worker") == 0  # its scan looked a moment ago
    assert not SourceReach.objects.filter(machine="worker-a").exists()


def test_each_process_writes_its_reading_at_most_once_a_minute(
    source: LibrarySource, machines: Machines, staff_web: Any, staff_api: Any, monkeypatch: pytest.MonkeyPatch
):
    image = SourceFile.objects.get(source=source, relative_path="2024/a.jpg").image
    with machines.on("web-1"):
        assert staff_api.get(f"/images/{image.pk}/file/").status_code == 200  # the first look is written
        assert reach(source)["web-1", "web"].readable
        with CaptureQueriesContext(connection) as queries:
            for _ in range(5):
                assert staff_api.get(f"/images/{image.pk}/file/").status_code == 200
                assert staff_web.get("/sources/").status_code == 200
    writes = [q["sql"] for q in queries.captured_queries if "sourcereach" in q["sql"] and "SELECT" not in q["sql"]]
    assert writes == []  # the next ten requests within the minute wrote nothing
    # the worker's periodic check: each source once a minute
    with machines.on("worker-c"):
        assert source_reach_check_due(role="worker") == 1
        assert source_reach_check_due(role="worker") == 0
        later = source_reach.time.monotonic() + source_reach.RECHECK_SECONDS
        monkeypatch.setattr(source_reach.time, "monotonic", lambda: later)
        assert source_reach_check_due(role="worker") == 1
    assert reach(source)["worker-c", "worker"].readable


def test_an_image_a_worker_without_the_share_failed_to_embed_is_embedded_after_a_scan_that_can(
    source: LibrarySource, machines: Machines, committed: Callable[..., Any]
):
    image = SourceFile.objects.get(source=source, relative_path="2024/a.jpg").image
    Image.objects.filter(pk=image.pk).update(status=Image.Status.QUEUED, embed_attempts=0)
    machines.blind.add("worker-b")
    # when worker-b, without the share, embeds it, then the image failed saying which machine could not read it
    with machines.on("worker-b"):
        committed(embedding_run)
    image.refresh_from_db()
    assert (image.status, image.reason_code) == ("failed", "file_missing")
    assert "cannot be read on worker-b (No such file or directory)" in image.status_message
    # when worker-a scans the folder, then the image is queued again and embedded
    assert scan_on("worker-a", machines, source, committed).status == "finished"
    image.refresh_from_db()
    assert image.status == "indexed"


def test_a_scan_that_reached_a_worker_without_the_share_is_passed_on_to_one_that_has_it(
    source: LibrarySource, machines: Machines, committed: Callable[..., Any]
):
    # given worker-b, without the share, took the scan someone asked for
    machines.blind.add("worker-b")
    assert scan_on("worker-b", machines, source, committed).status == "unreadable"
    # then a new request is scheduled 30 s later (one per source), for whichever worker takes it then
    follow_up = Schedule.objects.get(func=HAND_ON_TASK)
    assert ast.literal_eval(follow_up.args) == (source.pk,)
    assert timedelta(seconds=25) < follow_up.next_run - timezone.now() <= timedelta(seconds=30)
    # when worker-a, which has it, runs the follow-up, then it scans the folder
    with machines.on("worker-a"):
        committed(tasks.source_scan_handed_on, source.pk)
    assert source.scans.order_by("-id").first().status == "finished"
    # and a follow-up after that successful scan asks for nothing more
    assert tasks.source_scan_handed_on(source.pk)["scan"] is None
    # and a worker that keeps missing the share passes the scan on a bounded number of times, then leaves it
    # to the schedule's rescan
    for _ in range(HAND_ON_ATTEMPTS):
        assert scan_on("worker-b", machines, source, committed).status == "unreadable"
    assert library_source_scan_hand_on(source=source) is False
