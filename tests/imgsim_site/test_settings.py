"""The one env-driven settings file: defaults, switches to PostgreSQL and Redis, clear errors for bad values."""

from __future__ import annotations

import json
import os
import re
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


def sqlite_busy_timeout_ms(tmp_path: Path, **env: str) -> int:
    """The busy timeout an actual SQLite connection gets, read back from SQLite itself."""
    code = (
        "import django; django.setup(); from django.db import connection; "
        "cursor = connection.cursor(); cursor.execute('PRAGMA busy_timeout'); print(cursor.fetchone()[0])"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("IMGSIM_", "DJANGO_", "DATABASE_URL"))}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**clean, "DJANGO_SETTINGS_MODULE": "imgsim_site.settings", "IMGSIM_VAR_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr)
    return int(result.stdout)


def test_sqlite_timeout_is_the_connections_busy_timeout(tmp_path):
    # given IMGSIM_SQLITE_TIMEOUT set away from its default, when a connection opens, then SQLite waits that long
    assert sqlite_busy_timeout_ms(tmp_path, IMGSIM_SQLITE_TIMEOUT="7") == 7000
    assert sqlite_busy_timeout_ms(tmp_path) == 30_000


def test_task_timeout_sets_timeout_and_a_later_retry(tmp_path):
    config = settings_in_subprocess(IMGSIM_VAR_DIR=str(tmp_path), IMGSIM_TASK_TIMEOUT="60")
    assert config["q"]["timeout"] == 60
    assert config["q"]["retry"] == 360


def test_task_timeout_below_minimum_names_the_variable(tmp_path):
    with pytest.raises(RuntimeError, match="IMGSIM_TASK_TIMEOUT"):
        settings_in_subprocess(IMGSIM_VAR_DIR=str(tmp_path), IMGSIM_TASK_TIMEOUT="5")


ENV_READERS = re.compile(r"\benv_(?:str|bool|int|float|optional_float|optional_int|list)\(\s*\"([A-Z0-9_]+)\"")


def variables_read_by_settings() -> set[str]:
    """Every variable name settings.py passes to one of its env_* readers."""
    return set(ENV_READERS.findall((REPO / "imgsim_site" / "settings.py").read_text()))


def variables_in_env_example() -> set[str]:
    names = set()
    for line in (REPO / ".env.example").read_text().splitlines():
        match = re.match(r"^([A-Z][A-Z0-9_]*)=", line)
        if match:
            names.add(match.group(1))
    return names


def test_every_variable_settings_reads_is_documented_in_env_example():
    read = variables_read_by_settings()
    assert len(read) > 40, "the pattern no longer finds settings.py's env_* calls"
    assert {"IMGSIM_MANIFEST_STATIC", "IMGSIM_SQLITE_TIMEOUT", "IMGSIM_ADMIN_USER"} <= read
    missing = read - variables_in_env_example()
    assert not missing, f"read in settings.py but not documented in .env.example: {sorted(missing)}"


def test_only_settings_py_reads_imgsim_variables():
    # given every Python module of the product, then none but settings.py reads the environment directly
    packages = [p for p in REPO.iterdir() if (p / "__init__.py").is_file() and p.name not in {"tests", "bench"}]
    modules = [path for package in packages for path in package.rglob("*.py")]
    assert len(modules) > 50
    offenders = [
        str(path.relative_to(REPO))
        for path in modules
        if path != REPO / "imgsim_site" / "settings.py"
        and re.search(r"os\.(environ\.get|environ\[|getenv)", path.read_text())
    ]
    assert offenders == []
