"""The library sources page in a real browser: a scan in progress followed live (counts, progress bar, time
left), its end shown without a reload by hand, a folder added from the page, an offline folder said so, the
machines that cannot read a folder named; desktop and phone screenshots, axe on each state."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from gallery.models import LibrarySource, SourceFile, SourceReach, SourceScan
from pipeline.sources import library_source_create
from tests.browser.conftest import DESKTOP, PHONE
from tests.browser.photos import distinct_photos
from tests.pipeline.sources_tree import stub_backbone_install

pytestmark = pytest.mark.browser


@pytest.fixture
def photo_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Any) -> Path:
    """A folder of real photos in two subfolders; embedding by a stub backbone (the page is the subject)."""

    stub_backbone_install(monkeypatch, settings)
    root = tmp_path / "nas" / "photos"
    for index, photo in enumerate(distinct_photos(4)):
        folder = root / ("2024" if index % 2 else "2025")
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(photo, folder / photo.name)
    return root


def test_the_sources_page_follows_a_scan_in_progress_and_adds_a_folder(session: Any, photo_folder: Path):
    page = session.page
    studio = LibrarySource.objects.create(name="Studio archive", root=str(photo_folder.parent.parent / "studio"))
    (photo_folder.parent.parent / "studio").mkdir()
    scan = SourceScan.objects.create(
        source=studio,
        status=SourceScan.Status.RUNNING,
        started_at=timezone.now() - timedelta(seconds=30),
        files_total=12_000,
        files_seen=3_000,
        accepted=2_950,
        rejected=38,
        known_content=12,
        reasons={"blurry": 30, "too_small": 8},
        problems=[{"path": "2019/IMG_0042.jpg", "reason": "blurry", "message": "sharpness 0.31 is below 0.50"}],
    )
    LibrarySource.objects.filter(pk=studio.pk).update(scan_claimed_until=timezone.now() + timedelta(minutes=5))
    # given a scan a quarter done, when staff open the Sources page from the menu, then its progress shows
    session.go("/")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Sources").click()
    panel = page.locator(f"#source-{studio.pk}")
    expect(panel.locator('[data-field="counts"]')).to_have_text("3000 of 12000 files seen")
    expect(panel.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "25")
    expect(panel.locator('[data-field="eta"]')).to_contain_text("s left")
    session.shot("sources-scanning")
    page.set_viewport_size(PHONE)
    session.shot("sources-scanning")
    page.set_viewport_size(DESKTOP)
    # when the worker gets further, then the page follows it without a reload
    SourceScan.objects.filter(pk=scan.pk).update(files_seen=9_000, accepted=8_900)
    expect(panel.locator('[data-field="counts"]')).to_have_text("9000 of 12000 files seen")
    expect(panel.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "75")
    # when it finishes, then the page shows the final state
    SourceScan.objects.filter(pk=scan.pk).update(status="finished", files_seen=12_000, finished_at=timezone.now())
    expect(panel.locator('[data-field="status"]')).to_have_text("Finished")

    # when staff add the photo folder, then its first scan runs and the page shows what it found
    page.get_by_role("textbox", name="Name", exact=True).fill("NAS photos")
    page.get_by_role("textbox", name="Folder", exact=True).fill(str(photo_folder))
    page.get_by_role("button", name="Add folder").click()
    expect(page.locator(".messages")).to_contain_text("Added NAS photos")
    nas = LibrarySource.objects.get(name="NAS photos")
    added = page.locator(f"#source-{nas.pk}")
    expect(added.locator('[data-field="status"]')).to_have_text("Finished")
    expect(added.locator(".source-root")).to_contain_text("4 files")
    session.shot("sources", full_page=True)
    page.set_viewport_size(PHONE)
    session.shot("sources", full_page=True)
    page.set_viewport_size(DESKTOP)

    # when its folder is unmounted and scanned, then the page says it is offline
    photo_folder.rename(photo_folder.with_name("unmounted"))
    added.get_by_role("button", name="Scan now").click()
    expect(added.locator(".badge.source-state")).to_have_text("Offline")
    expect(added.locator(".notice")).to_contain_text("Its images stay in the library")
    # when staff open one of its images, then the page says the folder is offline and shows the thumbnail
    image = SourceFile.objects.filter(source=nas).first().image
    session.go(f"/images/{image.pk}/")
    expect(page.locator("#source-offline")).to_contain_text("The folder NAS photos is offline")
    expect(page.locator("#source-files")).to_contain_text("offline")
    expect(page.get_by_role("link", name="Download original")).to_have_count(0)
    session.shot("image-offline")
    # and the library grid marks the folder's photos as offline
    session.go("/")
    expect(page.locator(".badge.folder.offline").first).to_have_text("NAS photos · offline")
    session.shot("library-offline-folder")


def test_the_sources_page_names_a_machine_that_cannot_read_a_folder(session: Any, photo_folder: Path, settings: Any):
    page = session.page
    # given the folder registered and scanned on worker-a, which has the share mounted
    settings.IMGSIM_MACHINE_NAME = "worker-a"
    nas = library_source_create(name="NAS photos", root=str(photo_folder))  # its scan runs inline
    assert nas.scans.get().status == SourceScan.Status.FINISHED
    # and worker-b, without the share, failed to read it two minutes ago; web-3 lost it yesterday morning
    now = timezone.now()
    SourceReach.objects.create(
        source=nas,
        machine="worker-b",
        role="worker",
        readable=False,
        error="No such file or directory",
        checked_at=now - timedelta(minutes=2),
    )
    SourceReach.objects.create(
        source=nas,
        machine="web-3",
        role="web",
        readable=False,
        error="Permission denied",
        checked_at=now - timedelta(hours=1),
    )
    # when staff open the Sources page served by web-1, then it names the machines that cannot read the folder
    settings.IMGSIM_MACHINE_NAME = "web-1"
    session.go("/sources/")
    panel = page.locator(f"#source-{nas.pk}")
    expect(panel.locator(".badge.source-state")).to_have_text("Online")
    notice = panel.locator('[data-field="unreadable-on"]')
    expect(notice).to_contain_text("2 machines cannot read this folder.")
    expect(notice).to_contain_text(
        f"worker-b (worker) cannot read {photo_folder} (No such file or directory), checked 2\xa0minutes ago"
    )
    expect(notice.locator("li.stale")).to_contain_text("web-3 (web) cannot read")
    expect(notice.locator("li.stale")).to_contain_text("checked 1\xa0hour ago (stale")
    expect(panel.locator('[data-field="machines"]')).to_contain_text("web-1 (web): reads it")
    session.shot("sources-machines")
    page.set_viewport_size(PHONE)
    session.shot("sources-machines", full_page=True)
    page.set_viewport_size(DESKTOP)
