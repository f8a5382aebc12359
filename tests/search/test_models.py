"""IndexBuild.objects.latest_ready: the one query for "which build do searches serve"."""

from __future__ import annotations

import pytest

from search.models import IndexBuild

pytestmark = pytest.mark.django_db


def test_latest_ready_is_the_newest_ready_build_of_that_model():
    # given two ready, a failed and a building build of one model, and a ready one of another
    Status = IndexBuild.Status
    older = IndexBuild.objects.create(model_name="mobilenet_v2", status=Status.READY)  # not yet superseded
    served = IndexBuild.objects.create(model_name="mobilenet_v2", status=Status.READY)
    IndexBuild.objects.create(model_name="mobilenet_v2", status=Status.FAILED)
    other_model = IndexBuild.objects.create(model_name="resnet18", status=Status.READY)
    IndexBuild.objects.create(model_name="mobilenet_v2", status=Status.BUILDING)
    # when asking for each model's served build, then it is the newest ready one of that model only
    assert IndexBuild.objects.latest_ready(model_name="mobilenet_v2") == served
    assert IndexBuild.objects.latest_ready(model_name="resnet18") == other_model
    assert older.pk < served.pk


def test_latest_ready_is_none_before_the_first_build():
    IndexBuild.objects.create(model_name="mobilenet_v2", status=IndexBuild.Status.BUILDING)
    assert IndexBuild.objects.latest_ready(model_name="mobilenet_v2") is None
