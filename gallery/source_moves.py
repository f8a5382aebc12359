"""Moving files in a writable library source: the trash's quarantine folder, restore, purge, undo.

A writable source's file follows its image: trashing the image moves the file into `.imgsim-trash/` inside the
source (same relative path), restoring moves it back, purging deletes it from there. The moves run once the
database change has committed (like media files are deleted after commit), so the database never says a file
moved that did not, and a rolled-back trash moves nothing. No move overwrites anything: a file is linked to its
new name (which fails if the name is taken) before the old name is removed, or renamed after checking the name
is free where links are not supported. Every move is logged (SourceFileMove) with its outcome; a failure
leaves the file where it was and says why: a name taken, permission denied, a read-only mount, a full disk.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Iterable
from pathlib import PurePosixPath

from django.db import IntegrityError, transaction

from core.errors import ServiceError
from core.users import Actor
from gallery.models import Image, LibrarySource, SourceFile, SourceFileMove
from gallery.source_paths import contains, safe_join

logger = logging.getLogger(__name__)

QUARANTINE_FOLDER = ".imgsim-trash"  # hidden, so scans never walk it (gallery.source_paths.ignored)

_ERRNO_CODES = {
    errno.EEXIST: ("collision", "a file with that name is already there"),
    errno.EACCES: ("permission_denied", "permission denied"),
    errno.EPERM: ("permission_denied", "operation not permitted"),
    errno.EROFS: ("read_only_mount", "the folder is on a read-only mount"),
    errno.ENOSPC: ("disk_full", "the disk is full"),
    errno.EDQUOT: ("disk_full", "the disk quota is exhausted"),
    errno.ENOENT: ("missing", "the file is no longer there"),
    errno.EXDEV: ("cross_device", "the quarantine folder is on another file system"),
}


class MoveRefused(ServiceError):
    """A move that was not made, with why (the file stays where it was)."""

    default_status = 409


def _refusal(error: OSError, what: str) -> MoveRefused:
    code, reason = _ERRNO_CODES.get(error.errno or 0, ("move_failed", error.strerror or str(error)))
    return MoveRefused(code, f"Could not {what}: {reason}. The file was left where it was.")


def _move_without_overwrite(source: str, target: str) -> None:
    """Move a file to a free name; FileExistsError if the name is taken, never a replaced file."""
    os.makedirs(os.path.dirname(target), exist_ok=True)
    try:
        os.link(source, target, follow_symlinks=False)
    except FileExistsError:
        raise
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
            raise
        # No hard links here (some network shares): rename once the name is checked free.
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, "File exists", target) from None
        os.rename(source, target)
        return
    os.unlink(source)


def _free_quarantine_path(root: str, relative_path: str) -> str:
    """The quarantine path for a file, with " (2)", " (3)"... before the suffix while that name is taken."""
    wanted = PurePosixPath(QUARANTINE_FOLDER, relative_path)
    candidate, number = wanted, 1
    while os.path.lexists(os.path.join(root, *candidate.parts)):
        number += 1
        candidate = wanted.with_name(f"{wanted.stem} ({number}){wanted.suffix}")
    return str(candidate)


def _log(row: SourceFile, action: str, from_path: str, to_path: str, by: Actor, error: MoveRefused | None) -> None:
    SourceFileMove.objects.create(
        source_id=row.source_id,
        source_file=row if row.pk else None,
        image_id=None
        if action == SourceFileMove.Action.PURGE
        else row.image_id,  # a purge follows its image's deletion
        action=action,
        from_path=from_path,
        to_path=to_path,
        status=SourceFileMove.Status.FAILED if error else SourceFileMove.Status.DONE,
        code=error.code if error else "",
        message=error.message if error else "",
        by=by if by is not None and by.is_authenticated else None,
    )


def _check_writable(source: LibrarySource) -> None:
    if not source.writable:
        raise MoveRefused("read_only_source", f"The source {source.name} is read-only: imgsim moves none of its files.")
    if source.offline:
        raise MoveRefused("offline", f"The folder {source.name} is offline.")


def source_file_quarantine(*, source_file: SourceFile, by: Actor = None) -> SourceFile:
    """Move a present file into its source's quarantine folder (logged; MoveRefused says why not)."""
    source = source_file.source
    original = source_file.relative_path
    target_path = ""
    try:
        _check_writable(source)
        path = safe_join(source.root, original)
        info = os.lstat(path)
        if info.st_size != source_file.size or info.st_mtime_ns != source_file.mtime_ns:
            raise MoveRefused("changed", f"{original} changed since the last scan: rescan it before trashing it.")
        target_path = _free_quarantine_path(source.root, original)
        target = os.path.join(source.root, *PurePosixPath(target_path).parts)
        if not contains(os.path.realpath(source.root), os.path.realpath(os.path.dirname(target))):
            raise MoveRefused("outside_root", f"The quarantine folder of {source.name} leads outside it.")
        try:
            _move_without_overwrite(path, target)
        except OSError as error:
            raise _refusal(error, f"move {original} into {QUARANTINE_FOLDER}") from None
    except MoveRefused as refused:
        _log(source_file, SourceFileMove.Action.QUARANTINE, original, target_path, by, refused)
        raise
    except OSError as error:
        refused = _refusal(error, f"read {original}")
        _log(source_file, SourceFileMove.Action.QUARANTINE, original, target_path, by, refused)
        raise refused from None
    SourceFile.objects.filter(pk=source_file.pk).update(
        relative_path=target_path, state=SourceFile.State.QUARANTINED, quarantined_from=original
    )
    _log(source_file, SourceFileMove.Action.QUARANTINE, original, target_path, by, None)
    source_file.refresh_from_db()
    return source_file


def source_file_restore(*, source_file: SourceFile, by: Actor = None) -> SourceFile:
    """Move a quarantined file back to where it was; a file now at that path is never replaced (collision)."""
    source = source_file.source
    held, original = source_file.relative_path, source_file.quarantined_from
    try:
        _check_writable(source)
        if source_file.state != SourceFile.State.QUARANTINED or not original:
            raise MoveRefused("not_quarantined", f"{held} is not in the quarantine folder.")
        target = safe_join(source.root, original)
        if os.path.lexists(target) or SourceFile.objects.filter(source=source, relative_path=original).exists():
            raise MoveRefused(
                "collision",
                f"A file is now at {original}: move or rename it, then restore again. Nothing was overwritten.",
            )
        try:
            _move_without_overwrite(safe_join(source.root, held), target)
        except OSError as error:
            raise _refusal(error, f"move {held} back to {original}") from None
        try:
            SourceFile.objects.filter(pk=source_file.pk).update(
                relative_path=original, state=SourceFile.State.PRESENT, quarantined_from=""
            )
        except IntegrityError:
            os.rename(target, safe_join(source.root, held))
            raise MoveRefused("collision", f"A scan recorded a file at {original} meanwhile.") from None
    except MoveRefused as refused:
        _log(source_file, SourceFileMove.Action.RESTORE, held, original, by, refused)
        raise
    _log(source_file, SourceFileMove.Action.RESTORE, held, original, by, None)
    source_file.refresh_from_db()
    return source_file


def source_file_purge(*, source_file: SourceFile, by: Actor = None) -> None:
    """Delete a quarantined file for good (the image's purge), and its row."""
    source = source_file.source
    held = source_file.relative_path
    try:
        _check_writable(source)
        if source_file.state != SourceFile.State.QUARANTINED:
            raise MoveRefused("not_quarantined", f"{held} is not in the quarantine folder: it is not deleted.")
        try:
            os.unlink(safe_join(source.root, held))
        except FileNotFoundError:
            pass  # already gone: the purge's end state
        except OSError as error:
            raise _refusal(error, f"delete {held}") from None
    except MoveRefused as refused:
        _log(source_file, SourceFileMove.Action.PURGE, held, "", by, refused)
        raise
    _log(source_file, SourceFileMove.Action.PURGE, held, "", by, None)
    source_file.delete()


def _each(rows: Iterable[SourceFile], move: object, by: Actor) -> None:
    for row in rows:
        try:
            move(source_file=row, by=by)  # type: ignore[operator]
        except MoveRefused as refused:
            logger.warning("%s: %s", row, refused.message)


def image_files_follow_trash(*, image: Image, by: Actor = None) -> None:
    """Once the trash commits: the image's files in writable sources go into their quarantine folders."""
    rows = SourceFile.objects.filter(image_id=image.pk, state=SourceFile.State.PRESENT, source__writable=True)
    transaction.on_commit(lambda: _each(rows.select_related("source"), source_file_quarantine, by))


def image_files_follow_restore(*, image: Image, by: Actor = None) -> None:
    """Once the restore commits: the image's quarantined files go back where they were."""
    rows = SourceFile.objects.filter(image_id=image.pk, state=SourceFile.State.QUARANTINED)
    transaction.on_commit(lambda: _each(rows.select_related("source"), source_file_restore, by))


def images_files_follow_purge(*, image_ids: list[int]) -> None:
    """Before the images' rows go: their quarantined files are deleted once the purge commits."""
    rows = list(
        SourceFile.objects.filter(image_id__in=image_ids, state=SourceFile.State.QUARANTINED).select_related("source")
    )
    if rows:
        transaction.on_commit(lambda: _each(rows, source_file_purge, None))


def source_file_move_undo(*, move: SourceFileMove, by: Actor = None) -> SourceFile:
    """Undo a done move: a file moved into quarantine goes back, one moved back goes into quarantine again. A
    purge deleted the file: it cannot be undone."""
    if move.status != SourceFileMove.Status.DONE or move.source_file_id is None:
        raise MoveRefused("not_undoable", "Only a done move of a file imgsim still knows can be undone.")
    if move.action == SourceFileMove.Action.PURGE:
        raise MoveRefused("not_undoable", "A purged file was deleted: it cannot be brought back.")
    row = SourceFile.objects.select_related("source").get(pk=move.source_file_id)
    if move.action == SourceFileMove.Action.QUARANTINE:
        row = source_file_restore(source_file=row, by=by)
    else:
        row = source_file_quarantine(source_file=row, by=by)
    SourceFileMove.objects.filter(pk=move.pk).update(status=SourceFileMove.Status.UNDONE)
    return row
