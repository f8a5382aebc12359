"""django-q2 entry points of the library: parse nothing, call a service, return a small summary."""

from __future__ import annotations

from gallery import services


def purge_expired_trash() -> dict[str, int]:
    """Purge images that have been in the trash longer than IMGSIM_TRASH_DAYS (scheduled daily)."""
    return {"purged": services.trash_purge_expired()}
