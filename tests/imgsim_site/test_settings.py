"""The one env-driven settings file: defaults, switches to PostgreSQL and Redis, clear errors for bad values."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def settings_in_subprocess(**env: str) -> dict:
    """Import the settings with exactly these variables set, as a fresh process would."""
    code = (
        "import json, imgsim_site.settings as s; "
        "print(json.dumps({'db': s.DATABASES['default'], 'q': s.Q_CLUSTER, 'batch': s.IMGSIM_EMBED_BATCH_SIZE, "
        "'blur': s.IMGSIM_BLUR_MIN_SCORE}, default=str))"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("IMGSIM_", "DJANGO_", "DATABASE_URL"))}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env={**clean, **env}, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr)
    return json.loads(result.stdout)


def test_embedded_default_is_sqlite_wal_and_orm_broker(tmp_path):
    config = settings_in_subprocess(IMGSIM_VAR_DIR=str(tmp_path))
    assert config["db"]["ENGINE"] == "django.db.backends.sqlite3"
    assert "journal_mode=WAL" in config["db"]["OPTIONS"]["init_command"]
    assert config["db"]["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert config["q"]["orm"] == "default"
    assert "redis" not in config["q"]
    assert config["blur"] is None  # unset: the measured default in gallery/quality.py applies


def test_database_url_and_redis_url_switch_backends(tmp_path):
    config = settings_in_subprocess(
        IMGSIM_VAR_DIR=str(tmp_path),
        DATABASE_URL="postgres://u:p@db.example:5432/imgsim",
        IMGSIM_REDIS_URL="redis://127.0.0.1:6379/3",
    )
    assert config["db"]["ENGINE"] == "django.db.backends.postgresql"
    assert config["db"]["NAME"] == "imgsim"
    assert config["q"]["redis"] == "redis://127.0.0.1:6379/3"
    assert "orm" not in config["q"]


@pytest.mark.parametrize(
    ("name", "value"),
    [("IMGSIM_EMBED_BATCH_SIZE", "lots"), ("IMGSIM_RATING_WEIGHT", "7"), ("DJANGO_DEBUG", "maybe")],
)
def test_bad_values_name_the_variable(tmp_path, name, value):
    with pytest.raises(RuntimeError) as error:
        settings_in_subprocess(IMGSIM_VAR_DIR=str(tmp_path), **{name: value})
    assert "ImproperlyConfigured" in str(error.value)
    assert name in str(error.value)
