"""Detection in short steps: a run stops after its budget and leaves a wake-up for the rest, a step's lease
is renewed while it makes progress and taken over soon after it ends, and the step size follows the time
measured per image (stored vectors, no model; a fake clock where time matters)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import OrmQ, Schedule

from core.task_queue import task_queue_run_started
from duplicates.models import DetectionCheck, DetectionClaim, DuplicatePair
from duplicates.selectors.detection import images_awaiting_detection
from duplicates.services import detection
from tests.search.test_library_view import DIM, synthetic_library

pytestmark = pytest.mark.django_db


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(detection, "clock", fake)
    return fake


def pace(monkeypatch: pytest.MonkeyPatch, *, step: int | None, settings: Any) -> None:
    """This worker's measured pace: `step` images fit in a step (None: nothing measured yet)."""
    measured = None if step is None else settings.IMGSIM_DETECT_STEP_SECONDS / step
    monkeypatch.setattr(
        detection, "step_pace", detection.StepPace(seconds_per_image=measured, last_size=step or detection.FIRST_STEP)
    )


def copies_of_one_photo(count: int, *, seed: int) -> list[int]:
    """Images whose vectors are near-duplicates of each other (cosine > 0.99): every two form a pair."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=DIM).astype(np.float32)
    vectors = base + 0.05 * rng.normal(size=(count, DIM)).astype(np.float32)
    return sorted(synthetic_library(count, vectors=vectors, start=seed * 1000))


def test_a_run_whose_budget_is_spent_stops_after_its_step_and_leaves_a_wake_up_for_the_rest(
    committed: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, settings: Any
):
    monkeypatch.setattr(Conf, "SYNC", False)  # the next run waits in the queue instead of running inline
    ids = sorted(synthetic_library(12, seed=51))
    pace(monkeypatch, step=4, settings=settings)
    task_queue_run_started(detection.DETECT_TASK)  # this run has started: the next request queues one

    summary = committed(detection.duplicate_detection_run, time_budget_seconds=0)

    assert summary.steps == [4]
    assert summary.more_left
    assert sorted(images_awaiting_detection().values_list("id", flat=True)) == ids[4:]
    assert Counter(row.func() for row in OrmQ.objects.all())[detection.DETECT_TASK] == 1


def test_a_dead_workers_step_is_taken_over_by_the_run_scheduled_for_the_end_of_its_lease(
    monkeypatch: pytest.MonkeyPatch, settings: Any
):
    ids = sorted(synthetic_library(6, seed=52))
    token, _, claimed = detection._claim_chunk(after=0, size=2)  # ... and that worker dies
    lease_ends = DetectionClaim.objects.filter(token=token).latest("claimed_until").claimed_until

    assert detection.duplicate_detection_run().detection.queried == 4  # a living worker checks the others
    take_over = Schedule.objects.get(name=detection.TAKE_OVER_SCHEDULE)
    assert take_over.func == detection.DETECT_TASK
    assert take_over.next_run == lease_ends + detection.TAKE_OVER_MARGIN

    DetectionClaim.objects.filter(token=token).update(claimed_until=timezone.now() - timedelta(seconds=1))
    assert detection.duplicate_detection_run().detection.queried == len(claimed)  # the scheduled run
    assert not images_awaiting_detection().exists()
    assert DetectionCheck.objects.count() == len(ids)
    assert not DetectionClaim.objects.exists()


def test_a_step_outlasting_its_lease_keeps_its_images_while_it_makes_progress(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch, settings: Any
):
    ids = copies_of_one_photo(4, seed=53)  # 6 pairs, each one more stretch of the step's work
    pace(monkeypatch, step=len(ids), settings=settings)
    lease = settings.IMGSIM_DETECT_LEASE_SECONDS
    taken_by_another_worker: list[list[int]] = []
    real_evidence = detection.pair_evidence

    def half_a_lease_per_pair(**kwargs: Any) -> dict:
        clock.now += lease / 2
        for claim in DetectionClaim.objects.all():  # the wall clock moves on as much
            claim.claimed_until -= timedelta(seconds=lease / 2)
            claim.save()
        taken_by_another_worker.append(detection._claim_chunk(after=0, size=len(ids))[2])
        return real_evidence(**kwargs)

    monkeypatch.setattr(detection, "pair_evidence", half_a_lease_per_pair)
    summary = detection.duplicate_detection_run(time_budget_seconds=float("inf"))

    assert summary.steps == [len(ids)]
    assert len(taken_by_another_worker) == 6  # three leases' worth of work in one step
    assert taken_by_another_worker == [[]] * 6
    assert DuplicatePair.objects.count() == 6
    assert not images_awaiting_detection().exists()


def test_the_step_size_follows_the_time_measured_per_image(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch, settings: Any
):
    settings.IMGSIM_DETECT_STEP_SECONDS = 4
    ids = sorted(synthetic_library(70, seed=54))
    slow = set(ids[30:])  # the first 30 images take 0.1 s each, the rest 1 s (many look-alikes)
    pace(monkeypatch, step=None, settings=settings)
    real_chunk = detection._detect_chunk

    def timed_chunk(chunk: list[int], run: Any) -> detection.DetectSummary:
        clock.now += sum(1.0 if pk in slow else 0.1 for pk in chunk)
        return real_chunk(chunk, run)

    monkeypatch.setattr(detection, "_detect_chunk", timed_chunk)
    summary = detection.duplicate_detection_run(time_budget_seconds=float("inf"))

    # Quick images: the step doubles from the first one; once they turn slow (the fourth step took 30.2 s for
    # 32 images), as many as fit in 4 s.
    assert summary.steps == [detection.FIRST_STEP, 8, 16, 32, 4, 4, 2]
    assert not images_awaiting_detection().exists()


def test_a_slow_group_refresh_makes_steps_longer_not_more_numerous(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch, settings: Any
):
    settings.IMGSIM_DETECT_STEP_SECONDS = 4
    copies_of_one_photo(40, seed=56)  # every step writes pairs and refreshes the photo's group
    pace(monkeypatch, step=None, settings=settings)
    real_chunk, real_refresh = detection._detect_chunk, detection.duplicate_groups_refresh

    def timed_chunk(chunk: list[int], run: Any) -> detection.DetectSummary:
        clock.now += 0.1 * len(chunk)
        return real_chunk(chunk, run)

    def slow_refresh(**kwargs: Any) -> Any:
        clock.now += 3.0  # whatever the step's size
        return real_refresh(**kwargs)

    monkeypatch.setattr(detection, "_detect_chunk", timed_chunk)
    monkeypatch.setattr(detection, "duplicate_groups_refresh", slow_refresh)
    summary = detection.duplicate_detection_run(time_budget_seconds=float("inf"))

    # 3 s per step and 0.1 s per image: steps of 30 images (as long in images as in refresh), reached by
    # doubling; counted per image alone (0.85 s each in the first step) they would stay at 4 images.
    assert summary.steps == [detection.FIRST_STEP, 8, 16, 12]
    assert not images_awaiting_detection().exists()


def test_a_pair_found_again_from_its_other_image_in_a_later_step_is_not_rewritten(
    monkeypatch: pytest.MonkeyPatch, settings: Any
):
    first, _ = copies_of_one_photo(2, seed=55)
    pace(monkeypatch, step=1, settings=settings)

    summary = detection.duplicate_detection_run(time_budget_seconds=float("inf"))

    assert summary.steps == [1, 1]
    assert (summary.detection.created, summary.detection.updated) == (1, 0)
    pair = DuplicatePair.objects.get()
    assert pair.detected_at == DetectionCheck.objects.get(image_id=first).checked_at
