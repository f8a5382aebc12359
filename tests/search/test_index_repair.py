"""A failed automatic index repair is retried with backoff until it succeeds, and /api/index/ shows it."""

from __future__ import annotations

import ast
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from django.utils.module_loading import import_string
from django_q.models import Schedule

from search.library_view import forget_served_indexes
from search.models import IndexBuild
from search.services.embedding_queue import embed_pending
from search.services.index_lifecycle import REPAIR_RETRY_SCHEDULE, index_rebuild, repair_retry_delay
from tests.images import photo_jpeg

pytestmark = pytest.mark.django_db


def run_schedule(name: str) -> None:
    """Run a schedule's task the way django-q2's scheduler does (func + literal kwargs)."""
    schedule = Schedule.objects.get(name=name)
    import_string(schedule.func)(**ast.literal_eval(schedule.kwargs or "{}"))


def test_the_delay_doubles_from_a_minute_up_to_an_hour():
    delays = [repair_retry_delay(failures=n) for n in range(1, 10)]
    assert delays[:4] == [timedelta(minutes=1), timedelta(minutes=2), timedelta(minutes=4), timedelta(minutes=8)]
    assert delays[-1] == timedelta(hours=1)
    assert repair_retry_delay(failures=1000) == timedelta(hours=1)


@pytest.mark.ml
def test_a_failed_repair_is_retried_with_backoff_and_shown_in_the_api(api, settings, tmp_path):
    for seed in (90, 91, 92):
        response = api.post("/api/images/", {"file": SimpleUploadedFile(f"{seed}.jpg", photo_jpeg(seed))})
        assert response.status_code == 201
    embed_pending()
    image_id = response.json()["image"]["id"]
    first = index_rebuild()
    assert api.get("/api/index/").json()["repair"] is None

    blocked = tmp_path / "not-a-folder"
    blocked.write_text("the index folder was replaced by a file")
    settings.IMGSIM_INDEX_DIR = blocked  # the served file is gone and no new one can be written
    forget_served_indexes()
    response = api.get(f"/api/images/{image_id}/similar/?k=2")
    assert response.status_code == 200  # answered exactly meanwhile
    assert len(response.json()["results"]) == 2
    first.refresh_from_db()
    assert first.status == IndexBuild.Status.FAILED

    with pytest.raises(OSError, match="not-a-folder"):
        import_string("search.tasks.index_rebuild")(requested_by="self-repair")  # the repair the search queued
    status = api.get("/api/index/").json()
    assert status["version"] is None
    assert status["repair"]["failures"] == 1
    assert status["repair"]["last_error"]
    first_retry = Schedule.objects.get(name=REPAIR_RETRY_SCHEDULE).next_run
    assert first_retry > timezone.now()

    with pytest.raises(OSError, match="not-a-folder"):
        run_schedule(REPAIR_RETRY_SCHEDULE)  # the retry fails too: the next one waits longer
    assert api.get("/api/index/").json()["repair"]["failures"] == 2
    assert Schedule.objects.filter(name=REPAIR_RETRY_SCHEDULE).count() == 1
    assert Schedule.objects.get(name=REPAIR_RETRY_SCHEDULE).next_run > first_retry

    settings.IMGSIM_INDEX_DIR = tmp_path / "index-again"  # the operator fixes the folder
    run_schedule(REPAIR_RETRY_SCHEDULE)
    status = api.get("/api/index/").json()
    assert status["version"] == IndexBuild.objects.ready().get().pk
    assert status["repair"] is None
    assert not Schedule.objects.filter(name=REPAIR_RETRY_SCHEDULE).exists()


@pytest.mark.ml
def test_a_failed_manual_rebuild_is_not_retried(settings, tmp_path, api):
    response = api.post("/api/images/", {"file": SimpleUploadedFile("93.jpg", photo_jpeg(93))})
    assert response.status_code == 201
    embed_pending()
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("x")
    settings.IMGSIM_INDEX_DIR = blocked
    with pytest.raises(OSError, match="not-a-folder"):
        index_rebuild(requested_by="sam")
    assert not Schedule.objects.filter(name=REPAIR_RETRY_SCHEDULE).exists()
    assert api.get("/api/index/").json()["repair"] is None
