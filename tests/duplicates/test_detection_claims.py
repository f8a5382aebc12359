"""Detection under claims: workers running at once check each image once, and a killed worker's images are
taken over once its lease expires (stored vectors, no model)."""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from django.db import connections
from django.utils import timezone

from duplicates.models import DetectionCheck, DetectionClaim
from duplicates.selectors.detection import images_awaiting_detection
from duplicates.services import detection
from tests.search.test_library_view import synthetic_library


@pytest.mark.django_db(transaction=True)
def test_two_workers_detecting_at_once_check_each_image_once(monkeypatch: Any):
    ids = sorted(synthetic_library(12, seed=41))
    checked: Counter[int] = Counter()
    # Both workers have read the to-do list before either checks anything.
    both_read = threading.Barrier(2, timeout=10)
    waited = threading.local()
    real_chunk = detection._detect_chunk

    def wait_once() -> None:
        if not getattr(waited, "done", False):
            waited.done = True
            with contextlib.suppress(threading.BrokenBarrierError):
                both_read.wait()

    def chunk_after_both_read(chunk: list[int], run: Any) -> detection.DetectSummary:
        checked.update(chunk)
        wait_once()
        return real_chunk(chunk, run)

    monkeypatch.setattr(detection, "_detect_chunk", chunk_after_both_read)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            detection.duplicate_detection_run()
            wait_once()  # a worker that found everything claimed lets the other one go on
        except BaseException as error:  # reported below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert sorted(checked) == ids
    assert set(checked.values()) == {1}, f"images checked twice: {checked}"
    assert DetectionCheck.objects.count() == len(ids)
    assert not DetectionClaim.objects.exists()


@pytest.mark.django_db
def test_a_killed_workers_claims_are_taken_over_once_their_lease_expires():
    ids = sorted(synthetic_library(5, seed=42))
    token, _, claimed = detection._claim_chunk(after=0, size=detection.DETECT_CHUNK)  # ... and the worker dies
    assert claimed == ids

    assert detection.duplicate_detection_run().detection.queried == 0  # leased to the dead worker
    assert images_awaiting_detection().count() == len(ids)

    DetectionClaim.objects.filter(token=token).update(claimed_until=timezone.now() - timedelta(seconds=1))
    assert detection.duplicate_detection_run().detection.queried == len(ids)
    assert not images_awaiting_detection().exists()
    assert not DetectionClaim.objects.exists()
