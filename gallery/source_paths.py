"""Paths below a library source's root: resolving a root, refusing overlaps, joining without escaping, walking.

Pure filesystem logic without Django. A source's files are the user's: nothing here writes, and no path it
hands out points outside the root (symlinks are never followed; a joined path is resolved and checked).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath

# The image files a scan reads (the import's too); anything else below a root is ignored.
IMAGE_FILE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".mpo"})
# Never walked: hidden entries (".thumbnails", macOS "._name.jpg" resource forks, imgsim's own ".imgsim-trash")
# and the thumbnail and recycle folders NAS systems keep beside the photos (Synology, QNAP, Windows shares).
IGNORED_NAMES = frozenset({"@eaDir", "#recycle", "#snapshot", "@Recycle", "@Recently-Snapshot", "$RECYCLE.BIN"})


def ignored(name: str) -> bool:
    return name.startswith(".") or name in IGNORED_NAMES


class PathOutsideRoot(OSError):
    """A relative path that would leave the source's root (.., an absolute path, or a symlink out of it)."""


def resolved_root(path: str) -> str:
    """The absolute, symlink-free form of a folder to register; ValueError saying why it cannot be one."""
    if not path or not os.path.isabs(path):
        raise ValueError(f"{path!r} is not an absolute path.")
    if "\x00" in path:
        raise ValueError("The path contains a NUL character.")
    real = os.path.realpath(path)
    if not os.path.isdir(real):
        raise ValueError(f"{path} is not a folder this machine can see.")
    if not os.access(real, os.R_OK | os.X_OK):
        raise ValueError(f"{path} cannot be read by this process (permission denied).")
    return real


def contains(outer: str, inner: str) -> bool:
    """Whether `inner` is `outer` or below it (both resolved)."""
    return os.path.commonpath([outer, inner]) == outer


def roots_overlap(first: str, second: str) -> bool:
    """Two resolved roots overlap when they are the same folder or one holds the other."""
    return contains(first, second) or contains(second, first)


def safe_join(root: str, relative_path: str) -> str:
    """root/relative_path resolved, refusing any path that ends up outside the root (PathOutsideRoot)."""
    relative = PurePosixPath(relative_path)
    if not relative_path or relative.is_absolute() or ".." in relative.parts or "\x00" in relative_path:
        raise PathOutsideRoot(f"{relative_path!r} is not a path below the source's root.")
    real = os.path.realpath(os.path.join(root, *relative.parts))
    if not contains(os.path.realpath(root), real):
        raise PathOutsideRoot(f"{relative_path} leads outside the source's root (a symlink).")
    return real


@dataclass(frozen=True)
class WalkedFile:
    relative_path: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class WalkProblem:
    """Something the walk did not read: a symlink (out of the root or not), or a folder it cannot list."""

    relative_path: str
    reason: str
    message: str
    is_folder: bool = False


def walk_source(root: str) -> Iterator[WalkedFile | WalkProblem]:
    """Every image file below `root` (stat only, nothing opened), and what was skipped and why.

    Symlinks are never followed: one pointing outside the root is reported as `symlink_outside_root`, one
    inside as `symlink` (its target is read under its own path). A folder that cannot be listed is reported
    as `unreadable_folder`, so the caller can leave what it knew below it alone rather than call it deleted.
    Hidden entries and NAS thumbnail and recycle folders (IGNORED_NAMES) are not walked.
    The root itself failing to list raises OSError (the source is offline)."""
    root_real = os.path.realpath(root)
    pending = [""]
    first = True
    while pending:
        folder = pending.pop()
        try:
            with os.scandir(os.path.join(root_real, folder) if folder else root_real) as entries:
                listed = list(entries)
        except OSError as error:
            if first:
                raise
            yield WalkProblem(folder, "unreadable_folder", f"cannot list this folder: {error.strerror}", True)
            continue
        first = False
        for entry in sorted(listed, key=lambda e: e.name):
            relative = f"{folder}/{entry.name}" if folder else entry.name
            if ignored(entry.name):
                continue
            try:
                if entry.is_symlink():
                    target = os.path.realpath(entry.path)
                    inside = contains(root_real, target)
                    yield WalkProblem(
                        relative,
                        "symlink" if inside else "symlink_outside_root",
                        "a symlink: its target is read under its own path"
                        if inside
                        else f"a symlink to {target}, outside the source's root: not read",
                        is_folder=os.path.isdir(target),
                    )
                    continue
                info = entry.stat(follow_symlinks=False)
            except OSError as error:
                yield WalkProblem(relative, "unreadable", f"cannot read its details: {error.strerror}")
                continue
            if stat.S_ISDIR(info.st_mode):
                pending.append(relative)
            elif stat.S_ISREG(info.st_mode) and os.path.splitext(entry.name)[1].lower() in IMAGE_FILE_SUFFIXES:
                yield WalkedFile(relative, info.st_size, info.st_mtime_ns)
