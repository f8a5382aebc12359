"""Which machines can read each library source's root: recorded by every process that touches a source.

Web and worker processes on several machines share the sources; each should see them at the same path (a shared
mount). One that cannot must not make a source offline for everyone, and the operator needs to know which one
it is. So each process records, per machine and role, whether it could list the root and when: worker scans
and the worker's watchdog (every minute, gallery-wide), web processes when they serve an original and when the
Sources page or API is read. A process writes a row at most once a minute per source unless what it saw
changed, so serving files costs no write per request.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from gallery.models import LibrarySource, SourceFile, SourceReach
from gallery.source_paths import ignored

RECHECK_SECONDS = 60.0

_role = SourceReach.Role.WEB
# (source, machine, role) -> (monotonic time written, readable, error), this process's last writes.
_written: dict[tuple[int, str, str], tuple[float, bool, str]] = {}
_lock = threading.Lock()


def machine_name() -> str:
    return settings.IMGSIM_MACHINE_NAME


def process_role() -> str:
    """web, unless this process is (or was forked from) the worker's task cluster."""
    return _role


def process_role_set(role: str) -> None:
    """Set by the qcluster command before it forks the cluster: its workers inherit it."""
    global _role
    _role = SourceReach.Role(role)


def source_reach_forget_process_state() -> None:
    """Forget this process's record of its own writes (tests: each starts with an empty database)."""
    with _lock:
        _written.clear()


def root_problem(*, root: str, files_known: bool) -> str:
    """'' when this process can list the root, else why not: the system's error, or an empty folder while
    the library holds files from it (the bare mount point of a share not mounted on this machine)."""
    try:
        with os.scandir(root) as entries:
            empty = not any(not ignored(entry.name) for entry in entries)
    except OSError as error:
        return error.strerror or str(error)
    if empty and files_known:
        return "empty, while the library holds files from it: not mounted here?"
    return ""


def _due(key: tuple[int, str, str], readable: bool | None = None, error: str = "") -> bool:
    """Whether this process should write (or check) again: a minute passed, or what it saw changed."""
    with _lock:
        last = _written.get(key)
    if last is None or time.monotonic() - last[0] >= RECHECK_SECONDS:
        return True
    return readable is not None and (last[1], last[2]) != (readable, error)


def source_reach_record(*, source: LibrarySource, role: str, error: str = "", force: bool = False) -> bool:
    """Record whether this machine's `role` processes can read the source's root ('' error: they can).
    Skipped when this process wrote the same a minute ago (unless forced); True when a row was written."""
    machine = machine_name()
    readable = not error
    key = (source.pk, machine, role)
    if not force and not _due(key, readable, error):
        return False
    values = {"readable": readable, "error": error[:2000], "checked_at": timezone.now()}
    updated = SourceReach.objects.filter(source=source, machine=machine, role=role).update(**values)
    if not updated:
        try:
            with transaction.atomic():
                SourceReach.objects.create(source=source, machine=machine, role=role, **values)
        except IntegrityError:  # another process of this machine and role created it meanwhile
            SourceReach.objects.filter(source=source, machine=machine, role=role).update(**values)
    with _lock:
        _written[key] = (time.monotonic(), readable, error)
    return True


def source_reach_check(*, source: LibrarySource, role: str) -> str:
    """Look at the root from this process now and record it (the file check has no other source of truth);
    returns the problem ('' when readable)."""
    files_known = SourceFile.objects.filter(source=source, state=SourceFile.State.PRESENT).exists()
    error = root_problem(root=source.root, files_known=files_known)
    source_reach_record(source=source, role=role, error=error)
    return error


def source_reach_check_due(*, role: str, sources: list[LibrarySource] | None = None) -> int:
    """Check each source (all of them by default) this process has not looked at for a minute, and forget rows
    nobody refreshed for SourceReach.KEPT. The worker's watchdog runs it every minute on each machine; the
    Sources page and API run it for the web process serving them. Returns how many roots were looked at."""
    machine = machine_name()
    checked = 0
    for source in sources if sources is not None else LibrarySource.objects.only("pk", "name", "root"):
        if _due((source.pk, machine, role)):
            source_reach_check(source=source, role=role)
            checked += 1
    if sources is None:
        SourceReach.objects.expired().delete()
    return checked


def source_readers_elsewhere(*, source: LibrarySource, machine: str) -> list[SourceReach]:
    """The other machines' processes that could read the root within SourceReach.RECENT, workers first. This
    machine's other role does not count: a share is mounted per machine, so when the worker here lost it the web
    processes here lost it too (a single-machine install goes offline at once, as it always did)."""
    since = timezone.now() - SourceReach.RECENT
    rows = SourceReach.objects.filter(source=source, readable=True, checked_at__gte=since).exclude(machine=machine)
    return sorted(rows.order_by("-checked_at"), key=lambda row: row.role != SourceReach.Role.WORKER)


def source_reach_shown(*, source_ids: list[int], now: datetime | None = None) -> dict[int, list[SourceReach]]:
    """Each source's readers checked within SourceReach.KEPT (the older ones are dropped), by machine and role."""
    shown: dict[int, list[SourceReach]] = {}
    for row in SourceReach.objects.kept(now=now).filter(source_id__in=source_ids).order_by("machine", "role"):
        shown.setdefault(row.source_id, []).append(row)
    return shown
