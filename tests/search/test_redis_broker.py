"""With IMGSIM_REDIS_URL set, django-q2 tasks travel through Redis (the production broker)."""

from __future__ import annotations

import uuid

import pytest
from django_q.brokers.redis_broker import Redis
from django_q.conf import Conf
from django_q.signing import SignedPackage

REDIS_URL = "redis://127.0.0.1:6379/0"


def test_embedding_task_round_trips_through_redis(monkeypatch):
    monkeypatch.setattr(Conf, "REDIS", REDIS_URL)
    broker = Redis(list_key=f"imgsim-test-{uuid.uuid4().hex}")
    try:
        broker.ping()
    except Exception as error:  # the suite needs the same services as CI
        pytest.fail(f"Redis at {REDIS_URL} is not reachable ({error}); start it (see .ci/run)")
    package = SignedPackage.dumps({"id": "t1", "func": "pipeline.tasks.embed_pending", "args": (), "kwargs": {}})
    broker.enqueue(package)
    assert broker.queue_size() == 1
    ((_task_id, payload),) = broker.dequeue()
    assert SignedPackage.loads(payload)["func"] == "pipeline.tasks.embed_pending"
    broker.delete_queue()
    assert broker.queue_size() == 0
