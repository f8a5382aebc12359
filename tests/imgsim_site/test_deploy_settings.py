"""Issue 7 point 10: the production profile passes `manage.py check --deploy` and demands a strong key."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def production_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """The README's production variables, with a fresh strong key and paths in tmp_path."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("IMGSIM_", "DJANGO_", "DATABASE_URL"))}
    env = {
        **clean,
        "DATABASE_URL": "postgres://imgsim:secret@db:5432/imgsim",
        "IMGSIM_REDIS_URL": "redis://redis:6379/0",
        "IMGSIM_MEDIA_ROOT": str(tmp_path / "media"),
        "IMGSIM_INDEX_DIR": str(tmp_path / "index"),
        "IMGSIM_VAR_DIR": str(tmp_path),
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "IMGSIM_PROFILE": "production",
        "DJANGO_ALLOWED_HOSTS": "photos.example.com",
    }
    env.update(overrides)
    return {k: v for k, v in env.items() if v is not None}


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, check=False)


def test_check_deploy_is_clean_with_the_production_profile(tmp_path):
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], production_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_without_the_profile_check_deploy_names_what_is_missing(tmp_path):
    env = production_env(tmp_path)
    del env["IMGSIM_PROFILE"]
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)
    assert result.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in result.stderr


def test_production_settings_values(tmp_path):
    code = (
        "import json, imgsim_site.settings as s; print(json.dumps({n: getattr(s, n, None) for n in "
        "['SECURE_SSL_REDIRECT', 'SECURE_HSTS_SECONDS', 'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', "
        "'SECURE_PROXY_SSL_HEADER', 'DEBUG']} | {'cache': s.CACHES['default']['BACKEND']}))"
    )
    values = json.loads(
        run(["-c", code], production_env(tmp_path, DJANGO_SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto")).stdout
    )
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SECURE_HSTS_SECONDS"] == 31_536_000
    assert values["SESSION_COOKIE_SECURE"] is True
    assert values["CSRF_COOKIE_SECURE"] is True
    assert values["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert values["DEBUG"] is False
    assert values["cache"] == "django.core.cache.backends.redis.RedisCache"
    off = json.loads(run(["-c", code], production_env(tmp_path, DJANGO_SECURE_SSL_REDIRECT="0")).stdout)
    assert off["SECURE_SSL_REDIRECT"] is False  # each default can be overridden


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("x", "it has 1 characters"),
        ("a" * 64, "distinct characters"),
        ("abcdefghijklmnopqrstuvwxyz" * 2, "repeats itself"),
        ("django-insecure-" + secrets.token_urlsafe(48), "development key"),
        ("imgsim-dev-only-secret-key-change-me-in-production-0123456789", "development key"),
    ],
)
def test_a_weak_key_is_refused_in_production(tmp_path, key, reason):
    result = run(["manage.py", "check"], production_env(tmp_path, DJANGO_SECRET_KEY=key))
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is too weak for production" in result.stderr
    assert reason in result.stderr


def test_the_old_switch_also_demands_a_strong_key(tmp_path):
    env = production_env(tmp_path, DJANGO_SECRET_KEY="x", IMGSIM_REQUIRE_SECRET_KEY="1")
    del env["IMGSIM_PROFILE"]
    assert "too weak" in run(["manage.py", "check"], env).stderr


@pytest.mark.parametrize(
    ("drop", "extra", "message"),
    [
        ("DJANGO_SECRET_KEY", {}, "DJANGO_SECRET_KEY must be set"),
        ("DJANGO_ALLOWED_HOSTS", {}, "DJANGO_ALLOWED_HOSTS must name"),
        (None, {"DJANGO_DEBUG": "1"}, "DJANGO_DEBUG must be off"),
        (None, {"IMGSIM_PROFILE": "prod"}, "IMGSIM_PROFILE must be"),
        (
            None,
            {"IMGSIM_MAX_UPLOAD_BYTES": "2000000", "IMGSIM_MAX_REQUEST_BYTES": "1000000"},
            "IMGSIM_MAX_REQUEST_BYTES",
        ),
    ],
)
def test_missing_or_contradictory_production_settings_name_the_variable(tmp_path, drop, extra, message):
    env = production_env(tmp_path, **extra)
    if drop:
        del env[drop]
    result = run(["manage.py", "check"], env)
    assert result.returncode != 0
    assert message in result.stderr


def test_the_embedded_default_caches_in_the_database(tmp_path):
    env = production_env(tmp_path, IMGSIM_PROFILE="development")
    for name in ("IMGSIM_REDIS_URL", "DATABASE_URL"):
        del env[name]
    code = "import imgsim_site.settings as s; print(s.CACHES['default']['BACKEND'], s.CACHES['default']['LOCATION'])"
    assert run(["-c", code], env).stdout.split() == ["core.cache.SharedDatabaseCache", "imgsim_cache"]
