"""Where an image's original bytes are, and the one way every consumer opens them.

An image's original is either its copy in media (uploads, import_images) or a file in a library source (read
where it is, never copied). Decoding for embedding, the previews, serving the file, the geometric check, the
copy check and calibration all open it here, so a source file is read the same way everywhere: inside its
root only (symlinks and `..` refused), only while its source is online, and only while it still is the file
the last scan hashed (size and mtime unchanged). Each open tells gallery.source_reach whether this machine could
read the source (no write unless a minute passed or the answer changed), and a file that cannot be opened because
this machine cannot see the root at all says so (`unreachable`) instead of calling the file missing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import IO

from gallery.models import Image, LibrarySource, SourceFile
from gallery.source_paths import safe_join
from gallery.source_reach import machine_name, process_role, source_reach_check, source_reach_record


class OriginalUnavailable(OSError):
    """The original cannot be opened now: `reason` is offline, missing, changed or unreadable."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def source_file_open(source_file: SourceFile) -> IO[bytes]:
    """One source file, opened read-only inside its root, refused if it changed since the scan hashed it."""
    source = source_file.source
    if source.state == LibrarySource.State.OFFLINE:
        raise OriginalUnavailable("offline", f"The folder {source.name} is offline.")
    path = safe_join(source.root, source_file.relative_path)
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as error:
        problem = source_reach_check(source=source, role=process_role())
        if problem:
            raise OriginalUnavailable(
                "unreachable", f"The folder {source.name} cannot be read on {machine_name()} ({problem})."
            ) from None
        if isinstance(error, FileNotFoundError):
            raise OriginalUnavailable("missing", f"{source_file} is no longer in its folder.") from None
        raise OriginalUnavailable("unreadable", f"{source_file} cannot be read: {error.strerror}.") from None
    source_reach_record(source=source, role=process_role())
    handle = os.fdopen(descriptor, "rb")
    info = os.fstat(handle.fileno())
    if info.st_size != source_file.size or info.st_mtime_ns != source_file.mtime_ns:
        handle.close()
        raise OriginalUnavailable("changed", f"{source_file} changed since the last scan; the next scan reads it.")
    return handle


def original_open(image: Image) -> IO[bytes]:
    """The image's original for reading (close it, or use it as a context manager): its copy in media, else
    the first readable source file holding its bytes. OriginalUnavailable (an OSError) says why not."""
    if image.file:
        return image.file.storage.open(image.file.name, "rb")
    problem: OriginalUnavailable | None = None
    for source_file in SourceFile.objects.readable().filter(image_id=image.pk).select_related("source"):
        try:
            return source_file_open(source_file)
        except OSError as error:
            problem = error if isinstance(error, OriginalUnavailable) else OriginalUnavailable("unreadable", str(error))
    if problem is not None:
        raise problem
    offline = SourceFile.objects.filter(image_id=image.pk, source__state=LibrarySource.State.OFFLINE).first()
    if offline is not None:
        raise OriginalUnavailable("offline", f"The folder {offline.source.name} is offline.")
    raise OriginalUnavailable("missing", "The original file is missing.")


def original_read(image: Image) -> bytes:
    """The original's bytes (see original_open)."""
    with original_open(image) as handle:
        return handle.read()


@dataclass(frozen=True)
class OriginalLocation:
    """Where an image's original lives, for its page: media, or its files in sources (with their states)."""

    in_media: bool
    source_files: list[SourceFile]

    @property
    def offline(self) -> bool:
        """Every file of a source-only image is in an offline source: only its renditions can be shown."""
        present = [f for f in self.source_files if f.state == SourceFile.State.PRESENT]
        return not self.in_media and bool(present) and all(f.source.offline for f in present)

    @property
    def missing(self) -> bool:
        """A source-only image none of whose files is where the last scan saw it."""
        return (
            not self.in_media
            and bool(self.source_files)
            and all(f.state == SourceFile.State.MISSING for f in self.source_files)
        )


def original_location(image: Image) -> OriginalLocation:
    """Where the image's original is: media, and the source files holding its bytes (one query)."""
    files = list(image.source_files.select_related("source").order_by("source__name", "relative_path"))
    return OriginalLocation(in_media=bool(image.file), source_files=files)
