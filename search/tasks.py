"""django-q2 entry points: parse nothing, call a service, return a small summary for the task log."""

from __future__ import annotations

from search.services import index_lifecycle


def index_rebuild(requested_by: str = "") -> dict[str, object]:
    """Rebuild the PCA + HNSW index from the stored vectors (one at a time; a second request is a no-op)."""
    try:
        build = index_lifecycle.index_rebuild(requested_by=requested_by)
    except index_lifecycle.RebuildAlreadyRunningError:
        return {"skipped": "a rebuild is already running"}
    return {"version": build.pk, "count": build.vector_count, "kind": build.kind}
