"""Worker health on the pages and in GET /api/health/: no worker seen, work stuck, healthy; real uploads."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from django_q.conf import Conf

from gallery.models import Image
from tests.images import shared_path
from worker.models import WorkerHeartbeat
from worker.watchdog import ClusterSample, worker_heartbeat_record, worker_restart_record

pytestmark = pytest.mark.django_db

PHOTOS = ["100075.jpg", "100080.jpg", "100098.jpg"]


@pytest.fixture
def no_inline_tasks(monkeypatch):
    """Tasks go to the broker as in production (the suite otherwise runs them inline)."""
    monkeypatch.setattr(Conf, "SYNC", False)


def upload_photos(api, names=PHOTOS) -> list[int]:
    ids = []
    for name in names:
        data = shared_path("data", "distractors-dev", "train", name).read_bytes()
        response = api.post("/api/images/", {"file": SimpleUploadedFile(name, data, "image/jpeg")}, format="multipart")
        assert response.status_code == 201, response.content
        ids.append(response.json()["image"]["id"])
    return ids


def beat(cluster_id="c1", *, seen_ago=0.0, workers=1, busy=0, stopped=False):
    worker_heartbeat_record(
        cluster_id=cluster_id,
        host="worker-1",
        pid=4242,
        queue="imgsim",
        started_at=timezone.now() - timedelta(hours=1),
        sample=ClusterSample(beat=0, workers=workers, busy=busy, worker_pids=tuple(range(5000, 5000 + workers))),
        stopped=stopped,
    )
    if seen_ago:
        WorkerHeartbeat.objects.filter(cluster_id=cluster_id).update(
            seen_at=timezone.now() - timedelta(seconds=seen_ago)
        )


def banner(response) -> str:
    html = response.content.decode()
    start = html.index('<div id="worker-health"')
    return html[start : html.index("</div>", start)]


def test_no_worker_yet_library_and_upload_pages_say_so_and_what_to_run(no_inline_tasks, api, staff_web):
    upload_photos(api)

    for url in ("/", "/upload/"):
        page = staff_web.get(url)
        assert page.status_code == 200
        text = banner(page)
        assert " hidden" not in text.split(">")[0]
        assert "No background worker has been seen yet" in text
        assert "3 images wait for it" in text
        assert "<code>python manage.py qcluster</code>" in text  # the API's `backticks` shown as code
        assert "`" not in text

    health = api.get("/api/health/").json()
    assert health["status"] == "no_worker"
    assert health["problem"] is True
    assert health["queued_images"] == 3
    assert health["last_seen_at"] is None
    assert "ask an administrator" in health["action"]
    assert "workers" not in health  # staff only
    assert Image.objects.filter(status=Image.Status.QUEUED).count() == 3  # nothing lost while waiting


def test_a_fresh_heartbeat_hides_the_banner(no_inline_tasks, api, web):
    upload_photos(api, PHOTOS[:1])
    beat()

    page = web.get("/")
    assert 'id="worker-health"' in page.content.decode()
    assert " hidden" in banner(page).split(">")[0]
    health = api.get("/api/health/").json()
    assert (health["status"], health["problem"], health["action"]) == ("ok", False, "")


def test_a_worker_silent_for_longer_than_the_stall_bound_counts_as_gone(no_inline_tasks, settings, api, staff_api):
    settings.IMGSIM_WORKER_STALL_SECONDS = 60
    beat(seen_ago=600)

    health = api.get("/api/health/").json()
    assert health["status"] == "no_worker"
    assert "No background worker has been seen since 10 minutes ago" in health["summary"]
    staff_view = staff_api.get("/api/health/").json()
    assert staff_view["workers"] == []
    assert "python manage.py qcluster" in staff_view["action"]


def test_a_cleanly_stopped_worker_is_not_running(no_inline_tasks, api):
    beat(stopped=True)

    assert api.get("/api/health/").json()["status"] == "no_worker"


def test_queued_images_not_picked_up_while_a_worker_beats_are_stuck(no_inline_tasks, settings, api, staff_web):
    settings.IMGSIM_QUEUE_STUCK_SECONDS = 300
    upload_photos(api, PHOTOS[:2])
    Image.objects.update(created_at=timezone.now() - timedelta(minutes=20))
    beat(workers=2, busy=0)

    health = api.get("/api/health/").json()
    assert health["status"] == "stuck"
    assert "2 images have waited 20 minutes for embedding" in health["summary"]
    assert "not taking work" in health["summary"]
    text = banner(staff_web.get("/upload/"))
    assert "2 images have waited 20 minutes" in text
    assert "systemctl restart imgsim-worker" in text


def test_old_queued_images_are_not_stuck_while_embedding_progresses(no_inline_tasks, settings, api):
    settings.IMGSIM_QUEUE_STUCK_SECONDS = 300
    first, *_ = upload_photos(api, PHOTOS[:2])
    Image.objects.update(created_at=timezone.now() - timedelta(minutes=20))
    Image.objects.filter(pk=first).update(status=Image.Status.INDEXED, embedded_at=timezone.now())
    beat(busy=1)

    assert api.get("/api/health/").json()["status"] == "ok"


def test_staff_see_clusters_and_the_watchdogs_recent_restart(no_inline_tasks, staff_api, staff_web, web):
    beat("c1", workers=2, busy=1)
    worker_restart_record(cluster_id="c1", reason="1 fetched task(s) waited 60 s while all 2 worker(s) were idle")

    health = staff_api.get("/api/health/").json()
    assert health["status"] == "ok"
    (cluster,) = health["workers"]
    assert (cluster["host"], cluster["pid"], cluster["workers"], cluster["busy"]) == ("worker-1", 4242, 2, 1)
    assert cluster["restarts"] == 1
    assert cluster["worker_pids"] == [5000, 5001]
    assert health["recent_restarts"][0]["last_restart_reason"].startswith("1 fetched task(s) waited 60 s")
    assert "The watchdog restarted the worker on worker-1" in staff_web.get("/").content.decode()
    assert "The watchdog restarted" not in web.get("/").content.decode()


def test_tasks_run_inline_need_no_worker(api, web):
    health = api.get("/api/health/").json()
    assert (health["status"], health["problem"]) == ("inline", False)
    assert " hidden" in banner(web.get("/")).split(">")[0]


def test_health_needs_a_signed_in_user(client):
    response = client.get("/api/health/")
    assert response.status_code in (401, 403)
    assert "error" in response.json()
    assert 'id="worker-health"' not in client.get("/accounts/login/").content.decode()
