"""Library sources: registering a folder (web page, admin, API, command alike), asking for scans, removing one.

A source is checked once, here, for every entry point: an absolute folder this process can read, not inside or
around another source or imgsim's own media folder (a file must belong to one place, or two scans would race
for it and a trash would move a file another source still lists).
"""

from __future__ import annotations

import os
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_q.models import Schedule

from core.errors import ServiceError
from core.task_queue import task_queue_after_commit
from core.users import Actor
from gallery.models import Image, LibrarySource, SourceFile, SourceScan
from gallery.services import images_delete
from gallery.source_paths import resolved_root, roots_overlap

SCAN_TASK = "pipeline.tasks.source_scan"


class SourceRefused(ServiceError):
    """A folder that cannot be registered as a source, with the reason."""


def library_source_root_check(*, root: str, exclude_pk: int | None = None) -> str:
    """The folder as it will be stored (absolute, symlinks resolved), or SourceRefused saying why not."""
    try:
        real = resolved_root(root.strip())
    except ValueError as error:
        raise SourceRefused("invalid_root", str(error)) from None
    media = os.path.realpath(settings.MEDIA_ROOT)
    if roots_overlap(real, media):
        raise SourceRefused("overlaps_media", f"{real} overlaps imgsim's own media folder {media}.")
    for other in LibrarySource.objects.exclude(pk=exclude_pk).only("name", "root"):
        if roots_overlap(real, other.root):
            if real == other.root:
                relation = "is the folder of"
            elif real.startswith(other.root.rstrip("/") + "/"):
                relation = "is inside"
            else:
                relation = "holds"
            raise SourceRefused(
                "overlapping_source",
                f"{real} {relation} the source {other.name} ({other.root}): sources cannot overlap.",
                status=409,
            )
    return real


def library_source_create(*, name: str, root: str, writable: bool = False, created_by: Actor = None) -> LibrarySource:
    """Register a folder and queue its first scan."""
    name = name.strip()
    if not name:
        raise SourceRefused("invalid_name", "A source needs a name.")
    real = library_source_root_check(root=root)
    try:
        with transaction.atomic():
            source = LibrarySource.objects.create(
                name=name,
                root=real,
                writable=writable,
                created_by=created_by if created_by is not None and created_by.is_authenticated else None,
            )
            library_source_scan_request(source=source, requested_by=created_by)
    except IntegrityError:
        raise SourceRefused("name_taken", f"A source named {name!r} or with that folder exists.", status=409) from None
    return source


def library_source_scan_request(*, source: LibrarySource, requested_by: Actor = None) -> SourceScan:
    """Queue a scan of the source, or return the one already waiting or running (one at a time)."""
    now = timezone.now()
    with transaction.atomic():
        pending = SourceScan.objects.filter(
            source=source, status__in=[SourceScan.Status.QUEUED, SourceScan.Status.RUNNING]
        ).first()
        if pending is not None and pending.status == SourceScan.Status.RUNNING:
            claimed = LibrarySource.objects.filter(pk=source.pk, scan_claimed_until__gt=now).exists()
            if not claimed:  # its worker died: the lease ran out
                SourceScan.objects.filter(pk=pending.pk).update(
                    status=SourceScan.Status.FAILED, message="Its worker stopped.", finished_at=now
                )
                pending = None
        if pending is not None:
            return pending
        scan = SourceScan.objects.create(
            source=source,
            requested_by=requested_by if requested_by is not None and requested_by.is_authenticated else None,
        )
        task_queue_after_commit(SCAN_TASK, scan.pk, task_name=f"scan library source {source.pk}")
    return scan


# A worker that cannot read a folder another machine reads passes its scan on: a new scan is requested this much
# later, for whichever worker takes it, at most this many times in HAND_ON_WINDOW (then the schedule's rescan).
HAND_ON_DELAY = timedelta(seconds=30)
HAND_ON_ATTEMPTS = 5
HAND_ON_WINDOW = timedelta(minutes=10)
HAND_ON_TASK = "pipeline.tasks.source_scan_handed_on"


def library_source_scan_hand_on(*, source: LibrarySource) -> bool:
    """After a scan ended `unreadable` (this machine lacks the share, another has it): schedule a new request
    HAND_ON_DELAY later (one per source), so a "Scan now" that reached a worker without the share is not lost
    until the next rescan an hour later. False when the attempts of the last minutes are used up."""
    now = timezone.now()
    passed_on = SourceScan.objects.filter(
        source=source, status=SourceScan.Status.UNREADABLE, finished_at__gte=now - HAND_ON_WINDOW
    ).count()
    if passed_on > HAND_ON_ATTEMPTS:
        return False
    Schedule.objects.update_or_create(
        name=f"hand on the scan of library source {source.pk}",
        defaults={
            "func": HAND_ON_TASK,
            "args": repr((source.pk,)),
            "schedule_type": Schedule.ONCE,
            "repeats": -1,
            "next_run": now + HAND_ON_DELAY,
        },
    )
    return True


def library_source_scan_handed_on(*, source_id: int) -> SourceScan | None:
    """The scheduled follow-up: a scan is requested again unless the source's latest scan is no longer an
    unreadable one (a worker with the share scanned it meanwhile, or one is waiting or running)."""
    latest = SourceScan.objects.filter(source_id=source_id).order_by("-id").first()
    if latest is None or latest.status != SourceScan.Status.UNREADABLE:
        return None
    return library_source_scan_request(source=latest.source)


def library_sources_rescan_due() -> int:
    """Queue a scan of every source whose last scan is older than IMGSIM_SOURCE_RESCAN_MINUTES (the schedule)."""
    minutes = settings.IMGSIM_SOURCE_RESCAN_MINUTES
    if minutes <= 0:
        return 0
    cutoff = timezone.now() - timedelta(minutes=minutes)
    queued = 0
    for source in LibrarySource.objects.all():
        if source.last_scanned_at is None or source.last_scanned_at <= cutoff or source.offline:
            library_source_scan_request(source=source)
            queued += 1
    return queued


def library_source_delete(*, source: LibrarySource) -> int:
    """Forget a source: its rows go, and the images only its files held (their renditions and vectors; the
    folder is never touched). Returns how many images left the library."""
    with transaction.atomic():
        image_ids = set(
            SourceFile.objects.filter(source=source, image__isnull=False).values_list("image_id", flat=True)
        )
        source.delete()
        orphans = list(Image.objects.filter(pk__in=image_ids, file="", source_files__isnull=True).defer("embedding"))
        if orphans:
            images_delete(images=orphans)
    return len(orphans)
