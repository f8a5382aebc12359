"""Thresholds in force: environment variable > applied thresholds > measured default > generic, with where each
value comes from; cached per process without a query per search, and a change made by another process is seen."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.errors import ServiceError
from search import selectors
from search.models import LibraryChange, ThresholdSetting
from search.services.thresholds import threshold_setting_apply, threshold_setting_undo
from search.thresholds import MODEL_THRESHOLDS, thresholds_for, thresholds_in_force
from tests.search.test_library_view import synthetic_library

MODEL = "mobilenet_v2"
ROOT = Path(__file__).resolve().parents[2]


def apply(**values: float) -> ThresholdSetting:
    defaults = {"match": 0.75, "near_duplicate": 0.9, "similar": 0.75}
    return threshold_setting_apply(
        model_name=MODEL, origin=ThresholdSetting.Origin.CALIBRATED, **{**defaults, **values}
    )


@pytest.mark.django_db
def test_each_value_says_where_it_comes_from_and_environment_variables_win(settings, staff):
    # given the measured defaults of mobilenet_v2
    measured = MODEL_THRESHOLDS[MODEL]
    before = thresholds_in_force(model_name=MODEL)
    assert (before.near_duplicate, before.similar, before.match) == (
        measured.near_duplicate,
        measured.similar,
        measured.match,
    )
    assert {source.origin for source in before.sources.values()} == {"measured_default"}
    # when staff apply calibrated thresholds
    setting = threshold_setting_apply(
        model_name=MODEL,
        match=0.74,
        near_duplicate=0.91,
        similar=0.74,
        origin=ThresholdSetting.Origin.CALIBRATED,
        applied_by=staff,
    )
    # then they are in force, each saying it was calibrated on this library, on which day and by whom
    after = thresholds_in_force(model_name=MODEL)
    assert (after.near_duplicate, after.similar, after.match, after.setting_id) == (0.91, 0.74, 0.74, setting.pk)
    day = f"{setting.applied_at:%Y-%m-%d}"
    assert after.sources["near_duplicate"].description == f"calibrated on this library on {day} by sam"
    # and what was in force before is kept with the row (what undo puts back)
    assert setting.previous["near_duplicate"] == measured.near_duplicate
    # when an environment variable sets one value, it wins for that value only
    settings.IMGSIM_NEAR_DUPLICATE_THRESHOLD = 0.97
    mixed = thresholds_for(MODEL)
    assert (mixed.near_duplicate, mixed.similar) == (0.97, 0.74)
    assert mixed.sources["near_duplicate"].origin == "environment"
    assert mixed.sources["near_duplicate"].description == "environment variable IMGSIM_NEAR_DUPLICATE_THRESHOLD"
    assert mixed.sources["similar"].origin == "calibrated"
    # and a model nobody measured gets the generic fallback, said so
    generic = thresholds_in_force(model_name="some_new_backbone")
    assert generic.sources["similar"].origin == "generic"


@pytest.mark.django_db
def test_an_environment_value_below_an_applied_similar_threshold_lowers_it_instead_of_breaking_the_bands(settings):
    # given applied thresholds near 0.9 / similar 0.75, and IMGSIM_NEAR_DUPLICATE_THRESHOLD=0.7 from the environment
    apply()
    settings.IMGSIM_NEAR_DUPLICATE_THRESHOLD = 0.7
    # then the similar band starts at the near-duplicate one, and says so
    thresholds = thresholds_in_force(model_name=MODEL)
    assert (thresholds.near_duplicate, thresholds.similar) == (0.7, 0.7)
    assert "lowered to the near-duplicate threshold" in thresholds.sources["similar"].description


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("values", "code"),
    [
        ({"near_duplicate": 1.5}, "threshold_out_of_range"),
        ({"similar": -1.2}, "threshold_out_of_range"),
        ({"match": 2.0}, "threshold_out_of_range"),
        ({"near_duplicate": 0.8, "similar": 0.85}, "similar_above_near_duplicate"),
    ],
)
def test_bad_values_are_refused_and_nothing_changes(values, code):
    with pytest.raises(ServiceError) as refused:
        apply(**values)
    assert (refused.value.code, refused.value.status) == (code, 400)
    assert not ThresholdSetting.objects.exists()
    assert not LibraryChange.objects.filter(kind=LibraryChange.Kind.THRESHOLDS).exists()


@pytest.mark.django_db
def test_undo_puts_back_the_thresholds_before_and_refuses_a_stale_undo(staff):
    first = apply(near_duplicate=0.9)
    second = apply(near_duplicate=0.93)
    assert thresholds_in_force(model_name=MODEL).near_duplicate == 0.93
    threshold_setting_undo(setting=second, user=staff)
    assert thresholds_in_force(model_name=MODEL).near_duplicate == 0.9
    second.refresh_from_db()
    assert (second.undone_by, second.undone_at is not None) == (staff, True)
    # undoing the same row again (a second tab) is refused: it is not in force
    with pytest.raises(ServiceError) as stale:
        threshold_setting_undo(setting=second, user=staff)
    assert stale.value.status == 409
    assert thresholds_in_force(model_name=MODEL).near_duplicate == 0.9
    threshold_setting_undo(setting=first, user=staff)
    assert thresholds_in_force(model_name=MODEL).sources["near_duplicate"].origin == "measured_default"


@pytest.mark.django_db
def test_a_search_reads_no_thresholds_yet_sees_thresholds_changed_by_another_process():
    library = synthetic_library(30)
    query = next(iter(library.values()))
    assert selectors.similar_images(vector=query, k=3).threshold == MODEL_THRESHOLDS[MODEL].match
    # a warm search reads the change log and its results, not the thresholds
    with CaptureQueriesContext(connection) as queries:
        selectors.similar_images(vector=query, k=3)
    assert not [q for q in queries.captured_queries if "thresholdsetting" in q["sql"].lower()]
    # when another process applies thresholds (its rows only: this process's cache is not told directly)
    ThresholdSetting.objects.create(
        model_name=MODEL, match=0.66, near_duplicate=0.9, similar=0.66, origin=ThresholdSetting.Origin.CALIBRATED
    )
    LibraryChange.objects.create(kind=LibraryChange.Kind.THRESHOLDS)
    # then the next search here uses them
    assert selectors.similar_images(vector=query, k=3).threshold == 0.66


@pytest.mark.django_db(transaction=True)
def test_a_second_process_applying_thresholds_is_seen_by_this_one(tmp_path):
    # given this process has searched (its thresholds cached)
    library = synthetic_library(20)
    query = np.asarray(next(iter(library.values())))
    assert selectors.similar_images(vector=query, k=3).threshold == MODEL_THRESHOLDS[MODEL].match
    # when another process applies thresholds through the service
    database = connection.settings_dict
    if connection.vendor == "sqlite":
        url = f"sqlite:///{database['NAME']}"
    else:
        url = (
            f"postgres://{database['USER']}:{database['PASSWORD'] or ''}@{database['HOST']}:{database['PORT']}/"
            f"{database['NAME']}"
        )
    script = (
        "from search.models import ThresholdSetting; "
        "from search.services.thresholds import threshold_setting_apply; "
        "threshold_setting_apply(model_name='mobilenet_v2', match=0.61, near_duplicate=0.92, "
        "similar=0.61, origin=ThresholdSetting.Origin.CALIBRATED)"
    )
    env = {**os.environ, "DATABASE_URL": url, "IMGSIM_VAR_DIR": str(tmp_path)}
    subprocess.run([sys.executable, "manage.py", "shell", "-c", script], cwd=ROOT, env=env, check=True, timeout=120)
    # then this process's next search uses them
    assert selectors.similar_images(vector=query, k=3).threshold == 0.61
    assert thresholds_for(MODEL).sources["match"].origin == "calibrated"
