"""Two workers refreshing the same groups at once (PostgreSQL, each thread its own connection): the group lock
serialises them, so no image ends up in two pending groups."""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from typing import Any

import pytest
from django.db import connection, connections

from duplicates.models import DuplicateGroup, DuplicateGroupMember, DuplicatePair
from duplicates.services import groups as groups_module
from duplicates.services.groups import duplicate_groups_refresh
from gallery.services import image_create
from tests.images import photo_jpeg

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs concurrent writers: run with DATABASE_URL=postgres://... (SQLite serialises whole databases)",
    ),
]


def family(size: int, seed: int) -> list[int]:
    """Copies of one photo, every two paired as near-duplicates, not grouped yet (detection's output)."""
    ids = [
        image_create(data=photo_jpeg(seed + k, size=(96 + k, 72)), original_name=f"c{k}.jpg").image.pk
        for k in range(size)
    ]
    DuplicatePair.objects.bulk_create(
        DuplicatePair(image_a_id=a, image_b_id=b, kind="near_duplicate", similarity=0.95)
        for x, a in enumerate(ids)
        for b in ids[x + 1 :]
    )
    return ids


def test_two_concurrent_refreshes_never_put_an_image_in_two_pending_groups(monkeypatch: Any):
    ids = family(5, seed=600)
    # Both workers read the pairs before either writes, whenever the database lets them run side by side.
    both_read = threading.Barrier(2, timeout=5)
    read = groups_module._component
    waited = threading.local()

    def component_then_wait(kind: str, seeds: set[int]) -> Any:
        found = read(kind, seeds)
        if kind == "near_duplicate" and not getattr(waited, "done", False):
            waited.done = True
            with contextlib.suppress(threading.BrokenBarrierError):  # the other one waits for the lock
                both_read.wait()
        return found

    monkeypatch.setattr(groups_module, "_component", component_then_wait)
    errors: list[BaseException] = []

    def worker(seeds: list[int]) -> None:
        try:
            duplicate_groups_refresh(image_ids=seeds)
        except BaseException as error:  # reported below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(seeds,)) for seeds in (ids[:2], ids[3:])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors

    pending = DuplicateGroup.objects.filter(status="pending", kind="near_duplicate")
    memberships = Counter(DuplicateGroupMember.objects.filter(group__in=pending).values_list("image_id", flat=True))
    assert sorted(memberships) == sorted(ids)
    assert set(memberships.values()) == {1}, f"images in two pending groups: {memberships}"
    assert pending.count() == 1
