"""Crash-safe detection: a run killed between embedding and detection leaves nothing unchecked.

Photos go in through the upload API; the step between the committed vectors and their pairs is killed (an
exception injected, or the detection task never run), and the pairs still appear, with no manual scan:
the two-minute schedule or the next embedding batch checks whatever has no DetectionCheck row.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils.module_loading import import_string
from django_q.models import Schedule

from duplicates.models import DetectionCheck, DuplicatePair
from duplicates.selectors.detection import images_awaiting_detection
from duplicates.services import detection
from gallery.models import Image
from pipeline import services as pipeline_services
from tests.duplicates.conftest import distractor_files, group_files

pytestmark = [pytest.mark.django_db, pytest.mark.ml]


def upload(committed: Callable[..., Any], api: Any, paths: list[Path]) -> list[int]:
    """Upload through the API, running the on-commit tasks (embedding, then detection) as a worker would."""
    ids = []
    for path in paths:
        response = committed(api.post, "/api/images/", {"file": SimpleUploadedFile(path.name, path.read_bytes())})
        assert response.status_code == 201, response.content
        ids.append(response.json()["image"]["id"])
    assert Image.objects.filter(pk__in=ids, status=Image.Status.INDEXED).count() == len(ids)
    return ids


class WorkerKilled(BaseException):
    """Stands for the process being killed: like SIGKILL, nothing in the task gets to handle it."""


def upload_killed(committed: Callable[..., Any], api: Any, paths: list[Path]) -> list[int]:
    """Upload while detection dies: the kill ends the detection task (tasks run inline here, so it reaches
    the test) after the embedding task has committed the vectors."""
    before = set(Image.objects.values_list("id", flat=True))
    for path in paths:
        with pytest.raises(WorkerKilled):
            committed(api.post, "/api/images/", {"file": SimpleUploadedFile(path.name, path.read_bytes())})
    ids = set(Image.objects.values_list("id", flat=True)) - before
    assert Image.objects.filter(pk__in=ids, status=Image.Status.INDEXED).count() == len(paths)
    return sorted(ids)


def api_pairs(staff_api: Any) -> set[tuple[int, int]]:
    response = staff_api.get("/api/duplicates/?status=all&kind=near_duplicate&page_size=100")
    assert response.status_code == 200
    return {(row["image_a"]["id"], row["image_b"]["id"]) for row in response.json()["results"]}


def run_scheduled_detection() -> None:
    """What the two-minute schedule (created by a migration) runs."""
    schedule = Schedule.objects.get(name="imgsim: detect duplicates")
    assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == ("I", 2, -1)
    import_string(schedule.func)()


def test_detection_killed_after_the_vectors_commit_is_redone_by_the_schedule(api, staff_api, committed, monkeypatch):
    def killed(*args, **kwargs):
        raise WorkerKilled

    with monkeypatch.context() as patch:
        patch.setattr(detection, "_detect_chunk", killed)
        ids = upload_killed(committed, api, group_files("g05", 3))
    assert api_pairs(staff_api) == set()
    assert set(images_awaiting_detection().values_list("id", flat=True)) == set(ids)

    run_scheduled_detection()

    a, b, c = sorted(ids)
    assert api_pairs(staff_api) == {(a, b), (a, c), (b, c)}
    assert not images_awaiting_detection().exists()


def test_detection_task_never_run_is_done_by_the_next_embedding_batch(api, staff_api, committed, monkeypatch):
    with monkeypatch.context() as patch:
        patch.setattr(pipeline_services, "duplicate_detection_schedule", lambda: None)  # the task is lost
        first, second = upload(committed, api, group_files("g02", 2))
    assert api_pairs(staff_api) == set()

    upload(committed, api, distractor_files(1))  # any later upload: its batch queues detection

    assert api_pairs(staff_api) == {(first, second)}
    assert DetectionCheck.objects.filter(image_id__in=[first, second]).count() == 2


def test_pairs_and_checks_commit_together(api, staff_api, committed, monkeypatch, caplog):
    """A failure while recording the checks rolls the pairs back too: never pairs without the check, and
    never a check without its pairs."""

    def broken(*args, **kwargs):
        raise RuntimeError("database went away")

    with monkeypatch.context() as patch:
        patch.setattr(detection, "_mark_checked", broken)
        ids = upload(committed, api, group_files("g00", 2))
    assert not DuplicatePair.objects.exists()
    assert not DetectionCheck.objects.exists()
    assert f"duplicate detection failed for image {ids[1]}; the next run retries it" in caplog.text

    run_scheduled_detection()
    assert api_pairs(staff_api) == {tuple(sorted(ids))}


def test_one_failing_image_does_not_hold_up_the_others(api, staff_api, committed, monkeypatch):
    real = detection._detect_chunk
    poisoned: set[int] = set()

    def fails_for_poisoned(ids, run):
        if poisoned & set(ids):
            raise ValueError("unreadable vector")
        return real(ids, run)

    monkeypatch.setattr(detection, "_detect_chunk", fails_for_poisoned)
    (bad,) = upload(committed, api, distractor_files(1))
    poisoned.add(bad)
    DetectionCheck.objects.filter(image_id=bad).delete()  # as if its check had failed too
    first, second = upload(committed, api, group_files("g02", 2))

    assert api_pairs(staff_api) == {(first, second)}
    assert list(images_awaiting_detection().values_list("id", flat=True)) == [bad]


def test_a_threshold_change_rechecks_the_library_and_keeps_decisions(api, staff_api, committed, settings):
    ids = upload(committed, api, group_files("g02", 3))
    pair = DuplicatePair.objects.order_by("id").first()
    response = staff_api.post(f"/api/duplicates/{pair.pk}/resolve/", {"action": "not_duplicate"}, format="json")
    assert response.status_code == 200
    assert not images_awaiting_detection().exists()

    settings.IMGSIM_SIMILAR_THRESHOLD = 0.5
    assert set(images_awaiting_detection().values_list("id", flat=True)) == set(ids)
    run_scheduled_detection()

    assert not images_awaiting_detection().exists()
    pair.refresh_from_db()
    assert pair.review_status == DuplicatePair.ReviewStatus.NOT_DUPLICATE
    assert DuplicatePair.objects.filter(review_status="pending").count() == 2
