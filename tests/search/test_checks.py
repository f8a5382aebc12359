"""Start-up checks name a wrong model setting before any upload fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from django.core import checks

from search.checks import embedding_settings_check, threshold_settings_check

REPO = Path(__file__).resolve().parents[2]


def test_unknown_backbone_is_an_error(settings):
    settings.IMGSIM_MODEL = "resnet-eighteen"
    (message,) = embedding_settings_check()
    assert message.id == "imgsim.E001"
    assert "resnet18" in message.hint


def test_missing_weights_file_is_a_warning(settings, tmp_path):
    settings.IMGSIM_WEIGHTS = str(tmp_path / "nope.pth")
    (message,) = embedding_settings_check()
    assert message.id == "imgsim.W001"
    assert "nope.pth" in message.msg


def test_good_settings_pass(settings):
    assert embedding_settings_check() == []


def test_similar_threshold_above_near_duplicate_is_an_error(settings):
    # given mobilenet_v2, whose measured near-duplicate threshold is 0.88, and only the similar one overridden
    settings.IMGSIM_MODEL = "mobilenet_v2"
    settings.IMGSIM_SIMILAR_THRESHOLD = 0.9
    # when the start-up checks run
    (message,) = threshold_settings_check()
    # then the clash is an error naming both values and both variables
    assert message.id == "imgsim.E002"
    assert message.level == checks.ERROR
    assert "(0.9)" in message.msg
    assert "(0.88)" in message.msg
    assert "mobilenet_v2" in message.msg
    assert "IMGSIM_SIMILAR_THRESHOLD" in message.hint
    assert "IMGSIM_NEAR_DUPLICATE_THRESHOLD" in message.hint


def test_thresholds_are_resolved_per_model(settings):
    # given the same override, which is below resnet18's near-duplicate default of 0.99
    settings.IMGSIM_MODEL = "resnet18"
    settings.IMGSIM_SIMILAR_THRESHOLD = 0.9
    # then the check passes for that model
    assert threshold_settings_check() == []


def test_near_duplicate_override_below_the_default_similar_is_an_error(settings):
    # given only the near-duplicate threshold lowered under mobilenet_v2's similar default of 0.70
    settings.IMGSIM_MODEL = "mobilenet_v2"
    settings.IMGSIM_NEAR_DUPLICATE_THRESHOLD = 0.6
    (message,) = threshold_settings_check()
    assert message.id == "imgsim.E002"


def test_equal_thresholds_pass(settings):
    # an empty grey zone is allowed: every pair is then a near-duplicate or nothing
    settings.IMGSIM_NEAR_DUPLICATE_THRESHOLD = 0.9
    settings.IMGSIM_SIMILAR_THRESHOLD = 0.9
    assert threshold_settings_check() == []


def test_manage_py_check_fails_at_start_up_on_the_clash(tmp_path):
    # given a process started with clashing thresholds
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IMGSIM_", "DJANGO_", "DATABASE_URL"))}
    env.update(
        IMGSIM_VAR_DIR=str(tmp_path),
        IMGSIM_MODEL="mobilenet_v2",
        IMGSIM_NEAR_DUPLICATE_THRESHOLD="0.8",
        IMGSIM_SIMILAR_THRESHOLD="0.85",
    )
    # when `manage.py check` runs, as runserver, migrate and make run do first
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=REPO, env=env, capture_output=True, text=True, check=False
    )
    # then it refuses to start and says why
    assert result.returncode != 0
    assert "imgsim.E002" in result.stderr
