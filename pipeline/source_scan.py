"""A scan of a library source: walk its root (stat only), then read only what is new or changed.

What a scan finds, file by file, against what the last scan saw (gallery.models.SourceFile):
- same path, same size and mtime: unchanged, never opened (a rescan of an unchanged tree reads no image);
- same path, other size or mtime: hashed; same bytes is only a new mtime, other bytes a new image;
- a new path whose bytes a vanished path held: moved or renamed, the row (and so the image, its decisions,
  stack and groups) follows the file;
- a new path: validated, quality-checked and stored like an import (no copy in media), then embedded;
- a known path gone from a root that is online: missing, in the library until the grace period ends.
A root that cannot be listed, or that is empty while files were known (an unmounted share's mount point), makes
the source offline and changes nothing else, unless another machine read it recently: then only this machine
cannot (the share is not mounted here), the scan records that and leaves the source to the workers that can.
One scan per source runs at a time: it claims the source with a lease it renews as it goes, and stops if it ever
loses it, so two workers never import a file twice.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from gallery.image_file import UploadRejected
from gallery.models import Image, LibrarySource, SourceFile, SourceReach, SourceScan
from gallery.services import image_create, images_delete
from gallery.source_paths import WalkedFile, WalkProblem, safe_join, walk_source
from gallery.source_reach import machine_name, source_reach_record, source_readers_elsewhere
from pipeline.services import embedding_schedule
from pipeline.sources import library_source_scan_hand_on

logger = logging.getLogger(__name__)

PROBLEMS_KEPT = 200
PROGRESS_EVERY_SECONDS = 1.0
READ_CHUNK = 1 << 20


class ScanClaimLost(Exception):
    """Another worker took this source's scan over (the lease expired): this one stops."""


def _claim(source: LibrarySource) -> str | None:
    """Claim the source for one scan (an atomic update); None when a live claim is someone else's."""
    now = timezone.now()
    token = uuid.uuid4().hex
    claimed = LibrarySource.objects.filter(
        Q(scan_claimed_until__isnull=True) | Q(scan_claimed_until__lt=now), pk=source.pk
    ).update(scan_claim_token=token, scan_claimed_until=now + _lease())
    return token if claimed else None


def _lease() -> timedelta:
    return timedelta(seconds=settings.IMGSIM_SOURCE_SCAN_LEASE_SECONDS)


def _renew(source: LibrarySource, token: str) -> None:
    renewed = LibrarySource.objects.filter(pk=source.pk, scan_claim_token=token).update(
        scan_claimed_until=timezone.now() + _lease()
    )
    if not renewed:
        raise ScanClaimLost(f"the scan of {source.name} lost its claim to another worker")


def _release(source: LibrarySource, token: str) -> None:
    LibrarySource.objects.filter(pk=source.pk, scan_claim_token=token).update(
        scan_claim_token="", scan_claimed_until=None
    )


def _source_state(source: LibrarySource, state: str, message: str = "") -> None:
    now = timezone.now()
    fields = {"state": state, "state_message": message}
    if source.state != state:
        fields["state_changed_at"] = now
    LibrarySource.objects.filter(pk=source.pk).update(**fields)
    for name, value in fields.items():
        setattr(source, name, value)


@dataclass
class _Progress:
    """The counters a scan writes to its SourceScan row as it goes."""

    scan: SourceScan
    reasons: Counter[str] = field(default_factory=Counter)
    problems: list[dict[str, str]] = field(default_factory=list)
    flushed_at: float = field(default_factory=time.monotonic)

    COUNTERS = (
        "files_total",
        "files_seen",
        "unchanged",
        "accepted",
        "known_content",
        "rejected",
        "changed",
        "moved",
        "missing",
        "returned",
        "skipped",
        "removed",
    )

    def count(self, counter: str, amount: int = 1) -> None:
        setattr(self.scan, counter, getattr(self.scan, counter) + amount)

    def problem(self, path: str, reason: str, message: str, *, counter: str = "rejected") -> None:
        self.count(counter)
        self.reasons[reason] += 1
        if len(self.problems) < PROBLEMS_KEPT:
            self.problems.append({"path": path, "reason": reason, "message": message})

    def flush(self, *, force: bool = False) -> bool:
        if not force and time.monotonic() - self.flushed_at < PROGRESS_EVERY_SECONDS:
            return False
        self.scan.reasons = dict(self.reasons)
        self.scan.problems = self.problems
        values = {name: getattr(self.scan, name) for name in (*self.COUNTERS, "reasons", "problems")}
        SourceScan.objects.filter(pk=self.scan.pk).update(**values)
        self.flushed_at = time.monotonic()
        return True


def _read_and_hash(path: str, *, max_bytes: int) -> tuple[bytes | None, str, os.stat_result]:
    """The file's bytes (None past max_bytes: it is only hashed) and sha256, read once, never through a symlink."""
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    digest = hashlib.sha256()
    chunks: list[bytes] = []
    total = 0
    with os.fdopen(descriptor, "rb") as handle:
        info = os.fstat(handle.fileno())
        while chunk := handle.read(READ_CHUNK):
            digest.update(chunk)
            total += len(chunk)
            if total <= max_bytes:
                chunks.append(chunk)
    return (b"".join(chunks) if total <= max_bytes else None), digest.hexdigest(), info


@dataclass(slots=True)
class _KnownFile:
    """What the last scan recorded about one path (a tuple-sized row: a tree of a million files is held whole)."""

    pk: int
    relative_path: str
    size: int
    mtime_ns: int
    sha256: str
    state: str
    image_id: int | None


def _under(path: str, folders: list[str]) -> bool:
    return any(path == folder or path.startswith(folder + "/") for folder in folders)


class _Scan:
    def __init__(self, scan: SourceScan, token: str) -> None:
        self.scan = scan
        self.source = scan.source
        self.token = token
        self.progress = _Progress(scan=scan)
        self.created_images = False

    def run(self) -> None:
        source = self.source
        try:
            walked = list(walk_source(source.root))  # hidden folders, the quarantine among them, are not walked
        except OSError as error:
            reason = str(error.strerror or error)
            self._unreadable(reason, f"The folder {source.root} cannot be read: {reason}.")
            return
        files = [entry for entry in walked if isinstance(entry, WalkedFile)]
        skipped = [entry for entry in walked if isinstance(entry, WalkProblem)]
        known = {
            row[1]: _KnownFile(*row)
            for row in SourceFile.objects.filter(source=source)
            .exclude(state=SourceFile.State.QUARANTINED)
            .values_list(*_KnownFile.__slots__)
            .iterator(2000)
        }
        present = sum(1 for row in known.values() if row.state == SourceFile.State.PRESENT)
        if not files and present:
            self._unreadable(
                f"empty, while it held {present} files: not mounted?",
                f"The folder {source.root} is empty but held {present} files: taken as not mounted, nothing changed.",
            )
            return
        source_reach_record(source=source, role=SourceReach.Role.WORKER)
        _source_state(source, LibrarySource.State.ONLINE)
        self._requeue_unreadable()
        self.scan.files_total = len(files)
        for problem in skipped:
            self.progress.problem(problem.relative_path, problem.reason, problem.message, counter="skipped")
        self.progress.flush(force=True)

        unreadable = [p.relative_path for p in skipped if p.reason == "unreadable_folder"]
        seen = {entry.relative_path for entry in files}
        vanished = {path: row for path, row in known.items() if path not in seen and not _under(path, unreadable)}
        vanished_by_content: dict[str, list[_KnownFile]] = defaultdict(list)
        for row in vanished.values():
            if row.image_id is not None:
                vanished_by_content[row.sha256].append(row)

        for entry in files:
            self._file(entry, known.get(entry.relative_path), vanished, vanished_by_content)
            self.progress.count("files_seen")
            if self.progress.flush():
                _renew(source, self.token)
        self._mark_missing(vanished.values())
        self._remove_expired()
        LibrarySource.objects.filter(pk=source.pk).update(last_scanned_at=timezone.now())
        self.scan.status = SourceScan.Status.FINISHED

    def _requeue_unreadable(self) -> None:
        """Images whose embedding failed because their file could not be read (the folder was offline, or the
        file changed before the scan saw it) are queued again once their file is readable."""
        failed = Image.objects.filter(
            status=Image.Status.FAILED,
            reason_code="file_missing",
            source_files__source=self.source,
            source_files__state=SourceFile.State.PRESENT,
        ).values_list("pk", flat=True)
        requeued = Image.objects.filter(pk__in=list(failed)).update(
            status=Image.Status.QUEUED,
            reason_code="",
            status_message="",
            embed_attempts=0,
            claimed_until=None,
            claim_token="",
            updated_at=timezone.now(),
        )
        if requeued:
            self.created_images = True

    def _unreadable(self, error: str, offline_message: str) -> None:
        """This worker cannot read the root. When another machine read it recently, only this one cannot (the
        share is not mounted here): nothing changes but this machine's record, and a worker that can read it
        scans it next. When none could, the source is offline (an unmounted NAS): nothing else changes."""
        source = self.source
        source_reach_record(source=source, role=SourceReach.Role.WORKER, error=error, force=True)
        machine = machine_name()
        readers = source_readers_elsewhere(source=source, machine=machine)
        if readers:
            reader = readers[0]
            self.scan.status = SourceScan.Status.UNREADABLE
            self.scan.message = (
                f"{machine} cannot read {source.root} ({error}); {reader.reader} read it at "
                f"{timezone.localtime(reader.checked_at):%H:%M:%S}: the source stays online for a worker that can."
            )
            return
        _source_state(source, LibrarySource.State.OFFLINE, offline_message)
        self.scan.status = SourceScan.Status.OFFLINE
        self.scan.message = offline_message

    def _file(
        self,
        entry: WalkedFile,
        row: _KnownFile | None,
        vanished: dict[str, _KnownFile],
        vanished_by_content: dict[str, list[_KnownFile]],
    ) -> None:
        if row is not None and row.size == entry.size and row.mtime_ns == entry.mtime_ns:
            if row.state == SourceFile.State.MISSING:
                self._save(row, state=SourceFile.State.PRESENT, missing_since=None)
                self.progress.count("returned")
            else:
                self.progress.count("unchanged")
            return
        path = entry.relative_path
        try:
            data, sha256, info = _read_and_hash(
                safe_join(self.source.root, path), max_bytes=settings.IMGSIM_MAX_UPLOAD_BYTES
            )
        except OSError as error:
            self.progress.problem(path, "unreadable", f"cannot be read: {error.strerror or error}")
            return
        stat = {"size": info.st_size, "mtime_ns": info.st_mtime_ns}
        if row is not None:
            if row.sha256 == sha256:
                returned = row.state == SourceFile.State.MISSING
                self._save(row, state=SourceFile.State.PRESENT, missing_since=None, **stat)
                self.progress.count("returned" if returned else "unchanged")
                return
            self.progress.count("changed")
            self._store(path, data, sha256, stat, row=row)
            return
        candidates = vanished_by_content.get(sha256)
        if candidates:
            moved = candidates.pop(0)
            vanished.pop(moved.relative_path, None)
            self._save(moved, relative_path=path, state=SourceFile.State.PRESENT, missing_since=None, **stat)
            self.progress.count("moved")
            return
        self._store(path, data, sha256, stat, row=None)

    def _save(self, row: _KnownFile, **values: object) -> None:
        for name, value in values.items():
            if name == "image":
                row.image_id = value.pk if isinstance(value, Image) else None
            elif name in _KnownFile.__slots__:
                setattr(row, name, value)
        SourceFile.objects.filter(pk=row.pk).update(**values, updated_at=timezone.now())

    def _store(
        self, path: str, data: bytes | None, sha256: str, stat: dict[str, int], *, row: _KnownFile | None
    ) -> None:
        """A new or changed file: its image (new, or the existing one with these bytes), or why it is refused."""
        name = os.path.basename(path)
        previous = row.image_id if row is not None else None
        values: dict[str, object] = {"sha256": sha256, "state": SourceFile.State.PRESENT, "missing_since": None, **stat}
        try:
            with transaction.atomic():
                if data is None:
                    limit = settings.IMGSIM_MAX_UPLOAD_BYTES / 1_048_576
                    raise UploadRejected("file_too_large", f"The file is larger than the {limit:.0f} MB limit.")
                result = image_create(data=data, original_name=name, store_original=False)
                values.update(image=result.image, reason_code="", status_message="")
                self._write_row(path, row, values)
        except UploadRejected as error:
            values.update(
                image=None, state=SourceFile.State.REFUSED, reason_code=error.code, status_message=error.message
            )
            self._write_row(path, row, values)
            self.progress.problem(path, error.code, error.message)
            self._drop_orphan(previous)
            return
        except IntegrityError:
            logger.warning("%s: %s was recorded by another scan meanwhile", self.source.name, path)
            return
        image = result.image
        if not result.created:
            self.progress.count("known_content")
        elif image.status == Image.Status.REJECTED:
            self.created_images = True
            self.progress.problem(path, image.reason_code, image.status_message)
        else:
            self.created_images = True
            self.progress.count("accepted")
        if previous != image.pk:
            self._drop_orphan(previous)

    def _write_row(self, path: str, row: _KnownFile | None, values: dict[str, object]) -> None:
        if row is None:
            SourceFile.objects.create(source=self.source, relative_path=path, **values)
        else:
            self._save(row, **values)

    def _mark_missing(self, rows: Iterable[_KnownFile]) -> None:
        now = timezone.now()
        rows = list(rows)
        gone = [row for row in rows if row.state == SourceFile.State.PRESENT]
        refused = [row.pk for row in rows if row.state == SourceFile.State.REFUSED]
        SourceFile.objects.filter(pk__in=[row.pk for row in gone]).update(
            state=SourceFile.State.MISSING, missing_since=now, updated_at=now
        )
        SourceFile.objects.filter(pk__in=refused).delete()
        self.progress.count("missing", len(gone))

    def _remove_expired(self) -> None:
        """Files missing past the grace period leave the library: their rows, and the images no file holds."""
        cutoff = timezone.now() - timedelta(days=settings.IMGSIM_SOURCE_MISSING_GRACE_DAYS)
        expired = SourceFile.objects.filter(
            source=self.source, state=SourceFile.State.MISSING, missing_since__lte=cutoff
        )
        image_ids = set(expired.exclude(image__isnull=True).values_list("image_id", flat=True))
        removed = expired.delete()[0]
        self.progress.count("removed", removed)
        for image_id in image_ids:
            self._drop_orphan(image_id)

    def _drop_orphan(self, image_id: int | None) -> None:
        """An image whose bytes no file holds any more (no copy in media, no source file) is deleted."""
        if image_id is None:
            return
        orphan = Image.objects.filter(pk=image_id, file="", source_files__isnull=True).defer("embedding")
        images = list(orphan)
        if images:
            images_delete(images=images)


def source_scan_run(*, scan_id: int) -> SourceScan | None:
    """Run one queued scan (the task's body); a scan of a source another worker is scanning is skipped, and
    one already run (a task delivered twice) or removed with its source is left alone."""
    scan = SourceScan.objects.select_related("source").filter(pk=scan_id).first()
    if scan is None or scan.status != SourceScan.Status.QUEUED:
        return scan
    source = scan.source
    token = _claim(source)
    if token is None:
        SourceScan.objects.filter(pk=scan.pk).update(
            status=SourceScan.Status.SKIPPED,
            message="Another scan of this source was running.",
            finished_at=timezone.now(),
        )
        scan.refresh_from_db()
        return scan
    scan.status = SourceScan.Status.RUNNING
    scan.started_at = timezone.now()
    SourceScan.objects.filter(pk=scan.pk).update(status=scan.status, started_at=scan.started_at)
    work = _Scan(scan, token)
    try:
        work.run()
    except Exception as error:
        scan.status = SourceScan.Status.FAILED
        scan.message = str(error)[:2000]
        logger.exception("the scan of %s failed", source.name)
    finally:
        work.progress.flush(force=True)
        SourceScan.objects.filter(pk=scan.pk).update(
            status=scan.status, message=scan.message, finished_at=timezone.now()
        )
        _release(source, token)
        if work.created_images:
            embedding_schedule()
    if scan.status == SourceScan.Status.UNREADABLE:
        library_source_scan_hand_on(source=source)
    scan.refresh_from_db()
    return scan
